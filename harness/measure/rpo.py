"""Recovery point as users experience it: a ledger of acknowledged canary writes, checked after recovery.

``CanaryLedger`` writes sequenced canary pipelines through the conductor's public API (``POST
/api/v1/pipeline`` with ``Idempotency-Key: canary-<run_id>-<seq>``) and records, per write, when it
was sent, whether and when it was acknowledged (a 2xx with an id), and which replica served it.
After a failover or a restore, ``verify`` reads back from the database that is primary *now* which
acknowledged keys survived. An acknowledged write that is gone is data loss; ``rpo_s`` is the time
span the lost acknowledged writes cover.

A write that was not acknowledged (timeout, 503) may still have committed: such writes are
reported as ``unacknowledged_but_present``, never as loss.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from harness.errors import UsageError
from harness.sampling import Sampler

__all__ = ["CanaryLedger", "RpoResult", "verify", "canary_key"]

log = logging.getLogger(__name__)
CANARY_PATH = "/api/v1/pipeline"


def canary_key(run_id: str, seq: int) -> str:
    """The idempotency key of canary ``seq``: ``canary-<run_id>-<seq>``."""
    return f"canary-{run_id}-{seq}"


class CanaryLedger:
    """A background thread writing one canary every ``interval_s`` (one request at a time, 2 s timeout).

    Endpoints are used round-robin; after a failed request ``endpoints()`` is asked again (replicas
    may have been replaced). ``start_seq`` lets a second ledger of the same run use fresh keys (an
    idempotent replay of an old key would be acknowledged without writing anything).
    ``entries`` is a JSON-friendly list of dicts, one per write, in sequence order.
    """

    def __init__(self, run_id: str, endpoints: Callable[[], list[str]], interval_s: float = 0.25,
                 timeout_s: float = 2.0, start_seq: int = 0):
        if interval_s <= 0 or timeout_s <= 0:
            raise UsageError(f"interval_s and timeout_s must be positive (got {interval_s}, {timeout_s})",
                             "e.g. interval_s=0.25, timeout_s=2")
        self.run_id, self.interval_s, self.timeout_s = run_id, float(interval_s), float(timeout_s)
        self._endpoints_fn = endpoints
        self._endpoints: list[str] = []
        self._next_seq = int(start_seq)
        self._rr = 0
        # one write per tick, one at a time: the ledger's order is the sequence order
        self._sampler: Sampler[dict[str, Any]] = Sampler(self._tick, self.interval_s, name=f"canary-{run_id}")

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "CanaryLedger":
        """Start writing; a ledger starts once (a second one of the run takes a new ``start_seq``)."""
        self._refresh()
        self._sampler.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop after the request in flight; returns ``entries``."""
        self._sampler.stop(self.timeout_s + 5)
        return self.snapshot()

    def __enter__(self) -> "CanaryLedger":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The writes so far, in sequence order."""
        return self._sampler.results

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the entries so far (safe while the thread runs)."""
        return [dict(e) for e in self._sampler.results]

    # -- one tick ------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        try:
            self._endpoints = list(self._endpoints_fn())
        except Exception as exc:  # noqa: BLE001 - no endpoints now: keep recording failed writes
            log.debug("endpoints(): %s", exc)
            self._endpoints = []

    def _tick(self) -> dict[str, Any]:
        entry = self._write_one()
        if not entry["acked"]:
            self._refresh()  # replicas may have been replaced
        return entry

    def _write_one(self) -> dict[str, Any]:
        seq = self._next_seq
        self._next_seq += 1
        key = canary_key(self.run_id, seq)
        entry: dict[str, Any] = {"seq": seq, "key": key, "sent_at": time.time(), "acked": False, "ack_at": None,
                                 "status": None, "id": None, "served_by": None, "endpoint": None,
                                 "replay": False, "error": None}
        if not self._endpoints:
            entry["error"] = "no endpoints"
            return entry
        endpoint = self._endpoints[self._rr % len(self._endpoints)]
        self._rr += 1
        entry["endpoint"] = endpoint
        req = urllib.request.Request(endpoint.rstrip("/") + CANARY_PATH, method="POST",
                                     data=json.dumps({"name": "canary", "seq": seq}).encode(),
                                     headers={"Content-Type": "application/json", "Idempotency-Key": key})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, body = resp.status, resp.read()
                served = resp.headers.get("X-Served-By")
        except urllib.error.HTTPError as exc:
            entry.update(status=exc.code, error=f"http {exc.code}", served_by=exc.headers.get("X-Served-By"))
            return entry
        except Exception as exc:  # noqa: BLE001 - timeouts, refused connections: a failed write
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
            return entry
        now = time.time()
        entry["status"] = status
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        if 200 <= status < 300 and doc.get("id"):
            entry.update(acked=True, ack_at=now, id=str(doc["id"]), served_by=doc.get("served_by") or served,
                         replay=bool(doc.get("idempotent_replay")))
        else:
            entry["error"] = f"http {status} without an id"
        return entry


