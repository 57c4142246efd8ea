"""RDS Multi-AZ on the run's containers: which server is primary and which its standby, the failover
when a zone takes the primary with it, the fenced ex-primary kept stopped and off the network (no
split brain), the pair repaired with a new standby in the recovered zone, an interrupted failover
settled, and the primary placed back in a zone before a zone-loss run.

Used by the docker zone faults (harness.faults.zone_docker) and the zone-loss scenario; the
mechanics of replication itself are :mod:`harness.dr.replication`'s. No fault log here: the callers
record what they do.
"""
import time
from typing import Any, Dict, List

from harness.containers import run_containers
from harness.docker_env import docker_client
from harness.dr.replication import ROLE_LABEL
from harness.errors import UsageError
from harness.labels import ZONE_LABEL

__all__ = ["database_roles", "fail_over_if_primary_lost", "replace_fenced_primary", "fenced_databases",
           "settle_database", "place_primary"]


def database_roles(run_id: str) -> Dict[str, Any]:
    """The current primary (alias holder) and its running standby with its replication mode."""
    from harness.dr import replication

    primary = replication.current_primary(run_id)
    standby, sync_state = "", None
    if primary:
        for c in run_containers(run_id, {ROLE_LABEL: "postgres-standby",
                                         replication.REPLICA_OF_LABEL: primary}, all=False):
            standby = c.name
            try:
                sync_state = replication.replication_lag(run_id, primary, c.name).get("sync_state")
            except Exception:  # noqa: BLE001 - a dead or hung primary: the mode stays unknown
                sync_state = None
            break
    return {"primary": primary, "standby": standby, "standby_sync_state": sync_state}


def fail_over_if_primary_lost(run_id: str, db: Dict[str, Any], primary_lost: bool,
                               delay_s: float = 0.0) -> Dict[str, Any] | None:
    """RDS Multi-AZ's automatic failover: the existing one (``harness.dr.replication.fail_over``: kill
    and fence the primary, promote the standby, move the name ``postgres``), named explicitly because
    a partitioned primary no longer shows its alias. Without a standby (a single-AZ database, as the
    seed's staging RDS) nothing fails over: the database is down until the zone returns."""
    if not primary_lost:
        return None
    if not db["standby"]:
        return {"skipped": "no running standby: a single-AZ database stays down until its zone returns"}
    from harness.dr import replication

    if delay_s:
        time.sleep(delay_s)  # RDS's own detection of the lost primary (harness.faults.zone_docker)
    return replication.fail_over(run_id, primary_container=db["primary"], standby_container=db["standby"])


def replace_fenced_primary(run_id: str, name: str, sync_state: str | None) -> List[str]:
    """The ex-primary lost to a failover stays fenced — stopped and off every network (its timeline
    diverged; RDS takes the old instance out of service too) — and a new standby of the current
    primary is started in its zone. It is not removed: the run's credentials are found through the
    standbys' ``replica-of`` labels back to it (``replication.credentials``); the run's cleanup
    removes it. Returns what was done."""
    from harness.dr import replication

    actions = []
    current = replication.current_primary(run_id)
    for c in run_containers(run_id, all=True):
        if c.name == name:
            if c.status in ("running", "paused"):
                c.kill(signal="SIGKILL")  # a fenced server must not run (split brain)
            for net in list((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
                docker_client().networks.get(net).disconnect(c, force=True)
            actions.append(f"kept the fenced ex-primary {name} stopped and off the network")
    if not current:
        return actions  # nothing to replicate from: the database rollback (restore_database) decides
    existing = [c for c in run_containers(run_id, {ROLE_LABEL: "postgres-standby",
                                                  replication.REPLICA_OF_LABEL: current}, all=False)
                if c.status == "running"]
    if existing:
        # A standby of the current primary runs already (a rollback that was cut short had started
        # it): give it the pair's mode -- a rebuild stopped before its last step streams
        # asynchronously, which would leave a synchronous pair asynchronous for good.
        if sync_state == "sync":
            replication.set_standby_mode(run_id, current, existing[0].name, synchronous=True)
            actions.append(f"made the existing standby {existing[0].name} of {current} synchronous again")
        return actions
    taken = {c.name for c in run_containers(run_id, all=True)}
    base, n = replication.standby_name(run_id), 1
    new = base
    while new in taken:
        n += 1
        new = f"{base}-{n}"
    replication.start_standby(run_id, synchronous=sync_state == "sync", primary_container=current,
                              standby_container=new)
    actions.append(f"new {'synchronous' if sync_state == 'sync' else 'asynchronous'} standby {new} of {current}")
    return actions


def fenced_databases(run_id: str) -> List[str]:
    """The run's fenced ex-primaries: Postgres containers that are stopped and on no network (what a
    failover leaves; restarting one would be a split brain). Every other container of a restored
    zone runs."""
    out = []
    for c in run_containers(run_id, all=True):
        if (c.labels or {}).get(ROLE_LABEL) in ("postgres", "postgres-standby") and c.status != "running" \
                and not ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
            out.append(c.name)
    return sorted(out)


def settle_database(run_id: str, details: Dict[str, Any]) -> List[str]:
    """Before anything restarts: if the name ``postgres`` has no holder, a failover was interrupted
    between fencing the primary and moving the name. It is completed (the standby promoted and
    named, as RDS would finish it) if the standby runs; otherwise the old primary gets its name back
    and is started (it lost nothing it acknowledged: a SIGKILL is a crash, recovered from its WAL)."""
    from harness.dr import replication

    old = str(details.get("database_primary") or "")
    if not old or replication.current_primary(run_id):
        return []
    running = {c.name for c in run_containers(run_id, all=False)}
    standby = str(details.get("standby") or "")
    target = standby if standby in running else old
    replication.move_alias(run_id, target)
    done = replication.restore_primary(run_id)
    return [f"interrupted failover settled: {target} holds the name postgres"] + done.get("actions", [])


def place_primary(run_id: str, zone: str) -> List[str]:
    """Make the database primary the server in ``zone`` again, with its standby in another zone, so
    each zone-loss run starts from the placement's layout (RDS has no fail-back; a previous run's
    failover left the primary elsewhere). A clean switchover with the existing failover
    (``replication.fail_over`` with SIGINT: Postgres' fast shutdown sends all WAL to the standby
    before it stops, so nothing acknowledged is lost), then the old primary replaced by a new
    standby in its zone. Returns what was done ([] when the layout is already right)."""
    from harness.dr import replication

    roles = database_roles(run_id)
    containers = {c.name: c for c in run_containers(run_id, all=True)}
    primary, standby = containers.get(roles["primary"]), containers.get(roles["standby"])
    if primary is None or standby is None:
        raise UsageError(f"run {run_id} has no streaming primary/standby pair to place",
                         "start a standby first (harness.dr.replication.start_standby)")
    if primary.labels.get(ZONE_LABEL) == zone:
        return []
    if standby.labels.get(ZONE_LABEL) != zone:
        raise UsageError(f"neither the primary nor the standby of run {run_id} is in zone {zone!r}",
                         "place the database pair with harness.placement")
    replication.fail_over(run_id, kill_signal="SIGINT", primary_container=primary.name, standby_container=standby.name)
    return [f"switchover {primary.name} -> {standby.name}"] + replace_fenced_primary(
        run_id, primary.name, roles["standby_sync_state"])
