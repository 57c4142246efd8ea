"""Zone loss: the seed's "Single AZ Failure" measured for real, per placement of the replicas and per
way a zone fails. Written once for every platform; the platform's zones capability
(harness.platforms.capabilities.Zones) is the only difference:

* docker: a deployment of its own (run id ``<run>-zl``: the faults kill and fence its database;
  ``Platform.for_zone_loss``) -- the stack placed over the zones by harness.placement, the seed's
  ``replicas: 2`` conductors behind the Service-like entry point (a real Envoy with the
  readinessProbe as its health check), a synchronous streaming standby in another zone (RDS
  Multi-AZ); the replicas placed ``even`` or ``one-zone`` (the worst placement the Deployment
  permits), the database primary in the zone that fails; the zone lost by ``power-loss`` or
  ``partition``;
* kind: the session's cluster; every replica placed in the zone (``one-zone``, by cordoning the
  others), the zone's nodes drained (``drain``);
* a cluster named with --context: the team's pods ``as-deployed``, drained with
  ``HARNESS_CONTEXT_ALLOW=write,drain``; no RPO (the database is the team's).

Every case is collected on every platform (``test_zone_loss[<placement>-<failure>]``); a placement or
failure the platform does not offer is skipped with its reason (``Zones.check``).

Per case: a prober (every ``probe_interval_s``) and a canary ledger through the entry point, Locust at
a modest constant load through it, the entry point's health flags sampled where the platform reads
them, and ``chaos run chaos/zone-loss.json`` with ``zone_failure`` for ``OBSERVE_S``.

Assess: the RTO split into detection, failover and reconnection (harness.measure.rto_phases), the
error budget spent, the throughput within the SLO before the fault and on the survivors during it,
RPO from the ledger, and the verdict against the runbook's claim ("Degraded performance — automatic
via multi-AZ setup") and the RTO/RPO targets; a plot per case. Inconclusive when the zone fault was
not injected or its activity failed; a zone left down after the restore is the harness's problem.

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
from typing import Any, Iterator, NamedTuple

import pytest

from harness.chaos_runner import run_experiment
from harness.faults import safety
from harness.measure.rpo import CanaryLedger, verify
from harness.measure.rto import Prober
from harness.measure.rto_phases import ZoneEvents, capacity_left, error_budget, judge, split_phases
from harness.platforms.capabilities import Unsupported, ZoneLayout, Zones, require

pytestmark = [pytest.mark.chaos]

# Every case a platform might offer (Zones.placements x Zones.failures); the rest skip with the reason.
PLACEMENTS = ("even", "one-zone", "as-deployed")
FAILURES = ("power-loss", "partition", "drain")

OBSERVE_S = 15.0      # the zone stays down: detection + failover + the 5 s a recovery must be sustained
BASELINE_S = 6.0      # before the fault: the healthy baseline (and the "before" capacity window)
TAIL_S = 6.0          # after the experiment: the recovery after the zone's return
LOAD_USERS, LOAD_USER_RPS = 8, 2.0   # Locust's constant offered load through the entry point (16 rps)
LOAD_WARMUP_S = 2.0   # Locust's first seconds (spawning, a partial second) are not the baseline
_LEDGER_SEQ = itertools.count(5_000_000, 1_000_000)


class HealthRead(NamedTuple):
    t: float
    health: dict[str, tuple[str, ...]] | None


@pytest.fixture(scope="module")
def zone_platform(settings: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The deployment the zone faults may break (``Platform.for_zone_loss``: docker builds its own,
    a Kubernetes platform hands the session's)."""
    from harness.platforms import platform_class

    with platform_class(settings).for_zone_loss(settings, lambda: request.getfixturevalue("platform"),
                                                failed=lambda: bool(request.session.testsfailed)) as platform:
        yield platform


def _case(platform: Any, placement_mode: str, failure: str) -> Zones:
    """The platform's zones, or the case skipped with the reason it cannot run here."""
    zones: Zones = require(platform, "zones")
    try:
        zones.check(placement_mode, failure)
    except Unsupported as exc:
        pytest.skip(exc.reason)
    return zones


def _arrange(platform: Any, zones: Zones, mode: str, scenario: Any) -> ZoneLayout:
    """The case's layout: replicas placed per ``mode`` for the loss of the first zone (and, where the
    platform puts the database in a zone, its primary there); users served again before the fault."""
    from harness.faults.probes import wait_until_serving

    from harness.errors import HarnessError

    zone = platform.settings.zones[0]
    scenario.progress(f"placing the replicas {mode} for the loss of {zone}")
    try:
        layout = zones.arrange(zone, mode, progress=scenario.progress)
    except HarnessError as exc:
        scenario.inconclusive(f"the replicas could not be placed {mode} for the loss of {zone}: {exc}")
    wait_until_serving(timeout_s=120, consecutive=10,
                       configuration={"run_id": platform.settings.run_id, "endpoints": platform.service_url()})
    return layout


