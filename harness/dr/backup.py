"""The database backup of ``scripts/backup-database.sh``, made to run unattended, and its restore.

The seed's script (``pg_dump`` custom format -> ``gpg --symmetric --cipher-algo AES256`` ->
``aws s3 cp`` to ``s3://i2s-backups/database/`` -> 30-day retention) cannot run unattended as
written; ``harness.audit.backup_script.script_findings`` says why, and proves what it can by running
the unchanged script in a container. ``run_backup`` is the equivalent that can, with the same dump
options, encryption and bucket layout:

* the dump and the encryption run in a one-shot container on the run's network, from an image
  built ``FROM`` the primary's own image (so ``pg_dump`` matches the server's version, as a
  Kubernetes CronJob would pin it) plus ``gnupg`` (and the AWS CLI, used only to run the seed's
  script for ``script_findings``);
* credentials come from Secrets Manager (``harness.dr.secret_store``): ``i2s/database/credentials``
  (the seed's name; JSON with ``username``, ``password``, ``host``, ``port``, ``database``,
  ``connection_url``) and the
  encryption passphrase from ``i2s/backup/passphrase`` (``SecretString`` = the passphrase). Both
  are put into the job container as files with ``docker cp`` semantics (never env, never argv,
  never the host disk) and are never logged or returned;
* ``gpg --batch --pinentry-mode loopback --passphrase-file``: the file format is that of
  ``gpg --symmetric --cipher-algo AES256 --compress-algo 1`` (plain ``gpg --decrypt`` opens it);
* upload with boto3 to ``<bucket>/database/i2s_production_backup_<YYYYmmdd_HHMMSS>.sql.gpg`` (UTC;
  the ``.sql`` suffix is kept for layout compatibility although the content is a custom-format
  archive), verified by ``head_object`` size, then retention by ``LastModified``.

``restore_backup``/``restore_latest`` decrypt and ``pg_restore`` a backup into a labeled DR Postgres
the same way. The job containers are ``harness.dr.jobs``; the schedule is ``harness.dr.backup_schedule``.
Everything created is labeled with the run and removed afterwards (``try/finally``).
"""
from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from harness.containers import is_running, remove_quietly, run_container
from harness.docker_env import docker_client
from harness.dr import replication
from harness.dr.aws import aws_client, object_exists, require_endpoint
from harness.dr.jobs import job_inputs, run_job, secret_files, tail_lines, tools_image
from harness.dr.pg_container import wait_accepting
from harness.dr.secret_store import DB_SECRET, PASSPHRASE_SECRET, database_secret, read_secret
from harness.errors import HarnessError, UsageError
from harness.labels import labels_for

__all__ = ["DEFAULT_BUCKET", "DEFAULT_PREFIX", "KEY_PATTERN", "run_backup", "list_backups", "apply_retention",
           "restore_backup", "restore_latest"]

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "i2s-backups"
DEFAULT_PREFIX = "database/"
KEY_PATTERN = re.compile(r"i2s_production_backup_(\d{8}_\d{6})\.sql\.gpg$")


# -- backup --------------------------------------------------------------------------------------
_BACKUP_SCRIPT = r"""
set -euo pipefail
umask 077
export PGPASSFILE=/job/secrets/pgpass PGCONNECT_TIMEOUT=10
mkdir -p /job/out
conn=(--host="$DB_HOST" --port="$DB_PORT" --username="$DB_USER" --no-password)
# Everything committed before this position/time is in the dump (pg_dump's snapshot comes after).
psql "${conn[@]}" --dbname="$DB_NAME" -XAtq -F ' ' -c "SELECT CASE WHEN pg_is_in_recovery()
  THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, extract(epoch FROM clock_timestamp())" \
  > /job/out/snapshot
t0=$(date +%s.%N)
pg_dump "${conn[@]}" --dbname="$DB_NAME" --lock-wait-timeout=30s \
  --clean --no-owner --no-privileges --compress=9 --format=custom --file=/job/out/dump
t1=$(date +%s.%N)
gpg --batch --yes --no-tty --pinentry-mode loopback --no-symkey-cache --passphrase-file /job/secrets/passphrase \
  --cipher-algo AES256 --compress-algo 1 --symmetric --output /job/out/dump.gpg /job/out/dump
t2=$(date +%s.%N)
echo "$(stat -c %s /job/out/dump) $t0 $t1 $t2" > /job/out/stats
rm -f /job/out/dump
"""


