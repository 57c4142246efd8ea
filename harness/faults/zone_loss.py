"""Zone loss on whichever platform the run is on: one experiment (chaos/zone-loss.json), two substrates.

* Kubernetes (kind or a cluster named explicitly): the zone's nodes drained with
  chaostoolkit-kubernetes (``harness.faults.zones.drain_zone``); rollback: uncordon.
* docker: the zone's containers lose power or are partitioned off (``harness.faults.zone_docker``);
  rollback: power back / reconnect, the Multi-AZ database failover in between when the primary was
  in the zone.

The configuration says which: ``platform`` (``HARNESS_PLATFORM``: docker | kind | context; unset:
Kubernetes if a kube namespace or context is configured, else docker) and
``zone_failure`` (``HARNESS_ZONE_FAILURE``: ``power-loss`` | ``partition`` on docker, ``drain`` on
Kubernetes; empty: ``power-loss`` on docker, ``drain`` elsewhere). Chaos Toolkit fixes a provider's
module and function when it validates the experiment, so the choice is made here, at run time. The
fault is recorded by the control as ``zone-lost`` on the zone, with the failure mode in its
details; ``restore_zone`` reads the mode back from the record, so ``undo_all`` reverses the right
thing from any process. On Kubernetes the context is checked here too (``safety.check_target`` with
``kube=True``), since this activity is not declared ``kube`` (on docker it reaches no cluster).
"""

from typing import Any, Dict

from harness.faults import safety, zone_docker, zones

__all__ = ["lose_zone", "restore_zone"]

FAULT = "zone-lost"


def _mode(configuration: Dict) -> tuple[str, str]:
    """(platform, failure mode), checked against what the platform offers (harness.platforms.attach);
    one line naming the fix otherwise."""
    from harness.platforms import attach

    platform = attach(configuration)
    return platform.name, platform.zones.choose(platform.name, str((configuration or {}).get("zone_failure") or ""))


@safety.fault(FAULT, target="{zone}", rollback="harness.faults.zone_loss.restore_zone")
def lose_zone(drain_timeout: int = 120, configuration: Dict = None, secrets: Dict = None) -> Any:
    """Lose the configuration's ``zone``: drain its nodes (Kubernetes) or cut its power / partition
    it off (docker), as ``zone_failure`` says. Rollback: ``restore_zone``."""
    run_id = safety.run_id_of(configuration)
    platform, failure = _mode(configuration)
    path = safety.fault_log_path(run_id, configuration)
    safety.add_details(run_id, FAULT, {"platform": platform, "failure": failure}, path=path)
    if failure == "power-loss":
        return zone_docker.power_off(configuration, fault=FAULT)
    if failure == "partition":
        return zone_docker.cut_off(configuration, fault=FAULT)
    safety.check_target(configuration, kube=True)
    return zones.drain_zone(timeout=drain_timeout, configuration=configuration)


@safety.fault(reverses=(FAULT,))
def restore_zone(configuration: Dict = None, secrets: Dict = None) -> Any:
    """Bring the configuration's ``zone`` back the way it was lost (the failure recorded with the
    fault, else the configuration's): uncordon, power back, or reconnect. Idempotent."""
    run_id = safety.run_id_of(configuration)
    platform, failure = _mode(configuration)
    path = safety.fault_log_path(run_id, configuration)
    zone = str((configuration or {}).get("zone") or "")
    recorded = [f for f in safety.active_faults(run_id, path=path) if f["fault"] == FAULT and f["target"] == zone]
    if recorded:
        failure = (recorded[-1].get("details") or {}).get("failure") or failure
    if failure == "power-loss":
        return zone_docker.power_on(configuration, fault=FAULT)
    if failure == "partition":
        return zone_docker.reconnect(configuration, fault=FAULT)
    safety.check_target(configuration, kube=True)
    return zones.uncordon_zone(configuration=configuration)
