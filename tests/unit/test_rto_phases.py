"""RTO phases, error budget, capacity left and the zone-loss verdict, on synthetic timelines."""
from __future__ import annotations

import pytest

from harness.measure.rto import Sample
from harness.measure.rto_phases import (BUDGET_PERIOD_S, Capacity, ZoneEvents, capacity_left, error_budget,
                                        goodput_within_slo, judge, split_phases)

T0 = 1_000.0
STEP = 0.25


def timeline(spec: list[tuple[float, bool]], end: float) -> list[Sample]:
    """Samples every 250 ms from T0 to T0+end; ``spec`` = [(from second, ok)] segments."""
    out, t = [], 0.0
    while t < end:
        ok = [o for start, o in spec if start <= t][-1]
        out.append(Sample(T0 + t, ok, 0.01 if ok else 2.0, 200 if ok else 0))
        t = round(t + STEP, 3)
    return out


# fault at 10 s, failures from 10 s, failover promoted 13 s, writable 14 s, users back 16 s, zone back 40 s
OUTAGE = timeline([(0, True), (10, False), (16, True)], 45)
EVENTS = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 40, lb_ejected_at=T0 + 12, failover_promoted_at=T0 + 13,
                    database_writable_at=T0 + 14, primary_in_zone=True)


def test_phases_add_up_to_the_users_recovery():
    p = split_phases(OUTAGE, EVENTS)
    assert p.detected_by == "load balancer"
    assert p.detection_s == 2.0 and p.failover_s == 2.0 and p.reconnection_s == 2.0
    assert p.user_recovery_s == 6.0 == p.detection_s + p.failover_s + p.reconnection_s
    assert p.recovered_before_restore
    v = judge(p, EVENTS, rto_target_s=900, rpo_s=0.0, rpo_target_s=3600)
    assert v.status == "pass", v
    assert "detection 2.0s by load balancer" in v.reasons[0]


def test_failover_detects_first_when_it_is_earlier():
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 40, lb_ejected_at=T0 + 15, failover_promoted_at=T0 + 11,
                    database_writable_at=T0 + 11.5, primary_in_zone=True)
    p = split_phases(OUTAGE, ev)
    assert p.detected_by == "database failover" and p.detection_s == 1.0 and p.failover_s == 0.5
    assert p.reconnection_s == 4.5


def test_no_failover_needed_when_the_primary_was_elsewhere():
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 40, lb_ejected_at=T0 + 12)
    p = split_phases(OUTAGE, ev)
    assert p.failover_s == 0.0 and p.reconnection_s == 4.0


def test_recovery_only_after_the_zone_returned_is_not_automatic():
    # Users fail from 10 s until the zone is back at 40 s (one-zone placement, all replicas lost).
    samples = timeline([(0, True), (10, False), (41, True)], 60)
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 40, primary_in_zone=False)
    p = split_phases(samples, ev)
    assert not p.recovered_before_restore and p.user_recovery_s is None
    assert p.detected_by == "nothing"
    v = judge(p, ev, rto_target_s=900, rpo_s=0.0, rpo_target_s=3600)
    assert v.status == "fail" and "not automatic" in v.reasons[0]


def test_slow_recovery_misses_the_rto_target():
    p = split_phases(OUTAGE, EVENTS, target_s=3)
    v = judge(p, EVENTS, rto_target_s=5, rpo_s=0.0, rpo_target_s=3600)
    assert v.status == "fail" and "beyond the RTO target 5s" in v.reasons[0]


def test_rpo_and_capacity_fail_the_verdict():
    p = split_phases(OUTAGE, EVENTS)
    assert judge(p, EVENTS, rto_target_s=900, rpo_s=4000.0, rpo_target_s=3600).status == "fail"
    assert judge(p, EVENTS, rto_target_s=900, rpo_s=None, rpo_target_s=3600).status == "fail"
    # A database that is not the harness's (a cluster named explicitly): no RPO to measure, not a failure;
    # the RTO and a measured RPO still judge.
    assert judge(p, EVENTS, rto_target_s=900, rpo_s=None, rpo_target_s=3600, rpo_ours=False).ok
    assert judge(p, EVENTS, rto_target_s=5, rpo_s=None, rpo_target_s=3600, rpo_ours=False).status == "fail"
    assert judge(p, EVENTS, rto_target_s=900, rpo_s=4000.0, rpo_target_s=3600, rpo_ours=False).status == "fail"
    none_left = Capacity(before_rps=40.0, after_rps=0.0, replicas_before=2, replicas_after=1)
    v = judge(p, EVENTS, rto_target_s=900, rpo_s=0.0, rpo_target_s=3600, capacity=none_left)
    assert v.status == "fail" and "no throughput within the SLO" in v.reasons[0]
    half = Capacity(before_rps=40.0, after_rps=20.0, replicas_before=2, replicas_after=1)
    v = judge(p, EVENTS, rto_target_s=900, rpo_s=0.0, rpo_target_s=3600, capacity=half)
    assert v.status == "pass" and "capacity left 50%" in v.reasons[0]


def test_no_outage_means_users_never_waited():
    samples = timeline([(0, True)], 30)
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 25, lb_ejected_at=T0 + 11)
    p = split_phases(samples, ev)
    assert p.user_recovery_s == 0.0 and p.recovered_before_restore
    assert judge(p, ev, rto_target_s=900, rpo_s=0.0, rpo_target_s=3600).ok


