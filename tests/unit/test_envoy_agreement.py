"""harness.oracles.envoy_agreement: the oracle-vs-Envoy comparison, on recorded shapes (pure).

The real-Envoy runs are tests/integration/test_outlier_vs_envoy.py; here each rule is shown to pass
and to fail for the right reason.
"""
from __future__ import annotations

from harness.oracles.envoy_agreement import compare_events, compare_flags, compare_stats, parse_event_log
from harness.oracles.outlier import OutlierDetectionSettings, simulate

T0 = 1_000_000.0
HOST_OF = {"127.0.0.1:1": "a", "127.0.0.1:2": "b"}
SETTINGS = OutlierDetectionSettings.from_envoy({"consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100,
                                                "interval": "1s", "base_ejection_time": "2s", "max_ejection_percent": 50})


def _stamp(t: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(T0 + t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envoy(action: str, t: float, kind: str = "CONSECUTIVE_GATEWAY_FAILURE", enforced: bool = True, url="127.0.0.1:1"):
    return {"type": kind, "timestamp": _stamp(t), "upstream_url": url, "action": action, "enforced": enforced,
            "num_ejections": 1}


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


def test_not_enforced_detections_are_envoys_unenforced_ejects():
    s = OutlierDetectionSettings.from_envoy({"consecutive_5xx": 7, "interval": "1s", "base_ejection_time": "2s",
                                             "max_ejection_percent": 50})  # gateway: detected, enforcing 0
    sim = simulate(s, ["a", "b"], [{"t": 1.0, "host": "a", "code": 503, "n": 7}], until=2.0)
    observed = parse_event_log([_envoy("EJECT", 1.0, enforced=False), _envoy("EJECT", 1.0, "CONSECUTIVE_5XX")], HOST_OF)
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
    stats["outlier_detection.ejections_overflow"] = 1
    assert compare_stats(sim, stats).disagreements == ["outlier_detection.ejections_overflow: oracle 0, Envoy 1"]
