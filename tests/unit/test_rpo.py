"""The canary ledger's arithmetic (verify) on hand-made entries, and the ledger against a local HTTP
server that answers like the conductor (real sockets, no mocks)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from harness.dr.backup_schedule import implied_rpo_s
from harness.errors import UsageError
from harness.measure.rpo import CanaryLedger, canary_key, verify
from harness.wait import wait_for


def entry(seq: int, acked: bool, ack_at: float | None = None, replay: bool = False) -> dict[str, Any]:
    return {"seq": seq, "key": canary_key("r1", seq), "sent_at": float(seq), "acked": acked,
            "ack_at": ack_at if ack_at is not None else (float(seq) + 0.05 if acked else None),
            "status": 201 if acked else 503, "id": f"id-{seq}" if acked else None, "served_by": "c-0",
            "endpoint": "http://127.0.0.1:1", "replay": replay, "error": None if acked else "http 503"}


def test_nothing_lost() -> None:
    entries = [entry(i, True) for i in range(5)]
    r = verify(entries, {e["key"] for e in entries})
    assert (r.acknowledged, r.lost_writes, r.lost_seqs, r.rpo_s, r.loss_window_s) == (5, 0, [], 0.0, 0.0)
    assert r.surviving_acknowledged == 5 and r.recovery_point_at is None


def test_lost_writes_and_their_time_span() -> None:
    entries = [entry(i, True, ack_at=100.0 + i) for i in range(10)]
    survivors = {canary_key("r1", i) for i in range(10) if i not in (6, 7, 8)}
    r = verify(entries, survivors)
    assert r.lost_writes == 3 and r.lost_seqs == [6, 7, 8]
    assert r.rpo_s == 2.0                       # ack of seq 6 (106) to ack of seq 8 (108)
    assert (r.first_lost_ack_at, r.last_lost_ack_at) == (106.0, 108.0)
    assert r.recovery_point_at == 105.0 and r.loss_window_s == 3.0
    assert r.to_dict()["lost_seqs"] == [6, 7, 8]
    json.dumps(r.to_dict())


def test_unacknowledged_writes_are_not_loss() -> None:
    entries = [entry(0, True), entry(1, False), entry(2, False), entry(3, True)]
    r = verify(entries, {canary_key("r1", 0), canary_key("r1", 2), canary_key("r1", 3)})
    assert r.lost_writes == 0 and r.unacknowledged == 2
    assert r.unacknowledged_but_present == 1 and r.unacknowledged_but_present_seqs == [2]


def test_single_lost_write_has_zero_span_but_a_window() -> None:
    entries = [entry(0, True, 10.0), entry(1, True, 11.0), entry(2, True, 12.5)]
    r = verify(entries, {canary_key("r1", 0), canary_key("r1", 1)})
    assert r.lost_seqs == [2] and r.rpo_s == 0.0 and r.loss_window_s == 1.5


def test_replays_are_noted() -> None:
    entries = [entry(0, True), entry(1, True, replay=True)]
    r = verify(entries, {e["key"] for e in entries})
    assert r.replays == 1 and "idempotent replays" in r.notes[0]


def test_bad_input() -> None:
    with pytest.raises(UsageError, match="ledger is empty"):
        verify([], set())
    with pytest.raises(UsageError, match="postgresql:// URL"):
        verify([entry(0, True)], "mysql://x")
    with pytest.raises(UsageError, match="cannot read surviving writes"):
        verify([entry(0, True)], 42)
    with pytest.raises(UsageError, match="must be positive"):
        CanaryLedger("r1", lambda: [], interval_s=0)


def test_implied_rpo() -> None:
    assert implied_rpo_s(3600, 120) == 3720.0
    with pytest.raises(UsageError):
        implied_rpo_s(0, 1)


class _Conductor(BaseHTTPRequestHandler):
    """Answers POST /api/v1/pipeline like the reference conductor; fails while ``down`` is set."""

    down = threading.Event()
    seen: list[tuple[int, str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        port = self.server.server_address[1]
        _Conductor.seen.append((port, self.headers.get("Idempotency-Key"), body))
        status, doc = (503, {"error": "dependency_unavailable"}) if self.down.is_set() else \
            (201, {"id": f"id-{body['seq']}", "served_by": f"replica-{port}"})
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[str]]:
    _Conductor.down.clear()
    _Conductor.seen.clear()
    srvs = [ThreadingHTTPServer(("127.0.0.1", 0), _Conductor) for _ in range(2)]
    for s in srvs:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}" for s in srvs]
    finally:
        for s in srvs:
            s.shutdown()
            s.server_close()


def test_ledger_round_robin_keys_and_refresh(servers: list[str]) -> None:
    calls = {"n": 0}

    def endpoints() -> list[str]:
        calls["n"] += 1
        return list(servers)

    ledger = CanaryLedger("r1", endpoints, interval_s=0.02, start_seq=7).start()
    try:
        # the ledger's own record, with a timeout that fails here (not 5 s shared by both, then on)
        wait_for(lambda: sum(e["acked"] for e in ledger.snapshot()) >= 6, timeout=30, interval=0.01,
                 describe="6 acknowledged canary writes")
        refreshes_before = calls["n"]
        _Conductor.down.set()
        wait_for(lambda: sum(not e["acked"] for e in ledger.snapshot()) >= 3, timeout=30, interval=0.01,
                 describe="3 failed canary writes")
        _Conductor.down.clear()
    finally:
        entries = ledger.stop()
    acked = [e for e in entries if e["acked"]]
    failed = [e for e in entries if not e["acked"]]
    assert entries[0]["seq"] == 7 and [e["seq"] for e in entries] == list(range(7, 7 + len(entries)))
    assert all(e["key"] == f"canary-r1-{e['seq']}" for e in entries)
    assert all(e["id"] == f"id-{e['seq']}" and e["ack_at"] >= e["sent_at"] for e in acked)
    assert {e["endpoint"] for e in acked} == set(servers)            # round robin over both
    assert {e["served_by"] for e in acked} == {f"replica-{u.rsplit(':', 1)[1]}" for u in servers}
    assert failed and all(e["status"] == 503 and e["ack_at"] is None for e in failed)
    assert calls["n"] >= refreshes_before + len(failed)              # endpoints() re-read after each failure
    keys = {k for _, k, _ in _Conductor.seen}
    assert keys == {e["key"] for e in entries} and all(b["name"] == "canary" for _, _, b in _Conductor.seen)
    json.dumps(entries)


def test_ledger_records_unreachable_endpoints() -> None:
    ledger = CanaryLedger("r1", lambda: ["http://127.0.0.1:9"], interval_s=0.02, timeout_s=0.5).start()
    deadline = time.monotonic() + 30  # wait for attempts, not for a time a busy box may not keep
    while len(ledger.snapshot()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    entries = ledger.stop()
    assert entries and not any(e["acked"] for e in entries)
    assert all("Connection refused" in (e["error"] or "") and e["endpoint"] == "http://127.0.0.1:9"
               for e in entries)
