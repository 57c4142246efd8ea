"""psql through ``docker exec`` when the Docker SDK loses a command's output (docker/docker-py#2042).

The race cannot be triggered on demand against a real engine, so the container here is a stand-in that
answers ``exec_run`` from a script: first an empty output with exit 0 (what the SDK hands back when it
loses the stream), then what psql printed. Against a real Postgres, psql runs in the DR and failover
integration tests.
"""
from __future__ import annotations

import pytest


from harness.dr.pg_container import PSQL_END_MARKER, PsqlOutputLost, psql


class ScriptedContainer:
    """Answers each ``exec_run`` with the next scripted stdout (exit 0) and records the commands."""

    name = "i2s-test-postgres"
    attrs = {"Config": {"Env": ["POSTGRES_USER=i2s"]}}

    def __init__(self, *outputs: bytes) -> None:
        self.outputs = list(outputs)
        self.commands: list[list[str]] = []

    def exec_run(self, cmd, user, demux, environment):
        self.commands.append(cmd)
        return 0, (self.outputs.pop(0) or None, None)


DONE = PSQL_END_MARKER.encode()


def test_rows_come_back_without_the_end_marker():
    c = ScriptedContainer(b"0/3000060\t000000010000000000000003\n" + DONE + b"\n")
    assert psql(c, "SELECT pg_current_wal_lsn(), pg_walfile_name(pg_current_wal_lsn())") == \
        [["0/3000060", "000000010000000000000003"]]
    assert c.commands[0][-2:] == ["-c", f"SELECT '{PSQL_END_MARKER}'"]
    assert c.commands[0][c.commands[0].index("-U") + 1] == "i2s"


def test_a_statement_that_prints_nothing_is_not_taken_for_lost_output():
    c = ScriptedContainer(DONE + b"\n")
    assert psql(c, "ALTER SYSTEM RESET synchronous_standby_names") == []
    assert len(c.commands) == 1


def test_lost_output_of_a_repeatable_statement_is_read_again():
    c = ScriptedContainer(b"", b"t\n" + DONE + b"\n")
    assert psql(c, "SELECT pg_is_in_recovery()") == [["t"]]
    assert len(c.commands) == 2


def test_lost_output_three_times_is_an_error_naming_the_cause():
    c = ScriptedContainer(b"", b"", b"")
    with pytest.raises(PsqlOutputLost, match="docker-py#2042"):
        psql(c, "SELECT 1 FROM pg_replication_slots")
    assert len(c.commands) == 3


def test_a_statement_that_must_not_run_twice_is_run_once():
    c = ScriptedContainer(b"", b"t\n" + DONE + b"\n")
    with pytest.raises(PsqlOutputLost):
        psql(c, "SELECT pg_promote(true, 60)", repeatable=False)
    assert len(c.commands) == 1
