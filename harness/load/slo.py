"""Service-level objectives and the validity of the load that measured them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any

from harness.load.distributed import worker_validity
from harness.load.result import LoadResult

__all__ = ["SloResult", "ValidityResult", "LoadVerdict", "evaluate_slo", "evaluate_validity", "steady_verdict",
           "chance_some_replica_idle", "idle_replicas_to_judge", "IDLE_BY_CHANCE", "MAX_LOOP_LAG_MS"]

# Below this probability a replica left without traffic is not chance but the system's doing.
IDLE_BY_CHANCE = 1e-3
# A generator whose 0.1 s sleep wakes more than this late has not kept its schedule in that second:
# its requests went out late and each measured latency may hold this much of its own delay. An
# idle or merely busy (load ~6 per core) Linux box wakes a sleeping process within tens of ms.
MAX_LOOP_LAG_MS = 250.0


@dataclass
class SloResult:
    ok: bool
    requests: int
    failures: int
    error_ratio: float
    p95_ms: float | None
    p95_limit_ms: float
    error_ratio_limit: float
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_slo(result: LoadResult, *, p95_limit_ms: float, error_ratio_limit: float,
                 min_requests: int = 1) -> SloResult:
    """p95 latency and error ratio against their limits, from Locust's own totals."""
    req, fail = result.requests, result.failures_count
    ratio = fail / req if req else 1.0
    p95 = result.percentile_ms("95%")
    problems = []
    if req < min_requests:
        problems.append(f"only {req} requests were made (need at least {min_requests})")
    if ratio > error_ratio_limit:
        problems.append(f"error ratio {ratio:.2%} exceeds {error_ratio_limit:.2%}")
    if p95 is None or p95 > p95_limit_ms:
        problems.append(f"p95 {p95 if p95 is not None else 'n/a'} ms exceeds {p95_limit_ms:.0f} ms")
    explanation = ("; ".join(problems) if problems else
                   f"{req} requests, error ratio {ratio:.2%} <= {error_ratio_limit:.2%}, "
                   f"p95 {p95:.0f} ms <= {p95_limit_ms:.0f} ms")
    return SloResult(not problems, req, fail, ratio, p95, p95_limit_ms, error_ratio_limit, explanation)


@dataclass
class ValidityResult:
    ok: bool
    samples: int
    saturated_samples: int
    max_cpu: float | None
    explanation: str
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)   # per Locust worker (distributed mode)
    lost_workers: list[str] = field(default_factory=list)
    lagging_samples: int = 0            # seconds the generator woke later than max_loop_lag_ms
    max_lag_ms: float | None = None     # its worst scheduling lag (None: not measured)
    max_need_pct: float | None = None   # most CPU it needed: used + waited for (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_validity(result: LoadResult, *, cpu_limit_pct: float = 90.0, busy_machine_pct: float = 95.0,
                      starved_cpu_pct: float = 50.0, max_saturated_fraction: float = 0.1,
                      max_loop_lag_ms: float = MAX_LOOP_LAG_MS) -> ValidityResult:
    """Flag a run whose own load generator could not vouch for its figures: its latencies include
    its own queueing and its offered load fell short.

    A second is *saturated* when the generator needed more than ``cpu_limit_pct`` of a core (Locust's
    own warning threshold): the CPU it used plus, where the kernel reports it, the time it was
    runnable but waiting for a CPU (``locust_wait_pct``) -- so a generator starved on a busy host
    (little CPU, the rest waiting) counts as one at 100 % on an idle host, whatever the machine's
    speed. Without that reading, it is saturated when it used more than ``cpu_limit_pct``, or was
    busy (> ``starved_cpu_pct``) on a machine whose cores were all busy (> ``busy_machine_pct``).
    A second is *behind* when the generator's scheduling lag (how late a fixed-period sleep inside
    Locust woke, ``loop_lag_ms``) exceeded ``max_loop_lag_ms``: it could not keep its own schedule
    (its event loop held, or the process not run at all). More than ``max_saturated_fraction`` of
    flagged seconds invalidates the run.

    With Locust workers (lines carrying ``workers``: ``harness.load.distributed``) the same test holds
    for every worker on its own seconds and on Locust's heartbeat CPU, and a worker that went missing,
    left early or never connected invalidates the run too.
    """
    if any("workers" in s for s in result.seconds):
        w = worker_validity(result.seconds, cpu_limit_pct=cpu_limit_pct, busy_machine_pct=busy_machine_pct,
                            starved_cpu_pct=starved_cpu_pct, max_saturated_fraction=max_saturated_fraction,
                            max_loop_lag_ms=max_loop_lag_ms)
        return ValidityResult(w.ok, w.samples, w.saturated_samples, w.max_cpu, w.explanation, workers=w.workers,
                              lost_workers=w.lost, lagging_samples=w.lagging_samples, max_lag_ms=w.max_lag_ms)
    samples = [(s["locust_cpu"], s.get("machine_cpu") or 0.0, s.get("loop_lag_ms"), s.get("locust_wait_pct"))
               for s in result.seconds if s.get("locust_cpu") is not None]
    if not samples:
        return ValidityResult(False, 0, 0, None, "no CPU samples from the load generator; cannot vouch "
                                                 "for the run")
    cpu = [c for c, _, _, _ in samples]
    lags = [lag for _, _, lag, _ in samples if lag is not None]

    def saturated(c: float, m: float, wait: float | None) -> bool:
        if wait is not None:
            return c + wait > cpu_limit_pct
        return c > cpu_limit_pct or (c > starved_cpu_pct and m > busy_machine_pct)

    def lagging(lag: float | None) -> bool:
        return lag is not None and lag > max_loop_lag_ms

    hot = [1 for c, m, _, w in samples if saturated(c, m, w)]
    late = [1 for _, _, lag, _ in samples if lagging(lag)]
    flagged = [1 for c, m, lag, w in samples if saturated(c, m, w) or lagging(lag)]
    ok = len(flagged) <= max_saturated_fraction * len(cpu)
    need = [c + w for c, _, _, w in samples if w is not None]
    expl = (f"load generator saturated in {len(hot)} of {len(cpu)} seconds "
            f"(max {max(cpu):.0f}% of a core used" + (f", {max(need):.0f}% needed)" if need else ")"))
    if lags:
        expl += (f", behind its schedule (lag > {max_loop_lag_ms:.0f} ms) in {len(late)} of {len(cpu)} "
                 f"(max {max(lags):.0f} ms)")
    return ValidityResult(ok, len(cpu), len(hot), max(cpu),
                          expl + ("" if ok else "; its latencies are not the system's — "
                                  "use fewer users per process or a bigger (or less busy) load machine"),
                          lagging_samples=len(late), max_lag_ms=max(lags) if lags else None,
                          max_need_pct=max(need) if need else None)


