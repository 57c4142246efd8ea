"""The seed's backup procedure against the real database and S3/Secrets Manager (a moto server).

One stack per module: Postgres, Redis, RabbitMQ, moto, one reference conductor. A canary ledger
writes through the conductor while scheduled backups are taken; restoring the latest backup
reproduces the table, restoring an older one loses exactly what was written after it, and the ledger
measures that loss.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Iterator

import boto3
import psycopg
import pytest

from harness.config import PROJECT_ROOT
from harness.audit.backup_script import script_findings
from harness.dr.backup import KEY_PATTERN, apply_retention, list_backups, restore_backup, restore_latest, run_backup
from harness.dr.backup_schedule import BackupScheduler, implied_rpo_s
from harness.dr.secret_store import DB_SECRET, PASSPHRASE_SECRET, seed_secrets
from harness.dr.replication import host_database_url
from harness.errors import UsageError
from harness.measure.rpo import CanaryLedger, verify
from harness.wait import wait_for
from tests.integration.dr_env import dr_deployment

ROWS_SQL = "SELECT id::text, idempotency_key, payload::text, served_by, created_at FROM pipelines ORDER BY id"


@pytest.fixture(scope="module")
def env(settings: Any, request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    with dr_deployment(settings, request, "bk", "dr_backup", with_moto=True) as (s, stack, platform):
        endpoint = stack.moto.host_url()
        seeded = seed_secrets(s.run_id, endpoint)
        yield SimpleNamespace(run_id=s.run_id, stack=stack, platform=platform, endpoint=endpoint, seeded=seeded)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# The harness's cadence in this module, and each scheduled backup's job limit (run_backup's
# timeout_s): a slot ends with a backup or a recorded failure within INTERVAL_S + BACKUP_TIMEOUT_S,
# so waiting for the scheduler's own record ends by then whatever the machine's speed.
INTERVAL_S = 3.0
BACKUP_TIMEOUT_S = 120.0
# Extra seconds a busy 2-core CI box may add to a wait bounded by configured periods.
BUSY_SLACK_S = 30.0


@pytest.fixture(scope="module")
def history(env: SimpleNamespace) -> SimpleNamespace:
    """Canary writes while the scheduler takes backups; then, quiesced, one final backup.

    Every wait is for a state something reports (the ledger's acknowledged writes, the scheduler's
    backups and failures), bounded by the configured periods plus a busy machine's slack.
    """
    ledger = CanaryLedger(env.run_id, env.platform.endpoints, interval_s=0.2).start()
    scheduler = BackupScheduler(env.run_id, env.endpoint, interval_s=INTERVAL_S, timeout_s=BACKUP_TIMEOUT_S)
    writes_s = 10 * 0.2 + BUSY_SLACK_S   # ten canary writes at the ledger's interval
    try:
        _wait(lambda: sum(e["acked"] for e in ledger.snapshot()) >= 10, writes_s, "10 canary writes")
        scheduler.start()
        _wait(lambda: len(scheduler.backups) >= 2 or scheduler.failures,
              2 * (INTERVAL_S + BACKUP_TIMEOUT_S) + BUSY_SLACK_S, "two scheduled backups (or a recorded failure)")
        scheduler.stop()
        last = scheduler.backups[-1]
        _wait(lambda: sum(e["acked"] and e["sent_at"] > last["started_at"] + last["job_s"]
                          for e in ledger.snapshot()) >= 10, writes_s, "10 writes after the last scheduled backup")
    finally:
        scheduler.stop()
        entries = ledger.stop()
    assert not scheduler.failures, scheduler.failures
    final = run_backup(env.run_id, env.endpoint)  # nothing writes now: it holds every row
    return SimpleNamespace(entries=entries, scheduled=list(scheduler.backups), final=final,
                           scheduler=scheduler.to_dict())


def _first_packet(data: bytes) -> tuple[int, int, int]:
    """(tag, cipher algorithm, version) of the first OpenPGP packet (RFC 4880 4.2, 5.3)."""
    b0 = data[0]
    assert b0 & 0x80, "not OpenPGP"
    if b0 & 0x40:  # new format
        tag, off = b0 & 0x3F, (2 if data[1] < 192 else 3)
    else:
        tag, off = (b0 & 0x3C) >> 2, 1 + {0: 1, 1: 2, 2: 4}[b0 & 3]
    return tag, data[off + 1], data[off]


def _wait(cond: Any, timeout: float, what: str) -> None:
    wait_for(cond, timeout=timeout, interval=0.1, describe=what, retry_on=())


def test_secrets_hold_credentials_not_in_results(env: SimpleNamespace) -> None:
    sm = _client("secretsmanager", env.endpoint)
    import json

    creds = json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])
    assert {"username", "password", "host", "port", "database", "connection_url"} <= set(creds)
    assert creds["host"] == "postgres" and creds["port"] == 5432
    assert creds["password"] == env.stack.postgres.password
    passphrase = sm.get_secret_value(SecretId=PASSPHRASE_SECRET)["SecretString"]
    assert len(passphrase) >= 32
    assert env.seeded["password"] == "***"
    assert creds["password"] not in repr(env.seeded) and passphrase not in repr(env.seeded)


def test_scheduled_backups_land_in_the_seed_layout(env: SimpleNamespace, history: SimpleNamespace) -> None:
    taken = [b["key"] for b in history.scheduled] + [history.final["key"]]
    listed = list_backups(env.endpoint)
    assert [b["key"] for b in listed] == taken  # oldest first, nothing else under database/
    for b in history.scheduled + [history.final]:
        assert b["key"].startswith("database/") and KEY_PATTERN.search(b["key"]), b["key"]
        assert b["size"] > 0 and b["verified"] and b["snapshot_lsn"]
        assert b["started_at"] <= b["snapshot_at"] <= b["started_at"] + b["job_s"]
    # Cadence, as the scheduler planned it (not as a loaded machine delivered it): one planned start
    # per backup, interval_s apart, or right after the previous one when that overran the interval
    # (never sooner: harness.sampling.Sampler skips missed slots; its unit tests check the exact plan).
    planned = history.scheduler["planned_s"]
    assert len(planned) == len(history.scheduled) and planned[0] == 0.0, planned
    assert all(b - a >= INTERVAL_S - 1e-6 for a, b in zip(planned, planned[1:])), planned
    starts = [b["started_at"] for b in history.scheduled]
    assert starts == sorted(starts), starts  # one at a time, in order
    # OpenPGP as gpg --symmetric --cipher-algo AES256 writes it: first a symmetric-key session key
    # packet (tag 3) naming cipher 9 (AES-256). (The restore tests decrypt it with gpg.)
    body = _client("s3", env.endpoint).get_object(Bucket="i2s-backups", Key=history.final["key"])["Body"].read()
    assert _first_packet(body)[:2] == (3, 9), body[:8].hex()
    assert b"PGDMP" not in body and b"canary" not in body  # encrypted, not plaintext
    implied = history.scheduler["implied_rpo_s"]
    assert implied == implied_rpo_s(INTERVAL_S, max(b["duration_s"] for b in history.scheduled))
    print(f"\nbackups: {len(taken)}, sizes {[b['size'] for b in history.scheduled + [history.final]]} bytes, "
          f"durations {[b['duration_s'] for b in history.scheduled + [history.final]]} s, "
          f"implied RPO at 3 s cadence {implied:.1f}s")


def test_restore_latest_reproduces_the_rows(env: SimpleNamespace, history: SimpleNamespace) -> None:
    restored = restore_latest(env.run_id, env.endpoint)
    assert restored["key"] == history.final["key"]
    assert restored["created_target"] and restored["target"] == f"i2s-{env.run_id}-postgres-dr"
    with env.stack.postgres.connect() as src, psycopg.connect(host_database_url(restored["target"])) as dst:
        source_rows = src.execute(ROWS_SQL).fetchall()
        restored_rows = dst.execute(ROWS_SQL).fetchall()
    assert len(source_rows) >= 20
    assert restored_rows == source_rows
    result = verify(history.entries, host_database_url(restored["target"]))
    assert result.acknowledged >= 20 and result.lost_writes == 0, result.to_dict()
    print(f"\nrestore latest: {restored['size']} bytes in {restored['duration_s']}s "
          f"(pg_restore {restored['restore_s']}s), {len(restored_rows)} rows identical")


def test_restoring_an_older_backup_is_a_measured_loss(env: SimpleNamespace, history: SimpleNamespace) -> None:
    older = history.scheduled[0]
    restored = restore_backup(older["key"], env.run_id, env.endpoint,
                              target_container=f"i2s-{env.run_id}-postgres-dr-old")
    assert restored["created_target"] and restored["snapshot_at"] == pytest.approx(older["snapshot_at"])
    result = verify(history.entries, host_database_url(restored["target"]))
    print(f"\nolder backup: {result.lost_writes} of {result.acknowledged} acknowledged writes lost, "
          f"rpo_s={result.rpo_s}s, loss window {result.loss_window_s}s")
    assert result.lost_writes > 0 and result.rpo_s > 0, result.to_dict()
    acked = [e for e in history.entries if e["acked"]]
    lost = set(result.lost_seqs)
    dump_end = older["started_at"] + older["job_s"]
    # Acknowledged before the snapshot position was read: in the backup. Sent after the dump job had
    # finished: cannot be in it. (In between the snapshot may or may not hold a write.)
    assert not [e["seq"] for e in acked if e["ack_at"] < older["snapshot_at"] and e["seq"] in lost]
    assert {e["seq"] for e in acked if e["sent_at"] > dump_end} <= lost
    assert result.recovery_point_at is not None and result.recovery_point_at <= dump_end


def test_retention_deletes_only_objects_older_than_30_days(env: SimpleNamespace) -> None:
    s3, bucket = _client("s3", env.endpoint), "i2s-backups-retention"
    s3.create_bucket(Bucket=bucket)
    old = [f"database/i2s_production_backup_2024010{i}_000000.sql.gpg" for i in (1, 2)]
    new = [f"database/i2s_production_backup_2024020{i}_000000.sql.gpg" for i in (1, 2)]
    for k in old + ["other/outside-the-prefix.txt"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    # LastModified has one-second resolution: the newer group goes in once the S3 server's clock
    # (this machine's) has passed the second it stamped on the older one -- its state, not a sleep.
    stamped = max(s3.head_object(Bucket=bucket, Key=k)["LastModified"].timestamp() for k in old)
    wait_for(lambda: time.time() >= int(stamped) + 1, timeout=5, interval=0.05,
             describe="the clock to pass the older objects' LastModified second")
    for k in new:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    stamp = {o["Key"]: o["LastModified"].timestamp() for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert max(stamp[k] for k in old) < min(stamp[k] for k in new)
    # Injected "now": 30 days after a point between the two groups, so only the first group is >30 days old.
    cutoff = (max(stamp[k] for k in old) + min(stamp[k] for k in new)) / 2
    assert apply_retention(env.endpoint, bucket, retention_days=30) == []  # today nothing is old
    deleted = apply_retention(env.endpoint, bucket, retention_days=30, now=cutoff + 30 * 86400)
    assert sorted(deleted) == sorted(old)
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert left == sorted(new + ["other/outside-the-prefix.txt"])
    # Years later everything is old, but the newest backup is always kept.
    newest_first = sorted(new, key=lambda k: (stamp[k], k), reverse=True)
    assert apply_retention(env.endpoint, bucket, now=cutoff + 3650 * 86400) == newest_first[1:]
    with pytest.raises(UsageError, match="retention_days must be positive"):
        apply_retention(env.endpoint, bucket, retention_days=0)
    with pytest.raises(UsageError, match="must be a non-empty folder"):
        apply_retention(env.endpoint, bucket, prefix="")


def test_seed_script_findings_verified_by_running_it(env: SimpleNamespace, history: SimpleNamespace,
                                                     tmp_path: Any) -> None:
    before = [b["key"] for b in list_backups(env.endpoint)]
    findings = {f["id"]: f for f in script_findings(run_id=env.run_id, s3_endpoint=env.endpoint)}
    for f in findings.values():
        print(f"\n  line {f['line']:>2} {'VERIFIED' if f['verified'] else 'static  '} {f['id']}: {f['evidence'][:160]}")
    verified = {i for i, f in findings.items() if f["verified"]}
    assert {"pg_dump-password-prompt", "gpg-passphrase-prompt", "set-e-without-pipefail",
            "plaintext-dump-left-on-failure", "sql-name-for-custom-format", "clean-ignored-in-archive",
            "unset-variables-not-caught", "retention-parses-prefix-lines"} <= verified
    assert findings["pg_dump-password-prompt"]["line"] == 11 and findings["gpg-passphrase-prompt"]["line"] == 25
    assert findings["set-e-without-pipefail"]["line"] == 39
    assert "Password:" in findings["pg_dump-password-prompt"]["evidence"]
    assert "no password supplied" in findings["pg_dump-password-prompt"]["evidence"]
    assert "ran to the end (exit 0" in findings["gpg-passphrase-prompt"]["evidence"]
    assert "NoSuchBucket" in findings["set-e-without-pipefail"]["evidence"]
    assert [b["key"] for b in list_backups(env.endpoint)] == before  # the experiments left nothing behind
    # The analysis follows the file: a copy with the two blockers fixed no longer reports them.
    fixed = tmp_path / "backup-fixed.sh"
    text = (PROJECT_ROOT / "scripts" / "backup-database.sh").read_text()
    fixed.write_text("export PGPASSFILE=/run/secrets/pgpass\nset -o pipefail\n" + text.replace(
        "gpg --cipher-algo", "gpg --batch --pinentry-mode loopback --passphrase-file /run/secrets/pass --cipher-algo"))
    static = {f["id"] for f in script_findings(str(fixed))}
    assert not static & {"pg_dump-password-prompt", "gpg-passphrase-prompt", "set-e-without-pipefail"}
    assert "plaintext-dump-left-on-failure" in static
