"""The circuit-breaker fault schedule (which pods fail how, when) and the Envoy outlier oracle's
expected ejections for it."""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.oracles.outlier import OutlierDetectionSettings, SimulationResult, max_ejectable_hosts, simulate
from harness.conductor import Fault

__all__ = ["FaultPhase", "phase_at", "default_schedule", "compact_schedule", "oracle_inputs", "expected_ejections",
           "cap_for"]


@dataclass(frozen=True)
class FaultPhase:
    """Faults on ``pods`` from ``start`` to ``end`` (seconds since the load started); after ``end``
    the pods are healthy until ``settle_until`` (time for ejected pods to come back)."""

    name: str
    start: float
    end: float
    settle_until: float
    pods: tuple[str, ...]
    error_status: int | None = None
    error_rate: float = 1.0
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.pods:
            raise UsageError(f"fault phase {self.name!r} names no pod", "give at least one conductor pod")
        if not self.start < self.end <= self.settle_until:
            raise UsageError(f"fault phase {self.name!r} has start {self.start}, end {self.end}, settle "
                             f"{self.settle_until}", "use start < end <= settle_until")
        if self.error_status is None and not self.latency_ms:
            raise UsageError(f"fault phase {self.name!r} injects nothing", "set error_status or latency_ms")
        if self.error_status is not None and not 400 <= self.error_status <= 599:
            raise UsageError(f"fault phase {self.name!r}: error_status {self.error_status} is not 4xx/5xx",
                             "use e.g. 502, 503, 504 or 500")
        if not 0 < self.error_rate <= 1:
            raise UsageError(f"fault phase {self.name!r}: error_rate {self.error_rate} is not in (0, 1]",
                             "use a probability such as 1.0")

    def fault(self) -> Fault:
        """What the conductor's fault endpoint gets on each of ``pods``."""
        return Fault(error_status=self.error_status, error_rate=self.error_rate if self.error_status else None,
                     latency_ms=self.latency_ms)

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def phase_at(schedule: Sequence[FaultPhase], t: float) -> FaultPhase | None:
    return next((p for p in schedule if p.start <= t < p.settle_until), None)


def default_schedule(pods: Sequence[str], *, warmup_s: float = 20.0, fault_s: float = 12.0, settle_s: float = 65.0,
                     latency_s: float = 20.0, latency_ms: float = 1500.0) -> list[FaultPhase]:
    """Gateway errors (503 retried by the route, 502 not), another 5xx (500), every pod failing at
    once (the max-ejection cap; retries exhausted), then latency (no error: no ejection).

    Single-pod phases alternate over the pods, so a pod is long healthy (its ejection backoff
    decayed) before it fails again. ``settle_s`` covers base ejection time + one interval of the
    seed's intent (30 s + 30 s) plus slack; faults are shorter than the base ejection time so a pod
    comes back healthy and stays.
    """
    pods = list(pods)
    if not pods:
        raise UsageError("no conductor pods to inject faults into", "the conductor Deployment has no ready pod")
    plan: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
        ("gateway-503", (pods[0],), {"error_status": 503}),
        ("gateway-502", (pods[1 % len(pods)],), {"error_status": 502}),
        ("5xx-500", (pods[0],), {"error_status": 500}),
        ("all-pods-503", tuple(pods), {"error_status": 503}),
    ]
    out, t = [], warmup_s
    for name, targets, kw in plan:
        out.append(FaultPhase(name, t, t + fault_s, t + fault_s + settle_s, targets, **kw))
        t += fault_s + settle_s
    out.append(FaultPhase("latency", t, t + latency_s, t + latency_s + 10.0, (pods[1 % len(pods)],),
                          latency_ms=latency_ms))
    return out


