"""Disaster recovery on the harness's own containers: Multi-AZ-style Postgres failover
(``replication``) and the seed's encrypted S3 backups with restore (``backup``).

The functions take and return JSON-friendly values (strings, numbers, dicts), so a Chaos Toolkit
extension can call them with nothing but the run id and the moto endpoint.
"""
from harness.dr.backup import (
    BackupScheduler, apply_retention, implied_rpo_s, list_backups, restore_backup, restore_latest,
    run_backup, script_findings, seed_secrets, trigger_rds_failover,
)
from harness.dr.replication import (
    cleanup_dr, current_primary, fail_over, host_database_url, move_alias, remove_standby,
    replication_lag, restore_primary, start_database, start_standby, stop_database,
)

__all__ = [
    "start_standby", "fail_over", "restore_primary", "stop_database", "start_database", "replication_lag",
    "remove_standby", "cleanup_dr", "current_primary", "move_alias", "host_database_url",
    "seed_secrets", "run_backup", "list_backups", "restore_latest", "restore_backup", "apply_retention",
    "BackupScheduler", "implied_rpo_s", "trigger_rds_failover", "script_findings",
]