def run_backup(run_id: str, s3_endpoint: str, bucket: str = DEFAULT_BUCKET, prefix: str = DEFAULT_PREFIX,
               retention_days: float = 30.0, region: str = "us-east-1", network: str = "",
               db_secret: str = DB_SECRET, passphrase_secret: str = PASSPHRASE_SECRET,
               timeout_s: float = 300.0) -> dict[str, Any]:
    """Take one backup now: dump + encrypt in a job container, upload, verify, apply retention.

    Returns ``key``, ``size`` (encrypted bytes), ``dump_size``, ``duration_s`` (the whole procedure),
    ``dump_s``/``encrypt_s``/``upload_s``, ``started_at`` (harness wall time when the job was
    launched), ``snapshot_at``/``snapshot_lsn`` (the server's clock and WAL position read just before
    ``pg_dump`` started: every write acknowledged before them is in the backup, writes after may not
    be), and ``retention_deleted``.
    """
    s3_endpoint = require_endpoint(s3_endpoint)
    if not prefix.endswith("/"):
        raise UsageError(f"prefix {prefix!r} must end with '/'", "use e.g. 'database/'")
    t_start = time.time()
    db, passphrase, hidden, s3, image = job_inputs(run_id, s3_endpoint, region, bucket, db_secret,
                                                    passphrase_secret)

    # The seed's key scheme has one-second resolution: never overwrite an existing backup.
    while True:
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        key = f"{prefix}i2s_production_backup_{stamp}.sql.gpg"
        if not object_exists(s3, bucket, key):
            break
        time.sleep(0.25)

    started_at = time.time()
    job = run_job(
        run_id, image, _BACKUP_SCRIPT, network=network or replication.network_name(run_id), name="backup",
        timeout_s=timeout_s, env={"DB_HOST": db["host"], "DB_PORT": str(db["port"]), "DB_USER": db["username"],
                                  "DB_NAME": db["database"]},
        files=secret_files(db, passphrase),
        fetch=["/job/out/dump.gpg", "/job/out/snapshot", "/job/out/stats"], secret_values=hidden)
    if job.exit_code != 0 or "/job/out/dump.gpg" not in job.files:
        what = "timed out" if job.exit_code is None else f"exited {job.exit_code}"
        raise HarnessError(f"backup job {what} after {job.duration_s:.1f}s: {tail_lines(job.output)}",
                           f"check that {db['host']}:{db['port']} is reachable on the run's network and the "
                           f"secret {db_secret} is current")
    data = job.files["/job/out/dump.gpg"]
    lsn, snap_epoch = job.files["/job/out/snapshot"].decode().split()
    dump_size, t0, t1, t2 = job.files["/job/out/stats"].decode().split()
    t_up = time.time()
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/pgp-encrypted",
                  Metadata={"snapshot-lsn": lsn, "snapshot-at": f"{float(snap_epoch):.6f}",
                            "started-at": f"{started_at:.6f}", "format": "pg_dump-custom+gpg-aes256"})
    head = s3.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != len(data):
        raise HarnessError(f"uploaded {key} has {head['ContentLength']} bytes, expected {len(data)}",
                           "check the S3 endpoint")
    upload_s = time.time() - t_up
    deleted = apply_retention(s3_endpoint, bucket, prefix, retention_days, region=region)
    result = {
        "key": key, "bucket": bucket, "size": len(data), "dump_size": int(dump_size),
        "started_at": started_at, "snapshot_at": float(snap_epoch), "snapshot_lsn": lsn,
        "dump_s": round(float(t1) - float(t0), 3), "encrypt_s": round(float(t2) - float(t1), 3),
        "job_s": round(job.duration_s, 3), "upload_s": round(upload_s, 3),
        "duration_s": round(time.time() - t_start, 3), "verified": True, "retention_deleted": deleted,
        "source": f"{db['host']}:{db['port']}/{db['database']}",
    }
    log.info("backup %s: %d bytes in %.1fs", key, len(data), result["duration_s"])
    return result


