"""Multi-AZ-style Postgres on the docker platform: a streaming hot standby, failover, and repair.

What RDS Multi-AZ does, done with the run's own containers:

* ``start_standby`` prepares the primary for replication by ``docker exec`` (a replication role, a
  physical slot, a ``pg_hba`` replication entry), starts ``i2s-<run_id>-postgres-standby`` from the
  primary's image, which ``pg_basebackup``\\ s the primary over the run's network and then streams
  WAL from it. ``synchronous=True`` makes the primary's commits wait for the standby's flush (what
  RDS Multi-AZ does); ``False`` is plain asynchronous streaming replication.
* ``fail_over`` kills the primary (an AZ loss), promotes the standby and moves the network alias
  ``postgres`` to it, as RDS moves its DNS name; the conductor re-resolves the name on reconnect.
* ``restore_primary`` returns the stack to a usable state. After a failover that means: the alias
  resolves to a running, writable server, which is the *promoted standby*. As with RDS, there is no
  fail-back: the old primary's timeline has diverged, so it stays stopped and off the alias (the
  run's cleanup removes it); a new standby can be built from the new primary with ``start_standby``.

All SQL runs through ``docker exec psql`` over the container's local socket (trust auth in the
postgres image), so nothing depends on host ports, which docker re-assigns when a container is
restarted or re-attached to a network. Every container created here carries the run's labels.
Secret values (passwords) never appear in arguments of processes, logs or return values.
"""
from __future__ import annotations

import logging
import re
import secrets
import shlex
import time
from typing import Any

from harness.containers import (container_env, exec_in, is_connected, is_running, network_aliases, put_files,
                                remove_quietly, run_container, run_containers, run_network)
from harness.docker_env import docker_client
from harness.dr.pg_container import PsqlOutputLost, in_recovery, psql, psql_file, wait_accepting
from harness.errors import HarnessError, ReadinessTimeout, UsageError
from harness.labels import MANAGED_LABEL, RUN_ID_LABEL, STANDBY_ZONE_LABEL, ZONE_LABEL, labels_for, validate_run_id
from harness.wait import wait_for

__all__ = [
    "start_standby", "set_standby_mode", "fail_over", "restore_primary", "stop_database", "start_database",
    "replication_lag", "remove_standby", "cleanup_dr", "current_primary", "move_alias",
    "host_database_url", "credentials", "primary_name", "standby_name", "network_name", "lsn_to_int",
    "standby_for", "ROLE_LABEL", "DR_LABEL", "REPLICA_OF_LABEL", "REPLICATION_ROLE",
]

log = logging.getLogger(__name__)

ROLE_LABEL = "i2s-harness.role"
DR_LABEL = "i2s-harness.dr"                 # marks what this package created (cleanup_dr removes it)
REPLICA_OF_LABEL = "i2s-harness.replica-of"  # the container a standby was cloned from
REPLICATION_ROLE = "replicator"
_SECRET_DIR = "/run/i2s"                     # where secret files are placed inside containers
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


# -- names ----------------------------------------------------------------------------------------
def primary_name(run_id: str) -> str:
    """The Stack's Postgres container: ``i2s-<run_id>-postgres``."""
    return f"i2s-{validate_run_id(run_id)}-postgres"


def standby_name(run_id: str) -> str:
    """The default standby container: ``i2s-<run_id>-postgres-standby``."""
    return f"i2s-{validate_run_id(run_id)}-postgres-standby"


def network_name(run_id: str) -> str:
    """The Stack's network: ``i2s-<run_id>``."""
    return f"i2s-{validate_run_id(run_id)}"


def _slot_name(standby: str) -> str:
    # Slot names allow [a-z0-9_] only.
    return re.sub(r"[^a-z0-9_]", "_", standby.lower())[:63]


def lsn_to_int(lsn: str | None) -> int | None:
    """``'0/3000148'`` -> byte position, for LSN differences. ``None``/empty -> ``None``."""
    if not lsn:
        return None
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


