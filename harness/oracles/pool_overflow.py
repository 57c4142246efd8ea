"""The connection pool's (circuit breaker's) overflow against its limits: how many concurrent requests
one client proxy holds for a cluster before Envoy answers 503 UO (:func:`pool_capacity`, from the
DestinationRule's thresholds), and whether the observed overflow samples agree
(:func:`evaluate_pool_overflow`). Pure functions over recorded data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from harness.errors import AnalysisInputError
from harness.oracles.ejection_analysis import Deviation, finite_number
from harness.oracles.outlier import CircuitBreakerThresholds

__all__ = ["PoolCapacity", "OverflowAnalysis", "pool_capacity", "evaluate_pool_overflow"]


@dataclass(frozen=True)
class PoolCapacity:
    """Concurrent requests one client proxy can hold for the cluster before 503 UO.

    Below ``no_overflow_up_to`` Envoy must not overflow; above ``overflow_above``
    it must.  Between the two (Envoy may open one connection per host beyond
    ``max_connections``) the outcome depends on timing and is not judged.
    """

    protocol: str
    no_overflow_up_to: int
    overflow_above: int
    binding: str


def _thresholds(thresholds: CircuitBreakerThresholds | Mapping[str, Any]) -> CircuitBreakerThresholds:
    if isinstance(thresholds, CircuitBreakerThresholds):
        return thresholds
    if not isinstance(thresholds, Mapping):
        raise AnalysisInputError("thresholds must be CircuitBreakerThresholds or a dict of max_connections/"
                                 "max_pending_requests/max_requests")
    allowed = {"max_connections", "max_pending_requests", "max_requests", "max_retries", "max_requests_per_connection"}
    unknown = set(thresholds) - allowed
    if unknown:
        raise AnalysisInputError(f"thresholds: unknown keys {sorted(unknown)}; use {sorted(allowed)}")
    for k, v in thresholds.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise AnalysisInputError(f"thresholds[{k!r}] must be a non-negative integer, got {v!r}")
    return CircuitBreakerThresholds(**thresholds)


def pool_capacity(thresholds: CircuitBreakerThresholds | Mapping[str, Any], *, protocol: str = "http1",
                  hosts: int = 1) -> PoolCapacity:
    """Steady-state capacity per ``ConnPoolImplBase`` (``newStreamImpl``/``attachStreamToClient``).

    HTTP/1.1: one request per connection; requests beyond the connections wait as
    pending (``max_pending_requests``); ``max_requests`` is checked when a request
    is attached to a connection.  HTTP/2: requests multiplex on one connection per
    host, so ``max_requests`` binds (pending only while connecting).
    """
    th = _thresholds(thresholds)
    if protocol not in ("http1", "http2"):
        raise AnalysisInputError(f"protocol must be 'http1' or 'http2', got {protocol!r}")
    if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
        raise AnalysisInputError(f"hosts must be a positive integer, got {hosts!r}")
    if protocol == "http2":
        return PoolCapacity(protocol, th.max_requests, th.max_requests, "max_requests")
    if th.max_connections <= th.max_requests:
        lower = th.max_connections + th.max_pending_requests
        upper = min(th.max_connections + hosts, th.max_requests) + th.max_pending_requests
        return PoolCapacity(protocol, lower, upper, "max_connections+max_pending_requests")
    return PoolCapacity(protocol, th.max_requests, th.max_requests, "max_requests")


@dataclass
class OverflowAnalysis:
    ok: bool
    deviations: list[Deviation]
    explanation: str
    capacity: PoolCapacity
    judged_samples: int

    @property
    def reasons(self) -> list[str]:
        return [d.code for d in self.deviations]


def evaluate_pool_overflow(samples: Iterable[Mapping[str, Any]],
                           thresholds: CircuitBreakerThresholds | Mapping[str, Any], *,
                           protocol: str = "http1", hosts: int = 1, client_proxies: int = 1,
                           margin: float = 0.1, noise_uo: int = 0) -> OverflowAnalysis:
    """Does 503 UO appear exactly where the circuit-breaker limits say?

    ``samples``: ``[{"t": s, "concurrency": c, "uo_503": k}]`` where ``c`` is the
    offered in-flight requests to the cluster and ``k`` the 503s with response
    flag UO in that sample.  Limits are per client proxy, so ``c`` is divided by
    ``client_proxies``.  A sample at or below ``no_overflow_up_to * (1-margin)``
    with more than ``noise_uo`` UOs gives ``overflow_below_limit``; one at or above
    ``overflow_above * (1+margin)`` with no UO gives ``no_overflow_above_limit``.
    """
    cap = pool_capacity(thresholds, protocol=protocol, hosts=hosts)
    if isinstance(client_proxies, bool) or not isinstance(client_proxies, int) or client_proxies < 1:
        raise AnalysisInputError(f"client_proxies must be a positive integer, got {client_proxies!r}")
    if not 0 <= finite_number(margin, "margin") < 1:
        raise AnalysisInputError(f"margin must be in [0, 1), got {margin}")
    deviations: list[Deviation] = []
    judged = 0
    rows = list(samples)
    if not rows:
        raise AnalysisInputError("samples is empty; pass at least one {'t', 'concurrency', 'uo_503'} sample")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not {"t", "concurrency", "uo_503"} <= set(row):
            raise AnalysisInputError(f"samples[{i}] needs 't', 'concurrency' and 'uo_503'; got {row!r}")
        t = finite_number(row["t"], f"samples[{i}].t")
        c = finite_number(row["concurrency"], f"samples[{i}].concurrency") / client_proxies
        uo = row["uo_503"]
        if isinstance(uo, bool) or not isinstance(uo, int) or uo < 0:
            raise AnalysisInputError(f"samples[{i}].uo_503 must be a non-negative integer, got {uo!r}")
        if c <= cap.no_overflow_up_to * (1 - margin):
            judged += 1
            if uo > noise_uo:
                deviations.append(Deviation("overflow_below_limit", None, t,
                                            f"{uo} x 503 UO at {t:g}s with {c:g} concurrent requests per proxy, below "
                                            f"the {cap.no_overflow_up_to} the limits allow ({cap.binding})"))
        elif c >= cap.overflow_above * (1 + margin):
            judged += 1
            if uo == 0:
                deviations.append(Deviation("no_overflow_above_limit", None, t,
                                            f"no 503 UO at {t:g}s with {c:g} concurrent requests per proxy, above the "
                                            f"{cap.overflow_above} the limits allow ({cap.binding})"))
    ok = not deviations
    if ok:
        explanation = (f"OK: 503 UO only above {cap.overflow_above} concurrent requests per proxy ({cap.binding}); "
                       f"{judged} of {len(rows)} samples were clear of the limit band.")
    else:
        more = f" (+{len(deviations) - 1} more)" if len(deviations) > 1 else ""
        explanation = f"FAIL [{deviations[0].code}]: {deviations[0].message}{more}."
    return OverflowAnalysis(ok, deviations, explanation, cap, judged)
