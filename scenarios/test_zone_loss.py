"""Zone loss on the docker platform: the seed's "Single AZ Failure" measured for real, per placement
of the replicas and per way a zone fails.

Setup (once): a deployment of its own (run id ``<run>-zl``: the faults kill and fence its database)
— the stack placed over the zones by harness.placement, the seed's ``replicas: 2`` conductors
behind the Service-like entry point (a real Envoy with the readinessProbe as its health check), a
synchronous streaming standby in another zone (RDS Multi-AZ). Per case: the replicas placed
``even`` or ``one-zone`` (the worst placement the Deployment permits), the database primary in the
zone that fails; then a prober (every ``probe_interval_s``) and a canary ledger through the entry
point, Locust at a modest constant load through it, the entry point's health flags sampled, and
``chaos run chaos/zone-loss.json`` with ``zone_failure`` power-loss or partition for ``OBSERVE_S``.

Assess: the RTO split into detection, failover and reconnection (harness.measure.rto_phases), the
error budget spent, the throughput within the SLO before the fault and on the survivors during it,
RPO from the ledger, and the verdict against the runbook's claim ("Degraded performance — automatic
via multi-AZ setup") and the RTO/RPO targets; a plot per case.

Teardown: ``undo_all`` for whatever the fault log still shows, the fault log into the report; the
deployment removed at the end (also on failure and Ctrl-C).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import json
import threading
import time
from types import SimpleNamespace
from typing import Any, Iterator, NamedTuple

import pytest

from harness.chaos_runner import run_experiment
from harness.containers import run_containers
from harness.faults import safety
from harness.measure.rpo import CanaryLedger, verify
from harness.measure.rto import Prober
from harness.measure.rto_phases import ZoneEvents, capacity_left, error_budget, judge, split_phases

# docker only: on Kubernetes zone loss drains nodes (scenarios/test_chaos.py::test_zone_loss)
pytestmark = [pytest.mark.chaos, pytest.mark.docker]

OBSERVE_S = 15.0      # the zone stays down: detection + failover + the 5 s a recovery must be sustained
BASELINE_S = 6.0      # before the fault: the healthy baseline (and the "before" capacity window)
TAIL_S = 6.0          # after the experiment: the recovery after the zone's return
LOAD_USERS, LOAD_USER_RPS = 8, 2.0   # Locust's constant offered load through the entry point (16 rps)
LOAD_WARMUP_S = 2.0   # Locust's first seconds (spawning, a partial second) are not the baseline
# On Kubernetes a lost zone's pods are evicted only after the default 300 s unreachable toleration
# (kube-apiserver --default-unreachable-toleration-seconds, DefaultTolerationSeconds) once the node is
# marked unreachable (kube-controller-manager --node-monitor-grace-period, 40 s in 1.28): no
# replacement pod exists before that.
KUBE_EVICTION_FLOOR_S = 340.0
_LEDGER_SEQ = itertools.count(5_000_000, 1_000_000)


class HealthRead(NamedTuple):
    t: float
    health: dict[str, tuple[str, ...]]


@pytest.fixture(scope="module")
def zone_deployment(settings: Any, request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    from harness.docker_env import export_container_logs, sweep
    from harness.dr import replication
    from harness.placement import spread_facts
    from harness.platforms.docker import DockerPlatform
    from harness.stack.services import Stack

    facts = spread_facts(settings.manifests_dir)
    s = dataclasses.replace(settings, run_id=f"{settings.run_id[:36]}-zl", replicas=facts.replicas,
                            zone_placement="even")
    stack, platform = Stack(s), None
    try:
        stack.start()
        platform = DockerPlatform(s, stack)
        platform.up()
        replication.start_standby(s.run_id, synchronous=True)  # RDS Multi-AZ replicates synchronously
        yield SimpleNamespace(settings=s, stack=stack, platform=platform, facts=facts)
    finally:
        if request.session.testsfailed:
            export_container_logs(s.run_id, settings.report_path / "logs" / "zone_loss")
        if not s.keep:
            if platform is not None:
                platform.down()
            replication.cleanup_dr(s.run_id)
            stack.stop()
            sweep(s.run_id)


def _arrange(dep: SimpleNamespace, mode: str, scenario: Any) -> Any:
    """The case's layout: replicas placed per ``mode``, the database primary in the failure zone."""
    from harness.faults.probes import wait_until_serving
    from harness.dr.multi_az import place_primary

    s, platform = dep.settings, dep.platform
    scenario.progress(f"placing the replicas {mode} for the loss of {s.zones[0]}")
    platform.capability("zones").place(s.zones[0], mode)   # the failure zone first, as plan() orders them
    placement = platform.placement
    done = place_primary(s.run_id, placement.database_primary)
    if done:
        scenario.progress(f"database primary back in {placement.database_primary}: {'; '.join(done)}")
    wait_until_serving(timeout_s=120, consecutive=10,
                       configuration={"run_id": s.run_id, "endpoints": platform.service_url()})
    return placement