def list_backups(s3_endpoint: str, bucket: str = DEFAULT_BUCKET, prefix: str = DEFAULT_PREFIX,
                 region: str = "us-east-1") -> list[dict[str, Any]]:
    """The backups under ``prefix``, oldest first: ``key``, ``size``, ``last_modified`` (epoch) and,
    for backups made by ``run_backup``, ``snapshot_at``/``snapshot_lsn``."""
    s3 = aws_client("s3", require_endpoint(s3_endpoint), region)
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not KEY_PATTERN.search(obj["Key"]):
                continue
            meta = s3.head_object(Bucket=bucket, Key=obj["Key"]).get("Metadata", {})
            out.append({"key": obj["Key"], "size": obj["Size"], "last_modified": obj["LastModified"].timestamp(),
                        "snapshot_at": float(meta["snapshot-at"]) if "snapshot-at" in meta else None,
                        "snapshot_lsn": meta.get("snapshot-lsn")})
    # The key carries the start time (UTC, one-second resolution); uploads finish in that order too.
    return sorted(out, key=lambda b: (b["last_modified"], b["key"]))


def apply_retention(s3_endpoint: str, bucket: str = DEFAULT_BUCKET, prefix: str = DEFAULT_PREFIX,
                    retention_days: float = 30.0, now: float | None = None, keep_min: int = 1,
                    region: str = "us-east-1") -> list[str]:
    """Delete objects under ``prefix`` whose ``LastModified`` is older than ``retention_days``
    (relative to ``now``, epoch seconds; default the current time). The newest ``keep_min`` objects
    are kept whatever their age, so a backup job that stopped working cannot let retention delete
    the last backup. Returns the deleted keys."""
    if retention_days <= 0:
        raise UsageError(f"retention_days must be positive (got {retention_days})", "use e.g. 30")
    if not prefix or not prefix.endswith("/"):
        raise UsageError(f"prefix {prefix!r} must be a non-empty folder ending with '/'",
                         "use e.g. 'database/' (retention never runs over a whole bucket)")
    s3 = aws_client("s3", require_endpoint(s3_endpoint), region)
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    objs = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    # Newest first; within one second (LastModified's resolution) the key's timestamp decides.
    objs.sort(key=lambda o: (o["LastModified"], o["Key"]), reverse=True)
    doomed = [o["Key"] for o in objs[max(keep_min, 0):] if o["LastModified"].timestamp() < cutoff]
    for key in doomed:
        s3.delete_object(Bucket=bucket, Key=key)
        log.info("retention: deleted %s", key)
    return doomed


# -- restore -------------------------------------------------------------------------------------
_RESTORE_SCRIPT = r"""
set -euo pipefail
umask 077
export PGPASSFILE=/job/secrets/pgpass PGCONNECT_TIMEOUT=10
mkdir -p /job/work
gpg --batch --no-tty --pinentry-mode loopback --no-symkey-cache --passphrase-file /job/secrets/passphrase \
  --output /job/work/dump --decrypt /job/in/backup.sql.gpg
pg_restore --list /job/work/dump > /dev/null   # a readable custom-format archive, or stop here
t0=$(date +%s.%N)
pg_restore --host="$DB_HOST" --port=5432 --username="$DB_USER" --dbname="$DB_NAME" --no-password \
  --clean --if-exists --no-owner --no-privileges --exit-on-error --single-transaction /job/work/dump
t1=$(date +%s.%N)
echo "$(stat -c %s /job/work/dump) $t0 $t1" > /job/work/stats
"""


def _dr_target(run_id: str, target_container: str, image: str, database: str, user: str,
               network: str, timeout_s: float) -> tuple[Any, bool]:
    """The restore target: an existing run container, or a fresh labeled Postgres (created here)."""
    import docker.errors

    name = target_container or f"i2s-{run_id}-postgres-dr"
    client = docker_client()
    try:
        c = client.containers.get(name)
    except docker.errors.NotFound:
        c = None
    if c is not None:
        run_container(name, run_id)  # refuses containers of other runs
        if is_running(c):
            return c, False
        raise UsageError(f"restore target {name} is {c.status}", "start it or pass another target_container")
    c = client.containers.run(
        image, name=name, detach=True,
        environment={"POSTGRES_USER": user, "POSTGRES_DB": database, "POSTGRES_PASSWORD": secrets.token_urlsafe(16)},
        labels=labels_for(run_id, **{replication.ROLE_LABEL: "postgres-dr", replication.DR_LABEL: "true"}),
        network=network, ports={"5432/tcp": ("127.0.0.1", None)})
    try:
        wait_accepting(c, timeout_s, writable=True)
    except BaseException:
        remove_quietly(c)
        raise
    return c, True