# -- queries ----------------------------------------------------------------------------------------
def current_primary(run_id: str, network: str = "", alias: str = "postgres") -> str:
    """The name of the run's container that holds ``alias`` on ``network`` (running or stopped);
    ``""`` if none does (e.g. the primary was fenced and nothing was promoted yet)."""
    network = network or network_name(run_id)
    holders = [c for c in run_containers(run_id) if alias in network_aliases(c, network)]
    running = [c for c in holders if c.status == "running"]
    if len(running) > 1:
        raise HarnessError(f"{len(running)} containers hold the alias {alias!r} on {network}: "
                           f"{', '.join(c.name for c in running)}", "disconnect all but one (split brain)")
    pick = running or holders
    return pick[0].name if pick else ""


def credentials(container_name: str) -> dict[str, str]:
    """``{"user", "password", "database"}`` of a Postgres container of the harness (from its env).

    Carries the password: never log it. A standby has no password of its own (its roles are the
    primary's), so the label ``i2s-harness.replica-of`` is followed to the container it was cloned from.
    """
    client = docker_client()
    src = client.containers.get(container_name)
    env, hops = container_env(src), 0
    while "POSTGRES_PASSWORD" not in env and src.labels.get(REPLICA_OF_LABEL) and hops < 10:
        src = client.containers.get(src.labels[REPLICA_OF_LABEL])
        env, hops = container_env(src), hops + 1
    if "POSTGRES_PASSWORD" not in env:
        raise UsageError(f"no credentials known for {container_name}", "pass a database URL explicitly")
    user = env.get("POSTGRES_USER") or "postgres"
    return {"user": user, "password": env["POSTGRES_PASSWORD"], "database": env.get("POSTGRES_DB") or user}


def host_database_url(container_name: str) -> str:
    """``postgresql://user:password@127.0.0.1:<published port>/db`` of a Postgres container of a run.

    Carries the password: pass it to a client, never log it. The port is looked up now: docker
    assigns a new one on every restart or re-attach to a network.
    """
    from urllib.parse import quote

    creds = credentials(container_name)
    c = docker_client().containers.get(container_name)
    c.reload()
    bindings = (c.attrs["NetworkSettings"]["Ports"] or {}).get("5432/tcp") or []
    if not bindings:
        raise UsageError(f"{container_name} publishes no port 5432 now (stopped or not on a network?)",
                         "start it / attach it to the run's network first")
    return (f"postgresql://{quote(creds['user'], safe='')}:{quote(creds['password'], safe='')}"
            f"@127.0.0.1:{bindings[0]['HostPort']}/{creds['database']}")


def replication_lag(run_id: str, primary_container: str = "", standby_container: str = "") -> dict[str, Any]:
    """Replication lag of a standby as the primary sees it (``pg_stat_replication``), for the report.

    Returns ``streaming`` (bool), ``state``, ``sync_state``, the LSNs, ``lag_bytes`` (primary's current
    WAL position minus the standby's replay position), ``flush_lag_bytes``, and the primary's own
    time-based ``write_lag_s``/``flush_lag_s``/``replay_lag_s`` (``None`` while idle: Postgres clears them).
    """
    primary = run_container(primary_container or current_primary(run_id) or primary_name(run_id), run_id)
    app = standby_container or standby_for(run_id, primary.name, required=False) or standby_name(run_id)
    if not _NAME.match(app):
        raise UsageError(f"{app!r} is not a container name", "pass a name like i2s-<run_id>-postgres-standby")
    rows = psql(primary,
                 "SELECT pg_current_wal_lsn(), coalesce(state, ''), coalesce(sync_state, ''), "
                 "coalesce(sent_lsn::text, ''), coalesce(flush_lsn::text, ''), coalesce(replay_lsn::text, ''), "
                 "coalesce(extract(epoch FROM write_lag)::text, ''), "
                 "coalesce(extract(epoch FROM flush_lag)::text, ''), "
                 "coalesce(extract(epoch FROM replay_lag)::text, '') "
                 f"FROM (SELECT 1) one LEFT JOIN pg_stat_replication r ON r.application_name = '{app}'")
    cur, state, sync_state, sent, flush, replay, wlag, flag, rlag = rows[0]
    cur_i, flush_i, replay_i = lsn_to_int(cur), lsn_to_int(flush), lsn_to_int(replay)
    num = lambda s: float(s) if s else None  # noqa: E731
    return {
        "primary": primary.name, "standby": app, "streaming": state == "streaming", "state": state or "absent",
        "sync_state": sync_state or None, "primary_lsn": cur, "sent_lsn": sent or None,
        "flush_lsn": flush or None, "replay_lsn": replay or None,
        "lag_bytes": (cur_i - replay_i) if cur_i is not None and replay_i is not None else None,
        "flush_lag_bytes": (cur_i - flush_i) if cur_i is not None and flush_i is not None else None,
        "write_lag_s": num(wlag), "flush_lag_s": num(flag), "replay_lag_s": num(rlag),
        "measured_at": time.time(),
    }


