"""Backups, the loss of the database with its cluster, and the recovery into a "secondary region".

The DR plan's secondary-region procedure, on the docker platform: (1) activate secondary-region
infrastructure — a fresh Postgres container, created with the database credentials held in the
(replicated) secret store, Secrets Manager's ``i2s/database/credentials``; (2) restore the newest
backup from S3 into it (harness.dr.backup); (4) point the name ``postgres`` at it, as a DNS update
would; (3) deploy the application tier (``harness.faults.docker.deploy_application_tier``).
Because the new database has the credentials from the secret store, the application's own
secrets work unchanged there.

The lost database is killed and cut off the network, not deleted: nothing can reach its data any
more (that is the loss), while its container stays for the run's final sweep.
"""

import json
import logging
import time
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.faults import safety

__all__ = ["take_backup", "lose_database", "recover_database"]

log = logging.getLogger(__name__)
DB_ROLES = ("postgres", "postgres-standby", "postgres-dr")
ROLE_LABEL = "i2s-harness.role"


def _public(result: Any) -> Any:
    from harness.faults.postgres import _public as public

    return public(result)


def take_backup(run_id: str, s3_endpoint: str, bucket: str = "i2s-backups") -> dict:
    """Take one backup of the run's database now (pg_dump, gpg, S3; see harness.dr.backup)."""
    safety.require_run_id(run_id)
    from harness.dr import backup

    return _public(backup.run_backup(run_id, s3_endpoint, bucket=bucket))


def _newest(s3_endpoint: str, bucket: str) -> dict | None:
    from harness.dr import backup

    found = backup.list_backups(s3_endpoint, bucket)
    return found[-1] if found else None


def lose_database(run_id: str, s3_endpoint: str, bucket: str = "i2s-backups") -> dict:
    """Lose every database server of the run (primary and standbys: the whole cluster): each is
    killed and disconnected from the network. Refuses when S3 holds no backup to recover from.
    Rollback: ``recover_database``."""
    safety.require_run_id(run_id)
    newest = _newest(s3_endpoint, bucket)
    if newest is None:
        raise UsageError(f"no backup in s3://{bucket}/ to recover from: losing the database would lose everything",
                         "schedule backups first (BackupScheduler / take_backup)")
    servers = [c for c in safety.run_containers(run_id) if c.labels.get(ROLE_LABEL) in DB_ROLES]
    if not servers:
        raise UsageError(f"run {run_id} has no running database server", "bring the stack up first")
    network = f"i2s-{run_id}"
    safety.record_injected(run_id, "database-lost", "postgres", rollback="harness.faults.backups.recover_database",
                           arguments={"run_id": run_id, "s3_endpoint": s3_endpoint, "bucket": bucket},
                           details={"containers": [c.name for c in servers], "newest_backup": newest["key"]})
    net = safety._docker().networks.get(network)
    for c in servers:
        c.kill(signal="SIGKILL")
        try:
            net.disconnect(c, force=True)  # no restart can bring it back under the name
        except Exception as exc:  # noqa: BLE001 - already detached
            log.debug("disconnect %s: %s", c.name, exc)
    return {"lost": [c.name for c in servers], "newest_backup": newest["key"],
            "newest_backup_age_s": round(time.time() - newest["last_modified"], 1)}


def _db_credentials(s3_endpoint: str) -> dict[str, Any]:
    """The seed's ``i2s/database/credentials`` secret (in memory only)."""
    import boto3

    from harness.dr import backup

    kwargs = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"} if s3_endpoint.startswith(
        ("http://127.", "http://localhost")) else {}
    sm = boto3.client("secretsmanager", endpoint_url=s3_endpoint, region_name="us-east-1", **kwargs)
    try:
        return json.loads(sm.get_secret_value(SecretId=backup.DB_SECRET)["SecretString"])
    except sm.exceptions.ResourceNotFoundException:
        raise UsageError(f"secret {backup.DB_SECRET} is not in the secret store at {s3_endpoint}",
                         "seed it with harness.dr.backup.seed_secrets(run_id, endpoint)") from None


def _writable_primary(run_id: str) -> str:
    """The container holding ``postgres`` if it is running and writable, else ''."""
    from harness.dr import replication

    name = replication.current_primary(run_id)
    if not name:
        return ""
    try:
        c = replication._get(name, run_id)
        if c.status != "running":
            return ""
        return name if not replication._in_recovery(c) else ""
    except HarnessError:
        return ""


def recover_database(run_id: str, s3_endpoint: str, bucket: str = "i2s-backups", key: str = "",
                     timeout_s: float = 300.0) -> dict:
    """Recover the database into a fresh server ("secondary region") from the newest backup in S3
    (or ``key``), then move the name ``postgres`` to it. Idempotent: nothing is done while a
    writable server holds the name."""
    safety.require_run_id(run_id)
    from harness.dr import backup, replication

    current = _writable_primary(run_id)
    if current:
        safety.record_rolled_back(run_id, "database-lost", "postgres", note=f"{current} already serves")
        return {"recovered": False, "primary": current, "note": "a writable database already holds the name"}
    t0 = time.time()
    creds = _db_credentials(s3_endpoint)
    image = replication._get(replication.primary_name(run_id), run_id).attrs["Config"]["Image"]
    taken = {c.name for c in safety.run_containers(run_id, all=True)}
    n = 1
    while f"i2s-{run_id}-postgres-region{n}" in taken:
        n += 1
    name = f"i2s-{run_id}-postgres-region{n}"
    from harness.labels import labels_for

    client = safety._docker()
    container = client.containers.run(
        image, name=name, detach=True,
        environment={"POSTGRES_USER": creds["username"], "POSTGRES_PASSWORD": creds["password"],
                     "POSTGRES_DB": creds["database"]},
        labels=labels_for(run_id, **{ROLE_LABEL: "postgres-dr", replication.DR_LABEL: "true"}),
        network=f"i2s-{run_id}", ports={"5432/tcp": ("127.0.0.1", None)})
    try:
        replication._wait_accepting(container, timeout_s, writable=True)
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
    safety.record_rolled_back(run_id, "database-lost", "postgres", note=f"restored {restored['key']} into {name}")
    return _public({"recovered": True, "primary": name, "backup": restored["key"],
                    "backup_snapshot_at": restored.get("snapshot_at"),
                    "backup_age_s": round(t0 - restored["snapshot_at"], 1) if restored.get("snapshot_at") else None,
                    "create_s": round(created_s, 2), "restore_s": restored.get("duration_s"),
                    "alias_moved_at": moved["moved_at"], "total_s": round(time.time() - t0, 2)})
