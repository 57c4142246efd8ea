"""The history directory: ``runs.jsonl`` (one record per run, the source of truth, easy to keep as a CI
artifact), ``acks.jsonl`` (acknowledgements) and ``index.sqlite`` beside them (rebuilt from the
JSON lines whenever they changed behind its back, e.g. after a CI cache restored only them).

A record: ``{"schema", "run_id", "kind" (run | bench), "suite" (bench only), "started", "platform", "verdict",
"fingerprint", "fingerprint_id", "tags", "measurements": [harness.history.metrics.Measurement]}``.
Appending a run id already recorded does nothing (ingesting twice is harmless).
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

from harness.errors import UsageError

__all__ = ["HistoryStore", "SCHEMA"]

SCHEMA = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY, run_id TEXT UNIQUE, kind TEXT, suite TEXT,
    started TEXT, platform TEXT, verdict TEXT, fingerprint_id TEXT, tags TEXT);
CREATE TABLE IF NOT EXISTS measurements (run_id TEXT, scenario TEXT, metric TEXT, value REAL, unit TEXT,
    direction TEXT, valid INTEGER, samples TEXT);
CREATE INDEX IF NOT EXISTS by_metric ON measurements (scenario, metric);
CREATE TABLE IF NOT EXISTS acks (fingerprint_id TEXT, scenario TEXT, metric TEXT, run_id TEXT, reason TEXT, at TEXT);
"""


class HistoryStore:
    """One history directory. ``append`` a run record, read ``records``, query through ``db``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.runs_path = self.root / "runs.jsonl"
        self.acks_path = self.root / "acks.jsonl"
        self.index_path = self.root / "index.sqlite"

    # -- the source of truth --------------------------------------------------------------------------
    def _ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"the history directory {self.root} cannot be created ({exc.strerror or exc})",
                             "set HARNESS_HISTORY_DIR (or --history-dir) to a writable directory") from None

    def records(self) -> list[dict[str, Any]]:
        """Every run record, oldest first (by start time, then by order of arrival)."""
        seen: dict[str, tuple[int, dict[str, Any]]] = {}
        for n, rec in enumerate(_read_lines(self.runs_path)):
            if rec.get("run_id") and rec["run_id"] not in seen:
                seen[rec["run_id"]] = (n, rec)
        return [rec for _, rec in sorted(seen.values(), key=lambda t: (str(t[1].get("started") or ""), t[0]))]

    def has(self, run_id: str) -> bool:
        return any(r.get("run_id") == run_id for r in _read_lines(self.runs_path))

    def append(self, record: dict[str, Any]) -> bool:
        """Add ``record`` (one JSON line) and index it; False when its run id is already there."""
        self._ensure()
        if self.has(record["run_id"]):
            return False
        with self.runs_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"schema": SCHEMA, **record}, sort_keys=True, default=str) + "\n")
        self.db().close()  # brings the index up to date
        return True

    def acks(self) -> list[dict[str, Any]]:
        return list(_read_lines(self.acks_path))

    def add_ack(self, ack: dict[str, Any]) -> None:
        self._ensure()
        with self.acks_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(ack, sort_keys=True) + "\n")
        self.db().close()

    # -- the index ------------------------------------------------------------------------------------
    def _stamp(self) -> str:
        return ";".join(str(p.stat().st_size) if p.exists() else "-" for p in (self.runs_path, self.acks_path))

    def db(self) -> sqlite3.Connection:
        """The SQLite index, rebuilt from the JSON lines when they changed since it was written."""
        self._ensure()
        conn = sqlite3.connect(self.index_path)
        conn.row_factory = sqlite3.Row
        conn.executescript(_TABLES)
        row = conn.execute("SELECT value FROM meta WHERE key='stamp'").fetchone()
        if row is None or row["value"] != self._stamp():
            self._rebuild(conn)
        return conn

    def _rebuild(self, conn: sqlite3.Connection) -> None:
        with conn:
            for table in ("runs", "measurements", "acks"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            for rec in self.records():
                conn.execute("INSERT INTO runs (run_id, kind, suite, started, platform, verdict, fingerprint_id, tags) "
                             "VALUES (?,?,?,?,?,?,?,?)",
                             (rec["run_id"], rec.get("kind"), rec.get("suite"), rec.get("started"), rec.get("platform"),
                              rec.get("verdict"), rec.get("fingerprint_id"), json.dumps(rec.get("tags") or [])))
                conn.executemany("INSERT INTO measurements VALUES (?,?,?,?,?,?,?,?)",
                                 [(rec["run_id"], m["scenario"], m["metric"], m.get("value"), m.get("unit"),
                                   m.get("direction"), int(bool(m.get("valid"))), json.dumps(m.get("samples") or []))
                                  for m in rec.get("measurements") or []])
            conn.executemany("INSERT INTO acks VALUES (?,?,?,?,?,?)",
                             [(a.get("fingerprint_id"), a.get("scenario"), a.get("metric"), a.get("run_id"),
                               a.get("reason"), a.get("at")) for a in self.acks()])
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('stamp', ?)", (self._stamp(),))

    def series(self, fingerprint_id: str | None, scenario: str, metric: str) -> list[dict[str, Any]]:
        """The metric's points oldest first: run_id, started, value, valid, samples (all fingerprints
        when ``fingerprint_id`` is None)."""
        with closing(self.db()) as conn:
            rows = conn.execute(
                "SELECT r.run_id, r.started, r.fingerprint_id, m.value, m.valid, m.samples FROM measurements m "
                "JOIN runs r ON r.run_id = m.run_id WHERE m.scenario = ? AND m.metric = ? "
                "AND (? IS NULL OR r.fingerprint_id = ?) ORDER BY r.started, r.seq",
                (scenario, metric, fingerprint_id, fingerprint_id)).fetchall()
        return [{"run_id": r["run_id"], "started": r["started"], "fingerprint_id": r["fingerprint_id"],
                 "value": r["value"], "valid": bool(r["valid"]), "samples": json.loads(r["samples"])} for r in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r["run_id"] == run_id), None)


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            raise UsageError(f"{path}:{n} is not a JSON line (the history file is damaged)",
                             "remove or fix that line; the SQLite index is rebuilt from the rest") from None
