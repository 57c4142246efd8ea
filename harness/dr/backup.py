"""The database backup of ``scripts/backup-database.sh``, made to run unattended, and its restore.

The seed's script (``pg_dump`` custom format -> ``gpg --symmetric --cipher-algo AES256`` ->
``aws s3 cp`` to ``s3://i2s-backups/database/`` -> 30-day retention) cannot run unattended as
written; ``script_findings`` says why, and proves what it can by running the unchanged script in a
container. ``run_backup`` is the equivalent that can, with the same dump options, encryption and
bucket layout:

* the dump and the encryption run in a one-shot container on the run's network, from an image
  built ``FROM`` the primary's own image (so ``pg_dump`` matches the server's version, as a
  Kubernetes CronJob would pin it) plus ``gnupg`` (and the AWS CLI, used only to run the seed's
  script for ``script_findings``);
* credentials come from Secrets Manager: ``i2s/database/credentials`` (the seed's name; JSON with
  ``username``, ``password``, ``host``, ``port``, ``database``, ``connection_url``) and the
  encryption passphrase from ``i2s/backup/passphrase`` (``SecretString`` = the passphrase). Both
  are put into the job container as files with ``docker cp`` semantics (never env, never argv,
  never the host disk) and are never logged or returned;
* ``gpg --batch --pinentry-mode loopback --passphrase-file``: the file format is that of
  ``gpg --symmetric --cipher-algo AES256 --compress-algo 1`` (plain ``gpg --decrypt`` opens it);
* upload with boto3 to ``<bucket>/database/i2s_production_backup_<YYYYmmdd_HHMMSS>.sql.gpg`` (UTC;
  the ``.sql`` suffix is kept for layout compatibility although the content is a custom-format
  archive), verified by ``head_object`` size, then retention by ``LastModified``.

Everything created is labeled with the run and removed afterwards (``try/finally``).
"""
from __future__ import annotations

import io
import json
import logging
import re
import secrets
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote, urlparse

from harness.config import PROJECT_ROOT
from harness.docker_env import docker_client, ensure_image
from harness.dr import replication as repl
from harness.errors import HarnessError, UnsafeTarget, UsageError
from harness.labels import labels_for

__all__ = [
    "DB_SECRET", "PASSPHRASE_SECRET", "DEFAULT_BUCKET", "DEFAULT_PREFIX", "KEY_PATTERN",
    "seed_secrets", "run_backup", "list_backups", "restore_latest", "restore_backup", "apply_retention",
    "BackupScheduler", "implied_rpo_s", "trigger_rds_failover", "script_findings", "tools_image",
]

log = logging.getLogger(__name__)

DB_SECRET = "i2s/database/credentials"   # the seed's secret name (Secret Management section)
PASSPHRASE_SECRET = "i2s/backup/passphrase"  # the harness's choice: the seed names no passphrase source
DEFAULT_BUCKET = "i2s-backups"
DEFAULT_PREFIX = "database/"
KEY_PATTERN = re.compile(r"i2s_production_backup_(\d{8}_\d{6})\.sql\.gpg$")
_TOOLS_REPO = "i2s-harness/pg-backup-tools"
_JOB_ROLE = "backup-job"

_TOOLS_DOCKERFILE = """\
# pg_dump/pg_restore of the database's own image, plus gpg (and the AWS CLI, to run the seed's script).
# base image id: {base_id} (in the text so that a rebuilt base gives a new context digest)
FROM {base}
RUN if command -v apt-get >/dev/null; then \\
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnupg awscli \\
      && rm -rf /var/lib/apt/lists/*; \\
    elif command -v apk >/dev/null; then apk add --no-cache bash gnupg aws-cli; \\
    else echo "no package manager in {base}" >&2; exit 1; fi
"""


