"""The kind cluster config (kind-config.yml): read it, check it, and render it for one run.

Rendering adds the run's labels to every node (kind allows labels on nodes, not on its Docker
containers, whose names carry the run id through the cluster name), sets the host ports (0 by
default: kind picks a free port for ``hostPort: 0`` — ``common.PortOrGetFreePort`` in kind's
provider code — so runs never collide), and optionally points the nodes' containerd at a registry
mirror. The mirror uses containerd's ``hosts.toml`` layout under ``/etc/containerd/certs.d`` (the
only registry configuration containerd 2.x keeps: containerd docs/hosts.md; kind v0.30 nodes run
containerd 2.1), enabled with a ``containerdConfigPatches`` entry and mounted into each node with
``extraMounts`` (kind v1alpha4 config fields).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.files import read_yaml
from harness.labels import ZONE_LABEL, kube_labels

if TYPE_CHECKING:
    from harness.kube.runner import CommandRunner

__all__ = ["KIND_CONFIG", "NODE_TYPE_LABEL", "AGENTS_TAINT", "PortMapping", "load_kind_config",
           "render_kind_config", "port_mappings", "node_taints", "agents_zones", "node_image", "mirror_hosts_toml",
           "CERTS_DIR", "MIRRORED_REGISTRY", "kind_node_name", "kind_host_port"]

CERTS_DIR = "/etc/containerd/certs.d"
MIRRORED_REGISTRY = "docker.io"      # anonymous pulls there are rate-limited; the others are not

KIND_CONFIG = PROJECT_ROOT / "kind-config.yml"
NODE_TYPE_LABEL = "i2s.studio/node-type"
AGENTS_TAINT = {"key": NODE_TYPE_LABEL, "value": "agents", "effect": "NoSchedule"}


@dataclass(frozen=True)
class PortMapping:
    node_index: int
    container_port: int
    host_port: int          # 0: kind picks a free port
    listen_address: str
    protocol: str


def load_kind_config(path: str | Path = KIND_CONFIG) -> dict[str, Any]:
    p = Path(path)
    cfg = read_yaml(p, what="kind config", missing_fix="restore kind-config.yml at the project root")
    if not isinstance(cfg, dict) or cfg.get("kind") != "Cluster" or cfg.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        raise UsageError(f"{p} is not a kind v1alpha4 Cluster config",
                         "start it with `kind: Cluster` and `apiVersion: kind.x-k8s.io/v1alpha4`")
    if not cfg.get("nodes"):
        raise UsageError(f"{p} defines no nodes", "list a control-plane and the workers under `nodes:`")
    node_image(cfg, str(p))
    for i, n in enumerate(cfg["nodes"]):
        for m in n.get("extraPortMappings") or []:
            if m.get("listenAddress") != "127.0.0.1":
                raise UsageError(f"{p} node {i} maps port {m.get('containerPort')} on "
                                 f"{m.get('listenAddress', '0.0.0.0 (default)')}",
                                 "set listenAddress: 127.0.0.1 (traffic comes from this machine only)")
    return cfg


def node_image(cfg: Mapping[str, Any], where: str = "kind-config.yml") -> str:
    """The one node image every node names, pinned by digest (else the Kubernetes version would be
    whatever the local kind defaults to)."""
    images = {n.get("image") for n in cfg.get("nodes") or []}
    if len(images) != 1 or None in images or "@sha256:" not in str(next(iter(images))):
        raise UsageError(f"{where}: every node must name the same kindest/node image pinned by digest "
                         f"(found {sorted(str(i) for i in images)})",
                         "set `image: kindest/node:vX.Y.Z@sha256:...` from the kind release notes on every node")
    return str(next(iter(images)))


def mirror_hosts_toml(mirror: str, registry: str = MIRRORED_REGISTRY) -> str:
    """containerd ``hosts.toml`` for ``registry``: try ``mirror`` first, then the registry itself."""
    upstream = "https://registry-1.docker.io" if registry == "docker.io" else f"https://{registry}"
    return (f'server = "{upstream}"\n\n[host."{mirror.rstrip("/")}"]\n  capabilities = ["pull", "resolve"]\n')


def port_mappings(cfg: Mapping[str, Any]) -> list[PortMapping]:
    out = []
    for i, n in enumerate(cfg.get("nodes") or []):
        for m in n.get("extraPortMappings") or []:
            out.append(PortMapping(i, int(m["containerPort"]), int(m.get("hostPort") or 0),
                                   m.get("listenAddress", "0.0.0.0"), m.get("protocol", "TCP")))
    return out


def node_taints(node: Mapping[str, Any]) -> list[dict[str, str]]:
    """Taints a node registers with, from its JoinConfiguration/InitConfiguration patches."""
    taints: list[dict[str, str]] = []
    for patch in node.get("kubeadmConfigPatches") or []:
        doc = yaml.safe_load(patch) or {}
        if doc.get("kind") in ("JoinConfiguration", "InitConfiguration"):
            taints += list((doc.get("nodeRegistration") or {}).get("taints") or [])
    return taints


def agents_zones(cfg: Mapping[str, Any]) -> list[str]:
    return [n["labels"][ZONE_LABEL] for n in cfg["nodes"]
            if (n.get("labels") or {}).get(NODE_TYPE_LABEL) == "agents"]


def render_kind_config(cfg: Mapping[str, Any], run_id: str,
                       host_ports: Mapping[int, int] | None = None, *, fixed_host_ports: bool = False,
                       mirror_dir: str | Path | None = None) -> dict[str, Any]:
    """A copy for one run: the run's labels on every node; every hostPort 0 (kind picks a free
    one) unless ``fixed_host_ports``; ``host_ports`` maps a containerPort to the host port to use
    instead; ``mirror_dir`` (a host directory holding ``<registry>/hosts.toml``) is mounted at
    containerd's certs.d on every node and enabled with a containerd config patch."""
    out = copy.deepcopy(dict(cfg))
    if mirror_dir is not None:
        out["containerdConfigPatches"] = list(out.get("containerdConfigPatches") or []) + [
            f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_DIR}"\n']
        for node in out["nodes"]:
            node["extraMounts"] = list(node.get("extraMounts") or []) + [
                {"hostPath": str(Path(mirror_dir).resolve()), "containerPath": CERTS_DIR, "readOnly": True}]
    known = {m.container_port for m in port_mappings(cfg)}
    for port in (host_ports or {}):
        if port not in known:
            raise UsageError(f"no extraPortMapping for container port {port} in the kind config",
                             f"override one of {sorted(known)}")
    for node in out["nodes"]:
        node["labels"] = {**(node.get("labels") or {}), **kube_labels(run_id)}
        for m in node.get("extraPortMappings") or []:
            if not fixed_host_ports:
                m["hostPort"] = 0
            if host_ports and int(m["containerPort"]) in host_ports:
                m["hostPort"] = int(host_ports[int(m["containerPort"])])
    return out


