"""How many hosts may be out of a load-balancing set at once.

* ``max_ejectable_hosts`` / ``ejection_allowed``: the max-ejection-percent rule of
  ``DetectorImpl::ejectHost`` in envoyproxy/envoy ``source/common/upstream/outlier_detection_impl.cc``
  (current rule since envoyproxy/envoy#27909, ``always_eject_one_host`` from envoy#34796, and the
  ``legacy`` rule before envoy#27624);
* ``is_host_set_in_panic``: ``LoadBalancerBase::isHostSetInPanic`` in
  ``source/common/upstream/load_balancer_impl.cc``.
"""
from __future__ import annotations

from harness.oracles.outlier.errors import OutlierInputError

__all__ = ["MAX_EJECTION_RULES", "check_max_ejection_rule", "ejection_allowed", "max_ejectable_hosts",
           "is_host_set_in_panic"]

#: ``current``: Envoy since envoy#27909; ``legacy``: Envoy before envoy#27624.
MAX_EJECTION_RULES = ("current", "legacy")


def max_ejectable_hosts(n_hosts: int, max_ejection_percent: int, *, always_eject_one_host: bool = False,
                        rule: str = "current") -> int:
    """How many hosts ``ejectHost`` lets be ejected at once out of ``n_hosts``."""
    check_max_ejection_rule(rule)
    if n_hosts <= 0:
        return 0
    pct = min(100, max_ejection_percent)
    active = 0
    while active < n_hosts and ejection_allowed(active, n_hosts, pct, always_eject_one_host, rule):
        active += 1
    return active


def check_max_ejection_rule(rule: str) -> None:
    """Refuse a ``max_ejection_rule`` that is not one of :data:`MAX_EJECTION_RULES`."""
    if rule not in MAX_EJECTION_RULES:
        raise OutlierInputError(f"max_ejection_rule must be 'current' or 'legacy', got {rule!r}; pick one")


def ejection_allowed(active: int, n_hosts: int, max_pct: int, always_eject_one: bool, rule: str) -> bool:
    """``ejectHost``'s test: may one more host be ejected while ``active`` of ``n_hosts`` are out?"""
    if rule == "legacy":
        # Envoy before envoy#27624: percent of hosts already ejected, strict <.
        return 100.0 * active / n_hosts < max_pct
    allowed = 100.0 * (active + 1) / n_hosts <= max_pct  # ejectHost, current
    if always_eject_one:
        allowed = active == 0 or allowed
    return allowed


def is_host_set_in_panic(n_hosts: int, n_healthy: int, healthy_panic_threshold: float) -> bool:
    """``LoadBalancerBase::isHostSetInPanic`` (no degraded/excluded hosts).

    In panic the load balancer uses all hosts, ejected ones included.  A
    threshold of 0 (what Istio sets unless ``minHealthPercent`` > 0) disables it.
    """
    threshold = min(100.0, healthy_panic_threshold)
    healthy_percent = 0.0 if n_hosts == 0 else 100.0 * n_healthy / n_hosts
    return healthy_percent < threshold
