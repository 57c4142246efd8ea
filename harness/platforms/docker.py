"""The docker platform: N conductor replicas as containers on the stack's network.

Each replica runs as the Deployment specifies it (ports, readiness path, CPU and memory limits,
the three URLs it reads from Secrets), is labeled with a zone (harness.placement: ``even`` or
``one-zone`` over the configured zones) and publishes its ports on 127.0.0.1 only
(``endpoints()``: each replica directly, as a ``kubectl port-forward`` would reach a pod).

Users reach the conductor as they would through its Service: ``service_url()`` is a real Envoy
(harness.mesh.service) load-balancing over the replicas, which join the network under the
Service's name as a DNS alias, with active health checks that are the Deployment's
readinessProbe. Replaced or redeployed replicas are picked up through DNS; nothing is re-registered.

A pod's sidecar: with ``sidecar`` set (a function giving a replica's Envoy bootstrap and files),
every replica, also one started later, gets an Envoy container in its network namespace
(``network_mode=container:<conductor>``); the ports it serves to the host (its admin API) are
published by the conductor container (``pod_ports``), because the namespace's owner publishes them.
``pod_init`` (optional) runs first in that namespace, as istio-init does (the mesh's inbound
capture), and ``service_probe`` replaces the readinessProbe the entry point checks (the injector's
probe rewrite, when capture would otherwise send the check through mTLS).
"""
from __future__ import annotations

import dataclasses
import logging
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.config import PROJECT_ROOT, Settings
from harness.docker_env import docker_client, ensure_image, export_container_logs
from harness.labels import RUN_ID_LABEL, ZONE_LABEL, labels_for
from harness.manifests import ConductorSpec, conductor_spec
from harness.placement import Placement, placement_for
from harness.platforms.base import Platform, Replica
from harness.wait import wait_for

__all__ = ["DockerPlatform", "conductor_image", "run_conductor", "discover_endpoints", "discover_service_url", "service_networking",
           "entry_point_health", "SidecarConfig", "REPLICA_LABEL", "SERVICE_LABEL"]

log = logging.getLogger(__name__)
REPLICA_LABEL = "i2s-harness.replica"
SERVICE_LABEL = "i2s-harness.service"    # the Service (DNS alias) a replica serves behind
REFERENCE_IMAGE = "i2s-harness/conductor"  # tagged by build-context digest, and :dev


def conductor_image(settings: Settings) -> str:
    """The user's image if configured, else the reference conductor, built on first use."""
    if settings.conductor_image:
        return settings.conductor_image
    return ensure_image(REFERENCE_IMAGE, PROJECT_ROOT / "sut" / "conductor")


def discover_endpoints(run_id: str, http_port: int = 8080) -> dict[str, str]:
    """``{replica: base URL}`` of the run's running conductors, found by label as a Service finds pods.

    Usable from any process (a chaos experiment, a prober) that knows only the run id, and it
    follows replicas that were replaced (a recovered application tier has new containers).
    """
    out = {}
    for c in docker_client().containers.list(filters={"label": [f"{RUN_ID_LABEL}={run_id}", "app=conductor"],
                                                       "status": "running"}):
        bindings = (c.attrs["NetworkSettings"]["Ports"] or {}).get(f"{http_port}/tcp") or []
        if bindings:
            out[c.labels.get(REPLICA_LABEL, c.name)] = f"http://127.0.0.1:{bindings[0]['HostPort']}"
    return dict(sorted(out.items()))


def service_networking(labels: dict[str, str], network: str) -> dict[str, Any] | None:
    """``networking_config`` that puts a replica behind its Service: the network alias named by its
    :data:`SERVICE_LABEL` (None without one). Whoever starts a conductor container (the platform,
    a chaos recovery re-creating the tier from a removed one's labels) passes this to
    ``containers.run`` so the entry point's DNS finds it."""
    alias = labels.get(SERVICE_LABEL)
    if not alias:
        return None
    return {network: docker_client().api.create_endpoint_config(aliases=[alias])}


def discover_service_url(run_id: str) -> str:
    """The run's entry point (``service_url()``) found by label, from any process that knows only
    the run id (a chaos experiment, a prober); "" when the run has none running."""
    from harness.mesh.containers import MESH_ROLE_LABEL
    from harness.mesh.service import SERVICE_PORT

    for c in docker_client().containers.list(filters={"label": [f"{RUN_ID_LABEL}={run_id}",
                                                               f"{MESH_ROLE_LABEL}=service"], "status": "running"}):
        bindings = (c.attrs["NetworkSettings"]["Ports"] or {}).get(f"{SERVICE_PORT}/tcp") or []
        if bindings:
            return f"http://127.0.0.1:{bindings[0]['HostPort']}"
    return ""