# -- small helpers ---------------------------------------------------------------------------------
def _fake_creds(endpoint_url: str | None) -> dict[str, str]:
    """moto on loopback takes any credentials; real endpoints use the normal credential chain."""
    if endpoint_url and urlparse(endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return {}


def _client(service: str, endpoint_url: str | None, region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint_url or None, region_name=region,
                        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
                        **_fake_creds(endpoint_url))


def _require_endpoint(s3_endpoint: str) -> str:
    if not s3_endpoint or not urlparse(s3_endpoint).scheme.startswith("http"):
        raise UsageError(f"s3_endpoint {s3_endpoint!r} is not a URL",
                         "pass the moto server's URL, e.g. stack.moto.host_url()")
    return s3_endpoint.rstrip("/")


def _get_secret(sm: Any, name: str, endpoint: str) -> str:
    try:
        return sm.get_secret_value(SecretId=name)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise UsageError(f"secret {name} not found in Secrets Manager at {endpoint}",
                         "call harness.dr.backup.seed_secrets(run_id, endpoint) first") from None


def _db_secret(sm: Any, name: str, endpoint: str) -> dict[str, Any]:
    raw = _get_secret(sm, name, endpoint)
    try:
        creds = json.loads(raw)
        missing = [k for k in ("username", "password", "host", "port", "database") if k not in creds]
    except (ValueError, TypeError):
        raise UsageError(f"secret {name} is not JSON", "store the seed's shape: username, password, host, "
                                                       "port, database, connection_url") from None
    if missing:
        raise UsageError(f"secret {name} lacks {', '.join(missing)}", "re-create it with seed_secrets()")
    return creds


def _pgpass_line(host: str, port: Any, db: str, user: str, password: str) -> bytes:
    esc = lambda s: str(s).replace("\\", "\\\\").replace(":", "\\:")  # noqa: E731 - .pgpass escaping
    return f"{esc(host)}:{port}:{esc(db)}:{esc(user)}:{esc(password)}\n".encode()


def tools_image(base_image: str) -> str:
    """The backup tools image for ``base_image``: its pg_dump/pg_restore plus gpg and the AWS CLI.

    Built once per base image id (a rebuilt base gets a matching pg_dump). Returns the tag.
    """
    client = docker_client()
    import docker.errors

    try:
        base_id = client.images.get(base_image).id
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {base_image} is not present", "build it (../shared/offline-images/build.sh)") from None
    with tempfile.TemporaryDirectory(prefix="i2s-tools-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(_TOOLS_DOCKERFILE.format(base=base_image, base_id=base_id))
        return ensure_image(_TOOLS_REPO, Path(tmp))


@dataclass
class _Job:
    exit_code: int | None        # None: killed at the timeout
    output: str                  # masked
    files: dict[str, bytes] = field(default_factory=dict)
    duration_s: float = 0.0


def _read_file(container: Any, path: str) -> bytes | None:
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    member = next((m for m in tar.getmembers() if m.isfile()), None)
    return tar.extractfile(member).read() if member else None


def _run_job(run_id: str, image: str, script: str, *, network: str, name: str, timeout_s: float,
             files: dict[str, tuple[bytes, int]] | None = None, fetch: Iterable[str] = (),
             env: dict[str, str] | None = None, tty: bool = False, secret_values: Iterable[str] = ()) -> _Job:
    """One labeled container running ``bash -c script``, removed afterwards whatever happens."""
    import requests

    client = docker_client()
    container = client.containers.create(
        image, entrypoint=["bash", "-c", script], command=[], name=f"i2s-{run_id}-{name}-{secrets.token_hex(3)}",
        labels=labels_for(run_id, **{repl.ROLE_LABEL: _JOB_ROLE, repl.DR_LABEL: "true"}),
        network=network, environment=env or {}, tty=tty, stdin_open=tty, detach=True)
    t0 = time.monotonic()
    try:
        if files:
            repl._put_files(container, files)
        container.start()
        try:
            code: int | None = container.wait(timeout=timeout_s)["StatusCode"]
        except requests.exceptions.RequestException:  # the wait timed out: the job hangs
            code = None
            container.kill()
        duration = time.monotonic() - t0
        output = repl._mask(container.logs().decode(errors="replace"), list(secret_values))
        got = {p: data for p in fetch if (data := _read_file(container, p)) is not None}
        return _Job(code, output, got, duration)
    finally:
        repl._remove_quietly(container)


def _tail(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-400:]


# -- secrets -------------------------------------------------------------------------------------
def seed_secrets(run_id: str, endpoint_url: str, database_url: str = "", passphrase: str = "",
                 region: str = "us-east-1", db_secret: str = DB_SECRET,
                 passphrase_secret: str = PASSPHRASE_SECRET) -> dict[str, Any]:
    """Store the database credentials (``i2s/database/credentials``, the seed's JSON shape) and the
    backup passphrase (``i2s/backup/passphrase``) in Secrets Manager at ``endpoint_url`` (moto).

    ``database_url`` is the URL the application uses *inside* the run's network; empty: derived from
    the run's Postgres container (``postgres`` alias, port 5432). ``passphrase`` empty: a random one
    (an existing passphrase secret is kept, so earlier backups stay decryptable). Returns names and
    non-secret fields only.
    """
    endpoint_url = _require_endpoint(endpoint_url)
    if not database_url:
        c = repl.credentials(repl.primary_name(run_id))
        database_url = (f"postgresql://{quote(c['user'], safe='')}:{quote(c['password'], safe='')}"
                        f"@postgres:5432/{c['database']}")
    u = urlparse(database_url)
    try:
        port = u.port or 5432
    except ValueError:
        port = 0
    if u.scheme not in ("postgresql", "postgres") or not u.hostname or not u.password or not port:
        raise UsageError("database_url must look like postgresql://user:password@host:5432/db",
                         "pass the in-network URL, e.g. stack.postgres.in_network_url()")
    from urllib.parse import unquote

    body = {"username": unquote(u.username or "postgres"), "password": unquote(u.password),
            "host": u.hostname, "port": port, "database": (u.path or "/postgres").lstrip("/"),
            "connection_url": database_url}
    sm = _client("secretsmanager", endpoint_url, region)
    created = []

    def put(name: str, value: str, keep_existing: bool) -> None:
        try:
            sm.create_secret(Name=name, SecretString=value)
            created.append(name)
        except sm.exceptions.ResourceExistsException:
            if not keep_existing:
                sm.put_secret_value(SecretId=name, SecretString=value)

    put(db_secret, json.dumps(body), keep_existing=False)
    put(passphrase_secret, passphrase or secrets.token_urlsafe(32), keep_existing=not passphrase)
    return {"database_secret": db_secret, "passphrase_secret": passphrase_secret, "created": created,
            "host": body["host"], "port": body["port"], "database": body["database"],
            "username": body["username"], "password": "***"}


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
    s3_endpoint = _require_endpoint(s3_endpoint)
    if not prefix.endswith("/"):
        raise UsageError(f"prefix {prefix!r} must end with '/'", "use e.g. 'database/'")
    t_start = time.time()
    db, passphrase, hidden, s3, image = _job_inputs(run_id, s3_endpoint, region, bucket, db_secret,
                                                    passphrase_secret)

    # The seed's key scheme has one-second resolution: never overwrite an existing backup.
    while True:
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        key = f"{prefix}i2s_production_backup_{stamp}.sql.gpg"
        if not _exists(s3, bucket, key):
            break
        time.sleep(0.25)

    started_at = time.time()
    job = _run_job(
        run_id, image, _BACKUP_SCRIPT, network=network or repl.network_name(run_id), name="backup",
        timeout_s=timeout_s, env={"DB_HOST": db["host"], "DB_PORT": str(db["port"]), "DB_USER": db["username"],
                                  "DB_NAME": db["database"]},
        files=_secret_files(db, passphrase),
        fetch=["/job/out/dump.gpg", "/job/out/snapshot", "/job/out/stats"], secret_values=hidden)
    if job.exit_code != 0 or "/job/out/dump.gpg" not in job.files:
        what = "timed out" if job.exit_code is None else f"exited {job.exit_code}"
        raise HarnessError(f"backup job {what} after {job.duration_s:.1f}s: {_tail(job.output)}",
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


def _job_inputs(run_id: str, s3_endpoint: str, region: str, bucket: str, db_secret: str,
                passphrase_secret: str) -> tuple[dict[str, Any], str, list[str], Any, str]:
    """What every backup job needs: the database secret, the passphrase, the values to mask in its
    output, an S3 client with the bucket present, and the tools image matching the server."""
    sm = _client("secretsmanager", s3_endpoint, region)
    db = _db_secret(sm, db_secret, s3_endpoint)
    passphrase = _get_secret(sm, passphrase_secret, s3_endpoint)
    hidden = [db["password"], passphrase, db.get("connection_url", "")]
    s3 = _client("s3", s3_endpoint, region)
    _ensure_bucket(s3, bucket)
    image = tools_image(repl._get(repl.primary_name(run_id), run_id).attrs["Config"]["Image"])
    return db, passphrase, hidden, s3, image


def _secret_files(db: dict[str, Any], passphrase: str) -> dict[str, tuple[bytes, int]]:
    """The job's credentials as in-container files (0600), never on the host disk or in argv."""
    return {"/job/secrets/pgpass": (_pgpass_line(db["host"], db["port"], db["database"], db["username"],
                                                 db["password"]), 0o600),
            "/job/secrets/passphrase": (passphrase.encode() + b"\n", 0o600)}


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def list_backups(s3_endpoint: str, bucket: str = DEFAULT_BUCKET, prefix: str = DEFAULT_PREFIX,
                 region: str = "us-east-1") -> list[dict[str, Any]]:
    """The backups under ``prefix``, oldest first: ``key``, ``size``, ``last_modified`` (epoch) and,
    for backups made by ``run_backup``, ``snapshot_at``/``snapshot_lsn``."""
    s3 = _client("s3", _require_endpoint(s3_endpoint), region)
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
    s3 = _client("s3", _require_endpoint(s3_endpoint), region)
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
        repl._get(name, run_id)  # refuses containers of other runs
        if repl._is_running(c):
            return c, False
        raise UsageError(f"restore target {name} is {c.status}", "start it or pass another target_container")
    c = client.containers.run(
        image, name=name, detach=True,
        environment={"POSTGRES_USER": user, "POSTGRES_DB": database, "POSTGRES_PASSWORD": secrets.token_urlsafe(16)},
        labels=labels_for(run_id, **{repl.ROLE_LABEL: "postgres-dr", repl.DR_LABEL: "true"}),
        network=network, ports={"5432/tcp": ("127.0.0.1", None)})
    try:
        repl._wait_accepting(c, timeout_s, writable=True)
    except BaseException:
        repl._remove_quietly(c)
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
    s3_endpoint = _require_endpoint(s3_endpoint)
    t_start = time.time()
    sm = _client("secretsmanager", s3_endpoint, region)
    passphrase = _get_secret(sm, passphrase_secret, s3_endpoint)
    db = _db_secret(sm, db_secret, s3_endpoint)
    s3 = _client("s3", s3_endpoint, region)
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        raise UsageError(f"backup {key} not found in bucket {bucket}", "pick one from list_backups()") from None
    data, meta = obj["Body"].read(), obj.get("Metadata", {})
    download_s = time.time() - t_start
    network = network or repl.network_name(run_id)
    image = repl._get(repl.primary_name(run_id), run_id).attrs["Config"]["Image"]
    target, created = _dr_target(run_id, target_container, image, db["database"], db["username"], network, timeout_s)
    creds = repl.credentials(target.name)
    job = _run_job(
        run_id, tools_image(image), _RESTORE_SCRIPT, network=network, name="restore", timeout_s=timeout_s,
        env={"DB_HOST": target.name, "DB_USER": creds["user"], "DB_NAME": creds["database"]},
        files={**_secret_files({"host": target.name, "port": 5432, "database": creds["database"],
                                "username": creds["user"], "password": creds["password"]}, passphrase),
               "/job/in/backup.sql.gpg": (data, 0o600)},
        fetch=["/job/work/stats"], secret_values=[passphrase, creds["password"], db["password"]])
    if job.exit_code != 0:
        what = "timed out" if job.exit_code is None else f"exited {job.exit_code}"
        raise HarnessError(f"restore of {key} into {target.name} {what}: {_tail(job.output)}",
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


# -- cadence -------------------------------------------------------------------------------------
def implied_rpo_s(interval_s: float, backup_duration_s: float) -> float:
    """Worst-case data loss the backup cadence implies when only backups survive.

    Backups start every ``interval_s`` and each captures the data as of its start; it is usable only
    once finished, ``backup_duration_s`` later. A disaster just before backup *k* finishes leaves
    backup *k-1*, taken ``interval_s`` before *k* started: ``interval_s + backup_duration_s`` lost.
    """
    if interval_s <= 0 or backup_duration_s < 0:
        raise UsageError(f"interval_s must be > 0 and backup_duration_s >= 0 (got {interval_s}, {backup_duration_s})",
                         "pass the cadence and a measured backup duration in seconds")
    return float(interval_s) + float(backup_duration_s)


class BackupScheduler:
    """Backups every ``interval_s`` (start to start; the seed's cron is hourly, CI scales it down) in a
    background thread of the harness. A failed backup (e.g. the database is down) is recorded in
    ``failures`` and the schedule goes on. ``backups``/``failures`` are JSON-friendly lists."""

    def __init__(self, run_id: str, s3_endpoint: str, interval_s: float, **backup_kwargs: Any):
        if interval_s <= 0:
            raise UsageError(f"interval_s must be positive (got {interval_s})", "e.g. settings.backup_interval_s")
        self.run_id, self.s3_endpoint, self.interval_s = run_id, _require_endpoint(s3_endpoint), float(interval_s)
        self.backup_kwargs = backup_kwargs
        self.backups: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        # The schedule as decided: one entry per backup started, ``at_s`` its planned start after
        # the first, ``late`` when the previous one overran and this one started as soon as it ended.
        self.fires: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BackupScheduler":
        if self._thread is not None:
            raise UsageError("BackupScheduler already started", "create a new one")
        self._thread = threading.Thread(target=self._loop, name=f"backups-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        first = next_at = time.monotonic()
        late = False
        while not self._stop.is_set():
            self.fires.append({"at_s": next_at - first, "late": late})
            try:
                self.backups.append(run_backup(self.run_id, self.s3_endpoint, **self.backup_kwargs))
            except Exception as exc:  # noqa: BLE001 - a failed backup is a finding, not the end of the schedule
                self.failures.append({"at": time.time(), "error": str(exc)[:400]})
                log.warning("scheduled backup failed: %s", exc)
            next_at += self.interval_s
            late = next_at < time.monotonic()
            if late:  # overran the interval: start the next one now, skip missed slots
                next_at = time.monotonic()
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self, timeout_s: float = 330.0) -> None:
        """Stop after the backup in progress (if any) has finished."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> "BackupScheduler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def implied_rpo_s(self) -> float | None:
        """``implied_rpo_s`` with the longest backup duration seen so far (``None`` before the first)."""
        if not self.backups:
            return None
        return implied_rpo_s(self.interval_s, max(b["duration_s"] for b in self.backups))

    def to_dict(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "backups": list(self.backups), "failures": list(self.failures),
                "fires": list(self.fires), "implied_rpo_s": self.implied_rpo_s()}


# -- RDS -----------------------------------------------------------------------------------------
def trigger_rds_failover(db_instance_identifier: str = "i2s-production-db", region: str = "us-east-1",
                         endpoint_url: str | None = None) -> dict[str, Any]:
    """Force an RDS Multi-AZ failover: ``reboot_db_instance(ForceFailover=True)``.

    For a real AWS staging context (``endpoint_url=None``: the normal credential chain) this acts
    only if ``HARNESS_ALLOW_RDS_FAILOVER`` names the instance, so a test run cannot fail over a
    production database by accident. Refuses an instance that is not Multi-AZ (there is no standby to
    fail over to; a plain reboot would be an outage). Returns the instance's status and AZs before.
    """
    import os

    if endpoint_url is None and os.environ.get("HARNESS_ALLOW_RDS_FAILOVER") != db_instance_identifier:
        raise UnsafeTarget(f"refusing to fail over the real RDS instance {db_instance_identifier}",
                           f"set HARNESS_ALLOW_RDS_FAILOVER={db_instance_identifier} to confirm")
    rds = _client("rds", endpoint_url, region)
    try:
        inst = rds.describe_db_instances(DBInstanceIdentifier=db_instance_identifier)["DBInstances"][0]
    except rds.exceptions.DBInstanceNotFoundFault:
        raise UsageError(f"RDS instance {db_instance_identifier} not found in {region}",
                         "pass the DB instance identifier (the seed's is i2s-production-db)") from None
    if not inst.get("MultiAZ"):
        raise UsageError(f"RDS instance {db_instance_identifier} is not Multi-AZ: there is no standby to fail over to",
                         "enable Multi-AZ (multi_az = true) or test a single-AZ outage with a plain reboot instead")
    requested_at = time.time()
    after = rds.reboot_db_instance(DBInstanceIdentifier=db_instance_identifier, ForceFailover=True)["DBInstance"]
    return {"db_instance_identifier": db_instance_identifier, "multi_az": True, "region": region,
            "az_before": inst.get("AvailabilityZone"), "secondary_az_before": inst.get("SecondaryAvailabilityZone"),
            "status_after_request": after.get("DBInstanceStatus"), "requested_at": requested_at,
            "endpoint": (inst.get("Endpoint") or {}).get("Address")}



# -- the seed's script -----------------------------------------------------------------------------
# Each check: id, how to find its line in the script (a finding is reported only if the script still
# has the pattern), and whether the file as a whole must lack something for it to apply.
_CHECKS: list[dict[str, Any]] = [
    {"id": "pg_dump-password-prompt", "pattern": r"^\s*pg_dump\b",
     "absent": r"PGPASSWORD|PGPASSFILE|\.pgpass|--no-password|(^|\s)-w(\s|$)",
     "problem": "pg_dump gets no password: no PGPASSWORD/PGPASSFILE/.pgpass and no --no-password",
     "consequence": "with a terminal pg_dump prints 'Password:' and waits forever; without one (a CronJob) it "
                    "fails with 'fe_sendauth: no password supplied' and set -e ends the job: no backup"},
    {"id": "gpg-passphrase-prompt", "pattern": r"^\s*gpg\b.*--symmetric",
     "absent": r"--batch|--passphrase-file|--passphrase-fd",
     "problem": "gpg --symmetric without --batch --pinentry-mode loopback --passphrase-file asks for the "
                "passphrase through pinentry",
     "consequence": "with a terminal the job blocks at the passphrase dialog forever; without one gpg fails "
                    "and set -e ends the job after the dump: nothing is uploaded"},
    {"id": "no-passphrase-source", "pattern": r"^\s*gpg\b.*--symmetric",
     "absent": r"passphrase|secretsmanager|get-secret-value",
     "problem": "the encryption passphrase has no defined source (the guide's Secrets Manager lists "
                "i2s/database/credentials and i2s/api/keys only)",
     "consequence": "even once gpg is made non-interactive, backups are decryptable only if someone keeps the "
                    "passphrase out of band: a restore in a DR event may be impossible"},
    {"id": "unset-variables-not-caught", "pattern": r"\$\{?DB_HOST",
     "absent": r"set -[a-z]*u|set -o nounset|DB_HOST:\?",
     "problem": "DB_HOST/DB_PORT/DB_USER/DB_NAME are used unquoted and unchecked (no set -u, no ${VAR:?})",
     "consequence": "with the variables missing pg_dump silently falls back to the local Unix socket and the "
                    "OS user, so the job fails with a misleading socket error instead of naming the variable"},
    {"id": "credentials-not-mapped", "pattern": r"--host=\$DB_HOST", "absent": r"i2s/database/credentials",
     "problem": "the guide's secret i2s/database/credentials (JSON) and its ExternalSecret (url, username, "
                "password) provide no DB_HOST/DB_PORT/DB_NAME/DB_USER variables",
     "consequence": "deployed as documented, the job has neither the address nor the credentials it reads"},
    {"id": "sql-name-for-custom-format", "pattern": r"BACKUP_FILE=.*\.sql", "requires": r"--format=custom",
     "problem": "the file is named .sql but pg_dump --format=custom writes a binary archive (magic PGDMP)",
     "consequence": "an operator restoring with psql -f, as the name suggests, gets errors; it needs pg_restore"},
    {"id": "clean-ignored-in-archive", "pattern": r"^\s*--clean\b", "requires": r"--format=custom",
     "problem": "pg_dump --clean is ignored for archive formats (it only affects plain SQL output)",
     "consequence": "restoring onto an existing database fails on existing objects unless pg_restore itself "
                    "gets --clean (--if-exists); the script gives no restore procedure that says so"},
    {"id": "plaintext-dump-left-on-failure", "pattern": r"^\s*rm -f /tmp/", "absent": r"\btrap\b",
     "problem": "no trap: the unencrypted dump in /tmp is removed only if every step before rm succeeded",
     "consequence": "any failure after pg_dump (gpg, aws) leaves the full plaintext database dump on the "
                    "runner's disk"},
    {"id": "set-e-without-pipefail", "pattern": r"aws s3 ls .*\|\s*while", "absent": r"pipefail",
     "problem": "set -e without pipefail: the exit status of `aws s3 ls ... | while ...` is the loop's",
     "consequence": "if listing the bucket fails (permissions, throttling, network) retention silently does "
                    "nothing and the job still reports success; old backups pile up unnoticed"},
    {"id": "retention-parses-prefix-lines", "pattern": r"date -d \"\$backup_date",
     "problem": "`aws s3 ls` of the prefix prints sub-folders as `PRE name/` lines, whose first field is "
                "not a date",
     "consequence": "for such lines date -d fails and `[ -lt ... ]` errors (\"unary operator expected\"); "
                    "the line is skipped with error noise. Object lines (date time size name) do parse"},
    {"id": "verify-is-existence-only", "pattern": r"^\s*aws s3 ls \$\{BACKUP_BUCKET\}/\$\{BACKUP_FILE\}",
     "problem": "'Verify backup' only lists the key (a prefix match): no size, checksum, test decryption or "
                "test restore",
     "consequence": "a truncated or undecryptable backup counts as verified; the first real test is the DR event"},
    {"id": "double-local-disk", "pattern": r"--file=/tmp/",
     "problem": "the dump and its encrypted copy are both written to /tmp before upload",
     "consequence": "needs twice the compressed dump size of local disk (allocated_storage is 500 GB in "
                    "production): a pod's ephemeral-storage limit evicts the job"},
]


def _find_line(lines: list[str], pattern: str) -> int:
    rx = re.compile(pattern)
    return next((i for i, line in enumerate(lines, 1) if rx.search(line)), 0)


def _retention_block(lines: list[str]) -> str:
    start = _find_line(lines, r"aws s3 ls .*\|\s*while")
    if not start:
        return ""
    end = next((i for i in range(start, len(lines) + 1) if re.match(r"^\s*done\b", lines[i - 1])), 0)
    return "\n".join(lines[start - 1:end]) + "\n" if end else ""


_SHIM_AWS = '#!/bin/sh\n# Only adds the endpoint (implicit on AWS; aws-cli 2.9 has no AWS_ENDPOINT_URL).\n' \
            'exec /usr/bin/aws --endpoint-url "$MOTO_URL" "$@"\n'
_SHIM_GPG = '#!/bin/sh\n# The fix the script lacks: non-interactive passphrase.\n' \
            'exec /usr/bin/gpg --batch --pinentry-mode loopback --passphrase-file /job/secrets/passphrase "$@"\n'
_EXPERIMENTS = r"""
exec 2>&1  # one stream: docker keeps stdout and stderr apart, and the step markers must stay in order
export PATH=/job/bin:$PATH
DB=(DB_HOST="$T_HOST" DB_PORT="$T_PORT" DB_USER="$T_USER" DB_NAME="$T_DB")
step() { echo "=== STEP $1"; }
step noenv
env -u DB_HOST -u DB_PORT -u DB_USER -u DB_NAME bash /job/backup-database.sh; echo "=== EXIT $?"
step nopass
env "${DB[@]}" bash /job/backup-database.sh; echo "=== EXIT $?"
step gpg
rm -f /tmp/i2s_production_backup_*; sleep 1.1
env "${DB[@]}" PGPASSFILE=/job/secrets/pgpass bash /job/backup-database.sh; echo "=== EXIT $?"
for f in /tmp/i2s_production_backup_*.sql; do
  [ -e "$f" ] || continue
  echo "=== LEFT $(basename "$f") mode=$(stat -c %a "$f") size=$(stat -c %s "$f") magic=$(head -c 5 "$f")"
  echo "=== DROPS $(pg_restore -f - "$f" | grep -c '^DROP ')" \
       "WITH_CLEAN $(pg_restore --clean -f - "$f" | grep -c '^DROP ')"
done
step ls_fail
( set -e; BACKUP_BUCKET="s3://i2s-no-such-bucket-$RANDOM/database"; . /job/retention.sh; echo "=== REACHED" )
echo "=== EXIT $?"
step pre
( set -e; BACKUP_BUCKET="s3://$BUCKET/database"; . /job/retention.sh; echo "=== REACHED" ); echo "=== EXIT $?"
aws s3 ls "s3://$BUCKET/database/" | grep -v ' PRE ' | head -2 | while read -r line; do
  d=$(echo $line | awk '{print $1}'); n=$(echo $line | awk '{print $4}')
  echo "=== PARSE [$line] -> date=$d name=$n expires=$(date -d "$d + 30 days" +%F 2>&1)"
done
step full
rm -f /tmp/i2s_production_backup_*; sleep 1.1
env "${DB[@]}" PGPASSFILE=/job/secrets/pgpass PATH=/job/gpgbin:$PATH bash /job/backup-database.sh; echo "=== EXIT $?"
"""


def _steps(output: str) -> dict[str, str]:
    out, name = {}, "pre-steps"
    for line in output.splitlines():
        m = re.match(r"=== STEP (\S+)", line)
        if m:
            name = m.group(1)
            continue
        out[name] = out.get(name, "") + line + "\n"
    return out


def _exit_of(text: str) -> int | None:
    m = re.findall(r"=== EXIT (\d+)", text)
    return int(m[-1]) if m else None


def script_findings(path: str = "scripts/backup-database.sh", run_id: str = "", s3_endpoint: str = "",
                    s3_endpoint_in_network: str = "http://moto:5000", region: str = "us-east-1",
                    bucket: str = DEFAULT_BUCKET) -> list[dict[str, Any]]:
    """Why the seed's backup script cannot run unattended as written: ``[{"id", "line", "problem",
    "consequence", "verified", "evidence"}]``.

    Static analysis finds each problem in the script as it is now (a fixed problem is not reported).
    With ``run_id`` and ``s3_endpoint`` (the run's stack with moto; ``seed_secrets`` done) each claim
    that can be run is verified by running the *unchanged* script in a job container on the run's
    network: without a terminal (a CronJob), with a terminal (bounded by a timeout: blocking shows as
    the prompt on screen and no exit), with its retention loop pointed at a missing bucket and at a
    prefix with a sub-folder, and finally with only the two missing inputs supplied from outside
    (PGPASSFILE, and a ``gpg`` wrapper adding ``--batch --pinentry-mode loopback --passphrase-file``;
    an ``aws`` wrapper adds the moto endpoint, which is implicit on AWS). ``verified`` says whether a
    run confirmed the claim; ``evidence`` quotes what was seen.
    """
    p = Path(path)
    p = p if p.is_absolute() else PROJECT_ROOT / p
    if not p.is_file():
        raise UsageError(f"backup script {p} not found", "pass path= to scripts/backup-database.sh")
    text = p.read_text()
    lines = text.splitlines()
    findings = []
    for chk in _CHECKS:
        line = _find_line(lines, chk["pattern"])
        if not line or ("absent" in chk and re.search(chk["absent"], text, re.M)) or \
                ("requires" in chk and not re.search(chk["requires"], text)):
            continue
        findings.append({"id": chk["id"], "line": line, "problem": chk["problem"], "consequence": chk["consequence"],
                         "verified": False, "evidence": "static analysis only"})
    if run_id and s3_endpoint:
        _verify_findings(findings, text, lines, run_id, _require_endpoint(s3_endpoint), s3_endpoint_in_network,
                         region, bucket)
    return findings


def _verify_findings(findings: list[dict[str, Any]], text: str, lines: list[str], run_id: str, s3_endpoint: str,
                     moto_in_network: str, region: str, bucket: str) -> None:
    db, passphrase, hidden, s3, image = _job_inputs(run_id, s3_endpoint, region, bucket, DB_SECRET,
                                                    PASSPHRASE_SECRET)
    network = repl.network_name(run_id)
    env = {"T_HOST": db["host"], "T_PORT": str(db["port"]), "T_USER": db["username"], "T_DB": db["database"],
           "BUCKET": bucket, "MOTO_URL": moto_in_network, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region, "TERM": "xterm"}
    files = {"/job/backup-database.sh": (text.encode(), 0o755),
             "/job/retention.sh": (_retention_block(lines).encode(), 0o644),
             "/job/bin/aws": (_SHIM_AWS.encode(), 0o755), "/job/gpgbin/gpg": (_SHIM_GPG.encode(), 0o755),
             **_secret_files(db, passphrase)}
    # A sub-folder and an object under the prefix, so the retention loop meets both kinds of line.
    probes = [f"{DEFAULT_PREFIX}findings-probe/readme.txt", f"{DEFAULT_PREFIX}findings-probe.txt"]
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=DEFAULT_PREFIX).get("Contents", [])}
    for k in probes:
        s3.put_object(Bucket=bucket, Key=k, Body=b"probe for script_findings")
    try:
        # The three runs are independent; together they take as long as the slowest (the batch).
        from concurrent.futures import ThreadPoolExecutor

        common = dict(network=network, env=env, files=files, secret_values=hidden)
        db_env = "env DB_HOST=$T_HOST DB_PORT=$T_PORT DB_USER=$T_USER DB_NAME=$T_DB PATH=/job/bin:$PATH"
        with ThreadPoolExecutor(max_workers=3) as pool:
            f_batch = pool.submit(_run_job, run_id, image, _EXPERIMENTS, name="seed-script", timeout_s=120, **common)
            f_pg = pool.submit(_run_job, run_id, image, f"{db_env} bash /job/backup-database.sh",
                               name="seed-tty-pg", timeout_s=6, tty=True, **common)
            f_gpg = pool.submit(_run_job, run_id, image,
                                f"{db_env} PGPASSFILE=/job/secrets/pgpass bash /job/backup-database.sh",
                                name="seed-tty-gpg", timeout_s=10, tty=True, **common)
            batch, tty_pg, tty_gpg = f_batch.result(), f_pg.result(), f_gpg.result()
    finally:
        # Leave the bucket as it was: the probes and whatever the script's full run uploaded go.
        after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=DEFAULT_PREFIX).get("Contents", [])}
        for k in (after - before) | set(probes):
            s3.delete_object(Bucket=bucket, Key=k)
    steps = _steps(batch.output)
    by_id = {f["id"]: f for f in findings}

    def mark(fid: str, ok: bool, evidence: str) -> None:
        if fid in by_id:
            by_id[fid]["verified"] = ok
            by_id[fid]["evidence"] = evidence[:600]

    def clean(s: str) -> str:  # terminal escape sequences out of TTY transcripts
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r", " ", s)

    full = steps.get("full", "")
    full_ok = _exit_of(full) == 0 and "backup completed" in full
    uploaded = re.search(r"completed: (\S+)", full)
    fixed_note = (f"; with only PGPASSFILE and a gpg wrapper adding --batch --pinentry-mode loopback "
                  f"--passphrase-file supplied, the unchanged script ran to the end (exit 0, uploaded "
                  f"database/{uploaded.group(1) if uploaded else '?'})") if full_ok else \
        f"; with PGPASSFILE and the gpg wrapper it still failed: {_tail(full)}"

    def blocked(job: _Job, seconds: int, text: str) -> str:
        return f"still waiting after {seconds} s at {text!r}" if job.exit_code is None else f"exited {job.exit_code}"

    nopass = steps.get("nopass", "")
    tty_pg_text = clean(tty_pg.output)
    mark("pg_dump-password-prompt",
         _exit_of(nopass) not in (0, None) and "no password supplied" in nopass
         and tty_pg.exit_code is None and "Password" in tty_pg_text,
         f"no terminal: exit {_exit_of(nopass)}, '{_tail(re.sub(r'=== .*', '', nopass), 1)}'; "
         f"with a terminal: {blocked(tty_pg, 6, tty_pg_text.strip()[-40:])}" + fixed_note)

    g = steps.get("gpg", "")
    tty_gpg_text = clean(tty_gpg.output)
    prompts = " / ".join(dict.fromkeys(re.findall(r"(Please enter[^x]*?passphrase|Passphrase:)", tty_gpg_text)))
    mark("gpg-passphrase-prompt",
         _exit_of(g) not in (0, None) and "gpg:" in g and tty_gpg.exit_code is None and bool(prompts),
         f"no terminal: exit {_exit_of(g)}, '{_tail(re.sub(r'=== .*', '', g), 2)}'; "
         f"with a terminal: {blocked(tty_gpg, 10, 'pinentry: ' + prompts)}" + fixed_note)

    noenv = steps.get("noenv", "")
    mark("unset-variables-not-caught", _exit_of(noenv) not in (0, None) and "socket" in noenv,
         f"with DB_* unset: exit {_exit_of(noenv)}, '{_tail(re.sub(r'=== .*', '', noenv), 1)}'")

    left = re.search(r"=== LEFT (\S+) mode=(\d+) size=(\d+) magic=(\S*)", g)
    drops = re.search(r"=== DROPS (\d+) WITH_CLEAN (\d+)", g)
    mark("plaintext-dump-left-on-failure", bool(left),
         f"after gpg failed, /tmp/{left.group(1)} ({left.group(3)} bytes, mode {left.group(2)}) was still there"
         if left else "no dump left in /tmp after the gpg failure")
    mark("sql-name-for-custom-format", bool(left and left.group(4) == "PGDMP"),
         f"the .sql file starts with {left.group(4)!r} (pg_dump custom archive)" if left else "no file to inspect")
    mark("clean-ignored-in-archive", bool(drops and drops.group(1) == "0" and int(drops.group(2)) > 0),
         f"pg_restore of the dump emits {drops.group(1)} DROP statements; with pg_restore --clean "
         f"{drops.group(2)}" if drops else "no dump to inspect")

    lsf = steps.get("ls_fail", "")
    mark("set-e-without-pipefail", "=== REACHED" in lsf and ("NoSuchBucket" in lsf or "error" in lsf.lower()),
         f"retention block (verbatim) against a missing bucket: aws said "
         f"'{_tail(re.sub(r'=== .*', '', lsf), 1)}', yet the block finished with status {_exit_of(lsf)}")

    pre = steps.get("pre", "")
    parsed = re.findall(r"=== PARSE \[(.*?)\] -> (.*)", pre)
    errors = " | ".join(ln.strip() for ln in pre.splitlines() if "invalid date" in ln or "unary" in ln)
    objects = "; ".join(f"[{a}] {b}" for a, b in parsed)
    mark("retention-parses-prefix-lines", "invalid date" in pre and "unary operator expected" in pre,
         f"PRE line: '{errors[-200:]}'; object lines parse: {objects[:250]}")
