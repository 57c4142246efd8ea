"""Drive the detector over a timed sequence of results, with the interval timer firing as Envoy's does.

The timer is ``DetectorImpl::armIntervalTimer`` / ``onIntervalTimer`` of envoyproxy/envoy
``source/common/upstream/outlier_detection_impl.cc``: it fires every ``interval`` from the detector's
start; hosts come and go as the cluster's membership changes (``addHostMonitor`` on
``addMemberUpdateCb``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.oracles.outlier.detector import ALL_STATS, LOCAL_RESULTS, OutlierDetector, Response
from harness.oracles.outlier.errors import OutlierInputError
from harness.oracles.outlier.limits import check_max_ejection_rule
from harness.oracles.outlier.result import SimulationResult
from harness.oracles.outlier.settings import OutlierDetectionSettings
from harness.oracles.outlier.units import ms_to_seconds, seconds_to_ms

__all__ = ["simulate"]


_INPUT_KEYS = {"t", "host", "code", "local", "n", "tick", "add_host", "remove_host", "hc_pass"}


def _normalise_input(item: Any, index: int) -> tuple[int, str, dict[str, Any]]:
    if isinstance(item, Response):
        item = {"t": item.t, "host": item.host, "code": item.code, "local": item.local}
        item = {k: v for k, v in item.items() if v is not None}
    if not isinstance(item, Mapping):
        raise OutlierInputError(f"input #{index}: expected a dict like {{'t': 1.0, 'host': 'pod-a', 'code': 503}}, got {item!r}")
    unknown = set(item) - _INPUT_KEYS
    if unknown:
        raise OutlierInputError(f"input #{index}: unknown keys {sorted(unknown)}; allowed keys are {sorted(_INPUT_KEYS)}")
    if "t" not in item:
        raise OutlierInputError(f"input #{index}: missing 't' (seconds); add the time of the observation")
    t_ms = seconds_to_ms(item["t"], f"input #{index}")
    if item.get("tick"):
        return t_ms, "tick", dict(item)
    if "add_host" in item:
        return t_ms, "add_host", dict(item)
    if "remove_host" in item:
        return t_ms, "remove_host", dict(item)
    if "host" not in item:
        raise OutlierInputError(f"input #{index}: missing 'host'; name the pod that produced the result")
    if item.get("hc_pass"):
        return t_ms, "hc_pass", dict(item)
    if "code" not in item and "local" not in item:
        raise OutlierInputError(f"input #{index}: give 'code' (HTTP status) or 'local' (one of {sorted(LOCAL_RESULTS)})")
    n = item.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OutlierInputError(f"input #{index}: 'n' must be a positive integer repeat count, got {n!r}")
    return t_ms, "local" if "local" in item else "code", dict(item)


def simulate(settings: OutlierDetectionSettings | None, hosts: Sequence[str], inputs: Iterable[Any], *,
             until: float | None = None, auto_ticks: bool = True, detector_start: float = 0.0,
             healthy_panic_threshold: float = 0.0, max_ejection_rule: str = "current",
             rng_seed: int = 0, jitter_random: Callable[[], int] | None = None,
             enforce_random: Callable[[], int] | None = None) -> SimulationResult:
    """Run the detector over a timed sequence of per-host results.

    ``inputs`` items (dicts or :class:`Response`), seconds on one clock:

    * ``{"t", "host", "code": 503[, "n": k]}`` HTTP response(s);
    * ``{"t", "host", "local": "connect_failed"|"reset"|"timeout"|...[, "code"][, "n"]}``;
    * ``{"t", "tick": True}`` an explicit interval-timer firing;
    * ``{"t", "add_host": name}`` / ``{"t", "remove_host": name}``;
    * ``{"t", "host", "hc_pass": True}`` an active health check success.

    With ``auto_ticks`` the timer fires at ``detector_start + k * interval``
    (k >= 1) up to ``until`` (default: the last input time).  A tick at the same
    instant as an input runs first.  ``settings=None`` means "no outlier
    detection configured": nothing is ever ejected.
    """
    check_max_ejection_rule(max_ejection_rule)
    if isinstance(hosts, str):
        raise OutlierInputError("hosts must be a list of host names, not a single string; wrap it in a list")
    items = [_normalise_input(item, i) for i, item in enumerate(inputs)]
    items.sort(key=lambda x: x[0])  # stable: same-time inputs keep their order
    last_ms = items[-1][0] if items else seconds_to_ms(detector_start, "detector_start")
    until_ms = last_ms if until is None else seconds_to_ms(until, "until")
    if until_ms < last_ms:
        raise OutlierInputError(f"until={until}s is before the last input at {ms_to_seconds(last_ms)}s; raise until or drop late inputs")
    if settings is None:
        host_list = list(hosts)
        for _, kind, item in items:  # same input errors as with a detector
            if kind in ("code", "local", "hc_pass") and item["host"] not in host_list:
                raise OutlierInputError(f"unknown host {item['host']!r}; add it to hosts")
        return SimulationResult(False, None, tuple(host_list), ms_to_seconds(until_ms), [], [],
                                {h: [] for h in host_list}, [], {f"outlier_detection.{n}": 0 for n in ALL_STATS},
                                max_ejection_rule)
    det = OutlierDetector(settings, hosts, max_ejection_rule=max_ejection_rule,
                          healthy_panic_threshold=healthy_panic_threshold, rng_seed=rng_seed,
                          jitter_random=jitter_random, enforce_random=enforce_random, start=detector_start)
    start_ms = seconds_to_ms(detector_start, "detector_start")
    next_tick = start_ms + settings.interval_ms if auto_ticks else None

    def run_ticks_up_to(ms: int) -> None:
        nonlocal next_tick
        while next_tick is not None and next_tick <= ms:
            det.interval_tick(ms_to_seconds(next_tick))
            next_tick += settings.interval_ms

    for t_ms, kind, item in items:
        if t_ms < start_ms:
            raise OutlierInputError(f"input at {ms_to_seconds(t_ms)}s is before detector_start={detector_start}s; move detector_start earlier")
        run_ticks_up_to(t_ms)
        t = ms_to_seconds(t_ms)
        if kind == "tick":
            det.interval_tick(t)
        elif kind == "add_host":
            det.add_host(item["add_host"], t)
        elif kind == "remove_host":
            det.remove_host(item["remove_host"], t)
        elif kind == "hc_pass":
            det.active_health_check_passed(item["host"], t)
        else:
            for _ in range(item.get("n", 1)):
                if kind == "code":
                    det.put_http_response_code(item["host"], item["code"], t)
                else:
                    det.put_result(item["host"], item["local"], t, item.get("code"))
    run_ticks_up_to(until_ms)
    return det.result(until=ms_to_seconds(until_ms))

