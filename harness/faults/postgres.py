"""Database faults on the docker platform: the primary stops and comes back; the primary dies and the
standby is promoted (harness.dr.replication does the Postgres work; this module records the faults
and keeps secrets out of what it returns).
"""

import logging
from typing import Any

from harness.faults import safety

__all__ = ["stop_database", "start_database", "restore_database", "start_standby", "fail_over_database",
           "partition_standby", "heal_standby_partition"]

log = logging.getLogger(__name__)


def _public(result: Any) -> Any:
    """A JSON-friendly copy with anything secret-looking removed (it goes into the journal)."""
    from harness.report.writer import redact

    if result is None:
        return {}
    if isinstance(result, dict):
        return redact({k: v for k, v in result.items() if not k.startswith("_")})
    return redact(result)


def stop_database(run_id: str) -> dict:
    """Stop the run's primary Postgres (the database fails). Rollback: ``restore_database``."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    safety.record_injected(run_id, "database-stopped", "postgres", rollback="harness.faults.postgres.restore_database",
                           arguments={"run_id": run_id})
    return _public(replication.stop_database(run_id))


def start_database(run_id: str) -> dict:
    """Start the run's primary Postgres again and wait until it accepts writes."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    result = _public(replication.start_database(run_id))
    safety.record_rolled_back(run_id, "database-stopped", "postgres")
    return result


def restore_database(run_id: str) -> dict:
    """Rollback for every database fault: make ``postgres`` resolve to a running, writable server
    (start the stopped primary, or keep/promote the standby after a failover; no fail-back). Idempotent."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    result = _public(replication.restore_primary(run_id))
    for fault in ("database-stopped", "database-primary-killed"):
        safety.record_rolled_back(run_id, fault, "postgres", note="; ".join(result.get("actions", [])))
    return result


def start_standby(run_id: str, synchronous: bool = False) -> dict:
    """Make sure the current primary has a streaming standby in the requested mode (``synchronous``:
    commits wait for it). A standby in the other mode is replaced. Not a fault: the setup the
    failover experiments need; the run's cleanup removes it."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    synchronous = _as_bool(synchronous)
    primary = replication.current_primary(run_id) or replication.primary_name(run_id)
    existing = replication._standby_for(run_id, primary, required=False)
    if existing:
        lag = replication.replication_lag(run_id, primary, existing)
        if lag["streaming"] and lag["sync_state"] == ("sync" if synchronous else "async"):
            return _public({"standby": existing, "primary": primary, "synchronous": synchronous, "reused": True,
                            "sync_state": lag["sync_state"]})
        replication.remove_standby(run_id, existing)
    taken = {c.name for c in safety.run_containers(run_id, all=True)}
    name, n = replication.standby_name(run_id), 1
    while name in taken:  # after a failover the first standby is the primary: take the next name
        n += 1
        name = f"{replication.standby_name(run_id)}-{n}"
    return _public(replication.start_standby(run_id, synchronous=synchronous, primary_container=primary,
                                             standby_container=name))


def fail_over_database(run_id: str, kill_signal: str = "SIGKILL") -> dict:
    """Kill the primary (``kill_signal``: an AZ loss) and promote its standby; the name ``postgres``
    then points at the new primary, as RDS moves its DNS name. The fault counts as recovered when
    the promotion completes; if it does not, the rollback (``restore_database``) repairs the tier."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    primary = replication.current_primary(run_id) or replication.primary_name(run_id)
    safety.record_injected(run_id, "database-primary-killed", "postgres",
                           rollback="harness.faults.postgres.restore_database", arguments={"run_id": run_id},
                           details={"signal": kill_signal, "container": primary})
    result = _public(replication.fail_over(run_id, kill_signal=kill_signal))
    safety.record_rolled_back(run_id, "database-primary-killed", "postgres", by="promotion",
                              note=f"{result.get('new_primary')} promoted and took over the name 'postgres'")
    # The promotion re-attached a partitioned standby (it is the new primary now).
    safety.record_rolled_back(run_id, "standby-partitioned", by="promotion")
    return result


def partition_standby(run_id: str) -> dict:
    """Cut the standby off the run's network (an inter-AZ partition) while the primary keeps serving.

    This is how replication lag becomes real: an asynchronous primary keeps acknowledging writes
    the standby never receives; a synchronous one makes commits wait for the standby, so users see
    errors instead of losing data. Rollback: ``heal_standby_partition`` (``fail_over_database``
    re-attaches the standby too, with the name ``postgres``)."""
    safety.require_run_id(run_id)
    from harness.dr import replication

    primary = replication.current_primary(run_id) or replication.primary_name(run_id)
    standby = replication._standby_for(run_id, primary)
    network = replication.network_name(run_id)
    safety.record_injected(run_id, "standby-partitioned", standby,
                           rollback="harness.faults.postgres.heal_standby_partition", arguments={"run_id": run_id},
                           details={"network": network})
    from harness.docker_env import docker_client

    container = docker_client().containers.get(standby)
    safety.ensure_labeled(container, run_id)
    docker_client().networks.get(network).disconnect(container, force=True)
    return {"standby": standby, "primary": primary, "network": network}


def heal_standby_partition(run_id: str) -> dict:
    """Re-attach every partitioned standby of the run to its network (idempotent)."""
    safety.require_run_id(run_id)
    from harness.dr import replication
    from harness.docker_env import docker_client

    network = replication.network_name(run_id)
    net = docker_client().networks.get(network)
    healed = []
    for fault in safety.active_faults(run_id):
        if fault.get("fault") != "standby-partitioned":
            continue
        container = docker_client().containers.get(fault["target"])
        safety.ensure_labeled(container, run_id)
        if not replication._connected(container, network):
            net.connect(container)
            healed.append(fault["target"])
        safety.record_rolled_back(run_id, "standby-partitioned", fault["target"])
    return {"healed": healed}


def _as_bool(value) -> bool:
    # Var files and env give strings; "false" must not be truthy.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# -- for the harness (not an activity: the URL holds a password) -------------------------------------
def primary_database_url(run_id: str, alias: str = "postgres") -> str:
    """A 127.0.0.1 URL of the database currently answering to ``alias`` on the run's network,
    whichever container that is (the original, a promoted standby, a restored one). Secret: never log it.
    """
    from harness.dr import replication
    from harness.errors import HarnessError

    name = replication.current_primary(run_id, alias=alias)
    if not name:
        raise HarnessError(f"no database holds the name {alias!r} in run {run_id}",
                           "the database was not recovered; see the experiment's journal")
    return replication.host_database_url(name)
