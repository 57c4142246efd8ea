"""Recovery time as users experience it: a prober's success timeline, and the RTO computed from it.

The ``Prober`` behaves like a user of the service: every ``interval_s`` it sends a request that
needs the database. It alternates

* ``POST /api/v1/pipeline`` with a fresh ``Idempotency-Key`` (a write), and
* the same POST replayed with the previous key (a client retry: the conductor must look the key
  up in Postgres and answer 200 with the id it gave before).

A ``GET /api/v1/pipeline/{id}`` would be the more obvious read, but the reference conductor serves
it from the Redis cache, so it keeps succeeding while the database is down and would shorten the
measured outage. The replay is the read that needs Postgres.

Requests are dispatched on a schedule (a small thread pool), not one after another, so one request
hanging until its timeout does not leave a gap in the timeline. Endpoints come from a callable that
is asked again every ``refresh_s``, so the prober follows replicas that were replaced.

``compute_rto`` is pure: samples in, ``RtoResult`` out.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from harness.errors import UsageError
from harness.sampling import Sampler

__all__ = ["Sample", "Prober", "RtoResult", "compute_rto", "plot_timeline", "PROBE_PATH"]

log = logging.getLogger(__name__)
PROBE_PATH = "/api/v1/pipeline"


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


class Prober:
    """A background thread hitting the service as a user would, at least every ``interval_s``.

    ``with Prober(lambda: list(discover_endpoints(run_id).values())) as p: ...`` then ``p.samples``.
    """

    def __init__(self, endpoints: Callable[[], list[str]], interval_s: float = 0.25, *,
                 timeout_s: float = 2.0, refresh_s: float = 1.0, name: str = "probe",
                 clock: Callable[[], float] = time.time):
        if interval_s <= 0 or interval_s > 0.25:
            raise UsageError(f"probe interval {interval_s}s is outside (0, 0.25]",
                             "probe at least every 250 ms (HARNESS_PROBE_INTERVAL_S), or the RTO is too coarse")
        if timeout_s <= 0:
            raise UsageError(f"probe timeout {timeout_s}s must be positive", "use about 2 s")
        self._endpoints_fn = endpoints
        self.interval_s, self.timeout_s, self.refresh_s = interval_s, timeout_s, refresh_s
        self._clock = clock
        # Keys are unique per prober so a rerun against the same database never replays old keys.
        self._prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        # each tick only hands a request to the pool, so a request stuck until its timeout never
        # delays the schedule; the pool's workers record the samples
        self._schedule: Sampler[None] = Sampler(self._submit, interval_s, name="prober")
        # Enough workers that requests stuck until their timeout never delay the schedule.
        self._pool = ThreadPoolExecutor(max_workers=int(math.ceil(timeout_s / interval_s)) + 2,
                                        thread_name_prefix=f"{name}-req")
        self._seq = 0
        self._last_key: tuple[str, str] | None = None   # (idempotency key, id the service returned)
        self._endpoints: list[str] = []
        self._endpoints_at = -math.inf
        self._rr = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Prober":
        self._schedule.start()
        return self

    def stop(self) -> list[Sample]:
        self._schedule.stop(5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return self.samples

    def __enter__(self) -> "Prober":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return sorted(self._samples, key=lambda s: s.t)

    # -- the schedule ---------------------------------------------------------------------------
    def _submit(self) -> None:
        self._pool.submit(self._probe_once)

    def _endpoint(self) -> str | None:
        now = time.monotonic()
        with self._lock:
            if now - self._endpoints_at >= self.refresh_s:
                try:
                    self._endpoints = list(self._endpoints_fn())
                except Exception as exc:  # noqa: BLE001 - no endpoints is a failed sample, not a crash
                    log.debug("endpoint discovery failed: %s", exc)
                    self._endpoints = []
                self._endpoints_at = now
            if not self._endpoints:
                return None
            self._rr += 1
            return self._endpoints[self._rr % len(self._endpoints)]

    def _next_request(self) -> tuple[str, str, str | None]:
        """(kind, idempotency key, expected id): odd ticks replay the last acknowledged write."""
        with self._lock:
            self._seq += 1
            if self._seq % 2 == 0 and self._last_key is not None:
                key, rid = self._last_key
                return "replay", key, rid
            return "write", f"{self._prefix}-{self._seq}", None

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    def _probe_once(self) -> None:
        t = self._clock()
        started = time.perf_counter()
        endpoint = self._endpoint()
        kind, key, expected = self._next_request()
        if endpoint is None:
            self._record(Sample(t, False, 0.0, 0, "", kind, "no endpoint (no running replica)"))
            return
        body = json.dumps({"name": "rto-probe", "key": key}).encode()
        req = urllib.request.Request(endpoint + PROBE_PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Idempotency-Key": key})
        status, replica, error, rid = 0, endpoint, "", None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status = resp.status
                replica = resp.headers.get("X-Served-By") or endpoint
                rid = (json.loads(resp.read() or b"{}") or {}).get("id")
        except urllib.error.HTTPError as exc:
            status = exc.code
            replica = exc.headers.get("X-Served-By") or endpoint
            error = f"http {exc.code}"
        except Exception as exc:  # noqa: BLE001 - refused, reset, timeout: all are user-visible failures
            error = type(exc).__name__
        latency = time.perf_counter() - started
        ok = 200 <= status < 300
        if ok and kind == "replay" and expected and rid != expected:
            # Answered, but not with the write the user was told about: record it, the RPO check
            # counts the data; the service did answer, so availability-wise this is a success.
            error = "replay returned a different id (an acknowledged write is gone)"
        if ok and kind == "write" and rid:
            with self._lock:
                self._last_key = (key, rid)
        self._record(Sample(t, ok, round(latency, 4), status, replica, kind, error))


# -- RTO ----------------------------------------------------------------------------------------
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
    common = dict(fault_at=fault_at, availability=round(n_ok / len(window), 4), samples=len(window), ok=n_ok,
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


# -- plot -----------------------------------------------------------------------------------------
def plot_timeline(path: Path, samples: Sequence[Sample], *, title: str = "User requests around the fault",
                  faults: Iterable[tuple[float, float | None, str]] = (), result: RtoResult | None = None,
                  t0: float | None = None, marks: Iterable[tuple[float, str]] = ()) -> Path:
    """Success ratio per second and p95 latency, fault windows and the measured outage shaded.

    ``faults``: (injected_at, rolled_back_at or None, label) in epoch seconds; ``marks``: (epoch
    seconds, label) drawn as vertical lines (e.g. a failover's promotion).
    """
    from harness.plotting import timeseries_png

    if not samples:
        raise UsageError("no probe samples to plot", "run the Prober during the experiment")
    ordered = sorted(samples, key=lambda s: s.t)
    t0 = ordered[0].t if t0 is None else t0
    end = ordered[-1].t
    buckets: dict[int, list[Sample]] = {}
    for s in ordered:
        buckets.setdefault(int(s.t - t0), []).append(s)
    xs = sorted(buckets)
    ratio = [sum(s.ok for s in buckets[x]) / len(buckets[x]) for x in xs]
    p95 = []
    for x in xs:
        lat = sorted(s.latency_s * 1000 for s in buckets[x])
        p95.append(lat[min(len(lat) - 1, int(0.95 * len(lat)))])
    bands = [(a - t0, (b if b is not None else end) - t0, label) for a, b, label in faults]
    if result is not None and result.outage_start is not None:
        bands.append((result.outage_start - t0, (result.recovered_at or end) - t0,
                      f"outage (RTO {result.rto_s:.1f}s)" if result.rto_s is not None else "outage (not recovered)"))
    return timeseries_png(path, title, {"success ratio": (xs, ratio)}, ylabel="successful requests (ratio)",
                          secondary={"p95 latency ms": (xs, p95)}, secondary_ylabel="latency (ms)",
                          bands=bands, vlines=[(t - t0, label) for t, label in marks], step=True)
