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

__all__ = ["psql", "psql_file", "postgres_uid", "in_recovery", "wait_accepting"]

# Bounded statements and connection attempts: a hung server fails the call instead of the run.
_PSQL_ENV = {"PGOPTIONS": "-c statement_timeout=20000", "PGCONNECT_TIMEOUT": "5"}


def psql(container: Any, *statements: str, db: str = "postgres") -> list[list[str]]:
    """Run each statement as its own command (ALTER SYSTEM refuses transaction blocks); rows of the last."""
    user = container_env(container).get("POSTGRES_USER", "postgres")
    cmd = ["psql", "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db]
    for s in statements:
        cmd += ["-c", s]
    _, out, _ = exec_in(container, cmd, user="postgres", env=_PSQL_ENV)
    return [line.split("\t") for line in out.splitlines() if line.strip()]


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
