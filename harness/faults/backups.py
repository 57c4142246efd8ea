"""Backups, the loss of the database with its cluster, and the recovery into a "secondary region".

The DR plan's secondary-region procedure: (1) activate secondary-region infrastructure — a fresh
Postgres container, created with the database credentials held in the (replicated) secret store,
Secrets Manager's ``i2s/database/credentials``; (2) restore the newest backup from S3 into it
(harness.dr.backup); (4) point the name ``postgres`` at it, as a DNS update would (on kind also the
Service ``postgres``'s EndpointSlice, see harness.faults.postgres); (3) deploy the application tier
(``deploy_application_tier``). Because the new database has the credentials from the secret store,
the application's own secrets work unchanged there.

The lost database is killed and cut off the network, not deleted: nothing can reach its data any
more (that is the loss), while its container stays for the run's final sweep.

The application tier, per platform (``lose_application_tier`` / ``deploy_application_tier``):

* docker: the conductor containers are removed and new ones started from their configuration
  (harness.platforms.docker_tier, which keeps that configuration, secrets included, in memory only);
* kind: the tier is the Deployment ``conductor``. Losing it scales the Deployment to 0 — every pod
  goes, and the HPA leaves a Deployment at 0 replicas alone (autoscaling is disabled there), so the
  tier stays lost until the recovery; redeploying scales it back to the replica count recorded at
  the loss and waits for the rollout. Pods get the same Secrets, i.e. the same configuration, as a
  secondary region deployed from the same manifests would. The count is in the fault log, so
  ``undo_all`` can redeploy from any process. Same safety as every Kubernetes fault: the control
  checks the context before the activity runs, and only a Deployment labeled with the run id is scaled.

Activities take Chaos Toolkit's ``configuration`` (``s3_endpoint``, ``backup_bucket`` and the kube
target come from chaos/shared/configuration.json); the control records the faults they declare.
"""

import logging
import time
from typing import Dict

from harness.containers import run_containers
from harness.errors import HarnessError, UsageError
from harness.dr.secret_store import database_credentials
from harness.faults import safety
from harness.faults.postgres import follow_on_kind, public, verify_stand_in

__all__ = ["lose_database", "recover_database", "lose_application_tier", "deploy_application_tier"]

log = logging.getLogger(__name__)
DB_ROLES = ("postgres", "postgres-standby", "postgres-dr")
ROLE_LABEL = "i2s-harness.role"
APP_DEPLOYMENT = "conductor"          # the application tier on kind (k8s/overlays/kind)
TIER_LOST = "application-tier-lost"


def _newest(s3_endpoint: str, bucket: str) -> dict | None:
    from harness.dr import backup

    found = backup.list_backups(s3_endpoint, bucket)
    return found[-1] if found else None


def _s3(configuration: Dict) -> tuple[str, str]:
    """The configuration's S3 endpoint and bucket (the backups), or one line saying how to set them."""
    endpoint = str((configuration or {}).get("s3_endpoint") or "").strip()
    if not endpoint:
        raise UsageError("no S3 endpoint configured for the backups", "export HARNESS_S3_ENDPOINT=<moto or S3 URL>")
    return endpoint, str((configuration or {}).get("backup_bucket") or "i2s-backups")


@safety.fault("database-lost", target="postgres", rollback="harness.faults.backups.recover_database")
def lose_database(configuration: Dict = None) -> dict:
    """Lose every database server of the run (primary and standbys: the whole cluster): each is
    killed and disconnected from the network. Refuses when S3 holds no backup to recover from.
    Rollback: ``recover_database``."""
    run_id = safety.run_id_of(configuration)
    kube = safety.kube_target(configuration)
    verify_stand_in(run_id, kube)
    s3_endpoint, bucket = _s3(configuration)
    newest = _newest(s3_endpoint, bucket)
    if newest is None:
        raise UsageError(f"no backup in s3://{bucket}/ to recover from: losing the database would lose everything",
                         "schedule backups first (harness.dr.backup.BackupScheduler)")
    servers = [c for c in run_containers(run_id, all=False) if c.labels.get(ROLE_LABEL) in DB_ROLES]
    if not servers:
        raise UsageError(f"run {run_id} has no running database server", "bring the stack up first")
    network = f"i2s-{run_id}"
    safety.add_details(run_id, "database-lost", {"containers": [c.name for c in servers],
                                                 "newest_backup": newest["key"]},
                       path=safety.fault_log_path(run_id, configuration))
    net = safety.engine().networks.get(network)
    for c in servers:
        c.kill(signal="SIGKILL")
        try:
            net.disconnect(c, force=True)  # no restart can bring it back under the name
        except Exception as exc:  # noqa: BLE001 - already detached
            log.debug("disconnect %s: %s", c.name, exc)
    return {"lost": [c.name for c in servers], "newest_backup": newest["key"],
            "newest_backup_age_s": round(time.time() - newest["last_modified"], 1)}


def _writable_primary(run_id: str) -> str:
    """The container holding ``postgres`` if it is running and writable, else ''."""
    from harness.containers import run_container
    from harness.dr import replication
    from harness.dr.pg_container import in_recovery

    name = replication.current_primary(run_id)
    if not name:
        return ""
    try:
        c = run_container(name, run_id)
        if c.status != "running":
            return ""
        return name if not in_recovery(c) else ""
    except HarnessError:
        return ""