def _epoch(iso: str | None) -> float | None:
    """A journal time (chaoslib writes UTC, with or without the offset) in epoch seconds."""
    if not iso:
        return None
    t = _dt.datetime.fromisoformat(iso)
    return (t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)).timestamp()


def _lb_ejected_at(reads: list[HealthRead], lost_ips: dict[str, str], after: float) -> float | None:
    """First time after the fault the entry point stopped routing to a replica of the lost zone: a
    health-check flag on its host, or the host gone from the DNS-resolved cluster. A lost replica has
    no address any more, so the entry point's host is found by the address it had before the fault
    (``service_health`` keys hosts it cannot name by their IP)."""
    for r in reads:
        if r.t < after:
            continue
        for name, ip in lost_ips.items():
            flags = r.health[name] if name in r.health else r.health.get(ip)
            if flags is None or flags != ():
                return r.t
    return None


@pytest.mark.parametrize("failure", ["power-loss", "partition"])
@pytest.mark.parametrize("placement_mode", ["even", "one-zone"])
def test_zone_loss_on_docker(placement_mode: str, failure: str, zone_deployment: SimpleNamespace, settings: Any,
                             scenario: Any, run_report: Any) -> None:
    """One zone fails (its containers killed, or cut off while running) with the database primary in
    it: users, through the entry point, must recover by themselves while the zone is still down,
    within the RTO target, losing no more than the RPO target."""
    from harness.load.runner import run_locust
    from harness.measure.envoy_admin import ProxySampler
    from harness.report.zone_loss_plot import zone_loss_png

    dep = zone_deployment
    s, platform, run_id = dep.settings, dep.platform, dep.settings.run_id
    placement = _arrange(dep, placement_mode, scenario)
    zone = placement.failure_zone
    lost = {r.name for r in platform.replicas() if r.zone == zone}
    lost_ips = {name: platform.ip_of(name) for name in lost}
    url = platform.service_url()
    fault_log = scenario.dir / "faults.jsonl"
    observe_s = OBSERVE_S + s.zone_failover_delay_s  # the zone stays down past a delayed failover
    scenario.measure("placement", placement.to_dict())
    scenario.measure("zone", zone)
    scenario.measure("failure", failure)
    scenario.measure("failover_delay_s", s.zone_failover_delay_s)

    prober = Prober(lambda: [url], s.probe_interval_s, name=f"zl-{placement_mode}-{failure}")
    ledger = CanaryLedger(run_id, lambda: [url], interval_s=0.25, start_seq=next(_LEDGER_SEQ))
    health = ProxySampler(lambda: HealthRead(time.time(), platform.service_health()), interval=0.25)
    load: dict[str, Any] = {}

    def drive() -> None:
        try:
            load["result"] = run_locust([url], scenario.dir, name="load", users=LOAD_USERS, spawn_rate=LOAD_USERS,
                                        duration_s=BASELINE_S + observe_s + 12, user_rps=LOAD_USER_RPS)
        except Exception as exc:  # noqa: BLE001 - reported with the capacity figures
            load["error"] = f"{type(exc).__name__}: {exc}"

    locust = threading.Thread(target=drive, name="zone-loss-load")
    run = None
    prober.start()
    ledger.start()
    health.start()
    locust.start()
    try:
        time.sleep(BASELINE_S)
        scenario.progress(f"zone {zone} {failure} for {observe_s:g}s, replicas {placement_mode} "
                          f"(prober every {s.probe_interval_s}s through the entry point, canary ledger, Locust)")
        run = run_experiment("zone-loss", scenario.dir, run_id=run_id, progress=scenario.progress, env={
            "HARNESS_FAULT_LOG": str(fault_log), **platform.chaos_configuration(), "HARNESS_ZONE": zone,
            "HARNESS_ZONE_FAILURE": failure, "HARNESS_OBSERVE_S": str(observe_s), "HARNESS_PROBE_REQUESTS": "10",
            "HARNESS_ZONE_FAILOVER_DELAY_S": str(s.zone_failover_delay_s),
            "HARNESS_ENDPOINTS": url, "HARNESS_RTO_TARGET_S": str(s.rto_target_s),
            "HARNESS_SLO_SUCCESS_RANGE": json.dumps([round(1 - s.slo_error_ratio, 6), 1.0]),
            "HARNESS_KUBE_NAMESPACE": "", "HARNESS_CONTEXT": ""})
        time.sleep(TAIL_S)
    finally:
        samples, entries, reads = prober.stop(), ledger.stop(), health.stop()
        locust.join(timeout=BASELINE_S + observe_s + 60)
        undone = safety.undo_all(run_id, path=fault_log)
        if undone:
            scenario.progress(f"undo_all reversed: {undone}")
        run_report.faults.extend({**f, "scenario": scenario.name} for f in safety.faults_for_report(fault_log, run_id))
        for path in (fault_log, run.journal_path if run else None, run.log_path if run else None):
            if path is not None and path.exists():
                scenario.add_artifact(path)

    # -- Assess ------------------------------------------------------------------------------------
    faults = [f for f in safety.read_faults(fault_log, run_id) if f["fault"] == "zone-lost"]
    if run is None or not faults:
        scenario.inconclusive("the zone fault was not injected (see the experiment's journal)")
    fault = faults[0]
    output = next((a.get("output") or {} for a in run.journal.get("run", [])
                   if a.get("activity", {}).get("name") == "lose-zone"), {})
    failover = output.get("failover") or {}
    rollback = next(iter(run.journal.get("rollbacks") or []), {})
    restored_at = _epoch(rollback.get("start")) or fault["rolled_back_t"]  # the rollback's start: the zone is back
    events = ZoneEvents(fault_at=fault["injected_t"], restored_at=restored_at,
                        lb_ejected_at=_lb_ejected_at(reads, lost_ips, fault["injected_t"]),
                        failover_promoted_at=failover.get("promoted_at"),
                        database_writable_at=failover.get("alias_moved_at"),
                        primary_in_zone=bool(output.get("database_primary_lost")))
    phases = split_phases(samples, events, target_s=s.rto_target_s)
    budget = error_budget(samples, s.slo_error_ratio, start=events.fault_at, end=events.restored_at,
                          interval_s=s.probe_interval_s)
    from harness.faults.postgres import primary_database_url

    rpo = verify(entries, primary_database_url(run_id))
    rpo_s = max(rpo.rpo_s, rpo.loss_window_s) if rpo.acknowledged else None
    users_back = (events.fault_at + phases.user_recovery_s) if phases and phases.user_recovery_s is not None else None
    seconds = load["result"].seconds if "result" in load else []
    capacity = capacity_left(seconds, events, users_back, warmup_s=LOAD_WARMUP_S, p95_limit_ms=s.slo_p95_ms,
                             error_ratio_limit=s.slo_error_ratio, replicas_before=s.replicas,
                             replicas_after=s.replicas - len(lost))
    verdict = judge(phases, events, rto_target_s=s.rto_target_s, rpo_s=rpo_s, rpo_target_s=s.rpo_target_s,
                    capacity=capacity)
    if verdict.status == "fail" and phases is not None and not phases.recovered_before_restore and not (
            s.replicas - len(lost)):
        verdict.reasons.append(f"every replica was in {zone} ({placement_mode}); the docker platform has no scheduler, "
                               f"and on Kubernetes no replacement pod exists before ~{KUBE_EVICTION_FLOOR_S:.0f}s "
                               "(unreachable toleration 300s + node-monitor grace 40s): a full outage, not "
                               "'degraded performance'")
    harness_problems = []
    if safety.active_faults(run_id, path=fault_log):
        harness_problems.append("a zone fault is still active after undo_all")
    from harness.dr.multi_az import fenced_databases

    fenced = set(fenced_databases(run_id))  # a failover's ex-primaries stay stopped (no split brain)
    not_running = [c.name for c in run_containers(run_id, all=True) if c.status != "running"
                   and c.name not in fenced]
    if not_running:
        harness_problems.append(f"containers not running after the rollback: {', '.join(not_running)}")
    if "error" in load:
        harness_problems.append(f"Locust did not run: {load['error']}")

    # -- Report --------------------------------------------------------------------------------------
    scenario.measure("events", dataclasses.asdict(events))
    scenario.measure("rto_phases", phases.to_dict() if phases else None)
    scenario.measure("rto_s", phases.user_recovery_s if phases else None)
    scenario.measure("rto_target_s", s.rto_target_s)
    scenario.measure("rpo_s", rpo_s)
    scenario.measure("rpo_target_s", s.rpo_target_s)
    scenario.measure("rpo", rpo.to_dict())
    scenario.measure("error_budget", budget.to_dict())
    scenario.measure("capacity", capacity.to_dict())
    scenario.measure("lost_replicas", sorted(lost))
    scenario.measure("failover", failover or None)
    scenario.measure("zone_loss_verdict", verdict.to_dict())
    scenario.measure("chaos", run.to_dict())
    (scenario.dir / "probe_samples.jsonl").write_text("\n".join(json.dumps(x.to_dict()) for x in samples))
    (scenario.dir / "canary_ledger.jsonl").write_text("\n".join(json.dumps(e) for e in entries))
    scenario.add_artifact(scenario.dir / "probe_samples.jsonl")
    scenario.add_artifact(scenario.dir / "canary_ledger.jsonl")
    label = failure.replace("-", " ")
    scenario.add_plot(f"Zone {zone} lost by {label}, replicas {placement_mode}: users through the entry point",
                      zone_loss_png(scenario.dir / "zone_loss.png", samples, events, phases, zone=zone,
                                    placement=placement_mode, failure=label))
    fmt = lambda v, unit="s": "n/a" if v is None else f"{v:.1f}{unit}"  # noqa: E731
    rows = [["placement", placement_mode, "-", "; ".join(placement.reasons[1:2])],
            ["lost in the zone", ", ".join(fault["details"].get("containers", [])), "-",
             "database primary lost" if events.primary_in_zone else "database primary elsewhere"]]
    if phases is not None:
        rows += [["detection", fmt(phases.detection_s), "-", f"by {phases.detected_by}"],
                 ["failover", fmt(phases.failover_s), "-", "database writable in the other zone; started "
                  f"{s.zone_failover_delay_s:g}s after the loss (HARNESS_ZONE_FAILOVER_DELAY_S; "
                  "RDS: typically 60-120s)"],
                 ["reconnection", fmt(phases.reconnection_s), "-", "users served again, sustained"],
                 ["users' recovery (RTO)", fmt(phases.user_recovery_s), f"{s.rto_target_s:g}s",
                  "while the zone was down" if phases.recovered_before_restore else "not while the zone was down"]]
    rows += [["RPO", fmt(rpo_s), f"{s.rpo_target_s:g}s",
              f"{rpo.lost_writes} of {rpo.acknowledged} acknowledged writes lost"],
             ["error budget spent", f"{budget.failed} of {budget.requests} requests failed",
              f"{100 * s.slo_error_ratio:g}% errors", f"window {fmt(budget.window_spent, 'x')}, "
              f"{100 * (budget.period_spent or 0):.3f}% of a 30-day budget"],
             ["throughput within the SLO", f"before {fmt(capacity.before_rps, ' rps')}, on the survivors "
              f"{fmt(capacity.after_rps, ' rps')}", f"offered {LOAD_USERS * LOAD_USER_RPS:g} rps",
              f"replicas {capacity.replicas_before} -> {capacity.replicas_after}"],
             ["verdict", verdict.status, "runbook: automatic via multi-AZ", "; ".join(verdict.reasons)]]
    scenario.add_table(f"Zone loss ({label}, replicas {placement_mode}) against the runbook and the DR targets",
                       ["measure", "measured", "target", "note"], rows)
    if harness_problems:
        ok = scenario.verdict(False, "the harness did not restore the zone: " + "; ".join(harness_problems))
        assert ok, scenario.result.explanation
    if verdict.status == "inconclusive":
        scenario.inconclusive("; ".join(verdict.reasons))
    ok = scenario.verdict(verdict.ok, f"{placement_mode} / {label}: " + "; ".join(verdict.reasons))
    assert ok, scenario.result.explanation
