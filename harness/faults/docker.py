"""Docker-platform faults on the application tier: the whole tier lost and redeployed.

Only containers labeled with the run id are touched (see ``safety``). The removed tier's
configuration (image, environment — which holds the database password and the admin token —,
labels, limits) is kept in this process's memory only, so the redeployment after a cluster loss can
use the same image and settings; it never reaches the journal, the fault log or a return value.
"""

import logging
import time
import urllib.request
from typing import Any, Dict

from harness.containers import run_containers
from harness.errors import HarnessError, UsageError
from harness.faults import safety
from harness.labels import ZONE_LABEL
from harness.platforms.docker import SERVICE_LABEL, entry_point_health, service_networking
from harness.wait import wait_for

__all__ = ["remove_application_tier", "deploy_application_tier"]

log = logging.getLogger(__name__)
REPLICA_LABEL = "i2s-harness.replica"
APP = {"app": "conductor"}
# run id -> what the removed conductors were (in memory only: the environment holds secrets)
_REMOVED: dict[str, list[dict[str, Any]]] = {}
_GENERATION: dict[str, int] = {}


def _capture(c: Any) -> dict[str, Any]:
    attrs = c.attrs
    host = attrs.get("HostConfig", {})
    networks = list((attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())
    return {"image": attrs["Config"]["Image"], "env": list(attrs["Config"].get("Env") or []),
            "labels": dict(c.labels), "network": networks[0] if networks else None,
            "ports": list((attrs["Config"].get("ExposedPorts") or {}).keys()),
            "nano_cpus": host.get("NanoCpus") or None, "mem_limit": host.get("Memory") or None}


@safety.fault("application-tier-lost", target="application tier",
              rollback="harness.faults.backups.deploy_application_tier")
def remove_application_tier(configuration: Dict = None) -> dict:
    """Remove every conductor of the run (the cluster running the application is lost).

    The tier's configuration stays in this process's memory for ``deploy_application_tier``.
    """
    run_id = safety.run_id_of(configuration)
    found = run_containers(run_id, APP, all=True)
    if not found:
        raise UsageError(f"run {run_id} has no conductor containers", "bring the platform up first")
    for c in found:
        c.reload()
    specs = [_capture(c) for c in found]
    _REMOVED[run_id] = specs
    safety.add_details(run_id, "application-tier-lost", {"containers": [c.name for c in found]},
                       path=safety.fault_log_path(run_id, configuration))
    for c in found:
        c.remove(force=True)
    return {"removed": [c.name for c in found], "zones": sorted({s["labels"].get(ZONE_LABEL, "") for s in specs})}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=2) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001 - not ready yet
        return False


@safety.fault(reverses=("application-tier-lost",))
def deploy_application_tier(timeout_s: float = 180.0, configuration: Dict = None) -> dict:
    """A fresh application tier, as in a secondary region: new containers from the removed tier's
    image and configuration, one per removed replica, in the same zones. Waits until each is ready.

    The promise on return is **routable**, as ``DockerPlatform.redeploy``'s: each new replica passes
    its readiness path on its own published port *and* the run's entry point (its Service) has
    passed its own health check of each one, so users reach them (``promise: "routable"``,
    ``routable_s``). A run without an entry point promises ``"ready"``: users reach the replicas
    directly. Either way, the return is not the RTO: that is what the harness's prober measured.

    Idempotent: if conductors of the run are already running, nothing is created.
    """
    run_id = safety.run_id_of(configuration)
    running = [c for c in run_containers(run_id, APP, all=False) if c.status == "running"]
    if running:
        return {"deployed": [], "already_running": [c.name for c in running]}
    specs = _REMOVED.get(run_id)
    if not specs:
        raise HarnessError(f"no removed application tier of run {run_id} is known to this process",
                           "the tier's configuration lives only in the process that removed it; "
                           "redeploy with the platform (DockerPlatform.redeploy)")
    client = safety.engine()
    gen = _GENERATION[run_id] = _GENERATION.get(run_id, 0) + 1
    created = []
    t0 = time.monotonic()
    try:
        for i, spec in enumerate(specs):
            replica = f"conductor-dr{gen}-{i}"
            labels = {**spec["labels"], REPLICA_LABEL: replica}
            env = [e for e in spec["env"] if not e.startswith(("REPLICA_NAME=", "HOSTNAME="))] + [
                f"REPLICA_NAME={replica}"]
            c = client.containers.run(
                spec["image"], name=f"i2s-{run_id}-{replica}", detach=True, environment=env, labels=labels,
                network=spec["network"], ports={p: ("127.0.0.1", None) for p in spec["ports"]},
                # the Service alias, so the re-created replicas rejoin the entry point's DNS name
                networking_config=service_networking(labels, spec["network"]),
                nano_cpus=spec["nano_cpus"], mem_limit=spec["mem_limit"])
            created.append(c)
    except Exception as exc:
        for c in created:
            c.remove(force=True)
        raise HarnessError(f"could not start the new application tier: {type(exc).__name__}: {str(exc)[:200]}",
                           "see the docker engine's error above") from None
    from harness.platforms.docker import discover_endpoints

    ready: dict[str, str] = {}

    def all_ready() -> bool:
        ready.clear()
        ready.update({r: u for r, u in discover_endpoints(run_id).items() if _ready(u)})
        return len(ready) >= len(created)

    # A Docker error is not "not yet": it ends the wait at once, as before.
    wait_for(all_ready, timeout=timeout_s, interval=1.0, describe="the new application tier", retry_on=(),
             on_timeout=lambda: HarnessError(f"the new application tier was not ready after {timeout_s:.0f}s "
                                             f"({len(ready)}/{len(created)} ready)",
                                             "see the new conductors' logs; is the database reachable as 'postgres'?"))
    ready_s = round(time.monotonic() - t0, 1)
    names = [c.name for c in created]
    service = specs[0]["labels"].get(SERVICE_LABEL, "conductor")
    if entry_point_health(run_id, service) is None:
        return {"deployed": names, "ready_s": ready_s, "promise": "ready", "routable_s": None}
    health: dict[str, Any] = {}
    UNKNOWN = "unknown to the entry point"  # noqa: N806 - a message, not a variable

    def all_routable() -> bool:
        health.clear()
        health.update(entry_point_health(run_id, service) or {})
        return all(health.get(n) == () for n in names)

    # the rest of the same budget: a Docker error ends it at once, as above
    wait_for(all_routable, timeout=max(1.0, timeout_s - (time.monotonic() - t0)), interval=0.5,
             describe="the entry point to route to the new application tier", retry_on=(),
             on_timeout=lambda: HarnessError(
                 f"the new application tier is ready but its entry point does not route to it after {timeout_s:.0f}s "
                 f"({', '.join(f'{n}: {health.get(n, UNKNOWN)}' for n in names)})",
                 "see the entry point Envoy's log (DNS alias, health check path)"))
    return {"deployed": names, "ready_s": ready_s, "promise": "routable",
            "routable_s": round(time.monotonic() - t0, 1)}
