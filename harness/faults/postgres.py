"""Database faults: the primary stops and comes back; the primary dies and the standby is promoted
(harness.dr.replication does the Postgres work; this module records the faults and keeps secrets
out of what it returns).

The database servers are the run's containers on either platform. On docker, the conductors find
the database by the network alias ``postgres``, which harness.dr moves. On kind, the pods find it
through the selector-less Service ``postgres`` whose EndpointSlice holds a container IP (see
harness.platforms.kind), so after every alias move the slice is re-pointed at the new holder's IP
too (``harness.kube.conductor.repoint_backing_service``) — the same DNS-name move, as pods see it.

The chaos process is on kind when ``HARNESS_KUBE_NAMESPACE`` is set (the harness sets it, with
``HARNESS_KUBE_RUN_CONTEXT`` and ``KUBECONFIG``, for kind runs only). The context is checked
(``safety.check_kube_context``, then the kubeconfig file) before anything is done, so a foreign
cluster is refused before the database is touched and before any call to a cluster. The kube target
is written into each fault's rollback arguments, so ``undo_all`` — which runs in the harness's
process, without that environment — re-points the same Service.
"""

import ipaddress
import logging
import os
import re
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.faults import safety

__all__ = ["stop_database", "start_database", "restore_database", "start_standby", "fail_over_database",
           "partition_standby", "heal_standby_partition"]

log = logging.getLogger(__name__)
KUBE_NAMESPACE_ENV = "HARNESS_KUBE_NAMESPACE"
KUBE_CONTEXT_ENV = "HARNESS_KUBE_RUN_CONTEXT"
POSTGRES_PORT = 5432                  # inside every Postgres container of the run
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _public(result: Any) -> Any:
    """A JSON-friendly copy with anything secret-looking removed (it goes into the journal)."""
    from harness.report.writer import redact

    if result is None:
        return {}
    if isinstance(result, dict):
        return redact({k: v for k, v in result.items() if not k.startswith("_")})
    return redact(result)


# -- kind: the Service `postgres` follows the alias ---------------------------------------------------
def _kube_target(run_id: str, kube_namespace: str = "", kube_context: str = "", kubeconfig: str = "") -> dict:
    """Where the database's stand-in Service lives when the run is on kind, checked; ``{}`` otherwise.

    Explicit arguments (a fault record's) win over the environment. The context must be allowed for
    the run (``safety.check_kube_context``) and defined in the kubeconfig file (read locally); both
    are checked here, before any client exists. The result is JSON and names no secret (the
    kubeconfig's *path*), so it can go into the fault log as rollback arguments.
    """
    namespace = (kube_namespace or os.environ.get(KUBE_NAMESPACE_ENV, "")).strip()
    if not namespace:
        return {}
    if not _NAMESPACE.match(namespace):
        raise UsageError(f"{KUBE_NAMESPACE_ENV}={namespace!r} is not a namespace name",
                                "set it to the conductor's namespace (e.g. i2s-staging) or unset it on docker")
    ctx = safety.check_kube_context(run_id, kube_context or os.environ.get(KUBE_CONTEXT_ENV, ""))
    from harness.kube.client import kubeconfig_path, require_context

    path = kubeconfig_path(kubeconfig or None)
    require_context(ctx, path)
    return {"kube_namespace": namespace, "kube_context": ctx, "kubeconfig": path}


def _kube_apis(kube: dict) -> Any:
    """API clients for a target ``_kube_target`` returned (that check has been made)."""
    from harness.kube import client as kc

    return kc.Apis(kc.api_client(kc.KubeTarget(kube["kube_context"], kube["kubeconfig"])))