def entry_point_health(run_id: str, service: str = "conductor") -> dict[str, tuple[str, ...]] | None:
    """``{container name: Envoy health flags}`` at the run's entry point for ``service`` (the
    replicas' Service alias), found by label from any process (a chaos rollback): ``()`` = routable;
    an address no running conductor holds keeps its IP. ``None`` when the run has no such entry point
    (then users reach the replicas directly)."""
    from harness.measure.envoy_admin import HttpAdmin
    from harness.mesh.containers import MESH_ROLE_LABEL, published_url
    from harness.mesh.service import ADMIN_PORT, SERVICE_CLUSTER

    client = docker_client()
    entry = client.containers.list(filters={"label": [f"{RUN_ID_LABEL}={run_id}", f"{MESH_ROLE_LABEL}=service",
                                                      f"app={service}-service"], "status": "running"})
    if not entry:
        return None
    by_ip = {}
    for c in client.containers.list(filters={"label": [f"{RUN_ID_LABEL}={run_id}", "app=conductor"]}):
        for net in (c.attrs["NetworkSettings"]["Networks"] or {}).values():
            if net.get("IPAddress"):
                by_ip[net["IPAddress"]] = c.name
    cluster = HttpAdmin(published_url(entry[0], ADMIN_PORT)).clusters(only=SERVICE_CLUSTER).get(SERVICE_CLUSTER)
    return {by_ip.get(h.ip, h.ip): h.health_flags for h in (cluster.hosts.values() if cluster else ())}


def run_conductor(client: Any, *, image: str, name: str, environment: Any, labels: dict[str, str], network: str,
                  ports: Any, nano_cpus: int | None, mem_limit: int | None) -> Any:
    """Start one conductor container: the only place one is created (the platform's replicas, and a
    replaced application tier in the chaos process: harness.platforms.docker_tier). It joins
    ``network`` under its Service's alias (:func:`service_networking`), publishes ``ports``
    (``"8080/tcp"``...) on 127.0.0.1 only, with the Deployment's CPU and memory limits."""
    return client.containers.run(
        image, name=name, detach=True, environment=environment, labels=labels, network=network,
        # the Service's name as an alias: the entry point resolves it to every running replica
        networking_config=service_networking(labels, network),
        ports={p: ("127.0.0.1", None) for p in ports},
        nano_cpus=nano_cpus, mem_limit=mem_limit)


# (replica name, zone, its IP on the stack network) -> (Envoy bootstrap, files for the container)
SidecarConfig = Callable[[str, str, str], tuple[dict[str, Any], tuple[Any, ...]]]


