"""The outage in a user-like prober's timeline: ``Sample`` (one request) and ``compute_rto`` (pure:
samples in, ``RtoResult`` out). The prober that records the samples is :class:`harness.measure.rto.Prober`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from harness.errors import UsageError

__all__ = ["Sample", "RtoResult", "compute_rto"]


@dataclass(frozen=True)
class Sample:
    """One user-like request: when it was sent (epoch seconds), whether it succeeded, and how."""

    t: float
    ok: bool
    latency_s: float
    status: int = 0          # HTTP status; 0 when no response arrived
    replica: str = ""        # X-Served-By, or the endpoint when nothing answered
    kind: str = "write"      # write | replay
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



@dataclass
class RtoResult:
    """What the timeline says about recovery. ``rto_s`` is None when the service never recovered."""

    rto_s: float | None
    recovered: bool
    outage_start: float | None        # epoch s: first sample of the first sustained failure
    recovered_at: float | None        # epoch s: first sample of the sustained recovery
    fault_at: float | None
    detection_s: float | None         # fault -> first sustained failure
    availability: float               # ok / all samples in the window (from fault_at)
    samples: int
    ok: int
    failed: int
    baseline_failed: int              # failures before fault_at (the service was not healthy)
    sustained_failures: int           # failure runs of at least sustain_failure_s
    blips: int                        # shorter failure runs, not counted as an outage
    longest_failure_s: float
    sustain_failure_s: float
    sustain_recovery_s: float
    target_s: float | None = None
    explanation: str = ""
    episodes: list[dict[str, float]] = field(default_factory=list)  # sustained failures: start, end

    @property
    def verdict_ok(self) -> bool:
        return self.recovered and (self.target_s is None or (self.rto_s is not None and self.rto_s <= self.target_s))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = "pass" if self.verdict_ok else "fail"
        return d


def _runs(samples: Sequence[Sample]) -> list[tuple[bool, int, int]]:
    """Maximal runs of equal ``ok``: (ok, first index, last index)."""
    out: list[tuple[bool, int, int]] = []
    for i, s in enumerate(samples):
        if out and out[-1][0] == s.ok:
            out[-1] = (s.ok, out[-1][1], i)
        else:
            out.append((s.ok, i, i))
    return out


def compute_rto(samples: Iterable[Sample], *, fault_at: float | None = None, sustain_failure_s: float = 1.0,
                sustain_recovery_s: float = 5.0, target_s: float | None = None) -> RtoResult:
    """RTO = from the first sustained failure to the sustained recovery after the last one.

    * A failure run is *sustained* when it lasts ``sustain_failure_s`` or more (from its first
      failed sample to the next success, or to the last sample); shorter runs are blips.
    * The service has *recovered* when, after the last sustained failure, requests succeed without
      interruption for ``sustain_recovery_s``. A relapse (another sustained failure) belongs to the
      outage, so flapping never counts as recovered.
    * No sustained failure: RTO 0. Never a sustained success afterwards: RTO None, not recovered.

    Samples before ``fault_at`` are the baseline: only counted (``baseline_failed``).
    """
    if sustain_failure_s <= 0 or sustain_recovery_s <= 0:
        raise UsageError("sustain thresholds must be positive",
                         f"got sustain_failure_s={sustain_failure_s}, sustain_recovery_s={sustain_recovery_s}")
    ordered = sorted(samples, key=lambda s: s.t)
    if not ordered:
        raise UsageError("no probe samples to compute an RTO from",
                         "start the Prober before the fault and stop it after the recovery")
    baseline = [s for s in ordered if fault_at is not None and s.t < fault_at]
    window = [s for s in ordered if fault_at is None or s.t >= fault_at]
    if not window:
        raise UsageError("no probe samples after the fault",
                         "keep the Prober running until after the fault and its recovery")
    n_ok = sum(1 for s in window if s.ok)
    runs = _runs(window)
    last_t = window[-1].t

    def run_end(last: int) -> float:
        # A run lasts until the next sample with the other outcome (or the last sample we have).
        return window[last + 1].t if last + 1 < len(window) else last_t

    sustained, blips, longest = [], 0, 0.0
    for ok, first, last in runs:
        if ok:
            continue
        duration = run_end(last) - window[first].t
        longest = max(longest, duration)
        if duration >= sustain_failure_s:
            sustained.append((first, last, duration))
        else:
            blips += 1
    common: dict[str, Any] = dict(fault_at=fault_at, availability=round(n_ok / len(window), 4), samples=len(window), ok=n_ok,
                  failed=len(window) - n_ok, baseline_failed=sum(1 for s in baseline if not s.ok),
                  sustained_failures=len(sustained), blips=blips, longest_failure_s=round(longest, 3),
                  sustain_failure_s=sustain_failure_s, sustain_recovery_s=sustain_recovery_s, target_s=target_s,
                  episodes=[{"start": window[f].t, "end": run_end(last), "duration_s": round(d, 3)}
                            for f, last, d in sustained])
    if not sustained:
        res = RtoResult(0.0, True, None, None, detection_s=None, **common)
        res.explanation = (f"no sustained failure (>= {sustain_failure_s:g}s) in {len(window)} requests"
                           + (f"; {blips} blip(s), longest {longest:.2f}s" if blips else ""))
        return _judge(res)
    outage_start = window[sustained[0][0]].t
    detection = None if fault_at is None else round(outage_start - fault_at, 3)
    last_fail_last = sustained[-1][1]
    recovered_at = None
    for ok, first, last in runs:
        if not ok or first <= last_fail_last:
            continue
        if run_end(last) - window[first].t >= sustain_recovery_s:
            recovered_at = window[first].t
            break
    if recovered_at is None:
        tail_ok = runs[-1][0]
        tail = last_t - window[runs[-1][1]].t
        res = RtoResult(None, False, outage_start, None, detection_s=detection, **common)
        res.explanation = (f"not recovered: failing since {outage_start - window[0].t:.1f}s into the window"
                           + (f"; the last {tail:.1f}s succeeded, short of the {sustain_recovery_s:g}s needed"
                              if tail_ok else "; still failing when probing stopped")
                           + (f" ({len(sustained)} sustained failures: flapping)" if len(sustained) > 1 else ""))
        return _judge(res)
    rto = round(recovered_at - outage_start, 3)
    res = RtoResult(rto, True, outage_start, recovered_at, detection_s=detection, **common)
    res.explanation = (f"RTO {rto:.1f}s ({len(sustained)} sustained failure(s), availability "
                       f"{100 * res.availability:.1f}% from the fault)")
    return _judge(res)


def _judge(res: RtoResult) -> RtoResult:
    if res.target_s is not None:
        if res.rto_s is None:
            res.explanation += f"; target {res.target_s:g}s not met"
        else:
            res.explanation += f"; target {res.target_s:g}s {'met' if res.rto_s <= res.target_s else 'MISSED'}"
    return res
