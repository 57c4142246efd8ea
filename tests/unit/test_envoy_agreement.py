"""harness.oracles.envoy_agreement: the oracle-vs-Envoy comparison, on recorded shapes (pure).

The real-Envoy runs are tests/integration/test_outlier_vs_envoy.py; here each rule is shown to pass
and to fail for the right reason.
"""
from __future__ import annotations

import json

from harness.oracles.envoy_agreement import (EnvoyRecording, compare_events, compare_flags, compare_stats, judge,
                                             parse_event_log, replay, ticks_from_event_log)
from harness.oracles.outlier import OutlierDetectionSettings, simulate

T0 = 1_000_000.0
HOST_OF = {"127.0.0.1:1": "a", "127.0.0.1:2": "b"}
SETTINGS = OutlierDetectionSettings.from_envoy({"consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100,
                                                "interval": "1s", "base_ejection_time": "2s", "max_ejection_percent": 50})


def _stamp(t: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(T0 + t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envoy(action: str, t: float, kind: str = "CONSECUTIVE_GATEWAY_FAILURE", enforced: bool = True, url="127.0.0.1:1",
           num_ejections: int = 1):
    return {"type": kind, "timestamp": _stamp(t), "upstream_url": url, "action": action, "enforced": enforced,
            "num_ejections": num_ejections}


def _sim():
    # a fails three times at 1.0 s: ejected at 1.0, back at the tick at 3.0 (base 2 s, ticks every 1 s).
    inputs = [{"t": 1.0, "host": "a", "code": 503, "n": 3}, {"t": 1.0, "host": "b", "code": 200}]
    return simulate(SETTINGS, ["a", "b"], inputs, until=6.0)


def test_matching_timeline_agrees():
    observed = parse_event_log([_envoy("EJECT", 1.02), _envoy("UNEJECT", 3.01, "CONSECUTIVE_5XX")], HOST_OF)
    agreement = compare_events(_sim(), observed, t0=T0, end=T0 + 6.0, tolerance_s=1.0)
    assert agreement.ok and agreement.figure() == "events: 2/2"


def test_late_wrong_type_and_missing_events_disagree():
    sim = _sim()
    late = parse_event_log([_envoy("EJECT", 1.0), _envoy("UNEJECT", 4.5, "CONSECUTIVE_5XX")], HOST_OF)
    assert not compare_events(sim, late, t0=T0, end=T0 + 6.0, tolerance_s=1.0).ok
    wrong_type = parse_event_log([_envoy("EJECT", 1.0, "CONSECUTIVE_5XX"), _envoy("UNEJECT", 3.0)], HOST_OF)
    assert not compare_events(sim, wrong_type, t0=T0, end=T0 + 6.0, tolerance_s=1.0).ok
    missing = compare_events(sim, parse_event_log([_envoy("EJECT", 1.0)], HOST_OF), t0=T0, end=T0 + 6.0, tolerance_s=1.0)
    assert missing.disagreements == ["a: oracle predicted uneject (None, enforced=True) at +3.00s, Envoy did nothing"]
    extra = parse_event_log([_envoy("EJECT", 1.0), _envoy("UNEJECT", 3.0), _envoy("EJECT", 4.0, url="127.0.0.1:2")],
                            HOST_OF)
    assert not compare_events(sim, extra, t0=T0, end=T0 + 6.0, tolerance_s=1.0).ok


def test_an_unpartnered_event_at_the_end_is_not_compared():
    # The run ended at 3.5 s: Envoy's un-ejection at 3.0 is there, but a prediction past the end is not.
    inputs = [{"t": 1.0, "host": "a", "code": 503, "n": 3}]
    sim = simulate(SETTINGS, ["a", "b"], inputs, until=3.5)
    observed = parse_event_log([_envoy("EJECT", 1.0)], HOST_OF)
    agreement = compare_events(sim, observed, t0=T0, end=T0 + 3.5, tolerance_s=1.0)
    assert agreement.ok and agreement.compared == 1


def test_a_predicted_unejection_in_the_last_interval_may_come_after_the_run_and_nothing_else_may():
    # a is back at the tick at 3.0 by the oracle; the run's final read at 3.6: Envoy's tick may have found the
    # ejection time not quite run out (its stamp of the ejecting request a little later) and un-eject at 4.0.
    inputs = [{"t": 1.0, "host": "a", "code": 503, "n": 3}]
    sim = simulate(SETTINGS, ["a", "b"], inputs, until=3.6)
    observed = parse_event_log([_envoy("EJECT", 1.0)], HOST_OF)
    deferred = compare_events(sim, observed, t0=T0, end=T0 + 3.6, tolerance_s=0.25, uneject_window_s=1.25)
    assert deferred.ok and deferred.deferred_unejects == 1 and deferred.compared == 1
    # Envoy's gauge may then still count a as ejected, by that one and no more; never fewer than the oracle
    assert compare_stats(sim, {"outlier_detection.ejections_active": 1}, deferred_unejects=1).ok
    assert not compare_stats(sim, {"outlier_detection.ejections_active": 2}, deferred_unejects=1).ok
    assert not compare_stats(sim, {"outlier_detection.ejections_active": 1}).ok
    # earlier than the last interval it is a disagreement, as before
    early = compare_events(sim, observed, t0=T0, end=T0 + 4.5, tolerance_s=0.25, uneject_window_s=1.25)
    assert not early.ok and early.deferred_unejects == 0
    # only the oracle's un-ejection waits: an un-ejection Envoy made and the oracle did not is still one
    sim_kept = simulate(SETTINGS, ["a", "b"], [{"t": 2.5, "host": "a", "code": 503, "n": 3}], until=4.0)
    observed_back = parse_event_log([_envoy("EJECT", 2.5), _envoy("UNEJECT", 3.0, "CONSECUTIVE_5XX")], HOST_OF)
    assert not compare_events(sim_kept, observed_back, t0=T0, end=T0 + 4.0, tolerance_s=0.25,
                              uneject_window_s=1.25).ok


def test_not_enforced_detections_are_envoys_unenforced_ejects():
    s = OutlierDetectionSettings.from_envoy({"consecutive_5xx": 7, "interval": "1s", "base_ejection_time": "2s",
                                             "max_ejection_percent": 50})  # gateway: detected, enforcing 0
    sim = simulate(s, ["a", "b"], [{"t": 1.0, "host": "a", "code": 503, "n": 7}], until=2.0)
    # Envoy logs an unenforced detection with the host's ejections so far (logEject: numEjections()).
    observed = parse_event_log([_envoy("EJECT", 1.0, enforced=False, num_ejections=0),
                                _envoy("EJECT", 1.0, "CONSECUTIVE_5XX")], HOST_OF)
    assert compare_events(sim, observed, t0=T0, end=T0 + 2.0, tolerance_s=1.0).figure() == "events: 2/2"


def test_flags_and_stats():
    sim = _sim()
    observed = parse_event_log([_envoy("EJECT", 1.0), _envoy("UNEJECT", 3.0, "CONSECUTIVE_5XX")], HOST_OF)
    samples = [(T0 + 2.2, frozenset({"a"})), (T0 + 4.5, frozenset()), (T0 + 1.5, frozenset({"a"}))]
    assert compare_flags(sim, samples, observed, t0=T0, tolerance_s=0.5).ok
    bad = compare_flags(sim, [(T0 + 2.2, frozenset())], observed, t0=T0, tolerance_s=0.5)
    assert bad.disagreements == ["+2.20s: Envoy flags [], oracle has ['a']"]
    stats = {k: v for k, v in sim.stats.items()}
    assert compare_stats(sim, stats).ok
    assert compare_stats(sim, stats).figure() == f"/stats counters: {len(stats)}/{len(stats)} (3 non-zero)"  # detected, enforced, total
    stats["outlier_detection.ejections_overflow"] = 1
    assert compare_stats(sim, stats).disagreements == ["outlier_detection.ejections_overflow: oracle 0, Envoy 1"]


def test_a_wrong_num_ejections_disagrees():
    observed = parse_event_log([_envoy("EJECT", 1.0, num_ejections=2), _envoy("UNEJECT", 3.0)], HOST_OF)
    agreement = compare_events(_sim(), observed, t0=T0, end=T0 + 6.0, tolerance_s=1.0)
    assert agreement.figure() == "events: 1/2" and "num_ejections=1" in agreement.disagreements[0]


def test_ticks_come_from_envoys_unejections():
    # Envoy un-ejected at 3.004 and 8.019 (ticks 3 and 8 of a 1 s timer that runs a little late):
    # five ticks in between, evenly spread; before: back to the armed time; after: every interval.
    log = [_envoy("EJECT", 1.0), _envoy("UNEJECT", 3.004), _envoy("EJECT", 5.0), _envoy("UNEJECT", 8.019),
           _envoy("UNEJECT", 8.02, url="127.0.0.1:2")]  # same tick, another host
    ticks = ticks_from_event_log(parse_event_log(log, HOST_OF), t0=T0, start=0.0, end=10.5, interval_s=1.0)
    assert [round(t, 3) for t in ticks] == [1.001, 2.003, 3.004, 4.007, 5.010, 6.013, 7.016, 8.019, 9.019, 10.019]
    no_events = ticks_from_event_log([], t0=T0, start=-0.01, end=3.0, interval_s=1.0)
    assert no_events == [0.99, 1.99, 2.99]


def test_a_recording_round_trips_and_replays():
    log = [_envoy("EJECT", 1.0), _envoy("UNEJECT", 3.0)]
    attempts = tuple((0.1 * k, "b", 200) for k in range(1, 10)) + ((1.0, "a", 503),) * 3 + ((3.5, "b", 200),)
    rec = EnvoyRecording(name="x", hosts=("a", "b"), outlier_detection={
        "consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100, "interval": "1s",
        "base_ejection_time": "2s", "max_ejection_percent": 50}, healthy_panic_threshold=0.0, t0=T0,
        detector_start=0.0, end=3.5, stats_at=3.5, attempts=tuple(sorted(attempts)), events=tuple(log), host_of=HOST_OF,
        flag_samples=((2.0, ("a",)), (3.4, ())), stats={"outlier_detection.ejections_enforced_total": 1})
    again = EnvoyRecording.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec
    results = judge(again, replay(again))
    assert [r.figure() for r in results] == ["events: 2/2", "/clusters samples: 2/2", "/stats counters: 1/1 (1 non-zero)"]


def test_success_rate_detections_are_ticks_too():
    # processSuccessRateEjections runs inside the tick: an (unenforced) SUCCESS_RATE eject dates a tick.
    log = [_envoy("EJECT", 5.006, "SUCCESS_RATE", enforced=False, num_ejections=0),
           _envoy("EJECT", 5.006, "FAILURE_PERCENTAGE", enforced=False, num_ejections=0),
           _envoy("EJECT", 1.2)]  # a consecutive-errors ejection is not a tick
    ticks = ticks_from_event_log(parse_event_log(log, HOST_OF), t0=T0, start=0.0, end=11.0, interval_s=5.0)
    assert [round(t, 3) for t in ticks] == [5.006, 10.006]
