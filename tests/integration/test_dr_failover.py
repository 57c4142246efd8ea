"""Multi-AZ-style failover with a real stack, a reference conductor and the canary ledger.

Synchronous replication: a commit is acknowledged only after the standby flushed it, so losing the
primary loses no acknowledged write. Asynchronous replication with real lag (the standby cut off
the network, as in an inter-AZ partition, while the primary keeps acknowledging): losing the
primary loses exactly the writes acknowledged after the cut, and the ledger measures them.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from harness.docker_env import docker_client
from harness.dr.replication import (
    current_primary, fail_over, host_database_url, lsn_to_int, network_name, replication_lag, restore_primary,
    start_standby,
)
from harness.measure.rpo import CanaryLedger, verify
from harness.wait import wait_for
from tests.integration.dr_env import dr_deployment


@pytest.fixture(scope="module")
def env(settings: Any, request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    with dr_deployment(settings, request, "fo", "dr_failover") as (s, stack, platform):
        yield SimpleNamespace(run_id=s.run_id, stack=stack, platform=platform, figures={})


def _wait_acks(ledger: CanaryLedger, after: float, n: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acked = [e for e in ledger.snapshot() if e["acked"] and e["ack_at"] > after]
        if len(acked) >= n:
            return acked
        time.sleep(0.1)
    tail = [(e["seq"], e["status"], e["error"]) for e in ledger.snapshot()[-5:]]
    raise AssertionError(f"fewer than {n} canary writes acknowledged within {timeout}s; last: {tail}")


def test_synchronous_failover_loses_no_acknowledged_write(env: SimpleNamespace) -> None:
    run_id = env.run_id
    primary = restore_primary(run_id)["primary"]
    sb = start_standby(run_id, synchronous=True, primary_container=primary)
    assert (sb["state"], sb["sync_state"]) == ("streaming", "sync")
    ledger = CanaryLedger(run_id, env.platform.endpoints, interval_s=0.2, start_seq=0).start()
    try:
        _wait_acks(ledger, 0, 15, timeout=30)
        lag = replication_lag(run_id, primary, sb["standby"])
        fo = fail_over(run_id, standby_container=sb["standby"])
        resumed = _wait_acks(ledger, fo["alias_moved_at"], 10, timeout=60)
    finally:
        entries = ledger.stop()
    new_primary = current_primary(run_id)
    assert new_primary == sb["standby"] == fo["new_primary"]
    assert fo["timeline"] >= 2  # a promoted server starts a new timeline
    result = verify(entries, host_database_url(new_primary))
    acked_before_kill = [e for e in entries if e["acked"] and e["ack_at"] < fo["killed_at"]]
    env.figures["sync"] = {"failover": fo, "lag_before": lag, "rpo": result.to_dict(),
                           "writes_resumed_s": round(resumed[0]["ack_at"] - fo["killed_at"], 3)}
    print(f"\nsync: failover {fo['total_s']}s, writes resumed {env.figures['sync']['writes_resumed_s']}s after "
          f"the kill, {result.acknowledged} acknowledged, {result.lost_writes} lost, "
          f"{result.unacknowledged_but_present} unacknowledged but present")
    assert len(acked_before_kill) >= 15
    assert result.lost_writes == 0, f"synchronous replication lost acknowledged writes {result.lost_seqs}"
    assert result.rpo_s == 0.0
    assert fo["unshipped_bytes_lower_bound"] == 0


def test_asynchronous_failover_with_lag_loses_acknowledged_writes(env: SimpleNamespace) -> None:
    run_id = env.run_id
    primary = restore_primary(run_id)["primary"]  # after the test above: the promoted standby
    standby = f"i2s-{run_id}-postgres-standby-async"
    sb = start_standby(run_id, synchronous=False, primary_container=primary, standby_container=standby)
    assert (sb["state"], sb["sync_state"]) == ("streaming", "async")
    ledger = CanaryLedger(run_id, env.platform.endpoints, interval_s=0.2, start_seq=100_000).start()
    try:
        # Enough writes (about 5 s) that some are older than the replication margin below.
        _wait_acks(ledger, 0, 25, timeout=60)
        # Settled: every write acknowledged before the primary's WAL position is read here is on the
        # standby once it has replayed that position -- the database's own report, not a guess of
        # how far asynchronous shipping may lag on a busy box.
        settled_at = time.time()
        mark = lsn_to_int(replication_lag(run_id, primary, standby)["primary_lsn"])
        wait_for(lambda: (lsn_to_int(replication_lag(run_id, primary, standby)["replay_lsn"]) or 0) >= mark,
                 timeout=60, interval=0.1, describe=f"the standby to replay the primary's WAL up to {mark}")
        # Real lag: the standby loses the network (an inter-AZ partition). The asynchronous primary
        # keeps committing and acknowledging; its WAL no longer reaches the standby.
        net = docker_client().networks.get(network_name(run_id))
        net.disconnect(standby, force=True)
        cut_at = time.time()
        _wait_acks(ledger, cut_at, 10, timeout=30)
        lag = replication_lag(run_id, primary, standby)
        fo = fail_over(run_id, standby_container=standby)  # re-attaches the standby with the alias
        resumed = _wait_acks(ledger, fo["alias_moved_at"], 10, timeout=60)
    finally:
        entries = ledger.stop()
    assert current_primary(run_id) == standby
    result = verify(entries, host_database_url(standby))
    env.figures["async"] = {"failover": fo, "lag_at_kill": lag, "rpo": result.to_dict(),
                            "writes_resumed_s": round(resumed[0]["ack_at"] - fo["killed_at"], 3)}
    print(f"\nasync: failover {fo['total_s']}s, lag at kill {lag['lag_bytes']} bytes, {result.acknowledged} "
          f"acknowledged, {result.lost_writes} lost over rpo_s={result.rpo_s}s "
          f"(loss window {result.loss_window_s}s), WAL never shipped >= {fo['unshipped_bytes_lower_bound']} bytes")
    assert lag["lag_bytes"] and lag["lag_bytes"] > 0, lag
    assert result.lost_writes > 0 and result.rpo_s > 0, result.to_dict()
    acked = [e for e in entries if e["acked"]]
    lost = set(result.lost_seqs)
    # Exactly the right writes: everything acknowledged before the settled mark was replicated
    # (the standby replayed past it) and survived; everything sent after the cut (so committed on a
    # primary the standby no longer heard) and acknowledged before the kill was never shipped.
    settled = [e["seq"] for e in acked if e["ack_at"] < settled_at]
    assert settled and not [seq for seq in settled if seq in lost], (len(settled), sorted(lost)[:10])
    cut_off = {e["seq"] for e in acked if e["sent_at"] > cut_at and e["ack_at"] < fo["killed_at"]}
    assert cut_off and cut_off <= lost, (sorted(cut_off)[:10], sorted(lost)[:10])
    assert not [e["seq"] for e in acked if e["sent_at"] > fo["alias_moved_at"] and e["seq"] in lost]
    assert fo["unshipped_bytes_lower_bound"] > 0
    # The contrast the DR plan needs: same failover, synchronous lost nothing, asynchronous lost data.
    if "sync" in env.figures:
        assert env.figures["sync"]["rpo"]["lost_writes"] == 0 < result.lost_writes
