"""The kind platform: a kind cluster shaped like the seed's staging (kind-config.yml), the real
staging manifests through k8s/overlays/kind, metrics-server for the HPA, and the testcontainers
services reachable from the pods.

Order in ``up``: check tools; build the conductor image and render the overlay (both before any
cluster exists, so mistakes cost nothing); pull the pinned node image (its own timeout, with
progress) and create the cluster (or reuse a kept one); side-load images (falling back to letting
the nodes pull when ``kind load`` fails, e.g. kind#3795 under Docker's containerd image store); attach the nodes to the stack's Docker network; install metrics-server; apply the
namespace, then the Secrets and backing-service stand-ins, then the rest; wait for the rollouts
and for the NodePort to answer on 127.0.0.1.

Backing services. The kind nodes are connected to the stack's per-run Docker network (rather than
the services to kind's shared ``kind`` network, where another run's ``postgres`` alias would answer
too). Pods reach the containers through their node; the names the conductor's URLs use
(``postgres``, ``redis``, ``rabbitmq``) are selector-less Services in the namespace whose
EndpointSlices hold the containers' IPs on that network, so name resolution does not depend on how
Docker's embedded DNS is exposed inside kind nodes.

Every command goes through one ``CommandRunner`` (tests record them); Kubernetes API calls go
through an ``ApiClient`` built from the cluster's own kubeconfig file (never the user's default).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from harness.config import PROJECT_ROOT, Settings
from harness.errors import HarnessError, PlatformUnavailable, UsageError
from harness.kube.client import Apis, KubeTarget, api_client
from harness.kube.conductor import (HARNESS_SECRET, ConductorOnCluster, create_or_replace, external_service_bodies,
                                    secret_body)
from harness.kube.kind_config import (KIND_CONFIG, MIRRORED_REGISTRY, kind_host_port, kind_node_name, load_kind_config,
                                      mirror_hosts_toml, node_image, port_mappings, render_kind_config)
from harness.kube.kustomize import (HANDOVER_MANAGER, apply, find_object, hpa_targets, load_yaml_documents,
                                    release_hpa_replicas, render, replicas_handover, stamp_run_labels)
from harness.kube.logs import kind_export_logs
from harness.kube.portforward import PortForwards
from harness.kube.rollout import wait_rollout
from harness.kube.runner import CommandFailed, CommandRunner, SubprocessRunner, format_argv
from harness.kube.toolchain import MIN_KIND
from harness.labels import KIND_CLUSTER_PREFIX, kind_cluster_name, kube_labels
from harness.manifests import ConductorSpec, conductor_spec
from harness.platforms.base import Platform, Replica
from harness.platforms.capabilities import Zones
from harness.platforms.kube_zones import DRAIN_NOTE, FAILURES as KUBE_FAILURES, cordoned_nodes
from harness.wait import wait_for

__all__ = ["KindPlatform", "preflight", "OVERLAY_DIR", "METRICS_SERVER", "NODEPORT_SERVICE", "MIN_KIND_VERSION",
           "sweep_kind_clusters", "set_container_image", "check_host_ports", "run_images", "pull_images",
           "MESH_SKIP_HINT", "is_pullable", "conductor_image_name"]

log = logging.getLogger(__name__)
OVERLAY_DIR = PROJECT_ROOT / "k8s" / "overlays" / "kind"
METRICS_SERVER = PROJECT_ROOT / "k8s" / "addons" / "metrics-server.yaml"
NODEPORT_SERVICE = "conductor-nodeport"          # k8s/overlays/kind/nodeport-service.yml
MIN_KIND_VERSION = MIN_KIND                      # the release that publishes the pinned node image
DOCKER_FIX = "use `make e2e PLATFORM=docker` here"
MESH_SKIP_HINT = "set HARNESS_MESH=0 to skip the circuit-breaker scenarios"
_LAYER = re.compile(r"^[0-9a-f]{12,64}$")
MESH_WHY = "the circuit-breaker scenarios (Istio from its official Helm charts)"


def preflight(settings: Settings | None = None, runner: CommandRunner | None = None,
              which: Callable[[str], str | None] = shutil.which, *, tools_only: bool = False,
              kind_config: str | Path = KIND_CONFIG, helm: bool | None = None, host: Any = None,
              warn: Callable[[str], None] | None = None, read_images: bool = True) -> list[Any]:
    """Refuse in one line when kind cannot run here: the first failing gate row of ``harness doctor``
    (harness.doctor: a missing binary, kind older than the pinned node image's release, kubectl outside
    the skew policy, a missing or unsupported Helm while the circuit-breaker scenarios are selected, the
    Linux inotify limits below kind's documented values, no Docker engine, an engine with fewer CPUs or
    less memory than the README states, or (fixed host ports only) a port in use). Warnings (anonymous
    Docker Hub pulls, a small disk, CPUs enough without the mesh only) go to ``warn``. Returns the rows.

    Helm policy: ``make e2e`` on kind selects the circuit-breaker scenarios, so a run without Helm
    stops here unless the user deselects them with ``HARNESS_MESH=0``; run through plain pytest
    instead, those scenarios skip with the reason (scenarios/test_circuit_breaker.py): the platform's
    own ``up`` passes ``helm=False`` (Helm is the mesh scenarios' need, not the cluster's).
    ``tools_only``: versions and inotify only (no engine, no ports), for ``make``'s first check.
    ``helm``: check Helm; default ``settings.mesh``. ``read_images``: which images are local (for the
    Docker Hub warning; the platform's own ``up`` skips it, the CLI's preflight already said it).
    """
    from harness.doctor import gate_failures, judge, read_machine

    settings = settings or Settings()
    missing = [tool for tool in ("kind", "kubectl", "docker") if which(tool) is None]
    if missing:
        raise PlatformUnavailable(f"the kind platform needs {', '.join(missing)} on PATH "
                                  f"({' and '.join(missing)} not found)", DOCKER_FIX)
    helm = settings.mesh if helm is None else helm
    machine = read_machine(settings, runner or SubprocessRunner(), which, host, tools_only=tools_only, helm=helm,
                           kind_config=kind_config, images=None if read_images and not tools_only else [])
    rows = judge(machine, settings, mesh=helm)
    failed = gate_failures(rows)
    if failed:
        r = failed[0]
        raise PlatformUnavailable(r.refusal(), r.fix)
    for r in rows:
        if r.status == "warn":
            (warn or _stderr_progress)(f"warning: {r.check}: {r.seen}; needs {r.needed}; fix: {r.fix}")
    return rows


def check_host_ports(cfg: dict[str, Any]) -> None:
    """With fixed host ports, each mapped 127.0.0.1 port must be free now (else kind fails later,
    after the node image pull, with Docker's "port is already allocated")."""
    for m in port_mappings(cfg):
        if not m.host_port:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((m.listen_address, m.host_port))
            except OSError:
                raise PlatformUnavailable(
                    f"host port {m.listen_address}:{m.host_port} (kind-config.yml, containerPort {m.container_port}) "
                    "is in use, e.g. by a kept cluster or another run",
                    "free it, or unset HARNESS_KIND_FIXED_HOST_PORTS so kind picks free ports") from None


def is_pullable(image: str) -> bool:
    """A name a registry can serve: the harness's own local builds (``i2s-harness/...``) are not."""
    return not image.startswith("i2s-harness/")


def run_images(settings: Settings, conductor: str, kind_config: str | Path = KIND_CONFIG,
               metrics_server: str | Path = METRICS_SERVER) -> list[tuple[str, str]]:
    """Every image one kind run needs, with what needs it: the node image (pulled by this machine's
    Docker), the add-ons' and Istio's images (pulled by the nodes unless side-loaded), the conductor."""
    from harness.kube.istio import istio_images

    out = [(node_image(load_kind_config(kind_config)), "kind node (all Kubernetes components)")]
    addon = load_yaml_documents(Path(metrics_server).read_text(), str(metrics_server))
    out += [(i, "metrics-server (HPA metrics)") for i in _deployment_images(addon)]
    if settings.mesh:
        out += [(i, "Istio (circuit-breaker scenarios)") for i in istio_images()]
    out.append((conductor, "the conductor" + ("" if is_pullable(conductor) else " (built locally, side-loaded)")))
    return out


def pull_images(images: Sequence[str], runner: CommandRunner, progress: Callable[[str], None]) -> list[str]:
    """``docker pull`` whatever is not local yet (a registry mirror in Docker's daemon.json applies
    here); returns the images pulled. Every later run side-loads them into its nodes."""
    pulled = []
    for image in images:
        if not is_pullable(image) or runner.run(["docker", "image", "inspect", image], timeout=30, check=False).ok:
            continue
        progress(f"pulling {image}")
        runner.run(["docker", "pull", image], timeout=1800, fix=f"pull {image} by hand, or configure a registry mirror")
        pulled.append(image)
    return pulled


def _last_line(res: Any) -> str:
    return ((res.stderr or res.stdout).strip().splitlines() or ["no output"])[-1][:200]


def _deployment_images(docs: Sequence[dict[str, Any]]) -> list[str]:
    images: list[str] = []
    for d in docs:
        if d.get("kind") == "Deployment":
            images += [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
    return images


def _stderr_progress(msg: str) -> None:
    """Progress on the real stderr (pytest's capture would otherwise hold it until the end)."""
    stream = sys.__stderr__ or sys.stderr
    print(f"[harness {time.strftime('%H:%M:%S')}] {msg}", file=stream, flush=True)


def sweep_kind_clusters(run_id: str | None, runner: CommandRunner | None = None,
                        spare: Sequence[str] = ()) -> list[str]:
    """Delete the kind clusters the harness created (one run's, or all with ``run_id=None`` except
    those of the runs in ``spare``: runs still in progress)."""
    runner = runner or SubprocessRunner()
    spared = {kind_cluster_name(r) for r in spare}
    out = runner.run(["kind", "get", "clusters"], timeout=30, check=False)
    wanted = kind_cluster_name(run_id) if run_id else None
    deleted = []
    for name in out.stdout.split():
        if (wanted and name == wanted) or (not wanted and name.startswith(KIND_CLUSTER_PREFIX)
                                            and name not in spared):
            runner.run(["kind", "delete", "cluster", "--name", name], timeout=300, check=False)
            deleted.append(name)
    return deleted


def set_container_image(docs: Sequence[dict[str, Any]], deployment: str, container: str, image: str) -> None:
    """Point the Deployment's container at ``image`` (a user's conductor instead of the reference one)."""
    dep = find_object(docs, "Deployment", deployment)
    for c in dep["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            c["image"] = image
            return
    raise UsageError(f"Deployment {deployment} has no container {container!r}", "check the overlay")


class KindPlatform(Platform):
    name = "kind"
    needs_kubernetes = True
    balanced_ingress = True   # a NodePort: kube-proxy spreads connections over all ready pods

    def __init__(self, settings: Settings, stack: Any, *, runner: CommandRunner | None = None,
                 apis_factory: Callable[[KubeTarget], Apis] | None = None,
                 which: Callable[[str], str | None] = shutil.which,
                 image_builder: Callable[[Settings], str] | None = None,
                 http_get: Callable[[str], int] | None = None,
                 kind_config: str | Path = KIND_CONFIG, overlay_dir: str | Path = OVERLAY_DIR,
                 metrics_server: str | Path = METRICS_SERVER, host_ports: dict[int, int] | None = None,
                 state_dir: str | Path | None = None, spec: ConductorSpec | None = None,
                 ready_interval: float = 2.0, progress: Callable[[str], None] | None = None, host: Any = None):
        super().__init__(settings, stack)
        self._host = host                # harness.doctor.Host: inotify, disk, Docker login (faked in tests)
        self.runner = runner or SubprocessRunner()
        self._apis_factory = apis_factory or (lambda t: Apis(api_client(t)))
        self._which = which
        self._image_builder = image_builder or _default_image
        self._http_get = http_get or _http_status
        self.kind_config_path, self.overlay_dir = Path(kind_config), Path(overlay_dir)
        self.metrics_server_path = Path(metrics_server)
        self.host_ports = host_ports
        self.spec = spec or conductor_spec(settings.manifests_dir)
        self.cluster = kind_cluster_name(settings.run_id)
        state = Path(state_dir) if state_dir else Path(tempfile.gettempdir()) / "i2s-harness"
        # The cluster's own kubeconfig (client keys): outside the report, never the user's ~/.kube/config.
        self.kubeconfig = state / f"{self.cluster}.kubeconfig"
        self.target = KubeTarget(f"kind-{self.cluster}", str(self.kubeconfig))
        self.namespace = self.spec.namespace
        self.ready_interval = ready_interval
        self._progress = progress or _stderr_progress
        self.nodes_pull: list[str] = []   # images the nodes pull themselves (side-loading failed or skipped)
        self._kind_cfg: dict[str, Any] = {}
        self.apis: Apis | None = None
        self.conductor: ConductorOnCluster | None = None
        self.image = ""
        self._endpoint = ""
        self._created = False        # a cluster exists that this object is responsible for
        self._reused = False
        self._down = False
        self._logs_exported = False
        self._forwards = PortForwards(self.runner, self.target, self.namespace)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def kind_config(self) -> dict[str, Any]:
        """The kind cluster config as rendered for this run (ports, nodes); empty before ``up``."""
        return self._kind_cfg

    def preflight(self) -> None:
        preflight(self.settings, self.runner, self._which, kind_config=self.kind_config_path, helm=False,
                  host=self._host, warn=self._progress, read_images=False)

    def up(self) -> None:
        self.preflight()
        self.image = self._image_builder(self.settings)
        docs = self._manifests(self.image)
        addon = stamp_run_labels(load_yaml_documents(self.metrics_server_path.read_text(),
                                                     str(self.metrics_server_path)), self.settings.run_id)
        cfg_path = self._write_kind_config()
        self._create_or_reuse(cfg_path)
        self._load_images([self.image] + self._addon_images(addon))
        service_ips = self._attach_to_stack_network()
        self.apis = self._apis_factory(self.target)
        apply(addon, self.target, self.runner)
        namespace_docs = [d for d in docs if d["kind"] == "Namespace"]
        apply(namespace_docs, self.target, self.runner)
        self._create_harness_objects(service_ips)
        live = self._live_hpa_targets(docs) if self._reused else {}   # a new cluster has no objects yet
        if live:  # a kept cluster: hand .spec.replicas over to the HPA before re-applying without it
            apply(replicas_handover(live), self.target, self.runner, field_manager=HANDOVER_MANAGER,
                  extra=("--validate=false",))   # a replicas-only object, as in the upstream example
        apply(release_hpa_replicas([d for d in docs if d["kind"] != "Namespace"], set(live)),
              self.target, self.runner)
        dep = find_object(docs, "Deployment", "conductor")
        self.conductor = ConductorOnCluster(self.apis, self.namespace, "conductor",
                                            dep["spec"]["selector"]["matchLabels"])
        wait_rollout(self.apis, "kube-system", "metrics-server", timeout=self.settings.ready_timeout_s,
                     interval=self.ready_interval,
                     hint="metrics-server must be Ready for the HPA (its image is pulled from registry.k8s.io "
                          "unless loaded; see the kube-system logs in the report)")
        wait_rollout(self.apis, self.namespace, "conductor", timeout=self.settings.ready_timeout_s,
                     interval=self.ready_interval,
                     hint="see the conductor pod logs and events in the report's logs directory")
        self._endpoint = self._nodeport_url(docs)
        url = self._endpoint + self.spec.readiness_path
        wait_for(lambda: self._http_get(url) == 200, timeout=60, interval=1.0,
                 describe=f"the conductor NodePort to answer at {url}",
                 hint="check kind-config.yml's extraPortMappings against the NodePort in k8s/overlays/kind")

    def _manifests(self, image: str) -> list[dict[str, Any]]:
        docs = render(self.overlay_dir, self.runner)
        if image != _overlay_image(docs):
            set_container_image(docs, "conductor", "conductor", image)
        return stamp_run_labels(docs, self.settings.run_id)

    def _live_hpa_targets(self, docs: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
        """HPA-scaled workloads that already exist (a kept cluster) and their live replicas."""
        assert self.apis is not None
        from kubernetes.client.exceptions import ApiException

        live: dict[tuple[str, str, str], int] = {}
        for kind, ns, name in hpa_targets(docs):
            if kind != "Deployment":
                continue
            try:
                dep = self.apis.apps.read_namespaced_deployment(name, ns)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise
            live[(kind, ns, name)] = int(dep.spec.replicas or 1)
            log.info("Deployment %s/%s exists and HPA-scaled: applying it without spec.replicas", ns, name)
        return live

    def _write_kind_config(self) -> Path:
        path = self.settings.report_path / "kind" / "kind-config.yml"  # the config actually used (no secrets)
        path.parent.mkdir(parents=True, exist_ok=True)
        mirror_dir = None
        if self.settings.registry_mirror:
            mirror_dir = path.parent / "certs.d"
            (mirror_dir / MIRRORED_REGISTRY).mkdir(parents=True, exist_ok=True)
            (mirror_dir / MIRRORED_REGISTRY / "hosts.toml").write_text(mirror_hosts_toml(self.settings.registry_mirror))
        cfg = render_kind_config(load_kind_config(self.kind_config_path), self.settings.run_id, self.host_ports,
                                 fixed_host_ports=self.settings.kind_fixed_host_ports, mirror_dir=mirror_dir)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self._kind_cfg = cfg
        return path

    def _create_or_reuse(self, cfg_path: Path) -> None:
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        if self.settings.keep:
            existing = self.runner.run(["kind", "get", "clusters"], timeout=30, check=False).stdout.split()
            if self.cluster in existing:
                self._created = self._reused = True
                self.runner.run(["kind", "export", "kubeconfig", "--name", self.cluster,
                                 "--kubeconfig", str(self.kubeconfig)], timeout=60)
                log.info("reusing kept kind cluster %s", self.cluster)
                return
        self._ensure_node_image()
        self._created = True  # from here on, down() deletes whatever part of the cluster exists
        self._progress(f"creating kind cluster {self.cluster} (5 nodes; up to 10 min)")
        self.runner.run(["kind", "create", "cluster", "--name", self.cluster, "--config", str(cfg_path),
                         "--kubeconfig", str(self.kubeconfig), "--wait", "180s"], timeout=600,
                        fix="kind could not create the cluster (node image pull? port in use? see above); "
                            "`make e2e PLATFORM=docker` runs without Kubernetes")

    def _ensure_node_image(self) -> None:
        """Pull the pinned node image before ``kind create`` (whose own pull shares its timeout and
        shows nothing), with progress and ``settings.node_image_pull_timeout_s`` of its own."""
        image = node_image(self._kind_cfg)
        if self.runner.run(["docker", "image", "inspect", image], timeout=30, check=False).ok:
            return
        timeout = self.settings.node_image_pull_timeout_s
        self._progress(f"pulling the kind node image {image.split('@')[0]} (about 1 GB; up to {timeout:.0f}s)")
        argv = ["docker", "pull", image]
        proc = self.runner.start(argv)
        timer = threading.Timer(timeout, proc.kill)
        timer.daemon = True
        timer.start()
        t0, last, layers, done = time.monotonic(), 0.0, set(), set()
        tail = ""
        try:
            for line in proc.stdout or []:
                tail = line.strip() or tail
                layer, _, status = tail.partition(": ")
                if status and _LAYER.match(layer):   # "<layer id>: Pulling fs layer" / "...: Pull complete"
                    layers.add(layer)
                    if status.startswith("Pull complete"):
                        done.add(layer)
                if time.monotonic() - last >= 5.0:
                    last = time.monotonic()
                    self._progress(f"node image: {len(done)}/{len(layers)} layers pulled, "
                                   f"{time.monotonic() - t0:.0f}s")
            code = proc.wait()
        finally:
            timer.cancel()
        if time.monotonic() - t0 >= timeout or code in (-9, 137):
            raise PlatformUnavailable(f"the kind node image did not arrive within {timeout:.0f}s (`{format_argv(argv)}`)",
                                      "pre-pull it with `harness images --pull`, set HARNESS_REGISTRY_MIRROR, or "
                                      "raise HARNESS_NODE_IMAGE_PULL_TIMEOUT_S")
        if code != 0:
            raise PlatformUnavailable(f"`{format_argv(argv)}` failed (exit {code}): {tail[:200]}",
                                      "check the network or Docker Hub's rate limit; `harness images --pull` "
                                      "pre-pulls everything a run needs")
        self._progress(f"node image pulled in {time.monotonic() - t0:.0f}s ({len(done)}/{len(layers)} layers)")

    def _addon_images(self, docs: Sequence[dict[str, Any]]) -> list[str]:
        """The add-ons' images (metrics-server; Istio's pilot and proxyv2 with the mesh), made local first.

        One pull by this machine (where `docker login` and the engine's mirrors apply), then side-loaded
        into every node, instead of each node pulling anonymously from Docker Hub: sidecar injection
        restarts pods one at a time, and a proxyv2 pull per node inside the mesh's rollout timeout was
        the usual cause of a mesh timeout. What cannot be pulled here is left to the nodes (warning)."""
        images = _deployment_images(docs)
        if self.settings.mesh:
            from harness.kube.istio import istio_images

            images += istio_images()
        local = []
        for i in images:
            if self.runner.run(["docker", "image", "inspect", i], timeout=30, check=False).ok:
                local.append(i)
                continue
            self._progress(f"pulling {i} on this machine (side-loaded into every node next)")
            res = self.runner.run(["docker", "pull", "--platform", self._node_platform(), i], timeout=900, check=False)
            if res.ok:
                local.append(i)
            else:
                self.nodes_pull.append(i)
                self._progress(f"warning: could not pull {i} here ({_last_line(res)}); the nodes pull it themselves")
        return local

    def _node_platform(self) -> str:
        """The kind nodes' platform: the engine's own (kind nodes are containers of this engine)."""
        if not getattr(self, "_platform_cache", ""):
            out = self.runner.run(["docker", "info", "--format", "{{.Architecture}}"], timeout=30, check=False)
            arch = out.stdout.strip().lower()
            self._platform_cache = "linux/" + {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch or "amd64")
        return self._platform_cache

    def _ensure_local(self, image: str) -> None:
        """A registry conductor image (HARNESS_CONDUCTOR_IMAGE) is pulled first: kind loads only
        images the local engine has."""
        if self.runner.run(["docker", "image", "inspect", image], timeout=30, check=False).ok:
            return
        if not is_pullable(image):
            raise HarnessError(f"the conductor image {image} is not in the local Docker engine",
                               "build it again (unset HARNESS_CONDUCTOR_IMAGE to use the reference conductor)")
        self._progress(f"pulling the conductor image {image}")
        self.runner.run(["docker", "pull", "--platform", self._node_platform(), image], timeout=900,
                        fix=f"HARNESS_CONDUCTOR_IMAGE={image} is neither local nor pullable; check the name and "
                            "`docker login` to its registry")

    def _load_images(self, images: Sequence[str]) -> None:
        """Side-load each image as a single-platform archive: ``docker image save --platform <node's>``
        then ``kind load image-archive``. ``kind load docker-image`` saves every platform an index names,
        which fails under Docker's containerd image store with "content digest ... not found" (kind#3795;
        the workaround kind documents, kind#4247). An engine older than API 1.48 has no ``save
        --platform``: the archive is saved whole (its classic store holds one platform anyway). A
        failure on a pullable image does not abort: the nodes pull it (imagePullPolicy IfNotPresent)."""
        if images:
            self._ensure_local(images[0])
        archives = self.kubeconfig.parent / f"{self.cluster}-images"
        archives.mkdir(parents=True, exist_ok=True)
        try:
            for n, image in enumerate(images):
                tar = archives / f"image-{n}.tar"
                res = self._save_archive(image, tar)
                if res.ok:
                    res = self.runner.run(["kind", "load", "image-archive", str(tar), "--name", self.cluster],
                                          timeout=600, check=False)
                tar.unlink(missing_ok=True)
                if res.ok:
                    continue
                if not is_pullable(image):
                    raise CommandFailed(res, f"could not side-load {image}, which exists only locally; rerun "
                                             f"`docker image save --platform {self._node_platform()}` by hand to see why")
                self.nodes_pull.append(image)
                log.warning("could not side-load %s into the kind nodes (%s); the nodes will pull it from its registry "
                            "instead", image, _last_line(res))
                self._progress(f"warning: {image} not side-loaded; the nodes pull it themselves")
        finally:
            shutil.rmtree(archives, ignore_errors=True)

    def _save_archive(self, image: str, tar: Path) -> Any:
        res = self.runner.run(["docker", "image", "save", "--platform", self._node_platform(), "-o", str(tar), image],
                              timeout=600, check=False)
        if not res.ok and ("platform" in (res.stderr + res.stdout).lower() or "unknown flag" in res.stderr):
            # an engine older than API 1.48 (no --platform): its classic store holds one platform
            res = self.runner.run(["docker", "image", "save", "-o", str(tar), image], timeout=600, check=False)
        return res

    def _nodes(self) -> list[str]:
        out = self.runner.run(["kind", "get", "nodes", "--name", self.cluster], timeout=30)
        return sorted(out.stdout.split())

    def _stack_services(self) -> list[tuple[str, str, int]]:
        """(alias, container name, port) of each backing service the stack runs."""
        out = []
        for svc in getattr(self.stack, "services", []):
            out.append((svc.alias, svc.get_wrapped_container().name, int(svc.container_port)))
        return out

    def _attach_to_stack_network(self) -> dict[str, tuple[str, int]]:
        network = self.stack.network.name
        for node in self._nodes():
            res = self.runner.run(["docker", "network", "connect", network, node], timeout=60, check=False)
            if not res.ok and "already exists" not in (res.stderr + res.stdout):
                raise CommandFailed(res, f"could not attach kind node {node} to the stack network {network}")
        ips: dict[str, tuple[str, int]] = {}
        for alias, container, port in self._stack_services():
            out = self.runner.run(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container],
                                  timeout=30)
            nets = json.loads(out.stdout or "{}")
            ip = (nets.get(network) or {}).get("IPAddress")
            if not ip:
                raise HarnessError(f"container {container} has no address on network {network}",
                                   "the stack must be up before the kind platform (the `stack` fixture)")
            ips[alias] = (ip, port)
        return ips

    def _create_harness_objects(self, service_ips: dict[str, tuple[str, int]]) -> None:
        assert self.apis is not None
        labels = kube_labels(self.settings.run_id)
        core, ns = self.apis.core, self.namespace
        urls = self.stack.app_env()
        by_secret: dict[str, dict[str, str]] = {}
        for var, (secret, key) in self.spec.env_from_secrets.items():  # exactly what the Deployment reads
            if var not in urls:
                raise UsageError(f"the Deployment reads {var} from Secret {secret}, which the stack does not provide",
                                 "extend Stack.app_env() or the overlay")
            by_secret.setdefault(secret, {})[key] = urls[var]
        by_secret[HARNESS_SECRET] = {"admin-token": self.admin_token, "cpu-cost-ms": str(self.settings.cpu_cost_ms)}
        for name, data in by_secret.items():
            how = create_or_replace(core.create_namespaced_secret, core.replace_namespaced_secret, ns,
                                    secret_body(name, ns, data, labels))
            log.info("secret %s/%s %s (keys: %s)", ns, name, how, ", ".join(sorted(data)))  # names only
        for alias, (ip, port) in service_ips.items():
            service, slice_ = external_service_bodies(alias, ns, ip, port, labels)
            create_or_replace(core.create_namespaced_service, core.replace_namespaced_service, ns, service)
            create_or_replace(self.apis.discovery.create_namespaced_endpoint_slice,
                              self.apis.discovery.replace_namespaced_endpoint_slice, ns, slice_)

    def _nodeport_url(self, docs: Sequence[dict[str, Any]]) -> str:
        svc = find_object(docs, "Service", NODEPORT_SERVICE)
        node_port = next(p["nodePort"] for p in svc["spec"]["ports"] if p.get("name") == "http")
        mapping = next((m for m in port_mappings(self._kind_cfg) if m.container_port == node_port), None)
        if mapping is None:
            raise UsageError(f"NodePort {node_port} of {NODEPORT_SERVICE} has no extraPortMapping in kind-config.yml",
                             f"add containerPort {node_port} (listenAddress 127.0.0.1) to a node's extraPortMappings")
        return f"http://127.0.0.1:{kind_host_port(self.runner, self.cluster, self._kind_cfg, node_port)}"

    # -- queries -------------------------------------------------------------------------------------
    def endpoints(self) -> list[str]:
        return [self._endpoint] if self._endpoint else []

    def replicas(self) -> list[Replica]:
        return self.conductor.replicas() if self.conductor else []

    def _admin(self, replica: Replica, method: str, body: dict | None = None) -> dict[str, Any]:
        # A NodePort balances over pods; one pod's admin endpoint is reached through a port-forward.
        url = self._forwards.url(f"pod/{replica.name}", self.spec.http_port)
        return super()._admin(dc_replace(replica, admin_url=url), method, body)

    def place_replicas_in_zone(self, zone: str, deployment: str = "conductor") -> dict[str, str]:
        """Deterministic placement for the zone-loss scenario: every replica of ``deployment`` in ``zone``,
        the worst placement the seed's Deployment permits (replicas: 2, no topologySpreadConstraints,
        anti-affinity or PodDisruptionBudget), as the docker platform's one-zone mode. Left to the
        scheduler, the outcome would depend on where two replicas happened to land. The agents nodes of
        the other zones are cordoned, the Deployment restarted and waited for, then uncordoned (also on
        failure). Returns pod -> zone; a replica elsewhere makes the scenario inconclusive."""
        from harness.kube.kind_config import NODE_TYPE_LABEL
        from harness.labels import ZONE_LABEL

        agents = [(kind_node_name(self.cluster, self._kind_cfg, i), (n.get("labels") or {}).get(ZONE_LABEL))
                  for i, n in enumerate(self._kind_cfg.get("nodes") or [])
                  if (n.get("labels") or {}).get(NODE_TYPE_LABEL) == "agents"]
        if zone not in {z for _, z in agents}:
            raise UsageError(f"zone {zone!r} has no agents node in kind-config.yml "
                             f"({sorted({str(z) for _, z in agents if z})})",
                             "set HARNESS_ZONES to the kind config's zones")
        others = [name for name, z in agents if z != zone]
        self._progress(f"placing every {deployment} replica in {zone} (cordoning {', '.join(others)})")
        try:
            for name in others:
                self.runner.run(self.target.kubectl("cordon", name), timeout=60)
            self.runner.run(self.target.kubectl("-n", self.namespace, "rollout", "restart", f"deployment/{deployment}"),
                            timeout=60)
            assert self.apis is not None
            wait_rollout(self.apis, self.namespace, deployment, timeout=self.settings.ready_timeout_s,
                         interval=self.ready_interval, hint="the zone's agents node must fit every replica")
        finally:
            for name in others:
                self.runner.run(self.target.kubectl("uncordon", name), timeout=60, check=False)
        placed = {r.name: r.zone for r in self.replicas() if r.ready}
        elsewhere = {n: z for n, z in placed.items() if z != zone}
        if not placed or elsewhere:
            raise HarnessError(f"the {deployment} replicas could not all be placed in {zone} ({placed or 'none ready'})",
                               "see the scheduler's events in the report's logs")
        return placed

    # -- capability adapters ------------------------------------------------------------------------
    def make_mesh(self, reading: Any) -> Any:
        from harness.platforms.kind_mesh import IstioMeshAdapter

        return IstioMeshAdapter(self.settings, self, reading, which=self._which)

    def chaos_configuration(self) -> dict[str, str]:
        # The chaos process builds its client from the cluster's own kubeconfig file and context, and
        # re-points the stand-in Service ``postgres`` in the namespace when the database moves.
        return {"HARNESS_PLATFORM": self.name, "HARNESS_ENDPOINTS": ",".join(self.endpoints()),
                "KUBECONFIG": str(self.target.kubeconfig), "HARNESS_KUBE_NAMESPACE": self.namespace,
                "HARNESS_KUBE_RUN_CONTEXT": self.target.context}

    def make_zones(self) -> Any:
        return KindZones(self)

    def deletes_cluster(self) -> bool:
        """``down`` will delete the cluster (it created one and ``--keep`` is off): undoing changes inside
        it first is wasted time."""
        return self._created and not self.settings.keep

    def export_logs(self, dest: Path) -> list[Path]:
        written: list[Path] = []
        if not self._created:
            return written
        try:
            written += kind_export_logs(self.cluster, dest / "kind", self.runner)
        except HarnessError as exc:
            log.warning("kind export logs failed: %s", exc)
        if self.conductor is not None:
            try:
                written += self.conductor.export_logs(dest / "pods")
            except Exception as exc:  # noqa: BLE001 - an unreachable API server: kind's export has the rest
                log.warning("could not read pod logs: %s", exc)
        self._logs_exported = True
        return written

    def down(self) -> None:
        if self._down:
            return
        self._down = True
        self._forwards.stop_all()
        if not self._created:
            return
        if not self._logs_exported:  # after deletion nothing is left to read
            self.export_logs(self.settings.report_path / "logs")
        if self.apis is not None:
            self.apis.close()
        if self.settings.keep:
            log.warning("kept kind cluster %s: kubectl --kubeconfig %s get pods -n %s; delete with "
                        "`kind delete cluster --name %s`", self.cluster, self.kubeconfig, self.namespace, self.cluster)
            return
        try:
            self.runner.run(["kind", "delete", "cluster", "--name", self.cluster, "--kubeconfig",
                             str(self.kubeconfig)], timeout=300)
        finally:
            self.kubeconfig.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"cluster": self.cluster, "context": self.target.context, "image": self.image,
                  "reused": self._reused, "node_image": node_image(self._kind_cfg) if self._kind_cfg else "",
                  "pulled_by_nodes": list(self.nodes_pull)})
        return d


class KindZones(Zones):
    """The zones capability on kind: replicas placed by cordoning the other zones' agents nodes; a zone
    lost by a drain (harness.platforms.kube_zones)."""

    placements = ("one-zone",)
    failures = KUBE_FAILURES
    no_survivors_note = DRAIN_NOTE

    def __init__(self, platform: KindPlatform):
        self.platform = platform

    def not_restored(self, zone: str) -> list[str]:
        return cordoned_nodes(self.platform.apis, zone)

    def place(self, zone: str, mode: str = "one-zone") -> dict[str, str]:
        if mode != "one-zone":
            raise UsageError(f"placement {mode!r} is not available on kind", "use one-zone (the scheduler spreads "
                             "otherwise as it likes)")
        return self.platform.place_replicas_in_zone(zone)


def _overlay_image(docs: Sequence[dict[str, Any]]) -> str:
    dep = find_object(docs, "Deployment", "conductor")
    return next(c["image"] for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "conductor")


def conductor_image_name(settings: Settings) -> str:
    """The conductor image a run uses, without building it (for listings)."""
    from harness.platforms.docker import REFERENCE_IMAGE

    return settings.conductor_image or f"{REFERENCE_IMAGE}:dev"


def _default_image(settings: Settings) -> str:
    from harness.platforms.docker import conductor_image

    return conductor_image(settings)


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
