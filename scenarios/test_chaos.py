"""Chaos scenarios: the seed's DR plan (RTO 15 min, RPO 1 h) against database loss, failover and cluster
loss, each a Chaos Toolkit experiment from chaos/ run with ``chaos run`` (zone loss, on every platform:
scenarios/test_zone_loss.py).

Every scenario reads Setup → Assess → Teardown:

* Setup: what the failure needs (a standby is made ready by the failover experiment itself;
  backups on the configured cadence into moto's S3 for cluster loss), then a Prober (user requests
  that need the database, every ``probe_interval_s``) and a CanaryLedger (acknowledged, sequenced
  writes) start, and the experiment runs through harness.chaos_runner.
* Assess: RTO from the prober's timeline, RPO by verifying the ledger against whichever database
  is primary after the recovery, both against ``rto_target_s``/``rpo_target_s``; the journal, the
  timeline plot (fault windows shaded) and an RTO/RPO table go into the report.
* Teardown: ``undo_all`` reverses any fault still recorded as injected; the fault log goes into
  the report; then the session fixtures remove the stack.

No Locust load runs here: the prober and the ledger are the user traffic the measurements need, and
Locust's fixed target list could not follow a replaced application tier.

The order matters and is the file's order: the failovers leave a promoted standby as primary, the
cluster loss replaces the whole stack's database and application tier, so it runs last.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.chaos_runner import EXPERIMENTS_DIR, ChaosRun, run_experiment
from harness.config import chaos_env
from harness.faults import safety
from harness.measure.rpo import CanaryLedger, RpoResult, verify
from harness.measure.rto import Prober, RtoResult, compute_rto, plot_timeline

pytestmark = pytest.mark.chaos

TAIL_S = 7.0          # after the experiment: long enough to see the recovery sustained (5 s)
BASELINE_S = 3.0      # before it: the healthy baseline of the timeline
_LEDGER_SEQ = itertools.count(0, 1_000_000)  # each ledger of the run writes fresh keys


@dataclass
class Outcome:
    run: ChaosRun | None
    samples: list
    entries: list
    faults: list
    rto: RtoResult | None = None
    rpo: RpoResult | None = None
    problems: list[str] = field(default_factory=list)    # the system missed a target (fail)
    unmeasured: list[str] = field(default_factory=list)  # the harness could not measure (inconclusive)
    extra: dict[str, Any] = field(default_factory=dict)


def _experiment_env(settings, platform, scenario, **extra: str) -> dict[str, str]:
    env = {"HARNESS_FAULT_LOG": str(scenario.dir / "faults.jsonl"),
           "HARNESS_SLO_SUCCESS_RANGE": json.dumps([round(1 - settings.slo_error_ratio, 6), 1.0]),
           **chaos_env(settings),
           # Only a platform with a cluster names one: empty otherwise, so a stray export in the shell
           # cannot make a docker run call a cluster.
           "HARNESS_KUBE_NAMESPACE": "", "HARNESS_KUBE_RUN_CONTEXT": "",
           # what the chaos process needs to rebuild the platform (harness.platforms.attach)
           **platform.chaos_configuration()}
    if settings.context:
        env["HARNESS_CONTEXT"] = settings.context
    env.update(extra)
    return env


def _exercise(experiment: str, *, settings, platform, scenario, run_report, var_files=(), env=None,
              during: Callable[[], None] | None = None) -> Outcome:
    """Prober + ledger around ``chaos run``; undo_all and the fault log in every case."""
    run_id = settings.run_id
    fault_log = scenario.dir / "faults.jsonl"
    endpoints = platform.user_endpoints()  # follows a tier the chaos process replaced
    prober = Prober(endpoints, settings.probe_interval_s)
    ledger = CanaryLedger(run_id, endpoints, interval_s=0.25, start_seq=next(_LEDGER_SEQ))
    run = None
    prober.start()
    ledger.start()
    try:
        if during is not None:
            during()
        time.sleep(BASELINE_S)
        scenario.progress(f"running chaos/{experiment} (prober every {settings.probe_interval_s}s, canary ledger)")
        run = run_experiment(experiment, scenario.dir, run_id=run_id, env=env or {}, var_files=var_files,
                             progress=scenario.progress,
                             hypothesis_frequency_s=settings.chaos_hypothesis_frequency_s)
        time.sleep(TAIL_S)
    finally:
        samples, entries = prober.stop(), ledger.stop()
        undone = safety.undo_all(run_id, path=fault_log)
        if undone:
            scenario.progress(f"undo_all reversed: {undone}")
        _redeploy_if_tier_still_lost(settings, platform, scenario, fault_log)
        run_report.faults.extend({**f, "scenario": scenario.name} for f in safety.faults_for_report(fault_log, run_id))
        for path in (fault_log, run.journal_path if run else None, run.log_path if run else None,
                     run.events_path if run else None):
            if path is not None and Path(path).exists():
                scenario.add_artifact(Path(path))
    return Outcome(run, samples, entries, safety.read_faults(fault_log, run_id))


def _redeploy_if_tier_still_lost(settings, platform, scenario, fault_log: Path) -> None:
    """The removed tier's configuration lived in the chaos process; if that process died before its
    rollback, undo_all cannot redeploy it, but the platform's application tier (holding the same
    secrets) can."""
    lost = [f for f in safety.active_faults(settings.run_id, path=fault_log) if f["fault"] == "application-tier-lost"]
    if not lost:
        return
    scenario.progress("the application tier is still lost: redeploying it through the platform")
    try:
        replicas = int((lost[-1].get("details") or {}).get("replicas") or 0)
        platform.capability("application_tier").replace(settings.ready_timeout_s, replicas)
        safety.record_rolled_back(settings.run_id, "application-tier-lost", by="undo_all",
                                  note="redeployed by the platform", path=fault_log)
    except Exception as exc:  # noqa: BLE001 - reported as a fault never rolled back
        scenario.progress(f"redeploy failed: {exc}")


def _assess(out: Outcome, *, settings, platform, scenario, require_outage: bool, rpo_source: Any = None) -> Outcome:
    """RTO, RPO, experiment status; measurements, plot and table. Returns ``out`` with problems."""
    run = out.run
    if run is None:
        out.unmeasured.append("the experiment did not run")
        return out
    fault_at = out.faults[0]["injected_t"] if out.faults else None
    if fault_at is None:
        out.unmeasured.append("no fault was injected (see the journal: the method failed before its first fault)")
    out.rto = compute_rto(out.samples, fault_at=fault_at, target_s=settings.rto_target_s)
    if not platform.owns_database:
        # The team's database is not the harness's to read: RTO and the SLO are measured, RPO is not.
        return _assess_without_rpo(out, run, settings=settings, scenario=scenario)
    if rpo_source is None:
        from harness.errors import HarnessError
        from harness.faults.postgres import primary_database_url

        try:
            rpo_source = primary_database_url(settings.run_id)  # whichever server is primary now
        except HarnessError as exc:
            out.unmeasured.append(f"no database to verify the canary writes against: {exc}")
            rpo_source = set()  # nothing survived where nothing answers
    out.rpo = verify(out.entries, rpo_source)
    rpo_figure = max(out.rpo.rpo_s, out.rpo.loss_window_s)
    _judge_run(out, run)
    if not out.rto.verdict_ok:
        out.problems.append(out.rto.explanation)
    if require_outage and out.rto.sustained_failures == 0:
        out.unmeasured.append("the prober saw no outage although the fault takes the database away: it does not "
                            "measure what users need")
    if out.rpo.acknowledged == 0:
        out.unmeasured.append("the canary ledger got no write acknowledged: there is no RPO to measure")
    if rpo_figure > settings.rpo_target_s:
        out.problems.append(f"RPO {rpo_figure:.1f}s exceeds the target {settings.rpo_target_s:g}s "
                            f"({out.rpo.lost_writes} acknowledged writes lost)")

    scenario.measure("rto_s", out.rto.rto_s)
    scenario.measure("rpo_s", out.rpo.rpo_s)
    scenario.measure("loss_window_s", out.rpo.loss_window_s)
    scenario.measure("lost_writes", out.rpo.lost_writes)
    scenario.measure("rto_target_s", settings.rto_target_s)
    scenario.measure("rpo_target_s", settings.rpo_target_s)
    scenario.measure("rto", out.rto.to_dict())
    scenario.measure("rpo", out.rpo.to_dict())
    scenario.measure("chaos", run.to_dict())
    scenario.measure("probe_samples", len(out.samples))
    (scenario.dir / "probe_samples.jsonl").write_text("\n".join(json.dumps(s.to_dict()) for s in out.samples))
    (scenario.dir / "canary_ledger.jsonl").write_text("\n".join(json.dumps(e) for e in out.entries))
    scenario.add_artifact(scenario.dir / "probe_samples.jsonl")
    scenario.add_artifact(scenario.dir / "canary_ledger.jsonl")
    scenario.add_plot("User requests around the fault (success ratio per second, p95 latency; fault shaded)",
                      plot_timeline(scenario.dir / "timeline.png", out.samples, faults=safety.windows(out.faults),
                                    result=out.rto))
    rto_text = f"{out.rto.rto_s:.1f}" if out.rto.rto_s is not None else "not recovered"
    rows = [["RTO (s)", rto_text, settings.rto_target_s, "pass" if out.rto.verdict_ok else "fail"],
            ["RPO (s)", round(rpo_figure, 3), settings.rpo_target_s, "pass" if rpo_figure <= settings.rpo_target_s
             else "fail"],
            ["acknowledged writes lost", out.rpo.lost_writes, "-", f"of {out.rpo.acknowledged}"],
            ["availability from the fault", f"{100 * out.rto.availability:.1f}%", "-",
             f"{out.rto.failed} of {out.rto.samples} requests failed"]]
    out.extra["table_rows"] = rows
    return out


def _judge_run(out: Outcome, run: ChaosRun) -> None:
    """The experiment's own status, its continuous hypothesis, activities and rollbacks."""
    if run.deviated:  # the steady state did not hold afterwards: the system's failure
        out.problems.append(f"experiment {run.status} and deviated from the steady state (steady state "
                            f"before={run.steady_state('before')}, after={run.steady_state('after')})")
    elif run.status != "completed":  # aborted or failed without a deviation: the experiment broke
        out.unmeasured.append(f"experiment {run.status} (steady state before={run.steady_state('before')}, "
                              f"after={run.steady_state('after')})")
    if run.held_throughout is False:  # the continuous hypothesis failed during the fault
        during = run.steady_state_during
        out.problems.append(f"the steady state did not hold throughout the fault: {during.count(False)} of "
                            f"{len(during)} checks during the method failed")
    failed = [a["name"] for a in run.activities() if a["status"] != "succeeded"]
    if failed:
        out.unmeasured.append(f"activities failed (the fault may not be in place): {', '.join(failed)}")
    bad_rollbacks = [r["name"] for r in run.rollbacks if r["status"] != "succeeded"]
    if bad_rollbacks:
        out.unmeasured.append(f"rollbacks failed: {', '.join(bad_rollbacks)}")
    unrolled = [f["fault"] for f in out.faults if f["rolled_back_at"] is None]
    if unrolled:
        out.unmeasured.append(f"faults never rolled back: {', '.join(unrolled)}")