def restore_backup(key: str, run_id: str, s3_endpoint: str, target_container: str = "",
                   bucket: str = DEFAULT_BUCKET, region: str = "us-east-1", network: str = "",
                   passphrase_secret: str = PASSPHRASE_SECRET, db_secret: str = DB_SECRET,
                   timeout_s: float = 300.0) -> dict[str, Any]:
    """Restore the backup ``key`` (any, e.g. an older one) into ``target_container``.

    ``target_container`` empty or not existing: a fresh Postgres ``i2s-<run_id>-postgres-dr`` (or that
    name) is created from the primary's image, labeled, on the run's network, with the database and
    user names of ``i2s/database/credentials`` and its own random password (see
    ``replication.host_database_url``). An existing target is overwritten object by object
    (``pg_restore --clean --if-exists``, one transaction). Returns ``target``, ``created_target``,
    ``size``, ``download_s``, ``restore_s``, ``duration_s`` and the backup's ``snapshot_at``/``snapshot_lsn``.
    """
    s3_endpoint = require_endpoint(s3_endpoint)
    t_start = time.time()
    sm = aws_client("secretsmanager", s3_endpoint, region)
    passphrase = read_secret(sm, passphrase_secret, s3_endpoint)
    db = database_secret(sm, db_secret, s3_endpoint)
    s3 = aws_client("s3", s3_endpoint, region)
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        raise UsageError(f"backup {key} not found in bucket {bucket}", "pick one from list_backups()") from None
    data, meta = obj["Body"].read(), obj.get("Metadata", {})
    download_s = time.time() - t_start
    network = network or replication.network_name(run_id)
    image = run_container(replication.primary_name(run_id), run_id).attrs["Config"]["Image"]
    target, created = _dr_target(run_id, target_container, image, db["database"], db["username"], network, timeout_s)
    creds = replication.credentials(target.name)
    job = run_job(
        run_id, tools_image(image), _RESTORE_SCRIPT, network=network, name="restore", timeout_s=timeout_s,
        env={"DB_HOST": target.name, "DB_USER": creds["user"], "DB_NAME": creds["database"]},
        files={**secret_files({"host": target.name, "port": 5432, "database": creds["database"],
                                "username": creds["user"], "password": creds["password"]}, passphrase),
               "/job/in/backup.sql.gpg": (data, 0o600)},
        fetch=["/job/work/stats"], secret_values=[passphrase, creds["password"], db["password"]])
    if job.exit_code != 0:
        what = "timed out" if job.exit_code is None else f"exited {job.exit_code}"
        raise HarnessError(f"restore of {key} into {target.name} {what}: {tail_lines(job.output)}",
                           "a wrong passphrase shows as 'decryption failed'; see the restore job's output above")
    dump_size, t0, t1 = job.files["/job/work/stats"].decode().split()
    return {"key": key, "target": target.name, "created_target": created, "size": len(data),
            "dump_size": int(dump_size), "download_s": round(download_s, 3),
            "restore_s": round(float(t1) - float(t0), 3), "job_s": round(job.duration_s, 3),
            "duration_s": round(time.time() - t_start, 3),
            "snapshot_at": float(meta["snapshot-at"]) if "snapshot-at" in meta else None,
            "snapshot_lsn": meta.get("snapshot-lsn")}


def restore_latest(run_id: str, s3_endpoint: str, target_container: str = "", bucket: str = DEFAULT_BUCKET,
                   prefix: str = DEFAULT_PREFIX, region: str = "us-east-1", **kwargs: Any) -> dict[str, Any]:
    """Restore the newest backup under ``prefix`` (DR plan step 2, "Restore database from latest
    backup"); see ``restore_backup`` for the target and the result."""
    backups = list_backups(s3_endpoint, bucket, prefix, region)
    if not backups:
        raise UsageError(f"no backups under s3://{bucket}/{prefix}", "take one with run_backup() first")
    return restore_backup(backups[-1]["key"], run_id, s3_endpoint, target_container, bucket, region, **kwargs)
