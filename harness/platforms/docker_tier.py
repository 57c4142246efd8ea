"""The application tier capability on docker: every conductor of the run removed (the cluster
running the application is lost) and a fresh tier started from the removed one's configuration.

Works from any process that knows the run id (the chaos process: harness.platforms.attach) and
touches only containers labeled with it. The removed tier's configuration (image, environment --
which holds the database password and the admin token --, labels, limits) is kept in this
process's memory only; it never reaches a journal, the fault log or a return value. In the process
that owns the :class:`~harness.platforms.docker.DockerPlatform` (``platform``), a tier lost in
another process is replaced by the platform's own redeploy (same secrets).
"""
from __future__ import annotations

import logging
import time
import urllib.request
from typing import Any, Callable

from harness.containers import run_containers
from harness.errors import HarnessError, UsageError
from harness.labels import ZONE_LABEL
from harness.platforms.capabilities import ApplicationTier
from harness.platforms.docker import REPLICA_LABEL, SERVICE_LABEL, entry_point_health, run_conductor
from harness.wait import wait_for

__all__ = ["DockerApplicationTier", "CONDUCTORS"]

log = logging.getLogger(__name__)
CONDUCTORS = {"app": "conductor"}
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


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=2) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001 - not ready yet
        return False


def _engine() -> Any:
    from harness import containers

    return containers.docker_client()   # the engine run_containers lists from


class DockerApplicationTier(ApplicationTier):
    def __init__(self, run_id: str, *, client: Callable[[], Any] | None = None, platform: Any = None):
        self.run_id, self._client, self.platform = run_id, client or _engine, platform

    def lose(self, record: Callable[[dict[str, Any]], Any] = lambda details: None) -> dict[str, Any]:
        """Remove every conductor of the run; ``record`` gets the names before anything is removed."""
        found = run_containers(self.run_id, CONDUCTORS, all=True)
        if not found:
            raise UsageError(f"run {self.run_id} has no conductor containers", "bring the platform up first")
        for c in found:
            c.reload()
        specs = [_capture(c) for c in found]
        _REMOVED[self.run_id] = specs
        record({"containers": [c.name for c in found]})
        for c in found:
            c.remove(force=True)
        return {"removed": [c.name for c in found], "zones": sorted({s["labels"].get(ZONE_LABEL, "") for s in specs})}

    def replace(self, timeout_s: float, replicas: int = 0) -> dict[str, Any]:
        """A fresh application tier, as in a secondary region: new containers from the removed tier's
        image and configuration, one per removed replica, in the same zones.

        The promise on return is **routable**, as ``DockerPlatform.redeploy``'s: each new replica
        passes its readiness path on its own published port *and* the run's entry point (its
        Service) has passed its own health check of each one (``promise: "routable"``,
        ``routable_s``). A run without an entry point promises ``"ready"``. Either way, the return is
        not the RTO: that is what the harness's prober measured. Idempotent: if conductors of the run
        are already running, nothing is created."""
        running = [c for c in run_containers(self.run_id, CONDUCTORS, all=False) if c.status == "running"]
        if running:
            return {"deployed": [], "already_running": [c.name for c in running]}
        specs = _REMOVED.get(self.run_id)
        if not specs and self.platform is not None:   # lost in another process: the platform has the secrets
            t0 = time.monotonic()
            self.platform.redeploy()
            return {"deployed": [r.name for r in self.platform.replicas()], "promise": "routable",
                    "routable_s": round(time.monotonic() - t0, 1), "by": "the platform"}
        if not specs:
            raise HarnessError(f"no removed application tier of run {self.run_id} is known to this process",
                               "the tier's configuration lives only in the process that removed it; "
                               "redeploy with the platform (DockerPlatform.redeploy)")
        return self._recreate(specs, timeout_s)

    def _recreate(self, specs: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
        from harness.platforms.docker import discover_endpoints

        client = self._client()
        gen = _GENERATION[self.run_id] = _GENERATION.get(self.run_id, 0) + 1
        created = []
        t0 = time.monotonic()
        try:
            for i, spec in enumerate(specs):
                replica = f"conductor-dr{gen}-{i}"
                labels = {**spec["labels"], REPLICA_LABEL: replica}
                env = [e for e in spec["env"] if not e.startswith(("REPLICA_NAME=", "HOSTNAME="))] + [
                    f"REPLICA_NAME={replica}"]
                created.append(run_conductor(client, image=spec["image"], name=f"i2s-{self.run_id}-{replica}",
                                             environment=env, labels=labels, network=spec["network"],
                                             ports=spec["ports"], nano_cpus=spec["nano_cpus"],
                                             mem_limit=spec["mem_limit"]))
        except Exception as exc:
            for c in created:
                c.remove(force=True)
            raise HarnessError(f"could not start the new application tier: {type(exc).__name__}: {str(exc)[:200]}",
                               "see the docker engine's error above") from None
        ready: dict[str, str] = {}

        def all_ready() -> bool:
            ready.clear()
            ready.update({r: u for r, u in discover_endpoints(self.run_id).items() if _ready(u)})
            return len(ready) >= len(created)

        # A Docker error is not "not yet": it ends the wait at once, as before.
        wait_for(all_ready, timeout=timeout_s, interval=1.0, describe="the new application tier", retry_on=(),
                 on_timeout=lambda: HarnessError(f"the new application tier was not ready after {timeout_s:.0f}s "
                                                 f"({len(ready)}/{len(created)} ready)",
                                                 "see the new conductors' logs; is the database reachable as 'postgres'?"))
        ready_s = round(time.monotonic() - t0, 1)
        names = [c.name for c in created]
        service = specs[0]["labels"].get(SERVICE_LABEL, "conductor")
        if entry_point_health(self.run_id, service) is None:
            return {"deployed": names, "ready_s": ready_s, "promise": "ready", "routable_s": None}
        health: dict[str, Any] = {}
        unknown = "unknown to the entry point"

        def all_routable() -> bool:
            health.clear()
            health.update(entry_point_health(self.run_id, service) or {})
            return all(health.get(n) == () for n in names)

        # the rest of the same budget: a Docker error ends it at once, as above
        wait_for(all_routable, timeout=max(1.0, timeout_s - (time.monotonic() - t0)), interval=0.5,
                 describe="the entry point to route to the new application tier", retry_on=(),
                 on_timeout=lambda: HarnessError(
                     f"the new application tier is ready but its entry point does not route to it after "
                     f"{timeout_s:.0f}s ({', '.join(f'{n}: {health.get(n, unknown)}' for n in names)})",
                     "see the entry point Envoy's log (DNS alias, health check path)"))
        return {"deployed": names, "ready_s": ready_s, "promise": "routable",
                "routable_s": round(time.monotonic() - t0, 1)}