def _assess_without_rpo(out: Outcome, run: ChaosRun, *, settings, scenario) -> Outcome:
    """On a cluster the harness did not create: the experiment and the RTO, no RPO (not our database)."""
    _judge_run(out, run)
    if not out.rto.verdict_ok:
        out.problems.append(out.rto.explanation)
    scenario.measure("rto_s", out.rto.rto_s)
    scenario.measure("rto_target_s", settings.rto_target_s)
    scenario.measure("rto", out.rto.to_dict())
    scenario.measure("rpo", "not measured: the team's database on this cluster is not the harness's to read")
    scenario.measure("chaos", run.to_dict())
    scenario.measure("probe_samples", len(out.samples))
    scenario.add_plot("User requests around the fault (success ratio per second, p95 latency; fault shaded)",
                      plot_timeline(scenario.dir / "timeline.png", out.samples, faults=safety.windows(out.faults),
                                    result=out.rto))
    rto_text = f"{out.rto.rto_s:.1f}" if out.rto.rto_s is not None else "not recovered"
    out.extra["table_rows"] = [["RTO (s)", rto_text, settings.rto_target_s, "pass" if out.rto.verdict_ok else "fail"],
                               ["availability from the fault", f"{100 * out.rto.availability:.1f}%", "-",
                                f"{out.rto.failed} of {out.rto.samples} requests failed"]]
    return out


