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

``compute_rto`` (:mod:`harness.measure.outage`, pure: samples in, ``RtoResult`` out) is named here too.
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
from pathlib import Path
from typing import Callable, Iterable, Sequence

from harness.errors import UsageError
from harness.measure.outage import RtoResult, Sample, compute_rto
from harness.sampling import Sampler

__all__ = ["Sample", "Prober", "RtoResult", "compute_rto", "plot_timeline", "PROBE_PATH"]

log = logging.getLogger(__name__)
PROBE_PATH = "/api/v1/pipeline"


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
