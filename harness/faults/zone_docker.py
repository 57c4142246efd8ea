"""An availability zone fails on the docker platform: power loss or network partition, with rollbacks.

Every container of the run carries its zone (``topology.kubernetes.io/zone``, from
harness.placement): conductor replicas and their sidecars, the database primary or its standby,
Redis and RabbitMQ when placed there. A zone failure acts on exactly the run's containers with that
label (``harness.containers.run_containers``); users' entry points carry no zone (a regional load balancer).

* ``lose_zone_power``: every container of the zone is killed (SIGKILL: no shutdown, as when a
  zone's power goes). Rollback ``restore_zone_power``: each is started again (sidecars after the
  container whose network they share), or removed when a replacement took its place (a conductor
  whose replica name a newer container carries); a fenced ex-primary stays stopped (below).
* ``partition_zone``: the zone's containers are disconnected from every network they are on, while
  still running: no other zone reaches them and their published ports stop answering users (docker
  removes a container's port mappings with its last network endpoint). The zone's containers are
  cut off from each other too — stricter than a real inter-AZ partition, and the same for users.
  Rollback ``heal_zone_partition``: reconnected with the aliases they had (minus any alias another
  running container took meanwhile, so a fenced database never takes its name back).

If the database primary is in the failed zone, the existing Multi-AZ failover runs, as RDS starts it
by itself (``harness.dr.multi_az``: the roles, the failover, the fencing and the repair):
``harness.dr.replication.fail_over`` (kill/fence the primary, promote the standby in the
other zone, move the name ``postgres``; the one ``harness.faults.postgres.fail_over_database``
uses). RDS has no fail-back; in the rollback the fenced ex-primary (its timeline diverged) stays stopped
and off the network (``fenced_databases``; the run's cleanup removes it), and a new streaming
standby is built from the new primary in the recovered zone — what RDS does when the AZ returns —
so the pair is Multi-AZ again.

Functions take ``configuration``/``secrets`` as chaostoolkit-kubernetes' activities do
(``chaosk8s.node.actions.drain_nodes(..., secrets=None)``); the run id and the zone are the
configuration's ``run_id`` and ``zone``. The harness control records each fault (``safety.fault``)
before the action runs; the action adds the names and aliases its rollback needs
(``safety.add_details``) before it touches anything, so ``safety.undo_all`` restores the zone after
Ctrl-C or a crash. Should an interruption fall between the two, the rollbacks fall back to the
zone's label (and a service's role as its alias). The log holds container names, zones and aliases only.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from harness.docker_env import docker_client
from harness.containers import run_containers
from harness.errors import UsageError
from harness.faults import safety
from harness.dr import multi_az
from harness.dr.replication import ROLE_LABEL
from harness.labels import ZONE_LABEL
from harness.platforms.docker import REPLICA_LABEL, SERVICE_LABEL

__all__ = ["lose_zone_power", "restore_zone_power", "partition_zone", "heal_zone_partition", "zone_members",
           "power_off", "power_on", "cut_off", "reconnect"]

log = logging.getLogger(__name__)
POWER_FAULT = "zone-power-lost"
PARTITION_FAULT = "zone-partitioned"
# The Stack's services answer to their role's name on the run's network (harness.stack.services).
_SERVICE_ALIASES = ("postgres", "redis", "rabbitmq", "moto")


def _conventional_aliases(c: Any) -> List[str]:
    """The names a container answers to by convention, for a reconnect without recorded aliases: a
    backing service its role (harness.stack.services), a conductor its Service (SERVICE_LABEL)."""
    labels = c.labels or {}
    role = labels.get(ROLE_LABEL, "")
    return [a for a in ((role if role in _SERVICE_ALIASES else ""), labels.get(SERVICE_LABEL, "")) if a]


def _stack_network(run_id: str) -> str:
    """The run's stack network (``harness.dr.replication.network_name``)."""
    from harness.dr import replication

    return replication.network_name(run_id)


def _zone(configuration: Dict) -> str:
    zone = str((configuration or {}).get("zone") or "")
    if not zone or any(ch in zone for ch in ",=! "):
        raise UsageError(f"zone {zone!r} is not a single zone name", "use e.g. us-east-1a (HARNESS_ZONE)")
    return zone


def _log(run_id: str, configuration: Dict) -> Any:
    return safety.fault_log_path(run_id, configuration)