def _finish(out: Outcome, scenario, title: str) -> None:
    scenario.add_table(f"{title}: RTO/RPO against the DR plan's targets", ["measure", "measured", "target", "verdict"],
                       out.extra.get("table_rows", []))
    rto = out.rto.explanation if out.rto else "no RTO"
    rpo = (f"{out.rpo.lost_writes} of {out.rpo.acknowledged} acknowledged writes lost, RPO "
           f"{max(out.rpo.rpo_s, out.rpo.loss_window_s):.1f}s") if out.rpo else "no RPO"
    if out.unmeasured:  # fault not injected, experiment broken, nothing to measure against: not the system's
        scenario.inconclusive("; ".join(out.unmeasured + out.problems))
    ok = scenario.verdict(not out.problems, "; ".join(out.problems) if out.problems else f"{rto}; {rpo}")
    assert ok, scenario.result.explanation


# Outage, failover, planted loss and cluster loss stop, kill, restore or replace the run's own database
# servers and move the name ``postgres`` (the docker network alias; on kind also the EndpointSlice of the
# stand-in Service ``postgres``: harness.faults.postgres). A cluster named with --context runs the team's
# own database, which the harness neither owns nor may stop: ``own_database`` skips them there at
# collection (harness.pytest_plugin), before any fixture starts.
# -- scenarios ------------------------------------------------------------------------------------
@pytest.mark.own_database
def test_database_outage(settings, platform, scenario, run_report):
    """The primary stops for a while and comes back: users are served again within the RTO, and no
    acknowledged write is lost (the same server comes back with its data)."""
    out = _exercise("database-outage", settings=settings, platform=platform, scenario=scenario,
                    run_report=run_report, env=_experiment_env(settings, platform, scenario))
    _assess(out, settings=settings, platform=platform, scenario=scenario, require_outage=True)
    if out.rpo is not None and out.rpo.lost_writes:
        out.problems.append(f"{out.rpo.lost_writes} acknowledged writes lost although the same server came back")
    _finish(out, scenario, "Database outage")