def test_inconclusive_without_fault_or_samples():
    assert judge(None, ZoneEvents(fault_at=None), rto_target_s=900, rpo_s=0, rpo_target_s=3600).status \
        == "inconclusive"
    early = timeline([(0, True)], 5)  # all before the fault
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 20)
    assert split_phases(early, ev) is None
    assert judge(None, ev, rto_target_s=900, rpo_s=0, rpo_target_s=3600).status == "inconclusive"


def test_database_never_failed_over():
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 40, lb_ejected_at=T0 + 12, primary_in_zone=True)
    samples = timeline([(0, True), (10, False)], 40)
    p = split_phases(samples, ev)
    assert p.failover_s is None and p.reconnection_s is None
    assert any("no failover completed" in n for n in p.notes)
    assert judge(p, ev, rto_target_s=900, rpo_s=0, rpo_target_s=3600).status == "fail"


def test_error_budget():
    b = error_budget(OUTAGE, 0.01, start=T0 + 10, end=T0 + 40)
    assert b.requests == 120 and b.failed == 24
    assert b.window_spent == pytest.approx(24 / 1.2)
    assert b.period_spent == pytest.approx(24 * 0.25 / (0.01 * BUDGET_PERIOD_S), rel=1e-3)
    clean = error_budget(timeline([(0, True)], 10), 0.01)
    assert clean.failed == 0 and clean.window_spent == 0


def test_goodput_counts_seconds_outside_the_slo_as_zero():
    seconds = [{"t": T0 + i, "ok": 40, "fail": 0, "p95_ms": 100} for i in range(10)]
    seconds += [{"t": T0 + 10 + i, "ok": 20, "fail": 0, "p95_ms": 100} for i in range(10)]
    seconds += [{"t": T0 + 20 + i, "ok": 30, "fail": 0, "p95_ms": 900} for i in range(5)]   # too slow
    seconds += [{"t": T0 + 25 + i, "ok": 30, "fail": 5, "p95_ms": 100} for i in range(5)]   # too many errors
    assert goodput_within_slo(seconds, start=T0, end=T0 + 10, p95_limit_ms=500, error_ratio_limit=0.01) == 40
    assert goodput_within_slo(seconds, start=T0 + 20, end=T0 + 30, p95_limit_ms=500, error_ratio_limit=0.01) == 0
    assert goodput_within_slo(seconds, start=T0 + 99, end=T0 + 100, p95_limit_ms=500, error_ratio_limit=0.01) is None
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 20)
    cap = capacity_left(seconds, ev, T0 + 10, p95_limit_ms=500, error_ratio_limit=0.01, replicas_before=2,
                        replicas_after=1)
    assert cap.before_rps == 40 and cap.after_rps == 20 and cap.left == 0.5
    assert capacity_left(seconds, ev, None, p95_limit_ms=500, error_ratio_limit=0.01, replicas_before=2,
                         replicas_after=0).after_rps is None


def test_zone_loss_plot_is_written(tmp_path):
    from harness.report.zone_loss_plot import zone_loss_png

    p = split_phases(OUTAGE, EVENTS)
    out = zone_loss_png(tmp_path / "z.png", OUTAGE, EVENTS, p, zone="us-east-1a", placement="even",
                        failure="power loss")
    assert out.exists() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_capacity_before_skips_the_loads_warmup():
    seconds = [{"t": T0, "ok": 2, "fail": 0, "p95_ms": 100}] + [
        {"t": T0 + i, "ok": 16, "fail": 0, "p95_ms": 100} for i in range(1, 10)]
    ev = ZoneEvents(fault_at=T0 + 10, restored_at=T0 + 20)
    kw = dict(p95_limit_ms=500, error_ratio_limit=0.01, replicas_before=2, replicas_after=1)
    assert capacity_left(seconds, ev, None, **kw).before_rps == pytest.approx((2 + 16 * 9) / 10)
    assert capacity_left(seconds, ev, None, warmup_s=1, **kw).before_rps == 16


def test_the_zone_loss_scenario_reads_either_platforms_fault_and_entry_point():
    """scenarios/test_zone_loss.py's readings of the journal and the entry point's health on docker
    and on Kubernetes (a drain returns its nodes; a Service's entry point names no replica: None)."""
    from scenarios.test_zone_loss import HealthRead, _lb_ejected_at, _lose_zone_output

    def journal(status, output):
        return {"run": [{"activity": {"name": "lose-zone"}, "status": status, "output": output,
                         "exception": ["ActivityFailed: drain timed out"] if status == "failed" else None}]}

    docker = {"failover": {"promoted_at": 5.0}, "database_primary_lost": True}
    assert _lose_zone_output(journal("succeeded", docker)) == (docker, "")
    assert _lose_zone_output(journal("succeeded", ["kind-worker"])) == ({}, "")
    output, why = _lose_zone_output(journal("failed", None))
    assert output == {} and "activity failed" in why and "drain timed out" in why
    assert "did not run" in _lose_zone_output({"run": []})[1]
    reads = [HealthRead(1.0, None), HealthRead(2.0, {"conductor-0": ()}), HealthRead(3.0, {"10.0.0.5": ("failed_active_hc",)})]
    assert _lb_ejected_at(reads, {"conductor-0": "10.0.0.5"}, after=1.5) == 3.0   # by the address it had
    assert _lb_ejected_at(reads[:1], {"conductor-0": "10.0.0.5"}, after=0.0) is None   # nothing to read
    assert _lb_ejected_at(reads, {}, after=0.0) is None