def standby_for(run_id: str, primary: str, required: bool = True) -> str:
    """The running standby cloned from ``primary`` (the default name first)."""
    default = standby_name(run_id)
    cands = [c for c in run_containers(run_id)
             if c.labels.get(ROLE_LABEL) == "postgres-standby" and c.labels.get(REPLICA_OF_LABEL) == primary
             and c.status == "running"]
    cands.sort(key=lambda c: (c.name != default, c.name))
    if not cands:
        if required:
            raise UsageError(f"no running standby of {primary} in run {run_id}",
                             "call start_standby(run_id) first, or pass standby_container=")
        return ""
    return cands[0].name


# -- standby -------------------------------------------------------------------------------------
_STANDBY_SCRIPT = r"""
set -euo pipefail
drop=$(command -v gosu || command -v su-exec)
chown postgres "$SECRETS/pgpass" && chmod 600 "$SECRETS/pgpass"
install -d -o postgres -m 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # A copy of the primary, then streaming from where the copy ended (slot: no WAL gap in between).
  "$drop" postgres env PGPASSFILE="$SECRETS/pgpass" pg_basebackup -h "$PRIMARY_HOST" -p 5432 \
      -U "$REPL_USER" -D "$PGDATA" -X stream -S "$SLOT" -R -c fast -w
  conninfo="host=$PRIMARY_HOST port=5432 user=$REPL_USER passfile=$SECRETS/pgpass application_name=$APP_NAME"
  echo "primary_conninfo = '$conninfo'" >> "$PGDATA/postgresql.auto.conf"
  echo "standby: base backup of $PRIMARY_HOST done"
fi
exec "$drop" postgres postgres -D "$PGDATA" -c hot_standby=on -c listen_addresses='*'
"""