class DockerPlatform(Platform):
    name = "docker"

    def __init__(self, settings: Settings, stack: Any, spec: ConductorSpec | None = None,
                 name_prefix: str = "conductor"):
        super().__init__(settings, stack)
        self.name_prefix = name_prefix  # distinct prefixes let two platforms share one run
        self.spec = spec or conductor_spec(settings.manifests_dir)
        self._containers: dict[str, Any] = {}   # replica name -> docker container
        self._zones: dict[str, str] = {}
        self._generation = 0
        self.placement: Placement = getattr(stack, "placement", None) or placement_for(settings)
        self.service_alias = name_prefix          # the Service's name on the network, as DNS alias
        self._service: Any = None                 # the entry point's RunningEnvoy
        self._sidecars: dict[str, Any] = {}       # replica -> its sidecar's RunningEnvoy
        self.sidecar: SidecarConfig | None = None
        self.pod_ports: tuple[int, ...] = ()      # published by the conductor for its sidecar
        self.pod_init: Callable[[str, Any], None] | None = None   # (replica, its container) before the sidecar
        self.service_probe: Any = None            # a harness.manifests.Probe for the entry point, if not the spec's

    # -- lifecycle -------------------------------------------------------------------------
    def up(self) -> None:
        """Start the replicas and the entry point; return once they are **routable**.

        The promise on return (also :meth:`redeploy`'s): every replica passed its readinessProbe
        directly *and* the entry point (``service_url()``) has passed its own health check of each
        one and lists no address of a replica that is gone -- a request to ``service_url()`` may go
        to any of them. Not merely "started": an RTO measured right after starts from a tier users
        can reach. Raises :class:`harness.errors.ReadinessTimeout` after ``ready_timeout_s``.
        """
        image = conductor_image(self.settings)
        names = [self._replica_name(i) for i in range(self.settings.replicas)]
        # Zones fixed before the parallel start, so the placement does not depend on thread order.
        self._zones.update({n: self.placement.replica_zone(i) for i, n in enumerate(names)})
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(lambda n: self.start_replica(n, image), names))
        self.wait_ready(names)
        self.start_service()
        self.wait_routable(names)

    def _replica_name(self, index: int) -> str:
        return f"{self.name_prefix}-{self._generation}-{index}"

    def container_name(self, replica: str) -> str:
        return f"i2s-{self.settings.run_id}-{replica}"

    def app_env(self, replica: str, zone: str) -> dict[str, str]:
        env = {"ENVIRONMENT": "staging", "LOG_LEVEL": "info", "REPLICA_NAME": replica, "ZONE": zone,
               "ADMIN_TOKEN": self.admin_token, "CPU_COST_MS": str(self.settings.cpu_cost_ms)}
        urls = self.stack.app_env()
        for var in self.spec.env_from_secrets:  # exactly the variables the Deployment provides
            env[var] = urls[var]
        return env

    def start_replica(self, replica: str, image: str | None = None, zone: str | None = None) -> Any:
        client = docker_client()
        index = len(self._zones)
        zone = zone or self._zones.get(replica) or self.placement.replica_zone(index)
        self._zones[replica] = zone
        spec = self.spec
        labels = labels_for(self.settings.run_id, **{ZONE_LABEL: zone, REPLICA_LABEL: replica, "app": "conductor",
                                                     SERVICE_LABEL: self.service_alias})
        container = run_conductor(
            client, image=image or conductor_image(self.settings), name=self.container_name(replica),
            environment=self.app_env(replica, zone), labels=labels, network=self.stack.network.name,
            ports=[f"{p}/tcp" for p in (spec.http_port, spec.metrics_port, *self.pod_ports)],
            # The manifest's limits: one CPU, 1 GiB; the requests have no docker equivalent.
            nano_cpus=int(spec.cpu_limit * 1e9) if spec.cpu_limit else None,
            mem_limit=int(spec.memory_limit) if spec.memory_limit else None)
        self._containers[replica] = container
        if self.sidecar is not None:
            self.attach_sidecar(replica)
        return container

    # -- the pod's sidecar and the Service -------------------------------------------------------
    def ip_of(self, replica: str) -> str:
        """The replica's address on the stack network (its pod IP)."""
        c = self._containers[replica]
        c.reload()
        return c.attrs["NetworkSettings"]["Networks"][self.stack.network.name]["IPAddress"]

    def attach_sidecar(self, replica: str) -> Any:
        """Start ``replica``'s Envoy sidecar in its network namespace (``self.sidecar`` gives the config)."""
        from harness.mesh.containers import start_envoy

        if self.sidecar is None:
            raise RuntimeError("no sidecar configuration set on the platform")
        old = self._sidecars.pop(replica, None)
        if old is not None:
            old.remove()
        zone = self._zones[replica]
        if self.pod_init is not None:   # before the proxy, as istio-init before istio-proxy
            self.pod_init(replica, self._containers[replica])
        bootstrap, files = self.sidecar(replica, zone, self.ip_of(replica))
        envoy = start_envoy(self.settings, name=f"{self.container_name(replica)}-envoy", role="sidecar",
                            bootstrap=bootstrap, files=tuple(files), netns_of=self._containers[replica],
                            labels={ZONE_LABEL: zone, REPLICA_LABEL: replica, "app": "conductor-sidecar"},
                            ready_timeout=self.settings.ready_timeout_s)
        self._sidecars[replica] = envoy
        return envoy

    def sidecar_admin(self, replica: str) -> Any:
        """The replica's sidecar admin API (harness.measure.envoy_admin.HttpAdmin)."""
        return self._sidecars[replica].admin

    def start_service(self) -> Any:
        """The Service-like entry point (once per platform; replicas come and go through DNS)."""
        from harness.mesh.containers import start_envoy
        from harness.mesh.service import SERVICE_PORT, service_bootstrap

        if self._service is not None:
            return self._service
        probe = self.service_probe or self.spec.readiness
        if probe is None:
            raise RuntimeError("the Deployment has no readinessProbe; the entry point mirrors it")
        self._service = start_envoy(self.settings, name=f"i2s-{self.settings.run_id}-{self.name_prefix}-service",
                                    role="service", bootstrap=service_bootstrap(self.service_alias, probe),
                                    network=self.stack.network.name, ports=(SERVICE_PORT,),
                                    labels={"app": f"{self.name_prefix}-service"},
                                    ready_timeout=self.settings.ready_timeout_s)
        return self._service

    def service_admin(self) -> Any:
        """The entry point's admin API (its ``/clusters`` health flags are the Service's endpoints)."""
        if self._service is None:
            raise RuntimeError("the entry point is not running; call up() first")
        return self._service.admin

    def service_health(self) -> dict[str, tuple[str, ...]]:
        """``{replica: Envoy health flags}`` at the entry point (``()`` = routable); replicas the
        entry point does not know are absent; addresses of no current replica keep their IP."""
        from harness.mesh.service import SERVICE_CLUSTER

        by_ip = {}
        for name in self._containers:
            try:
                by_ip[self.ip_of(name)] = name
            except Exception:  # noqa: BLE001 - a removed replica has no address
                continue
        cluster = self.service_admin().clusters(only=SERVICE_CLUSTER).get(SERVICE_CLUSTER)
        hosts = cluster.hosts.values() if cluster else ()
        return {by_ip.get(h.ip, h.ip): h.health_flags for h in hosts}

    def wait_routable(self, names: list[str] | None = None, timeout: float | None = None) -> None:
        """Wait until the entry point routes to every replica in ``names`` (health checks passed) and
        holds no address of a replica that is gone. Envoy keeps a host that left DNS until its active
        health check fails it (``ignore_health_on_host_removal`` is off), as a Service's endpoints
        linger until the endpoints controller catches up: a redeploy returns once they are gone."""
        names = names or list(self._containers)

        def routable() -> bool:
            health = self.service_health()
            missing = {n: health.get(n, "unknown to the entry point") for n in names if health.get(n) != ()}
            gone = [h for h in health if h not in self._containers]   # an address no current replica has
            if missing or gone:
                raise RuntimeError(", ".join([f"{n}: {f}" for n, f in missing.items()]
                                             + [f"{h}: gone, still listed" for h in gone]))
            return True

        wait_for(routable, timeout=timeout or self.settings.ready_timeout_s, interval=0.5,
                 describe=f"the entry point to route to {', '.join(names)}",
                 hint="see the service Envoy's log in the report (DNS alias, health check path)")

    def service_url(self) -> str:
        from harness.mesh.containers import published_url
        from harness.mesh.service import SERVICE_PORT

        if self._service is None:
            raise RuntimeError("the entry point is not running; call up() first")
        return published_url(self._service.container, SERVICE_PORT)

    def wait_ready(self, names: list[str] | None = None, timeout: float | None = None) -> None:
        names = names or list(self._containers)
        timeout = timeout or self.settings.ready_timeout_s

        def all_ready() -> bool:
            states = {n: self._probe(n) for n in names}
            not_ready = [f"{n}={s}" for n, s in states.items() if s != "ready"]
            if not_ready:
                raise RuntimeError(", ".join(not_ready))
            return True

        wait_for(all_ready, timeout=timeout, interval=1.0,
                 describe=f"conductor replicas {', '.join(names)} to pass {self.spec.readiness_path}",
                 hint="see the conductor logs in the report; a user image must serve the manifest's probe paths")

    def _probe(self, replica: str) -> str:
        container = self._containers.get(replica)
        if container is None:
            return "absent"
        try:
            container.reload()
        except Exception:  # noqa: BLE001 - removed behind our back (a sweep, an interrupted run)
            return "absent"
        if container.status != "running":
            return container.status
        url = self._url(replica, self.spec.http_port) + self.spec.readiness_path
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return "ready" if resp.status == 200 else f"http {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"http {exc.code}"
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
            return type(exc).__name__

    def _url(self, replica: str, port: int) -> str:
        c = self._containers[replica]
        c.reload()
        bindings = (c.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
        if not bindings:
            raise RuntimeError(f"{replica} has no published port {port}")
        return f"http://127.0.0.1:{bindings[0]['HostPort']}"

    # -- queries -------------------------------------------------------------------------------
    def endpoints(self) -> list[str]:
        out = []
        for name in self._containers:
            try:
                out.append(self._url(name, self.spec.http_port))
            except Exception:  # noqa: BLE001 - a stopped replica has no endpoint
                continue
        return out

    def replicas(self) -> list[Replica]:
        out = []
        for name in self._containers:
            state = self._probe(name)
            try:
                url = self._url(name, self.spec.http_port)
            except Exception:  # noqa: BLE001
                url = ""
            out.append(Replica(name=name, zone=self._zones[name], ready=state == "ready", admin_url=url))
        return out

    @classmethod
    @contextmanager
    def for_zone_loss(cls, settings: Settings, shared: Callable[[], Platform],
                      failed: Callable[[], bool] = lambda: False) -> Iterator[Platform]:
        """A deployment of its own beside the session's (run id ``<run>-zl``): the zone faults kill
        and fence its database. Its stack placed over the zones (harness.placement), the seed's
        ``replicas`` behind the Service-like entry point, a synchronous streaming standby in another
        zone (RDS Multi-AZ replicates synchronously). Removed at the end, also on failure and Ctrl-C;
        its containers' logs exported first when ``failed()``."""
        from harness.docker_env import sweep
        from harness.dr import replication
        from harness.placement import spread_facts
        from harness.stack.services import Stack

        facts = spread_facts(settings.manifests_dir)
        s = dataclasses.replace(settings, run_id=f"{settings.run_id[:36]}-zl", replicas=facts.replicas,
                                zone_placement="even")
        stack, platform = Stack(s), None
        try:
            stack.start()
            platform = cls(s, stack)
            platform.up()
            replication.start_standby(s.run_id, synchronous=True)
            yield platform
        finally:
            if failed():
                export_container_logs(s.run_id, settings.report_path / "logs" / "zone_loss")
            if not s.keep:
                if platform is not None:
                    platform.down()
                replication.cleanup_dr(s.run_id)
                stack.stop()
                sweep(s.run_id)

    # -- capability adapters ------------------------------------------------------------------------
    def make_mesh(self, reading: Any) -> Any:
        from harness.platforms.docker_mesh import DockerMeshAdapter

        return DockerMeshAdapter(self.settings, self.stack, reading)

    def make_zones(self) -> Any:
        from harness.platforms.docker_zones import DockerZones

        return DockerZones(self)

    def make_application_tier(self) -> Any:
        from harness.platforms.docker_tier import DockerApplicationTier

        return DockerApplicationTier(self.settings.run_id, platform=self)

    def user_endpoints(self) -> Callable[[], list[str]]:
        run_id = self.settings.run_id
        # Found by label on every call: follows replicas replaced by a recovery in the chaos process.
        return lambda: list(discover_endpoints(run_id).values())

    def chaos_configuration(self) -> dict[str, str]:
        # The chaos process finds the run's containers by label: the run id is all it needs.
        return {"HARNESS_PLATFORM": self.name}

    def container(self, replica: str) -> Any:
        return self._containers[replica]

    def zone_of(self, replica: str) -> str:
        return self._zones[replica]

    # -- what chaos needs -------------------------------------------------------------------------
    def stop_replica(self, replica: str, timeout: int = 10) -> None:
        sidecar = self._sidecars.pop(replica, None)
        if sidecar is not None:  # the pod goes as a whole
            sidecar.remove()
        self._containers[replica].stop(timeout=timeout)

    def resume_replica(self, replica: str) -> None:
        self._containers[replica].start()
        if self.sidecar is not None:  # a restarted container has a new network namespace
            self.attach_sidecar(replica)

    def remove_all(self) -> list[str]:
        """Remove every conductor (a lost application tier); returns their names."""
        gone = list(self._containers)
        for envoy in self._sidecars.values():  # a sidecar cannot outlive its pod's namespace
            envoy.remove()
        self._sidecars.clear()
        for c in self._containers.values():
            try:
                c.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - already gone is fine
                log.debug("remove %s: %s", c.name, exc)
        self._containers.clear()
        self._zones.clear()
        return gone

    def redeploy(self) -> None:
        """A fresh application tier (new containers, new names), as a recovery into a new region.

        Returns once the new tier is **routable** through the same entry point (see :meth:`up`);
        ``harness.faults.backups.deploy_application_tier``, the chaos rollback that re-creates a
        removed tier from another process, makes the same promise."""
        self._generation += 1
        self.up()

    def export_logs(self, dest: Path) -> list[Path]:
        return export_container_logs(self.settings.run_id, dest)

    def down(self) -> None:
        if not self.settings.keep:
            self.remove_all()
            if self._service is not None:
                self._service.remove()
                self._service = None

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["limits"] = {"cpu": self.spec.cpu_limit, "memory_bytes": self.spec.memory_limit}
        d["service_url"] = self.service_url() if self._service is not None else ""
        return d
