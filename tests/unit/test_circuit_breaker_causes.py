"""Ejected for failure vs ejected for load (harness.analysis.circuit_breaker.causes)."""
from __future__ import annotations

import pytest

from harness.analysis.circuit_breaker.causes import causes_sentence, ejection_causes, overflow_points
from harness.analysis.circuit_breaker.schedule import FaultPhase

FAULT = FaultPhase("gateway-503", 10.0, 20.0, 40.0, ("a",), error_status=503)
SLOW = FaultPhase("overload-latency", 50.0, 70.0, 70.0, ("a", "b"), latency_ms=2500.0)


def test_an_ejection_during_an_error_fault_is_for_failure():
    causes = ejection_causes({"gw-0": {"a": [(12.0, 42.0)]}}, [FAULT, SLOW], {"a": [(0.0, 0.0), (12.0, 0.0)]})
    assert [(c.pod, c.cause) for c in causes] == [("a", "failure")]
    assert "gateway-503" in causes[0].evidence


def test_an_ejection_after_sidecar_overflow_without_a_fault_is_for_load():
    overflow = {"b": [(50.0, 0.0), (55.0, 3.0), (56.0, 9.0)]}
    causes = ejection_causes({"gw-1": {"b": [(56.5, None)]}}, [FAULT, SLOW], overflow)
    assert [(c.gateway, c.pod, c.cause) for c in causes] == [("gw-1", "b", "load")]
    assert "9 local 503 UO" in causes[0].evidence
    assert "ejected for load: 1 (first b by gw-1 at 56.5s" in causes_sentence(causes)


def test_overflow_long_before_or_on_another_pod_explains_nothing():
    overflow = {"a": [(50.0, 0.0), (51.0, 5.0)], "b": [(50.0, 0.0), (60.0, 0.0)]}
    causes = ejection_causes({"gw-0": {"a": [(60.0, None)], "b": [(59.0, None)]}}, [FAULT, SLOW], overflow)
    assert {c.pod: c.cause for c in causes} == {"a": "unexplained", "b": "unexplained"}
    assert causes_sentence(causes) == "ejected for failure: 0; ejected for load: 0; unexplained: 2"


def test_the_planted_bug_a_fault_after_the_ejection_is_not_its_cause():
    late = FaultPhase("late", 30.0, 35.0, 40.0, ("a",), error_status=503)
    assert ejection_causes({"g": {"a": [(12.0, None)]}}, [late], {})[0].cause == "unexplained"


def test_overflow_points_and_bad_lookback():
    assert overflow_points([(105.0, 2), (101.0, 0)], 100.0) == [(1.0, 0.0), (5.0, 2.0)]
    assert causes_sentence([]) == "no ejection"
    with pytest.raises(ValueError):
        ejection_causes({}, [], {}, lookback_s=0)


def test_overflow_shows_in_the_read_after_the_ejection_when_it_came_between_two_reads():
    # an ejection 0.235 s into the run, before the first read: its sidecar's overflow shows at the 1 s read
    early = ejection_causes({"gw-3": {"b": [(0.235, None)]}}, [], {"b": [(1.0, 19.0), (2.0, 40.0)]})
    assert [(c.pod, c.cause) for c in early] == [("b", "load")] and "19 local 503 UO" in early[0].evidence
    # between two reads: the increase up to the next read may lie before the ejection
    between = ejection_causes({"gw-0": {"b": [(55.5, None)]}}, [FAULT, SLOW], {"b": [(55.0, 0.0), (56.0, 4.0)]})
    assert [c.cause for c in between] == ["load"]
    # but a read after the ejection that shows nothing new explains nothing
    later = ejection_causes({"gw-0": {"b": [(0.5, None)]}}, [], {"b": [(1.0, 0.0), (2.0, 19.0)]})
    assert [c.cause for c in later] == ["unexplained"]