def start_standby(run_id: str, synchronous: bool = False, primary_container: str = "", network: str = "",
                  standby_container: str = "", timeout_s: float = 120.0) -> dict[str, Any]:
    """Start a streaming-replication hot standby of the run's primary and wait until it streams.

    ``synchronous=True`` sets ``synchronous_standby_names`` (to this standby) and
    ``synchronous_commit=on`` on the primary, so a commit returns only after the standby has flushed
    it; ``False`` resets ``synchronous_standby_names`` (asynchronous). Returns when
    ``pg_stat_replication`` shows the standby ``streaming`` with the matching ``sync_state``.

    Defaults: primary ``i2s-<run_id>-postgres``, network ``i2s-<run_id>``, standby
    ``i2s-<run_id>-postgres-standby`` (pass ``standby_container`` for a second one, e.g. after a
    failover made the first standby the primary). The standby runs the primary's image.
    """
    t0 = time.time()
    primary = run_container(primary_container or primary_name(run_id), run_id, "primary container")
    network = network or network_name(run_id)
    run_network(network, run_id)
    name = standby_container or standby_name(run_id)
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a usable container name", "use letters, digits, '-', '_', '.'")
    if not is_running(primary):
        raise UsageError(f"primary {primary.name} is {primary.status}", "start it (start_database) first")
    if in_recovery(primary):
        raise UsageError(f"{primary.name} is itself a standby", "pass the current primary as primary_container")
    client = docker_client()
    import docker.errors

    try:
        client.containers.get(name)
        raise UsageError(f"container {name} already exists",
                         "remove it (remove_standby) or pass another standby_container name")
    except docker.errors.NotFound:
        pass
    app, slot = name, _slot_name(name)
    repl_password = secrets.token_urlsafe(24)

    # 1. Prepare the primary (idempotent): role, slot, pg_hba entry. wal_level must allow streaming.
    wal_level = psql(primary, "SHOW wal_level")[0][0]
    if wal_level not in ("replica", "logical"):
        raise UsageError(f"{primary.name} runs with wal_level={wal_level}", "set wal_level=replica and restart it")
    psql_file(primary, f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{REPLICATION_ROLE}') THEN
    CREATE ROLE {REPLICATION_ROLE} WITH REPLICATION LOGIN;
  END IF;
END $$;
ALTER ROLE {REPLICATION_ROLE} WITH REPLICATION LOGIN PASSWORD '{repl_password}';
""", [repl_password])
    if not psql(primary, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}'"):
        try:
            psql(primary, f"SELECT pg_create_physical_replication_slot('{slot}')", repeatable=False)
        except PsqlOutputLost:   # it ran: the slot is there or the next step fails naming it
            pass
    hba_ok = psql(primary, "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' "
                            "AND 'replication' = ANY(database) "
                            f"AND (user_name && ARRAY['all', '{REPLICATION_ROLE}']) "
                            "AND address = 'all' AND auth_method <> 'reject'")[0][0]
    if hba_ok == "0":
        # "all" in the database column does not cover replication connections: add an entry.
        hba_file = psql(primary, "SHOW hba_file")[0][0]
        exec_in(primary, user="postgres", cmd=["sh", "-c", f"echo 'host replication {REPLICATION_ROLE} all scram-sha-256' >> "
                                    f"{shlex.quote(hba_file)}"])
        psql(primary, "SELECT pg_reload_conf()")

    # 2. The standby container; the replication password goes in as a file (not env: inspect shows env).
    env = container_env(primary)
    image = primary.attrs["Config"]["Image"]
    # The placement's standby zone (harness.placement, on the primary); its own next standby goes back
    # to the primary's zone, as RDS rebuilds the standby in the old primary's AZ after a failover.
    zone, back = primary.labels.get(STANDBY_ZONE_LABEL, ""), primary.labels.get(ZONE_LABEL, "")
    zones = {k: v for k, v in ((ZONE_LABEL, zone), (STANDBY_ZONE_LABEL, back)) if v}
    container = client.containers.create(
        image, entrypoint=["bash", "-c", _STANDBY_SCRIPT], command=[], name=name, detach=True,
        environment={"PRIMARY_HOST": primary.name, "REPL_USER": REPLICATION_ROLE, "SLOT": slot,
                     "APP_NAME": app, "SECRETS": _SECRET_DIR, "PGDATA": env.get("PGDATA", "/var/lib/postgresql/data"),
                     "POSTGRES_USER": env.get("POSTGRES_USER", "postgres"),
                     "POSTGRES_DB": env.get("POSTGRES_DB", "")},
        labels=labels_for(run_id, **{ROLE_LABEL: "postgres-standby", DR_LABEL: "true",
                                     REPLICA_OF_LABEL: primary.name, **zones}),
        network=network, ports={"5432/tcp": ("127.0.0.1", None)}, stop_signal="SIGINT",
    )
    try:
        put_files(container, {f"{_SECRET_DIR}/pgpass":
                               (f"*:5432:*:{REPLICATION_ROLE}:{repl_password}\n".encode(), 0o600)})
        container.start()
        wait_accepting(container, timeout_s, writable=False)

        # 3. Synchronous or not: set only now, after the base backup, so the standby's copy of
        # postgresql.auto.conf does not carry it (a promoted standby would wait for itself).
        lag = set_standby_mode(run_id, primary.name, app, synchronous, timeout_s=timeout_s)
        want = lag["sync_state"]
    except BaseException:
        remove_quietly(container)
        raise
    t1 = time.time()
    log.info("standby %s streaming from %s (%s) after %.1fs", name, primary.name, want, t1 - t0)
    return {"standby": name, "primary": primary.name, "network": network, "application_name": app,
            "slot": slot, "synchronous": synchronous, "state": lag["state"], "sync_state": lag["sync_state"],
            "image": image, "started_at": t0, "streaming_at": t1, "setup_s": round(t1 - t0, 3)}


def set_standby_mode(run_id: str, primary_container: str, standby: str, synchronous: bool,
                     timeout_s: float = 120.0) -> dict[str, Any]:
    """Make the primary replicate to ``standby`` synchronously (``synchronous_standby_names`` names
    it, ``synchronous_commit=on``) or asynchronously (reset), and wait until ``pg_stat_replication``
    shows it ``streaming`` in that mode; returns ``replication_lag``. Idempotent: also how a standby
    whose setup was cut short (an interrupted rollback) gets the mode its pair had."""
    if not _NAME.match(standby):
        raise UsageError(f"{standby!r} is not a usable container name", "use letters, digits, '-', '_', '.'")
    primary = run_container(primary_container, run_id, "primary container")
    if synchronous:
        psql(primary, f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (\"{standby}\")'",
              "ALTER SYSTEM SET synchronous_commit = 'on'", "SELECT pg_reload_conf()")
    else:
        psql(primary, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
    want = "sync" if synchronous else "async"

    def streaming() -> dict[str, Any]:
        lag = replication_lag(run_id, primary.name, standby)
        if not (lag["streaming"] and lag["sync_state"] == want):
            raise RuntimeError(f"state={lag['state']} sync_state={lag['sync_state']}")
        return lag

    return wait_for(streaming, timeout=timeout_s, interval=0.3,
                    describe=f"{standby} to stream from {primary.name} ({want})",
                    hint=f"see `docker logs {standby}`")


# -- failover ------------------------------------------------------------------------------------
def move_alias(run_id: str, container: str, network: str = "", alias: str = "postgres") -> dict[str, Any]:
    """Point ``alias`` on the run's network at ``container`` (the DNS-name move of RDS, or of a DR
    restore): every other holder is disconnected and re-attached without it. Returns the time."""
    network = network or network_name(run_id)
    net = run_network(network, run_id)
    target = run_container(container, run_id)
    for c in run_containers(run_id):
        if c.id != target.id and alias in network_aliases(c, network):
            net.disconnect(c, force=True)
            if c.status == "running":
                net.connect(c)  # still reachable by its own name, no longer by the alias
    if is_connected(target, network):
        if alias in network_aliases(target, network):
            return {"container": target.name, "alias": alias, "network": network, "moved_at": time.time(),
                    "changed": False}
        net.disconnect(target, force=True)
    net.connect(target, aliases=[alias])
    return {"container": target.name, "alias": alias, "network": network, "moved_at": time.time(), "changed": True}


def fail_over(run_id: str, network: str = "", alias: str = "postgres", kill_signal: str = "SIGKILL",
              standby_container: str = "", primary_container: str = "", timeout_s: float = 60.0) -> dict[str, Any]:
    """Lose the primary's AZ: kill the primary, promote its standby, move ``alias`` to the standby.

    Steps (epoch seconds in the result): ``killed_at`` (``docker kill --signal``), ``fenced_at`` (the
    dead primary detached from the alias, so a restart cannot take it back: no split brain),
    ``promoted_at`` (``SELECT pg_promote(wait => true)`` returned), ``alias_moved_at``. Also the WAL
    positions: ``primary_lsn_before_kill`` (read just before the kill, so a lower bound),
    ``standby_receive_lsn``/``standby_replay_lsn`` at promotion, ``promoted_lsn`` (the new primary's
    first position), ``unshipped_bytes_lower_bound`` and the new ``timeline``.
    The standby may be detached from the network (a partition): it is attached with the alias.
    """
    import signal as _signal

    if kill_signal.upper() not in {s.name for s in _signal.Signals} | {s.name[3:] for s in _signal.Signals}:
        raise UsageError(f"kill_signal {kill_signal!r} is not a signal name", "use e.g. SIGKILL or SIGTERM")
    network = network or network_name(run_id)
    run_network(network, run_id)
    primary = run_container(primary_container or current_primary(run_id, network, alias) or primary_name(run_id),
                   run_id, "primary container")
    standby = run_container(standby_container or standby_for(run_id, primary.name), run_id, "standby container")
    if primary.id == standby.id:
        raise UsageError(f"{primary.name} is both primary and standby", "pass standby_container=")
    if not is_running(standby):
        raise UsageError(f"standby {standby.name} is {standby.status}",
                         "unpause/start it before failing over (a paused standby cannot be promoted)")
    if not in_recovery(standby):
        raise UsageError(f"{standby.name} is not in recovery (already promoted?)",
                         "start a new standby with start_standby(..., standby_container=...)")
    primary_lsn = None
    if is_running(primary):
        try:
            primary_lsn = psql(primary, "SELECT pg_current_wal_lsn()")[0][0]
        except HarnessError:
            pass  # a hung primary: the kill goes ahead, the figure stays unknown

    killed_at = time.time()
    try:
        primary.kill(signal=kill_signal)
    except Exception as exc:  # noqa: BLE001 - an already stopped primary is lost all the same
        log.info("kill %s: %s", primary.name, exc)
    try:
        wait_for(lambda: not is_running(primary), timeout=30, interval=0.1,
                 describe=f"{primary.name} to stop after {kill_signal}")
    except ReadinessTimeout:
        primary.kill(signal="SIGKILL")
    net = docker_client().networks.get(network)
    if is_connected(primary, network):
        net.disconnect(primary, force=True)
    fenced_at = time.time()

    promote_started = time.time()
    receive_lsn, replay_lsn = psql(standby, "SELECT coalesce(pg_last_wal_receive_lsn()::text, ''), "
                                             "coalesce(pg_last_wal_replay_lsn()::text, '')")[0]
    try:
        promoted = psql(standby, f"SELECT pg_promote(true, {int(timeout_s)})", repeatable=False)[0][0]
    except PsqlOutputLost:   # it ran: whether it promoted is what the server says now
        promoted = "f" if in_recovery(standby) else "t"
    if promoted != "t":
        raise HarnessError(f"{standby.name} did not finish promotion within {timeout_s:.0f}s",
                           f"see `docker logs {standby.name}`")
    promoted_at = time.time()
    # Inherited synchronous_standby_names would make the new primary wait for a standby it has not
    # got (RDS runs without one until it has built a new standby): clear it.
    psql(standby, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
    promoted_lsn, walfile = psql(standby, "SELECT pg_current_wal_lsn(), pg_walfile_name(pg_current_wal_lsn())")[0]
    moved = move_alias(run_id, standby.name, network, alias)
    wait_accepting(standby, timeout_s, writable=True)

    # On promotion the standby replays all it received: what it never received is what is lost.
    p_i, r_i = lsn_to_int(primary_lsn), lsn_to_int(receive_lsn or replay_lsn)
    result = {
        "old_primary": primary.name, "new_primary": standby.name, "alias": alias, "network": network,
        "kill_signal": kill_signal, "killed_at": killed_at, "fenced_at": fenced_at, "promoted_at": promoted_at,
        "alias_moved_at": moved["moved_at"], "promote_s": round(promoted_at - promote_started, 3),
        "total_s": round(moved["moved_at"] - killed_at, 3), "primary_lsn_before_kill": primary_lsn,
        "standby_receive_lsn": receive_lsn or None, "standby_replay_lsn": replay_lsn or None,
        "promoted_lsn": promoted_lsn, "timeline": int(walfile[:8], 16),
        "unshipped_bytes_lower_bound": max(0, p_i - r_i) if p_i is not None and r_i is not None else None,
    }
    log.info("failover %s -> %s in %.2fs", primary.name, standby.name, result["total_s"])
    return result


def restore_primary(run_id: str, network: str = "", alias: str = "postgres", timeout_s: float = 60.0) -> dict[str, Any]:
    """Return the database tier to a usable state (a chaos rollback), without losing what it holds.

    "Restored" means: ``alias`` on the run's network resolves to a running server that accepts
    writes. After a failover that is the promoted standby (like RDS, no fail-back; the old primary
    stays stopped and off the alias). After ``stop_database`` or a kill without failover it is the
    original primary, started again. A standby left holding the alias in recovery (an interrupted
    failover) is promoted. Returns what was done (``actions``) and who the primary is.
    """
    network = network or network_name(run_id)
    run_network(network, run_id)
    actions: list[str] = []
    holder_name = current_primary(run_id, network, alias)
    if not holder_name:
        holder = run_container(primary_name(run_id), run_id)
        move_alias(run_id, holder.name, network, alias)
        actions.append(f"attached {holder.name} with alias {alias}")
    else:
        holder = run_container(holder_name, run_id)
    holder.reload()
    if holder.status == "paused":
        holder.unpause()
        actions.append(f"unpaused {holder.name}")
    if not is_running(holder):
        holder.start()
        actions.append(f"started {holder.name}")
    wait_accepting(holder, timeout_s)
    if in_recovery(holder):
        try:
            psql(holder, f"SELECT pg_promote(true, {int(timeout_s)})", repeatable=False)
        except PsqlOutputLost:
            pass   # it ran; wait_accepting(writable=True) below says whether it promoted
        psql(holder, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
        actions.append(f"promoted {holder.name}")
    wait_accepting(holder, timeout_s, writable=True)
    return {"primary": holder.name, "alias": alias, "network": network, "writable": True,
            "failed_over": holder.name != primary_name(run_id), "actions": actions, "restored_at": time.time()}


def stop_database(run_id: str, timeout_s: int = 10) -> dict[str, Any]:
    """Stop the current primary (``docker stop``: the image's SIGINT, a fast shutdown). The alias stays
    with it, so ``start_database`` brings the same name back."""
    c = run_container(current_primary(run_id) or primary_name(run_id), run_id)
    t = time.time()
    c.stop(timeout=timeout_s)
    return {"container": c.name, "stopped_at": t, "stop_s": round(time.time() - t, 3)}


def start_database(run_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Start the current primary again and wait until it accepts writes."""
    c = run_container(current_primary(run_id) or primary_name(run_id), run_id)
    t = time.time()
    if not is_running(c):
        c.start()
    wait_accepting(c, timeout_s, writable=True)
    return {"container": c.name, "started_at": t, "ready_at": time.time(), "ready_s": round(time.time() - t, 3)}


def remove_standby(run_id: str, standby_container: str = "", force: bool = False) -> dict[str, Any]:
    """Remove a standby (and its volume). Refuses the container that holds the alias (after a failover
    it is the primary) unless ``force``. Before removing a synchronous standby its primary is set
    back to asynchronous, otherwise every commit there would wait forever; its slot is dropped, so
    the primary does not keep WAL for it."""
    name = standby_container or standby_name(run_id)
    c = run_container(name, run_id)
    if c.name == current_primary(run_id) and not force:
        raise UsageError(f"{name} holds the alias: it is the primary now",
                         "keep it (restore_primary) or pass force=True to delete the data it holds")
    upstream = c.labels.get(REPLICA_OF_LABEL, "")
    cleaned = []
    try:
        up = run_container(upstream, run_id) if upstream else None
    except HarnessError:
        up = None
    if up is not None and is_running(up) and not in_recovery(up):
        names = psql(up, "SHOW synchronous_standby_names")[0]
        if names and name in names[0]:
            psql(up, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
            cleaned.append("synchronous_standby_names")
    remove_quietly(c)
    if up is not None and is_running(up):
        slot = _slot_name(name)
        try:
            psql(up, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      f"WHERE slot_name = '{slot}' AND NOT active")
            cleaned.append(f"slot {slot}")
        except HarnessError as exc:
            log.warning("could not drop slot %s on %s: %s", slot, up.name, exc)
    return {"removed": name, "cleaned": cleaned}


def cleanup_dr(run_id: str) -> list[str]:
    """Remove every container this package created for the run (standbys, DR restore targets, backup
    jobs), with their volumes. The Stack's own containers are left to the Stack."""
    gone = []
    for c in docker_client().containers.list(all=True, filters={"label": [f"{RUN_ID_LABEL}={run_id}",
                                                                          f"{DR_LABEL}=true",
                                                                          f"{MANAGED_LABEL}=true"]}):
        remove_quietly(c)
        gone.append(c.name)
    return gone