def kind_node_name(cluster: str, kind_cfg: Mapping[str, Any], index: int) -> str:
    """kind names nodes ``<cluster>-control-plane[N]`` / ``<cluster>-worker[N]`` in config order."""
    roles = [n.get("role", "control-plane") for n in kind_cfg["nodes"]]
    role = roles[index]
    nth = sum(1 for r in roles[:index] if r == role)
    return f"{cluster}-{role}{nth + 1 if nth else ''}"


def kind_host_port(runner: CommandRunner, cluster: str, kind_cfg: Mapping[str, Any], node_port: int) -> int:
    """The 127.0.0.1 port Docker publishes for ``node_port`` (hostPort may be 0 or overridden)."""
    m = next((m for m in port_mappings(kind_cfg) if m.container_port == node_port), None)
    if m is None:
        raise UsageError(f"kind-config.yml maps no port {node_port}",
                         f"add containerPort {node_port} (listenAddress 127.0.0.1) to the control-plane")
    node = kind_node_name(cluster, kind_cfg, m.node_index)
    out = runner.run(["docker", "port", node, f"{node_port}/tcp"], timeout=30)
    for line in out.stdout.splitlines():
        host, _, port = line.strip().rpartition(":")
        if host == "127.0.0.1" and port.isdigit():
            return int(port)
    raise HarnessError(f"kind node {node} publishes {node_port}/tcp on no 127.0.0.1 port ({out.stdout.strip()[:100]!r})",
                       "set listenAddress: 127.0.0.1 for it in kind-config.yml")
