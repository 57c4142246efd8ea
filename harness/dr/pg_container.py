"""Postgres inside one of the run's containers, reached by ``docker exec`` over the local socket
(trust auth in the postgres image), so nothing depends on host ports, which docker re-assigns when a
container is restarted or re-attached: run SQL, run SQL that carries a secret, ask whether the
server is in recovery, and wait until it accepts connections."""
from __future__ import annotations

import secrets
import time
from typing import Any

from harness.containers import container_env, exec_in, is_running, put_files
from harness.errors import HarnessError, ReadinessTimeout

__all__ = ["psql", "psql_file", "postgres_uid", "in_recovery", "wait_accepting", "PsqlOutputLost", "PSQL_END_MARKER"]

# Bounded statements and connection attempts: a hung server fails the call instead of the run.
_PSQL_ENV = {"PGOPTIONS": "-c statement_timeout=20000", "PGCONNECT_TIMEOUT": "5"}


# The last row psql prints: without it the output was lost on the way. The Docker SDK's exec
# sometimes hands back an empty output for a command that ran and printed (docker/docker-py#2042,
# #3332): a failover once read "no row" from a promoted server.
PSQL_END_MARKER = "i2s-psql-done"


class PsqlOutputLost(HarnessError):
    """psql ran (exit 0) but its output did not come back through ``docker exec``."""


def psql(container: Any, *statements: str, db: str = "postgres", repeatable: bool = True) -> list[list[str]]:
    """Run each statement as its own command (ALTER SYSTEM refuses transaction blocks); the rows they print.

    Output lost on the way (see ``PSQL_END_MARKER``) is read again by running the statements again when they are
    ``repeatable`` (reads, ALTER SYSTEM, reloads), twice at most; otherwise ``PsqlOutputLost`` is raised
    and the caller reads the state the statement left.
    """
    user = container_env(container).get("POSTGRES_USER", "postgres")
    cmd = ["psql", "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db]
    for s in statements:
        cmd += ["-c", s]
    cmd += ["-c", f"SELECT '{PSQL_END_MARKER}'"]
    for _ in range(3 if repeatable else 1):
        _, out, _ = exec_in(container, cmd, user="postgres", env=_PSQL_ENV)
        rows = [line.split("\t") for line in out.splitlines() if line.strip()]
        if rows and rows[-1] == [PSQL_END_MARKER]:
            return rows[:-1]
    raise PsqlOutputLost(f"psql in {container.name} ran but its output did not come back through docker exec "
                         f"({statements[0][:60]!r}): docker/docker-py#2042",
                         "run again; if it repeats, restart the Docker engine")


def psql_file(container: Any, sql: str, secret_values: list[str]) -> None:
    """Run SQL that carries a secret: from a file (not the command line, which ``ps`` and the exec
    record show), removed afterwards."""
    user = container_env(container).get("POSTGRES_USER", "postgres")
    path = f"/tmp/i2s-{secrets.token_hex(6)}.sql"
    put_files(container, {path: (sql.encode(), 0o600)}, uid=postgres_uid(container), gid=0)
    try:
        exec_in(container, ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", "postgres", "-f", path],
                user="postgres", env=_PSQL_ENV, secret_values=secret_values)
    finally:
        container.exec_run(["rm", "-f", path], user="root")


def postgres_uid(container: Any) -> int:
    """The uid of the ``postgres`` user inside the container (differs between Debian and Alpine images)."""
    _, out, _ = exec_in(container, ["id", "-u", "postgres"], user="root")
    return int(out.strip())


def in_recovery(container: Any) -> bool:
    """The server is a standby (``pg_is_in_recovery()``)."""
    return psql(container, "SELECT pg_is_in_recovery()")[0][0] == "t"


def wait_accepting(container: Any, timeout: float, writable: bool | None = None) -> None:
    """Until the server answers over TCP (not the entrypoint's socket-only init server) and, if asked,
    is writable (``True``) or in recovery (``False``). Fails at once if the container exits."""
    deadline, last = time.monotonic() + timeout, "nothing yet"
    while True:
        if not is_running(container):
            tail = container.logs(tail=6).decode(errors="replace").strip().replace("\n", " | ")
            raise HarnessError(f"{container.name} is {container.status} (last log lines: {tail[-400:]})",
                               f"see `docker logs {container.name}`")
        try:
            exec_in(container, ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], user="postgres")
            if writable is None or in_recovery(container) != writable:
                return
            last = "in recovery" if writable else "not in recovery"
        except HarnessError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise ReadinessTimeout(f"timed out after {timeout:.0f}s waiting for postgres in {container.name} "
                                   f"(last seen: {last[:200]})", f"see `docker logs {container.name}`")
        time.sleep(0.3)
