"""The backup schedule (harness/dr/backup_schedule.py) without Docker: the backup a slot runs is a
stand-in, so what is checked is what the scheduler decided -- its plan, its record of failures, and
the implied RPO -- not how fast this machine is."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from harness.dr.backup_schedule import BackupScheduler, implied_rpo_s
from harness.errors import UsageError
from harness.wait import wait_for


def test_a_failed_backup_is_recorded_and_the_schedule_goes_on() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    done = threading.Event()

    def backup(run_id: str, s3_endpoint: str, **kwargs: Any) -> dict[str, Any]:
        calls.append((run_id, s3_endpoint, kwargs))
        if len(calls) == 2:
            raise RuntimeError("database is down")
        if len(calls) >= 4:
            done.set()
        return {"key": f"database/b{len(calls)}", "duration_s": float(len(calls))}

    s = BackupScheduler("r1", "http://127.0.0.1:5000/", 0.01, backup=backup, bucket="b").start()
    assert done.wait(30)
    s.stop()
    assert calls[0] == ("r1", "http://127.0.0.1:5000", {"bucket": "b"})  # endpoint normalised, kwargs passed
    assert [b["key"] for b in s.backups][:3] == ["database/b1", "database/b3", "database/b4"]
    assert len(s.failures) == 1 and s.failures[0]["error"] == "database is down" and s.failures[0]["at"] > 0
    # the plan: one slot per interval from the start (a slow slot would push the next, never burst)
    planned = s.planned
    assert planned[0] == 0.0 and all(b - a >= 0.01 - 1e-9 for a, b in zip(planned, planned[1:]))
    assert len(planned) == len(s.backups) + len(s.failures)
    d = s.to_dict()
    assert d["interval_s"] == 0.01 and d["planned_s"] == planned and d["failures"] == s.failures
    assert d["implied_rpo_s"] == implied_rpo_s(0.01, max(b["duration_s"] for b in s.backups))


def test_stop_is_idempotent_and_a_scheduler_starts_once() -> None:
    s = BackupScheduler("r1", "http://127.0.0.1:5000", 60.0, backup=lambda *a, **k: {"duration_s": 1.0})
    assert s.implied_rpo_s() is None
    s.stop()  # before start: nothing to join
    with pytest.raises(UsageError, match="already started"):
        s.start()
    t = BackupScheduler("r1", "http://127.0.0.1:5000", 60.0, backup=lambda *a, **k: {"duration_s": 1.0}).start()
    # the first slot is due at start: wait for its backup (a busy machine may run the thread late)
    wait_for(lambda: t.backups, timeout=60, interval=0.01, describe="the first scheduled backup")
    t.stop()
    t.stop()
    assert t.implied_rpo_s() == 61.0


def test_bad_interval_and_endpoint_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="interval_s must be positive"):
        BackupScheduler("r1", "http://127.0.0.1:5000", 0)
    with pytest.raises(UsageError, match="is not a URL"):
        BackupScheduler("r1", "moto:5000", 10)
