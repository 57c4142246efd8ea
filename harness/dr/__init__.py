"""Disaster recovery on the harness's own containers: Multi-AZ-style Postgres failover
(``replication``), the seed's encrypted S3 backups with restore (``backup``, run as one-shot
``jobs``, their secrets in ``secret_store``, their cadence in ``backup_schedule``).

The functions take and return JSON-friendly values (strings, numbers, dicts), so a Chaos Toolkit
extension can call them with nothing but the run id and the moto endpoint.
"""
from harness.dr.backup import apply_retention, list_backups, restore_backup, restore_latest, run_backup
from harness.dr.backup_schedule import BackupScheduler, implied_rpo_s
from harness.dr.replication import (
    cleanup_dr, current_primary, fail_over, host_database_url, move_alias, remove_standby,
    replication_lag, restore_primary, start_database, start_standby, stop_database,
)
from harness.dr.secret_store import seed_secrets

__all__ = [
    "start_standby", "fail_over", "restore_primary", "stop_database", "start_database", "replication_lag",
    "remove_standby", "cleanup_dr", "current_primary", "move_alias", "host_database_url",
    "seed_secrets", "run_backup", "list_backups", "restore_latest", "restore_backup", "apply_retention",
    "BackupScheduler", "implied_rpo_s",
]