def compact_schedule(pods: Sequence[str], settings: OutlierDetectionSettings, *, warmup_s: float = 6.0,
                     fault_s: float = 6.0, gap_s: float = 2.0, return_margin_s: float = 4.0, latency_s: float = 10.0,
                     latency_ms: float = 1500.0) -> list[FaultPhase]:
    """The same behaviours as :func:`default_schedule` in about 100 s (CI), for two or more pods:

    1. ``gateway-503`` on pod 0: ejected at once (consecutive gateway errors);
    2. ``gateway-502-capped`` on pod 1 while pod 0 is still out: the max-ejection cap must hold it in;
    3. ``5xx-500`` on pod 1 once pod 0 is surely back (its ejection + ``baseEjectionTime`` + one
       ``interval``, the latest tick that returns it, + ``return_margin_s``): a non-gateway 5xx,
       ejected by ``consecutive_5xx`` (which Istio leaves at Envoy's default);
    4. ``all-pods-503``: every pod failing (retries exhausted, the cap again);
    5. ``latency`` on pod 0: slow but answering, never ejected.

    Phase times come from the outlier settings, so the return of pod 0 after ``baseEjectionTime``
    is inside the run.
    """
    pods = list(pods)
    if len(pods) < 2:
        raise UsageError(f"{len(pods)} pod(s); the compact schedule needs two", "run at least two conductor replicas")
    back = warmup_s + (settings.base_ejection_time_ms + settings.interval_ms) / 1000.0 + return_margin_s
    t1, t2 = warmup_s, warmup_s + fault_s + gap_s
    t3 = max(back, t2 + fault_s + gap_s)
    t4 = t3 + fault_s + gap_s
    t5 = t4 + fault_s + gap_s
    return [FaultPhase("gateway-503", t1, t1 + fault_s, t3, (pods[0],), error_status=503),
            FaultPhase("gateway-502-capped", t2, t2 + fault_s, t3, (pods[1],), error_status=502),
            FaultPhase("5xx-500", t3, t3 + fault_s, t4, (pods[1],), error_status=500),
            FaultPhase("all-pods-503", t4, t4 + fault_s, t5, tuple(pods), error_status=503),
            FaultPhase("latency", t5, t5 + latency_s, t5 + latency_s + 4.0, (pods[0],), latency_ms=latency_ms)]


# -- the oracle's expectation -----------------------------------------------------------------------------
def oracle_inputs(schedule: Sequence[FaultPhase], pods: Sequence[str], *, rate_per_pod: float, until: float,
                  step: float = 0.25, seed: int = 0, tie_order: Mapping[str, Sequence[str]] | None = None
                  ) -> list[dict[str, Any]]:
    """Responses the gateway's Envoy gets from each pod, per ``step``, under ``schedule``.

    A pod's answer is the fault's ``error_status`` (with probability ``error_rate``, seeded) while
    its phase is active, else 200; latency faults answer 200 (later). Requests to a pod the
    oracle has ejected are still listed: ``putHttpResponseCode`` on an ejected host moves no
    ejection (``onConsecutiveErrorWorker`` returns early) and counters reset on un-ejection, so the
    ejection times are the same. ``tie_order`` (phase name -> pod order) fixes which of several
    pods failing in the same step reports first; the real arrival order is unknowable in advance.
    """
    if rate_per_pod <= 0 or step <= 0 or until <= 0:
        raise UsageError(f"rate_per_pod={rate_per_pod}, step={step}, until={until}", "use positive values")
    rng = random.Random(seed)
    n = max(1, round(rate_per_pod * step))
    inputs: list[dict[str, Any]] = []
    steps = int(math.floor(until / step))
    for i in range(steps):
        t = round(i * step, 6)
        phase = next((p for p in schedule if p.active(t)), None)
        order = list(pods)
        if phase is not None and tie_order and phase.name in tie_order:
            first = [p for p in tie_order[phase.name] if p in pods]
            order = first + [p for p in pods if p not in first]
        for pod in order:
            if phase is not None and pod in phase.pods and phase.error_status is not None:
                if phase.error_rate >= 1:
                    inputs.append({"t": t, "host": pod, "code": phase.error_status, "n": n})
                else:
                    for _ in range(n):
                        code = phase.error_status if rng.random() < phase.error_rate else 200
                        inputs.append({"t": t, "host": pod, "code": code})
            else:
                inputs.append({"t": t, "host": pod, "code": 200, "n": n})
    return inputs


def expected_ejections(settings: OutlierDetectionSettings | None, pods: Sequence[str],
                       schedule: Sequence[FaultPhase], *, rate_per_pod: float, until: float,
                       healthy_panic_threshold: float = 0.0, max_ejection_rule: str = "current",
                       tie_order: Mapping[str, Sequence[str]] | None = None, step: float = 0.25) -> SimulationResult:
    """The oracle's ejections for the fault schedule (``settings=None``: no outlier detection)."""
    inputs = oracle_inputs(schedule, pods, rate_per_pod=rate_per_pod, until=until, step=step, tie_order=tie_order)
    return simulate(settings, list(pods), inputs, until=until, healthy_panic_threshold=healthy_panic_threshold,
                    max_ejection_rule=max_ejection_rule)


def cap_for(sim: SimulationResult, n_pods: int) -> int | None:
    if sim.settings is None:
        return None
    return max_ejectable_hosts(n_pods, sim.settings.max_ejection_percent,
                               always_eject_one_host=sim.settings.always_eject_one_host, rule=sim.max_ejection_rule)