def _epoch(iso: str | None) -> float | None:
    """A journal time (chaoslib writes UTC, with or without the offset) in epoch seconds."""
    if not iso:
        return None
    t = _dt.datetime.fromisoformat(iso)
    return (t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)).timestamp()


def _lose_zone_output(journal: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(what the ``lose-zone`` activity returned, as a dict; why the zone may not have been lost, or
    ""). docker's activity returns the containers and the failover; a drain returns its nodes (a list)."""
    lose = next((a for a in journal.get("run", []) if a.get("activity", {}).get("name") == "lose-zone"), {})
    if lose.get("status") != "succeeded":
        return {}, (f"the zone fault's activity {lose.get('status') or 'did not run'}: the zone may not have been "
                    f"lost ({str(lose.get('exception') or '')[-300:]})")
    output = lose.get("output")
    return (output if isinstance(output, dict) else {}), ""


def _lb_ejected_at(reads: list[HealthRead], lost_ips: dict[str, str], after: float) -> float | None:
    """First time after the fault the entry point stopped routing to a replica of the lost zone: a
    health-check flag on its host, or the host gone from the DNS-resolved cluster. A lost replica has
    no address any more, so the entry point's host is found by the address it had before the fault
    (``service_health`` keys hosts it cannot name by their IP)."""
    for r in reads:
        if r.t < after or r.health is None:   # a platform that cannot tell which replica it routes to
            continue
        for name, ip in lost_ips.items():
            flags = r.health[name] if name in r.health else r.health.get(ip)
            if flags is None or flags != ():
                return r.t
    return None


@pytest.mark.context_needs("write", "drain")
@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("placement_mode", PLACEMENTS)
def test_zone_loss(placement_mode: str, failure: str, zone_platform: Any, scenario: Any, run_report: Any) -> None:
    """One zone fails (docker: its containers killed, or cut off while running, with the database
    primary in it; Kubernetes: its nodes drained): users, through the entry point, must recover by
    themselves while the zone is still down, within the RTO target, losing no more than the RPO target."""
    from harness.load.runner import run_locust
    from harness.measure.envoy_admin import ProxySampler
    from harness.report.zone_loss_plot import zone_loss_png

    platform = zone_platform
    zones = _case(platform, placement_mode, failure)
    s, run_id = platform.settings, platform.settings.run_id
    layout = _arrange(platform, zones, placement_mode, scenario)
    zone, lost = layout.zone, layout.lost()
    lost_ips = {name: ip for name, ip in layout.addresses.items() if name in lost}
    replicas_before = len(layout.replicas)
    url = platform.service_url()
    fault_log = scenario.dir / "faults.jsonl"
    observe_s = OBSERVE_S + s.zone_failover_delay_s  # the zone stays down past a delayed failover
    scenario.measure("placement", layout.details)
    scenario.measure("zone", zone)
    scenario.measure("failure", failure)
    scenario.measure("failover_delay_s", s.zone_failover_delay_s)

    prober = Prober(lambda: [url], s.probe_interval_s, name=f"zl-{placement_mode}-{failure}")
    # The canary ledger writes where the database is the harness's: RPO is measured against it.
    ledger = CanaryLedger(run_id, lambda: [url], interval_s=0.25, start_seq=next(_LEDGER_SEQ)) \
        if platform.owns_database else None
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
    entries: list[dict[str, Any]] = []
    prober.start()
    if ledger is not None:
        ledger.start()
    health.start()
    locust.start()
    try:
        time.sleep(BASELINE_S)
        scenario.progress(f"zone {zone} {failure} for {observe_s:g}s, replicas {placement_mode} "
                          f"(prober every {s.probe_interval_s}s through the entry point, canary ledger, Locust)")
        run = run_experiment("zone-loss", scenario.dir, run_id=run_id, progress=scenario.progress,
                             env=_experiment_env(platform, fault_log, zone=zone, failure=failure, observe_s=observe_s,
                                                 url=url))
        time.sleep(TAIL_S)
    finally:
        samples, reads = prober.stop(), health.stop()
        if ledger is not None:
            entries = ledger.stop()
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
    output, not_lost = _lose_zone_output(run.journal)
    if not_lost:
        scenario.inconclusive(not_lost)
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
    rpo = None
    if ledger is not None:
        from harness.faults.postgres import primary_database_url

        rpo = verify(entries, primary_database_url(run_id))
    rpo_s = max(rpo.rpo_s, rpo.loss_window_s) if rpo is not None and rpo.acknowledged else None
    users_back = (events.fault_at + phases.user_recovery_s) if phases and phases.user_recovery_s is not None else None
    seconds = load["result"].seconds if "result" in load else []
    capacity = capacity_left(seconds, events, users_back, warmup_s=LOAD_WARMUP_S, p95_limit_ms=s.slo_p95_ms,
                             error_ratio_limit=s.slo_error_ratio, replicas_before=replicas_before,
                             replicas_after=replicas_before - len(lost))
    verdict = judge(phases, events, rto_target_s=s.rto_target_s, rpo_s=rpo_s, rpo_target_s=s.rpo_target_s,
                    capacity=capacity, rpo_ours=platform.owns_database)
    if verdict.status == "fail" and phases is not None and not phases.recovered_before_restore and not (
            replicas_before - len(lost)):
        verdict.reasons.append(f"every replica was in {zone} ({placement_mode}); {zones.no_survivors_note}")
    harness_problems = zones.not_restored(zone)
    if safety.active_faults(run_id, path=fault_log):
        harness_problems.insert(0, "a zone fault is still active after undo_all")
    if "error" in load:
        harness_problems.append(f"Locust did not run: {load['error']}")

    # -- Report --------------------------------------------------------------------------------------
    scenario.measure("events", dataclasses.asdict(events))
    scenario.measure("rto_phases", phases.to_dict() if phases else None)
    scenario.measure("rto_s", phases.user_recovery_s if phases else None)
    scenario.measure("rto_target_s", s.rto_target_s)
    scenario.measure("rpo_s", rpo_s)
    scenario.measure("rpo_target_s", s.rpo_target_s)
    scenario.measure("rpo", rpo.to_dict() if rpo is not None else
                     "not measured: the team's database on this cluster is not the harness's to read")
    scenario.measure("error_budget", budget.to_dict())
    scenario.measure("capacity", capacity.to_dict())
    scenario.measure("lost_replicas", sorted(lost))
    scenario.measure("failover", failover or None)
    scenario.measure("zone_loss_verdict", verdict.to_dict())
    scenario.measure("chaos", run.to_dict())
    (scenario.dir / "probe_samples.jsonl").write_text("\n".join(json.dumps(x.to_dict()) for x in samples))
    scenario.add_artifact(scenario.dir / "probe_samples.jsonl")
    if ledger is not None:
        (scenario.dir / "canary_ledger.jsonl").write_text("\n".join(json.dumps(e) for e in entries))
        scenario.add_artifact(scenario.dir / "canary_ledger.jsonl")
    label = failure.replace("-", " ")
    scenario.add_plot(f"Zone {zone} lost by {label}, replicas {placement_mode}: users through the entry point",
                      zone_loss_png(scenario.dir / "zone_loss.png", samples, events, phases, zone=zone,
                                    placement=placement_mode, failure=label))
    fmt = lambda v, unit="s": "n/a" if v is None else f"{v:.1f}{unit}"  # noqa: E731
    in_zone = fault["details"].get("containers") or sorted(lost)
    database = ("database primary lost" if events.primary_in_zone else "database primary elsewhere"
                if layout.database_zone else "the database is in no zone here")
    rows = [["placement", placement_mode, "-", layout.reason],
            ["lost in the zone", ", ".join(in_zone), "-", database]]
    if phases is not None:
        rows += [["detection", fmt(phases.detection_s), "-", f"by {phases.detected_by}"],
                 ["failover", fmt(phases.failover_s), "-", "database writable in the other zone; started "
                  f"{s.zone_failover_delay_s:g}s after the loss (HARNESS_ZONE_FAILOVER_DELAY_S; "
                  "RDS: typically 60-120s)" if events.primary_in_zone else "no database failover needed"],
                 ["reconnection", fmt(phases.reconnection_s), "-", "users served again, sustained"],
                 ["users' recovery (RTO)", fmt(phases.user_recovery_s), f"{s.rto_target_s:g}s",
                  "while the zone was down" if phases.recovered_before_restore else "not while the zone was down"]]
    rows += [["RPO", fmt(rpo_s), f"{s.rpo_target_s:g}s",
              f"{rpo.lost_writes} of {rpo.acknowledged} acknowledged writes lost" if rpo is not None
              else "not measured: the team's database"],
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


def _experiment_env(platform: Any, fault_log: Any, *, zone: str, failure: str, observe_s: float,
                    url: str) -> dict[str, str]:
    """What ``chaos run`` gets: the cluster side blank unless the platform names one (a stray export in
    the shell cannot make a docker run call a cluster), then what the chaos process needs to rebuild
    the platform (``Platform.chaos_configuration``), then the case."""
    from harness.config import chaos_env

    s = platform.settings
    return {**chaos_env(s), "HARNESS_KUBE_NAMESPACE": "", "HARNESS_KUBE_RUN_CONTEXT": "", "HARNESS_CONTEXT": s.context or "",
            **platform.chaos_configuration(),
            "HARNESS_FAULT_LOG": str(fault_log), "HARNESS_ZONE": zone, "HARNESS_ZONE_FAILURE": failure,
            "HARNESS_OBSERVE_S": str(observe_s), "HARNESS_PROBE_REQUESTS": "10",
            "HARNESS_ZONE_FAILOVER_DELAY_S": str(s.zone_failover_delay_s), "HARNESS_ENDPOINTS": url,
            "HARNESS_RTO_TARGET_S": str(s.rto_target_s),
            "HARNESS_SLO_SUCCESS_RANGE": json.dumps([round(1 - s.slo_error_ratio, 6), 1.0])}
