"""Backups on a cadence, as a CronJob would take them, and the recovery point that cadence implies. The seed
schedules its backup script nowhere (``harness audit``: ``rpo.db-backup-script-unscheduled``): the cadence is
the harness's choice (``backup_interval_s``).

``BackupScheduler`` runs ``run_backup`` every ``interval_s`` (start to start) on a background
:class:`harness.sampling.Sampler` -- the same loop as every other background series of the harness:
the schedule is planned on a monotonic clock, a backup that overruns its slot starts the next one at
once (missed slots are skipped, never burst), and a failed backup (e.g. the database is down) is
recorded and the schedule goes on. ``planned`` holds the fire times the schedule decided.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from harness.dr.aws import require_endpoint
from harness.dr.backup import run_backup
from harness.errors import UsageError
from harness.sampling import Sampler, TickError

__all__ = ["BackupScheduler", "implied_rpo_s"]

log = logging.getLogger(__name__)


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
    """Backups every ``interval_s`` (start to start; the harness's cadence: the seed schedules none) in a
    background thread of the harness. ``backups``/``failures`` are JSON-friendly lists; ``planned`` the
    seconds after ``start()`` at which each backup was planned to start.

    ``backup`` is what one slot runs (default ``run_backup(run_id, s3_endpoint, **backup_kwargs)``);
    a test passes its own to check the schedule without Docker.
    """

    def __init__(self, run_id: str, s3_endpoint: str, interval_s: float,
                 backup: Callable[..., dict[str, Any]] = run_backup, **backup_kwargs: Any):
        if interval_s <= 0:
            raise UsageError(f"interval_s must be positive (got {interval_s})", "e.g. settings.backup_interval_s")
        self.run_id, self.s3_endpoint, self.interval_s = run_id, require_endpoint(s3_endpoint), float(interval_s)
        self.backup_kwargs = backup_kwargs
        self._backup = backup
        self._sampler: Sampler[dict[str, Any]] = Sampler(self._take, self.interval_s, name=f"backups-{run_id}",
                                                         on_error=self._failed)

    def _take(self) -> dict[str, Any]:
        return self._backup(self.run_id, self.s3_endpoint, **self.backup_kwargs)

    @staticmethod
    def _failed(err: TickError) -> None:
        # a failed backup is a finding, not the end of the schedule
        log.warning("scheduled backup failed: %s", err.message)

    def start(self) -> "BackupScheduler":
        """Take the first backup now and then one every ``interval_s``; a scheduler starts once."""
        self._sampler.start()
        return self

    def stop(self, timeout_s: float = 330.0) -> None:
        """Stop after the backup in progress (if any) has finished."""
        self._sampler.stop(timeout_s)

    def __enter__(self) -> "BackupScheduler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def backups(self) -> list[dict[str, Any]]:
        """The backups taken so far, in order (``run_backup``'s results)."""
        return self._sampler.results

    @property
    def failures(self) -> list[dict[str, Any]]:
        """``{"at": epoch, "error": message}`` per failed backup."""
        return [{"at": e.at, "error": e.message} for e in self._sampler.errors]

    @property
    def planned(self) -> list[float]:
        """Seconds after ``start()`` at which each backup so far was planned to start."""
        return self._sampler.planned

    def implied_rpo_s(self) -> float | None:
        """``implied_rpo_s`` with the longest backup duration seen so far (``None`` before the first)."""
        backups = self.backups
        if not backups:
            return None
        return implied_rpo_s(self.interval_s, max(b["duration_s"] for b in backups))

    def to_dict(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "backups": self.backups, "failures": self.failures,
                "planned_s": self.planned, "implied_rpo_s": self.implied_rpo_s()}