@safety.fault(reverses=("database-lost",))
def recover_database(key: str = "", timeout_s: float = 300.0, configuration: Dict = None) -> dict:
    """Recover the database into a fresh server ("secondary region") from the newest backup in S3
    (or ``key``), then move the name ``postgres`` to it (on kind also the Service ``postgres`` of
    the configuration's cluster: the fault record's, when ``undo_all`` replays it). Idempotent:
    while a writable server holds the name nothing is restored (on kind the Service is still made
    to point at it)."""
    run_id = safety.run_id_of(configuration)
    kube = safety.kube_target(configuration)
    s3_endpoint, bucket = _s3(configuration)
    from harness.dr import backup, replication
    from harness.containers import run_container
    from harness.dr.pg_container import wait_accepting

    current = _writable_primary(run_id)
    if current:
        slice_ = follow_on_kind(run_id, kube, current)
        return {"recovered": False, "primary": current, "note": "a writable database already holds the name",
                **({"endpoint_slice": slice_} if slice_ else {})}
    t0 = time.time()
    creds = database_credentials(s3_endpoint)
    image = run_container(replication.primary_name(run_id), run_id).attrs["Config"]["Image"]
    taken = {c.name for c in run_containers(run_id, all=True)}
    n = 1
    while f"i2s-{run_id}-postgres-region{n}" in taken:
        n += 1
    name = f"i2s-{run_id}-postgres-region{n}"
    from harness.labels import labels_for

    client = safety.engine()
    container = client.containers.run(
        image, name=name, detach=True,
        environment={"POSTGRES_USER": creds["username"], "POSTGRES_PASSWORD": creds["password"],
                     "POSTGRES_DB": creds["database"]},
        labels=labels_for(run_id, **{ROLE_LABEL: "postgres-dr", replication.DR_LABEL: "true"}),
        network=f"i2s-{run_id}", ports={"5432/tcp": ("127.0.0.1", None)})
    try:
        wait_accepting(container, timeout_s, writable=True)
        created_s = time.time() - t0
        restored = (backup.restore_backup(key, run_id, s3_endpoint, target_container=name, bucket=bucket,
                                          timeout_s=timeout_s) if key else
                    backup.restore_latest(run_id, s3_endpoint, target_container=name, bucket=bucket,
                                          timeout_s=timeout_s))
        moved = replication.move_alias(run_id, name)
    except BaseException:
        try:
            container.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - the run's sweep removes it
            pass
        raise
    # Outside the clean-up above: if this fails the restored server stays, holding the name, and the
    # rollback (the idempotent path) re-points the Service at it without restoring again.
    slice_ = follow_on_kind(run_id, kube, name)
    return public({"recovered": True, "primary": name, "backup": restored["key"],
                    "backup_snapshot_at": restored.get("snapshot_at"),
                    "backup_age_s": round(t0 - restored["snapshot_at"], 1) if restored.get("snapshot_at") else None,
                    "create_s": round(created_s, 2), "restore_s": restored.get("duration_s"),
                    "alias_moved_at": moved["moved_at"], "total_s": round(time.time() - t0, 2),
                    **({"endpoint_slice": slice_} if slice_ else {})})


# -- the application tier -----------------------------------------------------------------------------
def _recorded_replicas(run_id: str, configuration: Dict) -> int:
    """The replica count recorded when the tier was lost (newest active loss), 0 if none."""
    for f in reversed(safety.active_faults(run_id, path=safety.fault_log_path(run_id, configuration))):
        if f["fault"] == TIER_LOST and int(f["details"].get("replicas") or 0) > 0:
            return int(f["details"]["replicas"])
    return 0


@safety.fault(TIER_LOST, target="application tier", rollback="harness.faults.backups.deploy_application_tier")
def lose_application_tier(configuration: Dict = None) -> dict:
    """Lose the whole application tier (the cluster running it is gone), through the platform's
    application tier capability (harness.platforms.attach): on docker every conductor container is
    removed (harness.platforms.docker_tier), on Kubernetes the Deployment ``conductor`` is scaled to 0
    (harness.platforms.kube_tier); what the recovery needs is recorded first. Rollback:
    ``deploy_application_tier``."""
    from harness.platforms import attach

    run_id = safety.run_id_of(configuration)
    path = safety.fault_log_path(run_id, configuration)
    # Before the tier goes: the redeployment (also undo_all's, from another process) reads it here.
    return attach(configuration).application_tier.lose(
        record=lambda details: safety.add_details(run_id, TIER_LOST, details, path=path))


@safety.fault(reverses=(TIER_LOST,))
def deploy_application_tier(timeout_s: float = 180.0, replicas: int = 0, configuration: Dict = None) -> dict:
    """A fresh application tier, as in a secondary region, ready when this returns, through the
    platform's application tier capability: docker starts new containers from the removed tier's
    configuration; Kubernetes scales the Deployment ``conductor`` back to ``replicas`` (0: the count
    recorded when it was lost) and waits for the rollout within ``timeout_s``. Idempotent: a tier
    that is there is only waited for."""
    from harness.platforms import attach

    run_id = safety.run_id_of(configuration)
    return attach(configuration).application_tier.replace(
        timeout_s, int(replicas or 0) or _recorded_replicas(run_id, configuration))