@pytest.mark.own_database
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_database_failover(mode, settings, platform, scenario, run_report):
    """The primary dies (SIGKILL) and its streaming standby is promoted. Synchronous replication must
    lose no acknowledged write; asynchronous may lose what had not reached the standby, within the RPO."""
    out = _exercise("database-failover", settings=settings, platform=platform, scenario=scenario,
                    run_report=run_report, var_files=[EXPERIMENTS_DIR / "vars" / f"failover-{mode}.json"],
                    env=_experiment_env(settings, platform, scenario))
    _assess(out, settings=settings, platform=platform, scenario=scenario, require_outage=False)
    if mode == "sync" and out.rpo is not None and out.rpo.lost_writes:
        out.problems.append(f"synchronous replication lost {out.rpo.lost_writes} acknowledged writes "
                            f"(seqs {out.rpo.lost_seqs[:10]})")
    if mode == "async" and out.rpo is not None and not out.rpo.lost_writes:
        # The partition before the kill makes lag real; no loss means the experiment did not
        # exercise asynchronous replication at all, so it cannot vouch for the RPO it reports.
        out.unmeasured.append("the standby partition produced no lost write: the experiment did not create "
                            "replication lag, so it shows nothing about asynchronous RPO")
    if out.run is not None:
        fo = next((a for a in out.run.journal.get("run", []) if a.get("activity", {}).get("name")
                   == "kill-primary-and-promote-standby"), {})
        scenario.measure("failover", fo.get("output"))
    _finish(out, scenario, f"Database failover ({mode} standby)")


