"""Why a gateway ejected a replica: for failure, or for load (pure).

istiod gives the DestinationRule's connection-pool limits to the destination's own sidecar too
(its ``inbound|8080||`` cluster). Under load from several clients (several gateways, each within
its own limits) a replica's sidecar overflows and answers a local ``503`` (flag UO, Envoy's
``upstream_rq_pending_overflow`` on the inbound cluster). To each gateway that is a 503 from the
replica, a gateway error for its outlier detector: a healthy but busy replica gets ejected. That is
not the failure detection the circuit breaker is for, so the verdict names it apart:

* **failure**: an injected error fault was active on the replica in the lookback before the
  ejection (the app answered 5xx);
* **load**: no error fault, and the replica's sidecar counted local overflow (UO) in the lookback;
* **unexplained**: neither (reported; a harness or system surprise to investigate).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from harness.analysis.circuit_breaker.schedule import FaultPhase

__all__ = ["EjectionCause", "ejection_causes", "causes_sentence", "overflow_points"]

Window = tuple[float, float | None]


@dataclass(frozen=True)
class EjectionCause:
    gateway: str
    pod: str
    t: float
    cause: str           # failure | load | unexplained
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def overflow_points(samples: Sequence[tuple[float, float]], t0: float) -> list[tuple[float, float]]:
    """``(wall time, cumulative upstream_rq_pending_overflow)`` reads of one sidecar -> seconds since ``t0``."""
    return sorted((round(t - t0, 3), float(v)) for t, v in samples)


def _overflow_in(points: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Increase of the cumulative counter between the last read at/before ``start`` (0 before the first
    read: the sidecar's counter starts at 0) and the first read at/after ``end``: the reads are a sampling
    period apart, so an overflow just before ``end`` shows only in the next read (an ejection 0.2 s into
    the run, before any read, was called unexplained while its sidecar had overflowed). 0 without reads."""
    before = [v for t, v in points if t <= start]
    after = [v for t, v in points if t >= end]
    upto = after[:1] or [v for t, v in points if t <= end][-1:]
    if not upto:
        return 0.0
    return max(0.0, upto[0] - (before[-1] if before else 0.0))


def ejection_causes(flags_by_gateway: Mapping[str, Mapping[str, Sequence[Window]]], phases: Sequence[FaultPhase],
                    sidecar_overflow: Mapping[str, Sequence[tuple[float, float]]], *,
                    lookback_s: float = 5.0) -> list[EjectionCause]:
    """Each ejection window's start (per gateway and replica) with its cause. ``sidecar_overflow``:
    per replica, ``(seconds since t0, cumulative inbound overflow)`` reads (:func:`overflow_points`);
    ``lookback_s``: how far before an ejection its cause may lie (the sampling period plus the
    detector's reaction)."""
    if lookback_s <= 0:
        raise ValueError(f"lookback_s must be positive, got {lookback_s}")
    out = []
    for gw, flags in flags_by_gateway.items():
        for pod, windows in flags.items():
            for start, _ in windows:
                lo = start - lookback_s
                fault = next((p for p in phases if p.error_status is not None and pod in p.pods
                              and p.start <= start and p.end >= lo), None)
                uo = _overflow_in(sidecar_overflow.get(pod, ()), lo, start)
                if fault is not None:
                    cause, ev = "failure", f"{fault.name}: the app answered {fault.error_status}"
                elif uo > 0:
                    cause, ev = "load", f"its sidecar answered {uo:g} local 503 UO (receiver-side limits)"
                else:
                    cause, ev = "unexplained", "no error fault and no sidecar overflow before it"
                out.append(EjectionCause(gw, pod, start, cause, ev))
    return sorted(out, key=lambda c: (c.t, c.gateway, c.pod))


def causes_sentence(causes: Sequence[EjectionCause]) -> str:
    """``ejected for failure: N; for load: M (pod by gateway at t s: evidence); unexplained: K``."""
    if not causes:
        return "no ejection"
    by = {k: [c for c in causes if c.cause == k] for k in ("failure", "load", "unexplained")}
    parts = [f"ejected for failure: {len(by['failure'])}"]
    if by["load"]:
        first = by["load"][0]
        parts.append(f"ejected for load: {len(by['load'])} (first {first.pod} by {first.gateway} at {first.t:g}s: "
                     f"{first.evidence})")
    else:
        parts.append("ejected for load: 0")
    if by["unexplained"]:
        parts.append(f"unexplained: {len(by['unexplained'])}")
    return "; ".join(parts)