@dataclass(frozen=True)
class LoadVerdict:
    """A load run's outcome: ``pass``, ``fail`` (the system missed its SLO or left a replica idle)
    or ``inconclusive`` (the load generator cannot vouch for the figures), with one explanation."""

    outcome: str
    explanation: str


def steady_verdict(slo: SloResult, validity: ValidityResult, idle_replicas: list[str] | None = None, *,
                   starvation: Any = None) -> LoadVerdict:
    """The outcome of a steady-load run.

    A saturated (or unsampled) load generator makes the run inconclusive whatever the SLO says:
    its latencies include its own queueing and its offered load fell short, so neither a pass nor a
    miss is the system's. So does a miss while the host starved the replicas (``starvation``, a
    ``harness.analysis.host_starvation.HostStarvation``: they waited for a CPU held by other
    processes while below their own limit): the machine set the figures. Otherwise a missed SLO or
    an idle replica is the system's failure.
    """
    idle = list(idle_replicas or [])
    if not validity.ok:
        seen = "" if slo.ok and not idle else f" (it also saw: {'; '.join(_problems(slo, idle))})"
        return LoadVerdict("inconclusive", f"{validity.explanation}{seen}")
    problems = _problems(slo, idle)
    if problems and starvation is not None and starvation.starved:
        return LoadVerdict("inconclusive", f"{starvation.explanation} (it also saw: {'; '.join(problems)}); "
                                           "the machine was too busy to measure the system")
    if problems:
        return LoadVerdict("fail", "; ".join(problems))
    return LoadVerdict("pass", f"{slo.explanation}; {validity.explanation}")


def _problems(slo: SloResult, idle: list[str]) -> list[str]:
    return ([] if slo.ok else [slo.explanation]) + ([f"replicas {', '.join(idle)} served nothing"] if idle else [])


def chance_some_replica_idle(connections: int, replicas: int) -> float:
    """Probability that ``connections`` placed uniformly at random (kube-proxy's per-connection choice,
    the docker entry point's RANDOM policy; keep-alive keeps each user on one) leave at least one of
    ``replicas`` with none: inclusion-exclusion over the replicas left out."""
    if replicas <= 1:
        return 0.0
    total = 0.0
    for k in range(1, replicas):
        total += (-1) ** (k + 1) * comb(replicas, k) * (1 - k / replicas) ** connections
    return max(0.0, min(1.0, total))


def idle_replicas_to_judge(idle: list[str], routable: set[str], connections: int, replicas: int) -> tuple[list[str], list[str]]:
    """Split the replicas that served nothing into (the system's failure, explained by chance).

    An idle replica the entry point does not route to was kept out by its readiness: the system's. One
    it routes to is explained by chance when so few connections could miss it with probability of at
    least ``IDLE_BY_CHANCE``; with more connections even a routable idle replica is a failure."""
    chance = chance_some_replica_idle(connections, replicas) >= IDLE_BY_CHANCE
    explained = [r for r in idle if r in routable and chance]
    return [r for r in idle if r not in explained], explained
