"""A zone loss's recovery split into phases a person can act on, the error budget it spent, the capacity
left, and the verdict against the runbook's claim. Pure: samples and events in, results out.

Phases, from the fault (epoch seconds; each ends where the next begins):

* **detection** — fault injected → the first reaction of the system: the entry point's load balancer
  ejecting a lost replica (its active health check; the entry point Envoy's ejection time) or the
  database failover's promotion, whichever came first. Long detection: health-check interval and
  thresholds, or the failover's trigger.
* **failover** — → the database accepts writes in the new zone (the name ``postgres`` moved to the
  promoted standby). Zero when the primary was not in the lost zone. Long failover: promotion,
  DNS/alias move.
* **reconnection** — → users succeed again, sustained (``compute_rto``'s recovery: ``sustain_recovery_s``
  without a failure). Long reconnection: connection pools, retries, readiness of the survivors.

The runbook (seed, "Single AZ Failure"): impact "Degraded performance", recovery "Automatic via
multi-AZ setup". Read as a testable claim: while the zone is still down (before any rollback), users
recover by themselves; the RTO (fault → sustained recovery) and RPO stay within the DR targets.
Capacity may drop ("degraded") but not to nothing.

``judge`` is inconclusive when the fault was not injected or nothing was measured during it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.measure.outage import RtoResult, Sample, compute_rto

__all__ = ["ZoneEvents", "Phases", "ErrorBudget", "Capacity", "Verdict", "split_phases", "error_budget",
           "goodput_within_slo", "capacity_left", "judge", "RUNBOOK_CLAIM", "BUDGET_PERIOD_S"]

RUNBOOK_CLAIM = "Single AZ Failure: impact 'Degraded performance', recovery 'Automatic via multi-AZ setup'"
BUDGET_PERIOD_S = 30 * 86400.0   # the error budget's period: a 30-day SLO window


@dataclass(frozen=True)
class ZoneEvents:
    """What happened when (epoch seconds; ``None``: did not happen or was not observed)."""

    fault_at: float | None                     # the zone failed (the fault log's injected time)
    restored_at: float | None = None           # the zone came back (the rollback)
    lb_ejected_at: float | None = None         # the entry point first ejected a lost replica
    failover_promoted_at: float | None = None  # the standby was promoted
    database_writable_at: float | None = None  # the name ``postgres`` points at the writable new primary
    primary_in_zone: bool = False              # the database primary was among the lost containers


@dataclass
class Phases:
    """Seconds per phase; ``None`` where a phase never ended."""

    detection_s: float | None
    failover_s: float | None
    reconnection_s: float | None
    user_recovery_s: float | None        # fault → users served again (sustained) while the zone was down
    detected_by: str                     # "load balancer" | "database failover" | "nothing"
    recovered_before_restore: bool       # the runbook's "automatic"
    rto: RtoResult
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rto"] = self.rto.to_dict()
        return d


def _window(samples: Iterable[Sample], end: float | None) -> list[Sample]:
    return sorted((s for s in samples if end is None or s.t < end), key=lambda s: s.t)


def split_phases(samples: Sequence[Sample], events: ZoneEvents, *, sustain_failure_s: float = 1.0,
                 sustain_recovery_s: float = 5.0, target_s: float | None = None) -> Phases | None:
    """Detection, failover and reconnection from the prober's samples and the events; ``None`` when
    no sample falls between the fault and the zone's return.

    Only samples before ``restored_at`` count: recovery that needed the zone back is not automatic.
    Users who never saw a sustained failure recovered at once (every phase after detection is 0).
    """
    notes: list[str] = []
    window = _window(samples, events.restored_at)
    if not [s for s in window if events.fault_at is None or s.t >= events.fault_at]:
        return None  # nothing probed while the zone was down: ``judge`` says inconclusive
    rto = compute_rto(window, fault_at=events.fault_at, sustain_failure_s=sustain_failure_s,
                      sustain_recovery_s=sustain_recovery_s, target_s=target_s)
    fault = events.fault_at
    reactions = [(t, who) for t, who in ((events.lb_ejected_at, "load balancer"),
                                         (events.failover_promoted_at, "database failover"))
                 if t is not None and (fault is None or t >= fault)]
    first, detected_by = min(reactions) if reactions else (None, "nothing")
    detection = None if first is None or fault is None else round(first - fault, 3)
    if first is None:
        notes.append("nothing reacted to the zone loss (no health-check ejection, no failover)")

    if not events.primary_in_zone:
        db_ready, failover = first, (0.0 if first is not None else None)
    elif events.database_writable_at is None:
        db_ready, failover = None, None
        notes.append("the database primary was in the lost zone and no failover completed")
    else:
        db_ready = events.database_writable_at
        failover = round(max(0.0, db_ready - first), 3) if first is not None else None

    if rto.sustained_failures == 0 and rto.samples:
        users_back = fault  # users never lost service beyond blips
    else:
        users_back = rto.recovered_at
    if users_back is None:
        notes.append("users were not served again while the zone was down" if events.restored_at is not None
                     else "users were not served again before probing stopped")
    reconnection = None
    if users_back is not None and db_ready is not None:
        reconnection = round(max(0.0, users_back - db_ready), 3)
    user_recovery = None if users_back is None or fault is None else round(max(0.0, users_back - fault), 3)
    return Phases(detection, failover, reconnection, user_recovery, detected_by,
                  recovered_before_restore=users_back is not None, rto=rto, notes=notes)


@dataclass(frozen=True)
class ErrorBudget:
    """Failed requests against what the SLO allows."""

    requests: int
    failed: int
    slo_error_ratio: float
    window_spent: float | None        # failed / (ratio × requests) of the observed window; > 1: SLO broken
    period_spent: float | None        # failed-request-seconds / (ratio × BUDGET_PERIOD_S): share of 30 days

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_budget(samples: Sequence[Sample], slo_error_ratio: float, *, start: float | None = None,
                 end: float | None = None, interval_s: float = 0.25) -> ErrorBudget:
    """Error budget spent by the requests in [start, end).

    ``window_spent``: the observed window's own allowance (ratio × requests). ``period_spent``: each
    failed probe stands for ``interval_s`` of unavailability (the prober's cadence), against the
    ratio × 30 days a 30-day SLO allows — the share of a month's budget this one zone loss used.
    """
    chosen = [s for s in samples if (start is None or s.t >= start) and (end is None or s.t < end)]
    failed = sum(1 for s in chosen if not s.ok)
    if slo_error_ratio <= 0:
        return ErrorBudget(len(chosen), failed, slo_error_ratio, None, None)
    window = failed / (slo_error_ratio * len(chosen)) if chosen else None
    period = failed * interval_s / (slo_error_ratio * BUDGET_PERIOD_S)
    return ErrorBudget(len(chosen), failed, slo_error_ratio,
                       None if window is None else round(window, 4), period)


def goodput_within_slo(seconds: Sequence[Mapping[str, Any]], *, start: float, end: float, p95_limit_ms: float,
                       error_ratio_limit: float) -> float | None:
    """Mean successful requests per second over [start, end), counting a second whose p95 or error
    ratio broke the SLO as 0 (throughput that users did not get within the SLO is not capacity).

    ``seconds``: per-second records ``{"t", "ok", "fail", "p95_ms"}`` (the locustfile's lines).
    ``None`` when no second falls in the window.
    """
    chosen = [s for s in seconds if start <= s["t"] < end]
    if not chosen:
        return None
    total = 0.0
    for s in chosen:
        n = s["ok"] + s["fail"]
        within = (s.get("p95_ms") or 0) <= p95_limit_ms and (n == 0 or s["fail"] / n <= error_ratio_limit)
        total += s["ok"] if within else 0
    return round(total / len(chosen), 3)


@dataclass(frozen=True)
class Capacity:
    """Throughput within the SLO before the fault and on the survivors after it."""

    before_rps: float | None
    after_rps: float | None
    replicas_before: int
    replicas_after: int

    @property
    def left(self) -> float | None:
        if self.before_rps is None or self.after_rps is None or self.before_rps <= 0:
            return None
        return round(self.after_rps / self.before_rps, 3)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "left": self.left}


def capacity_left(seconds: Sequence[Mapping[str, Any]], events: ZoneEvents, users_back_at: float | None, *,
                  p95_limit_ms: float, error_ratio_limit: float, replicas_before: int,
                  replicas_after: int, warmup_s: float = 0.0) -> Capacity:
    """Goodput within the SLO before the fault (after the load's first ``warmup_s``) and after users
    recovered (until the zone returned)."""
    if events.fault_at is None:
        return Capacity(None, None, replicas_before, replicas_after)
    first = min((s["t"] for s in seconds), default=events.fault_at) + warmup_s
    before = goodput_within_slo(seconds, start=first, end=events.fault_at, p95_limit_ms=p95_limit_ms,
                                error_ratio_limit=error_ratio_limit)
    after = None
    if users_back_at is not None:
        end = events.restored_at if events.restored_at is not None else max((s["t"] + 1 for s in seconds),
                                                                            default=users_back_at)
        after = goodput_within_slo(seconds, start=users_back_at, end=end, p95_limit_ms=p95_limit_ms,
                                   error_ratio_limit=error_ratio_limit)
    return Capacity(before, after, replicas_before, replicas_after)


@dataclass
class Verdict:
    status: str                  # pass | fail | inconclusive
    reasons: list[str]
    claim: str = RUNBOOK_CLAIM

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(phases: Phases | None, events: ZoneEvents, *, rto_target_s: float, rpo_s: float | None,
          rpo_target_s: float, capacity: Capacity | None = None, rpo_ours: bool = True) -> Verdict:
    """The runbook's claim and the DR targets against what was measured.

    * inconclusive — the fault was not injected, or no request was probed while the zone was down;
    * fail — users did not recover while the zone was down (not automatic), or took longer than the
      RTO target, or lost more than the RPO target (or none was measured although the database is
      the harness's: ``rpo_ours``), or no capacity within the SLO was left;
    * pass — otherwise (a capacity drop is the "degraded performance" the runbook expects).
    """
    if events.fault_at is None:
        return Verdict("inconclusive", ["the zone fault was not injected: nothing to judge"])
    if phases is None or phases.rto.samples == 0:
        return Verdict("inconclusive", ["no user request was probed while the zone was down"])
    reasons: list[str] = []
    if not phases.recovered_before_restore:
        why = "; ".join(n for n in phases.notes if not n.startswith("users were not served again"))
        reasons.append("users were not served again while the zone was down: recovery was not automatic"
                       + (f" ({why})" if why else ""))
    elif phases.user_recovery_s is not None and phases.user_recovery_s > rto_target_s:
        reasons.append(f"users recovered after {phases.user_recovery_s:.1f}s, beyond the RTO target "
                       f"{rto_target_s:g}s")
    if rpo_s is None and rpo_ours:
        reasons.append("no RPO was measured (the canary ledger got nothing acknowledged)")
    elif rpo_s is not None and rpo_s > rpo_target_s:
        reasons.append(f"RPO {rpo_s:.1f}s beyond the target {rpo_target_s:g}s")
    if capacity is not None and capacity.after_rps is not None and capacity.after_rps <= 0:
        reasons.append("no throughput within the SLO was left on the surviving replicas")
    if reasons:
        return Verdict("fail", reasons)
    left = f", capacity left {100 * capacity.left:.0f}%" if capacity is not None and capacity.left is not None else ""
    return Verdict("pass", [f"users recovered automatically after {phases.user_recovery_s:.1f}s (detection "
                            f"{_fmt(phases.detection_s)} by {phases.detected_by}, failover {_fmt(phases.failover_s)}, "
                            f"reconnection {_fmt(phases.reconnection_s)}){left}"])


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}s"