@dataclass
class RpoResult:
    """What survived. ``rpo_s``: from the earliest lost acknowledged write's ack to the latest's
    (0.0 when none or only one was lost; ``loss_window_s`` then still bounds the gap: from the last
    acknowledged write that survived before the first loss to the last loss)."""

    acknowledged: int
    lost_writes: int
    lost_seqs: list[int]
    rpo_s: float
    unacknowledged: int
    unacknowledged_but_present: int
    unacknowledged_but_present_seqs: list[int]
    first_lost_ack_at: float | None = None
    last_lost_ack_at: float | None = None
    recovery_point_at: float | None = None   # ack time of the last surviving write before the first loss
    loss_window_s: float = 0.0
    surviving_acknowledged: int = 0
    replays: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _surviving_keys(keys: list[str], source: Any) -> set[str]:
    """Which of ``keys`` exist in ``pipelines`` of the database ``source`` (URL or psycopg connection),
    or in ``source`` itself when it is an iterable of keys."""
    if not isinstance(source, (str, bytes)) and not hasattr(source, "execute"):
        try:
            return set(source) & set(keys)
        except TypeError:
            raise UsageError(f"cannot read surviving writes from a {type(source).__name__}",
                             "pass a postgresql:// URL, a psycopg connection or a set of keys") from None
    import psycopg

    own = isinstance(source, str)
    if own and not source.startswith(("postgresql://", "postgres://")):
        raise UsageError("database_url_or_conn must be a postgresql:// URL, a psycopg connection or a set of keys",
                         "pass e.g. replication.host_database_url(new_primary)")
    conn = psycopg.connect(source, connect_timeout=5) if own else source
    try:
        try:
            rows = conn.execute("SELECT idempotency_key FROM pipelines WHERE idempotency_key = ANY(%s)",
                                (keys,)).fetchall()
        except psycopg.errors.UndefinedTable:
            conn.rollback()
            return set()  # a database without the table has none of them
        return {r[0] for r in rows}
    finally:
        if own:
            conn.close()


def verify(ledger_entries: Iterable[dict[str, Any]], database_url_or_conn: Any) -> RpoResult:
    """Check which canary writes survived in the database that is primary now.

    ``database_url_or_conn``: a ``postgresql://`` URL (127.0.0.1, the published port), an open psycopg
    connection, or an iterable of the idempotency keys known to exist (for tests without a database).
    """
    entries = sorted(ledger_entries, key=lambda e: e["seq"])
    if not entries:
        raise UsageError("the canary ledger is empty", "start the CanaryLedger before the fault and stop it after")
    present = _surviving_keys([e["key"] for e in entries], database_url_or_conn)
    acked = [e for e in entries if e.get("acked")]
    lost = [e for e in acked if e["key"] not in present]
    unacked = [e for e in entries if not e.get("acked")]
    unacked_present = [e for e in unacked if e["key"] in present]
    result = RpoResult(acknowledged=len(acked), lost_writes=len(lost), lost_seqs=[e["seq"] for e in lost],
                       rpo_s=0.0, unacknowledged=len(unacked), unacknowledged_but_present=len(unacked_present),
                       unacknowledged_but_present_seqs=[e["seq"] for e in unacked_present],
                       surviving_acknowledged=len(acked) - len(lost),
                       replays=sum(1 for e in acked if e.get("replay")))
    if result.replays:
        result.notes.append(f"{result.replays} acknowledgements were idempotent replays of keys written earlier")
    if lost:
        first, last = min(e["ack_at"] for e in lost), max(e["ack_at"] for e in lost)
        result.first_lost_ack_at, result.last_lost_ack_at = first, last
        result.rpo_s = round(last - first, 3)
        before = [e["ack_at"] for e in acked if e["key"] in present and e["ack_at"] < first]
        result.recovery_point_at = max(before) if before else None
        start = result.recovery_point_at if result.recovery_point_at is not None else first
        result.loss_window_s = round(last - start, 3)
    return result
