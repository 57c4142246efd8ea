"""The HPA scenario's verdict: unmeasured (the harness's shortfall), pass or fail against the trajectory
check, in words."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from harness.analysis.hpa.plan import UPSTREAM_E2E_ALLOWANCE, HpaLoadPlan, cpu_metric
from harness.analysis.hpa.series import scaled_back_down
from harness.oracles import hpa
from harness.oracles.hpa_trajectory import TrajectoryResult

__all__ = ["hpa_unmeasured", "hpa_verdict"]


def _first(observed: Sequence[Mapping[str, Any]], pred: Callable[[Mapping[str, Any]], bool]) -> float | None:
    return next((o["t"] for o in observed if pred(o)), None)


def hpa_unmeasured(result: TrajectoryResult | None, observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec,
                   plan: HpaLoadPlan, stop_at: float, first_error: str = "") -> str:
    """Why the run could not judge the HPA at all ("" when it could): no HPA status was read, or the
    harness's load never demanded ``maxReplicas``. Both are the harness's shortfall (inconclusive,
    exit 11), not the system's; :func:`hpa_verdict` words the same cases for callers that want one
    verdict."""
    if not observed or result is None:
        return hpa_verdict(result, observed, spec, plan, stop_at, first_error)[1]
    if result.ok and _first(observed, lambda o: o["desired"] >= spec.max_replicas) is None:
        return hpa_verdict(result, observed, spec, plan, stop_at, first_error)[1]   # a deviation stays a fail
    return ""


def hpa_verdict(result: TrajectoryResult | None, observed: Sequence[Mapping[str, Any]], spec: hpa.HPASpec,
                plan: HpaLoadPlan, stop_at: float, first_error: str = "") -> tuple[bool, str]:
    """(ok, one sentence with times). Fails on any oracle deviation, and also when the run cannot
    show the behaviour: the load never demanded ``maxReplicas`` or the scale-down was not observed."""
    if not observed or result is None:
        seen = f" (first error: {first_error[:200]})" if first_error else ""
        return False, (f"No HPA status could be read during the run{seen}, so the scaling behaviour could not be "
                       "judged; check the API server and RBAC for autoscaling/v2.")
    if not result.ok:
        return False, f"The staging HPA deviated from the upstream rules: {result.explanation}"
    t_max = _first(observed, lambda o: o["desired"] >= spec.max_replicas)
    cpu_peak = max((o["metrics"].get("cpu", 0.0) for o in observed), default=0.0)
    target = cpu_metric(spec).target.average_utilization
    if t_max is None:
        top = max(o["desired"] for o in observed)
        return False, (f"The load never took the HPA to maxReplicas {spec.max_replicas} (highest {top}, peak CPU "
                       f"{cpu_peak:.0f}% of request against a {target}% target by t={stop_at:.0f}s), so the "
                       f"scale-up to the maximum was not exercised; raise HARNESS_CPU_COST_MS or the users.")
    if not scaled_back_down(observed, spec, stop_at):
        last = observed[-1]
        return False, (f"After the load stopped at t={stop_at:.0f}s the HPA was still at {last['desired']} replicas "
                       f"at t={last['t']:.0f}s, so the scale-down to minReplicas {spec.min_replicas} was not observed.")
    t_down = _first(observed, lambda o: o["t"] > stop_at and o["desired"] < spec.max_replicas)
    t_min = _first(observed, lambda o: o["t"] > stop_at and o["desired"] <= spec.min_replicas)
    expected_max = next((t for t, e, _lo, _hi in result.expected if e >= spec.max_replicas), None)
    b = spec.behavior
    window = b.scale_down.window(hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) if b else hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW
    down_rule = b.scale_down.describe() if b else "the default scale-down"
    exp = f" (oracle: by t={expected_max:.0f}s)" if expected_max is not None else ""
    return True, (f"Under load ramped to {plan.peak_users} users over t=0-{plan.ramp_s:.0f}s the HPA reached "
                  f"maxReplicas {spec.max_replicas} at t={t_max:.0f}s{exp}, never exceeded it, and after the load "
                  f"stopped at t={stop_at:.0f}s began scaling down at t={t_down:.0f}s and reached "
                  f"{spec.min_replicas} at t={t_min:.0f}s, after the {window:g}s stabilization window and within the "
                  f"scaleDown policy ({down_rule}), inside the upstream envelope ({len(observed)} samples, reaction "
                  f"allowance {UPSTREAM_E2E_ALLOWANCE.total:g}s).")