@pytest.fixture
def dr_secrets(settings, stack, moto):
    """The database credentials and the backup passphrase in moto's Secrets Manager (the seed's names)."""
    from harness.dr import secret_store

    return secret_store.seed_secrets(settings.run_id, moto.host_url())


@pytest.mark.own_database
def test_planted_loss_is_caught(settings, platform, scenario, moto, dr_secrets):
    """Restoring a backup OLDER than the newest must show up as lost acknowledged writes: the RPO
    check catches a restore that silently drops data. Controls: the live primary loses nothing, and
    the newest backup loses fewer writes than the older one."""
    from harness.containers import run_container
    from harness.dr import backup, replication

    run_id, s3 = settings.run_id, moto.host_url()
    ledger = CanaryLedger(run_id, platform.user_endpoints(), interval_s=0.25, start_seq=next(_LEDGER_SEQ))
    targets = [f"i2s-{run_id}-postgres-planted-old", f"i2s-{run_id}-postgres-planted-new"]

    def wait_acks(n: int, after: float) -> None:
        deadline = time.monotonic() + 60
        while sum(1 for e in ledger.snapshot() if e["acked"] and e["ack_at"] > after) < n:
            assert time.monotonic() < deadline, f"the ledger got fewer than {n} writes acknowledged in 60s"
            time.sleep(0.1)

    try:
        # Setup
        ledger.start()
        wait_acks(8, 0)
        scenario.progress("backup A (the one that will be planted)")
        older = backup.run_backup(run_id, s3)
        wait_acks(8, time.time())
        scenario.progress("backup B (the newest)")
        newest = backup.run_backup(run_id, s3)
        wait_acks(4, time.time())
        entries = ledger.stop()
        # Assess
        scenario.progress("restoring A (older than the newest) and B into scratch servers")
        restored_old = backup.restore_backup(older["key"], run_id, s3, target_container=targets[0])
        backup.restore_backup(newest["key"], run_id, s3, target_container=targets[1])
        planted = verify(entries, replication.host_database_url(targets[0]))
        control_new = verify(entries, replication.host_database_url(targets[1]))
        from harness.faults.postgres import primary_database_url

        control_live = verify(entries, primary_database_url(run_id))
    finally:
        ledger.stop()
        for name in targets:
            try:
                run_container(name, run_id).remove(force=True, v=True)
            except Exception:  # noqa: BLE001 - not created; the sweep removes leftovers anyway
                pass
    by_seq = {e["seq"]: e for e in entries}
    early = [s for s in planted.lost_seqs if by_seq[s]["ack_at"] < older["snapshot_at"] - 0.5]
    problems = []
    if planted.lost_writes == 0:
        problems.append("restoring the older backup showed no lost write: the RPO check would miss a bad restore")
    if early:
        problems.append(f"writes acknowledged before backup A's snapshot were reported lost (seqs {early[:5]}): "
                        "the check reports loss that did not happen")
    if control_live.lost_writes:
        problems.append(f"the live primary shows {control_live.lost_writes} lost writes: the check cries wolf")
    if not control_new.lost_writes < planted.lost_writes:
        problems.append(f"the newest backup lost {control_new.lost_writes} writes, not fewer than the older "
                        f"one's {planted.lost_writes}")
    scenario.measure("lost_writes", planted.lost_writes)
    scenario.measure("rpo_s", planted.rpo_s)
    scenario.measure("loss_window_s", planted.loss_window_s)
    scenario.measure("rto_target_s", settings.rto_target_s)
    scenario.measure("rpo_target_s", settings.rpo_target_s)
    scenario.measure("planted", {"restored": restored_old["key"], "newest": newest["key"],
                                 "older_snapshot_at": older["snapshot_at"], "newest_snapshot_at": newest["snapshot_at"],
                                 "rpo": planted.to_dict()})
    scenario.measure("control_newest_backup", control_new.to_dict())
    scenario.measure("control_live_primary", control_live.to_dict())
    scenario.add_table("Planted loss: restore of an older backup", ["database verified", "acknowledged",
                                                                    "lost", "loss window (s)"],
                       [["backup A (older, planted)", planted.acknowledged, planted.lost_writes,
                         planted.loss_window_s],
                        ["backup B (newest)", control_new.acknowledged, control_new.lost_writes,
                         control_new.loss_window_s],
                        ["live primary", control_live.acknowledged, control_live.lost_writes,
                         control_live.loss_window_s]])
    ok = scenario.verdict(not problems, "; ".join(problems) if problems else
                          f"the older backup lost {planted.lost_writes} acknowledged writes "
                          f"(loss window {planted.loss_window_s:.1f}s), the newest {control_new.lost_writes}, "
                          "the live primary 0: the check catches a bad restore")
    assert ok, scenario.result.explanation