def _container_ip(run_id: str, container: str) -> str:
    """``container``'s IPv4 address on the run's network (where the kind nodes reach it)."""
    from harness.containers import run_container
    from harness.dr import replication

    network = replication.network_name(run_id)
    c = run_container(container, run_id)  # refuses a container that is not the run's
    ip = (((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}).get("IPAddress") or ""
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError:
        raise HarnessError(f"{container} has no IPv4 address on network {network} ({ip or 'none'})",
                           "it must be attached there to serve as 'postgres' (harness.dr.replication.move_alias)"
                           ) from None


def _verify_stand_in(run_id: str, kube: dict, alias: str = "postgres") -> None:
    """On kind, check (read-only) that the Service ``alias`` and its slice are this run's, before a
    fault that will need them re-pointed: a wrong target is refused while the database is whole."""
    if not kube:
        return
    from harness.kube.conductor import backing_service_slice

    apis = _kube_apis(kube)
    try:
        backing_service_slice(apis, kube["kube_namespace"], alias, run_id)
    finally:
        apis.close()


def _follow_on_kind(run_id: str, kube: dict, container: str, alias: str = "postgres") -> dict:
    """On kind, the Service ``alias`` re-pointed at ``container``'s address on the run's network;
    ``{}`` on docker (no call at all)."""
    if not kube:
        return {}
    from harness.kube.conductor import repoint_backing_service

    ip = _container_ip(run_id, container)
    apis = _kube_apis(kube)
    try:
        return repoint_backing_service(apis, kube["kube_namespace"], alias, ip, POSTGRES_PORT, run_id)
    finally:
        apis.close()


def stop_database(run_id: str) -> dict:
    """Stop the run's primary Postgres (the database fails). Rollback: ``restore_database``."""
    safety.require_run_id(run_id)
    kube = _kube_target(run_id)
    _verify_stand_in(run_id, kube)
    from harness.dr import replication

    safety.record_injected(run_id, "database-stopped", "postgres", rollback="harness.faults.postgres.restore_database",
                           arguments={"run_id": run_id, **kube})
    return _public(replication.stop_database(run_id))


def start_database(run_id: str) -> dict:
    """Start the run's primary Postgres again and wait until it accepts writes. On kind, the Service
    ``postgres`` then points at its address (a restart may give it another one)."""
    safety.require_run_id(run_id)
    kube = _kube_target(run_id)
    from harness.dr import replication

    result = replication.start_database(run_id)
    slice_ = _follow_on_kind(run_id, kube, result["container"])
    safety.record_rolled_back(run_id, "database-stopped", "postgres")
    return _public({**result, **({"endpoint_slice": slice_} if slice_ else {})})


def restore_database(run_id: str, kube_namespace: str = "", kube_context: str = "", kubeconfig: str = "") -> dict:
    """Rollback for every database fault: make ``postgres`` resolve to a running, writable server
    (start the stopped primary, or keep/promote the standby after a failover; no fail-back). On kind
    the Service ``postgres`` is pointed at that server too (``kube_*``: the fault record's cluster;
    empty: ``HARNESS_KUBE_NAMESPACE``/``HARNESS_KUBE_RUN_CONTEXT``/``KUBECONFIG``). Idempotent."""
    safety.require_run_id(run_id)
    kube = _kube_target(run_id, kube_namespace, kube_context, kubeconfig)
    from harness.dr import replication

    result = replication.restore_primary(run_id)
    slice_ = _follow_on_kind(run_id, kube, result["primary"])
    if slice_:
        result = {**result, "endpoint_slice": slice_,
                  "actions": result.get("actions", []) + ([f"Service postgres re-pointed at {slice_['ip']}"]
                                                          if slice_["changed"] else [])}
    result = _public(result)
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
    existing = replication.standby_for(run_id, primary, required=False)
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
    then points at the new primary, as RDS moves its DNS name (on kind: the network alias and the
    Service ``postgres``'s EndpointSlice). The fault counts as recovered when the promotion and the
    name move complete; if they do not, the rollback (``restore_database``) repairs the tier."""
    safety.require_run_id(run_id)
    kube = _kube_target(run_id)
    from harness.dr import replication

    _verify_stand_in(run_id, kube)
    primary = replication.current_primary(run_id) or replication.primary_name(run_id)
    safety.record_injected(run_id, "database-primary-killed", "postgres",
                           rollback="harness.faults.postgres.restore_database", arguments={"run_id": run_id, **kube},
                           details={"signal": kill_signal, "container": primary})
    result = replication.fail_over(run_id, kill_signal=kill_signal)
    slice_ = _follow_on_kind(run_id, kube, result["new_primary"])
    result = _public({**result, **({"endpoint_slice": slice_} if slice_ else {})})
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
    standby = replication.standby_for(run_id, primary)
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
    from harness.containers import is_connected
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
        if not is_connected(container, network):
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

    name = replication.current_primary(run_id, alias=alias)
    if not name:
        raise HarnessError(f"no database holds the name {alias!r} in run {run_id}",
                           "the database was not recovered; see the experiment's journal")
    return replication.host_database_url(name)
