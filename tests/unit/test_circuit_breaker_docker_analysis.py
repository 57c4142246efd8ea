"""Pure parts the docker circuit-breaker scenario adds to the shared analysis: the compact fault
schedule (derived from the outlier settings) and Locust's per-second codes as response records."""
from __future__ import annotations

import pytest

from harness.analysis.circuit_breaker.schedule import compact_schedule, expected_ejections
from harness.analysis.circuit_breaker.series import client_series, records_from_seconds
from harness.errors import UsageError
from harness.mesh import load_mesh

WHAT_IF = load_mesh("k8s", what_if=True).destination_rule.effective_outlier
PODS = ["cb-0-0", "cb-0-1"]


def test_compact_schedule_covers_every_behaviour_in_about_100s():
    s = compact_schedule(PODS, WHAT_IF.settings)
    assert [p.name for p in s] == ["gateway-503", "gateway-502-capped", "5xx-500", "all-pods-503", "latency"]
    assert s[-1].settle_until <= 110
    # pod 0 is back at the latest interval tick after its ejection before pod 1's 500s start
    assert s[2].start >= s[0].start + (WHAT_IF.settings.base_ejection_time_ms + WHAT_IF.settings.interval_ms) / 1000
    assert all(a.end <= b.start for a, b in zip(s, s[1:]))


def test_oracle_on_the_compact_schedule_ejects_capped_and_returns():
    s = compact_schedule(PODS, WHAT_IF.settings)
    errors = [p for p in s if p.error_status]
    sim = expected_ejections(WHAT_IF.settings, PODS, errors, rate_per_pod=30, until=s[-1].start,
                             healthy_panic_threshold=WHAT_IF.healthy_panic_threshold or 0.0)
    (a_start, a_end), = sim.ejected_intervals[PODS[0]]       # ejected once, returned within the run
    assert s[0].start <= a_start < s[0].end and a_end is not None and a_end < s[2].start
    # pod 1's 502s while pod 0 is out are held in by the 50 % cap; its 500s later eject it
    assert [w[0] for w in sim.ejected_intervals[PODS[1]]] and all(w[0] >= s[2].start for w in
                                                                  sim.ejected_intervals[PODS[1]])


def test_compact_schedule_needs_two_pods():
    with pytest.raises(UsageError):
        compact_schedule(PODS[:1], WHAT_IF.settings)


def test_locust_codes_become_response_records():
    lines = [{"t": 100, "codes": {"201||cb-0-0": 2, "403|RBAC|-": 1}}, {"t": 101, "codes": {"0||-": 1}}]
    recs = records_from_seconds(lines)
    assert [(r.status, r.flag, r.pod, r.t) for r in recs] == [(201, "", "cb-0-0", 100.5), (201, "", "cb-0-0", 100.5),
                                                              (403, "RBAC", "-", 100.5), (0, "", "-", 101.5)]
    assert client_series(recs, 100.0) == {0.0: {"cb-0-0": {"ok": 2, "5xx": 0, "gw": 0},
                                                "-": {"ok": 1, "5xx": 0, "gw": 0}}}


def test_negative_counts_are_refused():
    with pytest.raises(UsageError):
        records_from_seconds([{"t": 1, "codes": {"200||a": -1}}])


def test_errors_answered_after_their_send_interval_do_not_make_negative_successes():
    """Seen on real Envoy: a host ejected right after its attempts were sent shows more rq_error
    than rq_total in the next read (errors are counted on answer, attempts on send)."""
    from harness.analysis.circuit_breaker.series import ClusterSample, attempt_series

    a = ClusterSample(10.0, {"10.0.0.2": {"rq_total": 100, "rq_error": 0, "ejected": False}})
    b = ClusterSample(11.0, {"10.0.0.2": {"rq_total": 101, "rq_error": 5, "ejected": True}})
    assert attempt_series([a, b], {"10.0.0.2": "cb-0-0"}, 9.0) == {2.0: {"cb-0-0": {"ok": 0, "5xx": 5, "gw": 0}}}


def test_overload_steps_are_placed_inside_each_step():
    from harness.analysis.circuit_breaker.series import step_windows

    # launched at 0 (t0=100); Locust started 1 s later, so steps ran 1-11 and 11-21; answers (the
    # lines) appear 3 s into step 1 under latency; 240 users shown from the line of second 111
    lines = [{"t": 104, "users": 80}, {"t": 105, "users": 80}, {"t": 111, "users": 240}, {"t": 112, "users": 240}]
    windows = step_windows(lines, (80, 240), 10.0, 0.0, 100.0)
    assert windows == [(6.0, 10.0, 80), (13.0, 20.0, 240)]
    assert all(1 <= a and b <= 11 for a, b, c in windows if c == 80)      # inside step 1 (1-11)
    assert all(11 <= a and b <= 21 for a, b, c in windows if c == 240)    # inside step 2 (11-21)
    with pytest.raises(UsageError):
        step_windows(lines, (80, 400), 10.0, 0.0, 100.0)                  # never reached
    with pytest.raises(UsageError):
        step_windows([{"t": 109, "users": 80}], (80,), 10.0, 0.0, 100.0)  # too late to place