@pytest.mark.own_database
def test_cluster_loss(settings, platform, scenario, run_report, moto, dr_secrets):
    """Application tier and database lost; recovery into a fresh secondary region from the newest backup
    (backups every ``backup_interval_s``). The measured RPO must be within the target and within what
    the backup cadence implies."""
    from harness.dr.backup_schedule import BackupScheduler, implied_rpo_s

    s3 = moto.host_url()
    scheduler = BackupScheduler(settings.run_id, s3, settings.backup_interval_s)

    def backups_running() -> None:
        # Setup, with the ledger already writing: some canary writes are in the first backup.
        scenario.progress(f"backups every {settings.backup_interval_s:g}s into s3://i2s-backups (moto)")
        scheduler.start()
        deadline = time.monotonic() + max(120.0, 3 * settings.backup_interval_s)
        while not scheduler.backups:
            assert time.monotonic() < deadline, f"no backup finished in time: {scheduler.failures[-1:]}"
            time.sleep(0.5)
        # Lose the cluster part-way into a cycle, not right after a backup: a realistic loss.
        time.sleep(settings.backup_interval_s / 2)

    try:
        out = _exercise("cluster-loss", settings=settings, platform=platform, scenario=scenario,
                        run_report=run_report, during=backups_running,
                        env=_experiment_env(settings, platform, scenario, HARNESS_S3_ENDPOINT=s3))
    finally:
        scheduler.stop()
    _assess(out, settings=settings, platform=platform, scenario=scenario, require_outage=True)
    cadence = scheduler.to_dict()
    durations = [b["duration_s"] for b in cadence["backups"]]
    implied = implied_rpo_s(settings.backup_interval_s, max(durations)) if durations else None
    scenario.measure("implied_rpo_s", implied)
    scenario.measure("backup_interval_s", settings.backup_interval_s)
    scenario.measure("backups", {"taken": len(cadence["backups"]), "failed": len(cadence["failures"]),
                                 "keys": [b["key"] for b in cadence["backups"]],
                                 "failures": cadence["failures"][-3:]})
    if out.run is not None:
        rec = next((a for a in out.run.journal.get("run", []) if a.get("activity", {}).get("name")
                    == "restore-newest-backup-into-secondary-region"), {})
        scenario.measure("recovery", rec.get("output"))
    if out.rpo is not None and implied is not None:
        measured = max(out.rpo.rpo_s, out.rpo.loss_window_s)
        slack = 2 * 0.25  # the ledger's cadence blurs both ends of the loss window
        out.extra["table_rows"].append(["RPO implied by the harness's backup cadence (the seed schedules none) (s)", round(implied, 1),
                                        settings.rpo_target_s, f"measured {measured:.1f}s"])
        if measured > implied + slack:
            out.problems.append(f"measured RPO {measured:.1f}s exceeds what backups every "
                                f"{settings.backup_interval_s:g}s imply ({implied:.1f}s): backups were missed")
    _finish(out, scenario, "Cluster loss, recovery into a secondary region")