def _shares_network_of(c: Any) -> str:
    """The container whose network namespace ``c`` shares (a pod's sidecar), or ``""``."""
    mode = (c.attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    return mode.split(":", 1)[1] if mode.startswith("container:") else ""


def zone_members(configuration: Dict = None, secrets: Dict = None) -> List[str]:
    """Names of the run's containers labeled with the configuration's ``zone`` (any state)."""
    run_id = safety.run_id_of(configuration)
    return sorted(c.name for c in run_containers(run_id, {ZONE_LABEL: _zone(configuration)}, all=True))


def _record(run_id: str, configuration: Dict, fault: str, targets: List[Any], db: Dict[str, Any],
            extra: Dict[str, Any] | None = None) -> None:
    """What the rollback needs, added to the record the control made before the action ran."""
    names = [c.name for c in targets]
    safety.add_details(run_id, fault, {
        "containers": names, "database_primary": db["primary"] if db["primary"] in names else "",
        "standby": db["standby"], "standby_sync_state": db["standby_sync_state"], **(extra or {})},
        path=_log(run_id, configuration))


def _failover_delay(configuration: Dict) -> float:
    """Seconds between the zone's loss and the failover's start (configuration ``failover_delay_s``,
    default 0: at once). RDS Multi-AZ instance failovers "are typically 60–120 seconds" (Amazon RDS
    User Guide, "Failing over a Multi-AZ DB instance"); set it to model that detection time."""
    try:
        delay = float((configuration or {}).get("failover_delay_s") or 0)
    except (TypeError, ValueError):
        raise UsageError(f"failover_delay_s {configuration.get('failover_delay_s')!r} is not a number",
                         "set HARNESS_ZONE_FAILOVER_DELAY_S to seconds, e.g. 90") from None
    if delay < 0:
        raise UsageError(f"failover_delay_s {delay:g} is negative", "set HARNESS_ZONE_FAILOVER_DELAY_S to 0 or more")
    return delay


# -- power loss ----------------------------------------------------------------------------------
def power_off(configuration: Dict, fault: str = POWER_FAULT) -> Dict[str, Any]:
    """Kill every running container of the run in the configuration's ``zone`` at once (SIGKILL), as
    a zone's power loss.

    If the database primary was among them, RDS Multi-AZ's failover follows (the standby in another
    zone is promoted and takes the name ``postgres``). Returns the containers killed, ``killed_at``
    (epoch s) and the failover's own timeline (``killed_at``, ``promoted_at``, ``alias_moved_at``…)
    or ``None``. Rollback: ``restore_zone_power``.
    """
    run_id, zone, delay = safety.run_id_of(configuration), _zone(configuration), _failover_delay(configuration)
    targets = [c for c in run_containers(run_id, {ZONE_LABEL: zone}, all=False) if c.status in ("running", "paused")]
    if not targets:
        raise UsageError(f"no running container of run {run_id} in zone {zone!r}",
                         "name a zone the run's containers are placed in (harness.placement, HARNESS_ZONES)")
    db = multi_az.database_roles(run_id)
    primary_lost = bool(db["primary"]) and db["primary"] in {c.name for c in targets}
    _record(run_id, configuration, fault, targets, db)
    killed_at = time.time()
    errors = []

    def kill(c: Any) -> None:
        try:
            c.kill(signal="SIGKILL")
        except Exception as exc:  # noqa: BLE001 - one that already died is lost all the same
            errors.append(f"{c.name}: {exc}")

    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        list(pool.map(kill, targets))
    log.info("zone %s: power lost, %d containers killed", zone, len(targets))
    failover = multi_az.fail_over_if_primary_lost(run_id, db, primary_lost, delay)
    return {"zone": zone, "killed": [c.name for c in targets], "killed_at": killed_at,
            "database_primary_lost": primary_lost, "failover": failover, "kill_errors": errors}


def _retire_replaced(run_id: str, c: Any, details: Dict[str, Any]) -> List[str]:
    """A lost zone's container that the failover replaced: the fenced ex-primary stays stopped (a new
    standby is built in its zone), anything else is removed. Shared by both zone-fault rollbacks."""
    if c.name == details.get("database_primary"):
        return multi_az.replace_fenced_primary(run_id, c.name, details.get("standby_sync_state"))
    c.remove(force=True, v=True)
    return [f"removed {c.name} (replaced)"]


def _faults(run_id: str, configuration: Dict, fault: str, zone: str) -> List[Dict[str, Any]]:
    """The zone's active ``fault`` records; their ``containers`` default to the zone's label (an
    interruption between the control's record and the action's details)."""
    out = []
    for f in safety.active_faults(run_id, path=_log(run_id, configuration)):
        if f["fault"] == fault and f["target"] == zone:
            details = dict(f.get("details") or {})
            if "containers" not in details:
                details["containers"] = [c.name for c in run_containers(run_id, {ZONE_LABEL: zone}, all=True)]
            out.append({**f, "details": details})
    return out


def _replaced(run_id: str, c: Any, fault: Dict[str, Any]) -> bool:
    """``c`` must not come back: it is the ex-primary a failover replaced, or a conductor whose
    replica name a running container carries now."""
    from harness.dr import replication

    details = fault.get("details") or {}
    if c.name == details.get("database_primary"):
        return replication.current_primary(run_id) != c.name
    replica = (c.labels or {}).get(REPLICA_LABEL)
    if replica:
        return any(o.id != c.id and o.status == "running"
                   for o in run_containers(run_id, {REPLICA_LABEL: replica}, all=False))
    return False


def _existing(run_id: str, names: List[str]) -> List[Any]:
    wanted = set(names)
    return [c for c in run_containers(run_id, all=True) if c.name in wanted]


def _start_order(containers: List[Any]) -> List[Any]:
    # A sidecar sharing another container's network namespace starts only after that container.
    return sorted(containers, key=lambda c: bool(_shares_network_of(c)))


def power_on(configuration: Dict, fault: str = POWER_FAULT) -> Dict[str, Any]:
    """Power back: start every container the zone's power loss killed, unless a replacement took its
    place (then it is removed; a fenced ex-primary stays stopped and a new standby is built in its
    zone). Idempotent; safe after an interrupted fault."""
    run_id, zone = safety.run_id_of(configuration), _zone(configuration)
    actions: List[str] = []
    for record in _faults(run_id, configuration, fault, zone):
        details = record.get("details") or {}
        actions += multi_az.settle_database(run_id, details)
        for c in _start_order(_existing(run_id, details.get("containers", []))):
            c.reload()
            if _replaced(run_id, c, record):
                actions += _retire_replaced(run_id, c, details)
            elif c.status == "paused":
                c.unpause()
                actions.append(f"unpaused {c.name}")
            elif c.status != "running":
                c.start()
                actions.append(f"started {c.name}")
    return {"zone": zone, "actions": actions, "restored_at": time.time()}


# -- network partition ------------------------------------------------------------------------------
def _endpoints(c: Any) -> Dict[str, List[str]]:
    """``{network: [user-given aliases]}`` of ``c`` (not the name/id docker adds by itself)."""
    c.reload()
    nets = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    auto = {c.name, c.id[:12], c.id}
    return {n: [a for a in (ep.get("Aliases") or []) if a not in auto] for n, ep in nets.items()}


def cut_off(configuration: Dict, fault: str = PARTITION_FAULT) -> Dict[str, Any]:
    """Cut the run's containers in the configuration's ``zone`` off every network, leaving them
    running: other zones and
    users (their published ports) no longer reach them. Sidecars sharing a replica's network
    namespace are cut with it. If the database primary is among them, RDS Multi-AZ's failover follows
    (the fenced primary is killed by it, as RDS fences the old instance). Rollback: ``heal_zone_partition``.
    """
    run_id, zone, delay = safety.run_id_of(configuration), _zone(configuration), _failover_delay(configuration)
    members = [c for c in run_containers(run_id, {ZONE_LABEL: zone}, all=False) if c.status == "running"]
    targets = [c for c in members if not _shares_network_of(c)]
    if not targets:
        raise UsageError(f"no running container of run {run_id} in zone {zone!r}",
                         "name a zone the run's containers are placed in (harness.placement, HARNESS_ZONES)")
    db = multi_az.database_roles(run_id)
    primary_lost = bool(db["primary"]) and db["primary"] in {c.name for c in targets}
    networks = {c.name: _endpoints(c) for c in targets}
    _record(run_id, configuration, fault, targets, db, {"networks": networks})
    cut_at = time.time()
    client = docker_client()
    for c in targets:
        for net in networks[c.name]:
            client.networks.get(net).disconnect(c, force=True)
    log.info("zone %s: partitioned, %d containers cut off", zone, len(targets))
    failover = multi_az.fail_over_if_primary_lost(run_id, db, primary_lost, delay)
    return {"zone": zone, "partitioned": [c.name for c in targets], "partitioned_at": cut_at,
            "sharing_network": [c.name for c in members if _shares_network_of(c)],
            "database_primary_lost": primary_lost, "failover": failover}


def _holders(network: Any, alias: str, exclude_id: str) -> bool:
    network.reload()
    for cid in (network.attrs.get("Containers") or {}):
        if cid == exclude_id:
            continue
        try:
            other = docker_client().containers.get(cid)
        except Exception:  # noqa: BLE001 - gone meanwhile
            continue
        eps = (other.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        if other.status == "running" and alias in ((eps.get(network.name) or {}).get("Aliases") or []):
            return True
    return False


def reconnect(configuration: Dict, fault: str = PARTITION_FAULT) -> Dict[str, Any]:
    """Reconnect the partitioned containers of the configuration's ``zone`` with the aliases they
    had, except an alias a running container holds now (the name ``postgres`` after a failover);
    the ex-primary a failover replaced stays fenced (stopped, off the network) and a new standby is
    built in its zone. Idempotent."""
    run_id, zone = safety.run_id_of(configuration), _zone(configuration)
    client = docker_client()
    actions: List[str] = []
    for record in _faults(run_id, configuration, fault, zone):
        details = record.get("details") or {}
        networks: Dict[str, Dict[str, List[str]]] = details.get("networks") or {}
        fallback: Dict[str, List[str]] = {_stack_network(run_id): []}  # no details recorded: the run's network
        actions += multi_az.settle_database(run_id, details)
        for c in _existing(run_id, details.get("containers", [])):
            c.reload()
            if _replaced(run_id, c, record):
                actions += _retire_replaced(run_id, c, details)
                continue
            attached = _endpoints(c)
            if _shares_network_of(c):
                continue  # it has the network of the container it shares, reconnected with that one
            mine = networks.get(c.name) or {n: _conventional_aliases(c) for n in fallback}
            for net_name, aliases in mine.items():
                if net_name in attached:
                    continue
                net = client.networks.get(net_name)
                keep = [a for a in aliases if not _holders(net, a, c.id)]
                net.connect(c, aliases=keep or None)
                actions.append(f"reconnected {c.name} to {net_name}" + (f" as {', '.join(keep)}" if keep else ""))
    return {"zone": zone, "actions": actions, "healed_at": time.time()}


# -- the activities ------------------------------------------------------------------------------------
@safety.fault(POWER_FAULT, target="{zone}", rollback="harness.faults.zone_docker.restore_zone_power")
def lose_zone_power(configuration: Dict = None, secrets: Dict = None) -> Dict[str, Any]:
    """Kill every running container of the run in the configuration's ``zone`` at once (SIGKILL), as
    a zone's power loss; the database fails over if its primary was there. Rollback:
    ``restore_zone_power``. (The work: ``power_off``.)"""
    return power_off(configuration)


@safety.fault(reverses=(POWER_FAULT,))
def restore_zone_power(configuration: Dict = None, secrets: Dict = None) -> Dict[str, Any]:
    """Power back in the configuration's ``zone``: its containers started again, or removed where a
    replacement took their place (a fenced ex-primary stays stopped: a new standby instead). Idempotent."""
    return power_on(configuration)


@safety.fault(PARTITION_FAULT, target="{zone}", rollback="harness.faults.zone_docker.heal_zone_partition")
def partition_zone(configuration: Dict = None, secrets: Dict = None) -> Dict[str, Any]:
    """Cut the run's containers in the configuration's ``zone`` off every network while they keep
    running (their published ports stop answering); the database fails over if its primary was
    there. Rollback: ``heal_zone_partition``. (The work: ``cut_off``.)"""
    return cut_off(configuration)


@safety.fault(reverses=(PARTITION_FAULT,))
def heal_zone_partition(configuration: Dict = None, secrets: Dict = None) -> Dict[str, Any]:
    """Reconnect the partitioned containers of the configuration's ``zone`` with their aliases (not
    one another container holds now). Idempotent."""
    return reconnect(configuration)
