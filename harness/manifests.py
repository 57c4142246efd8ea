"""Read the system's real manifests (k8s/) into the facts the harness needs.

The docker platform runs the conductor as the Deployment says (ports, probes, resource limits);
the oracles read the HPA and DestinationRule from here. Nothing is changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from harness.config import PROJECT_ROOT
from harness.errors import UsageError

__all__ = ["load_documents", "find_document", "ConductorSpec", "Probe", "probe_of", "conductor_spec", "parse_quantity"]

DEPLOYMENT = "staging/conductor-deployment.yml"
STAGING_HPA = "staging/conductor-hpa.yml"
PRODUCTION_HPA = "autoscaling/custom-metrics-hpa.yml"
ISTIO = "istio/gateway.yml"


def _dir(manifests_dir: str | Path) -> Path:
    p = Path(manifests_dir)
    return p if p.is_absolute() else PROJECT_ROOT / p


def load_documents(relpath: str, manifests_dir: str | Path = "k8s") -> list[dict[str, Any]]:
    path = _dir(manifests_dir) / relpath
    if not path.exists():
        raise UsageError(f"manifest {path} not found", "restore it from the seed (git checkout k8s/) "
                         "or point HARNESS_MANIFESTS_DIR at the system's manifests")
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as exc:
        raise UsageError(f"manifest {path} is not valid YAML ({str(exc).splitlines()[0]})",
                         "fix the file") from None


def find_document(relpath: str, kind: str, name: str | None = None,
                  manifests_dir: str | Path = "k8s") -> dict[str, Any]:
    for doc in load_documents(relpath, manifests_dir):
        if doc.get("kind") == kind and (name is None or doc.get("metadata", {}).get("name") == name):
            return doc
    raise UsageError(f"no {kind}{' ' + name if name else ''} in {relpath}", "check the manifests directory")


def parse_quantity(value: str | int | float) -> float:
    """Kubernetes quantity → base units (cores for CPU, bytes for memory)."""
    text = str(value).strip()
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9,
                "T": 1e12, "m": 1e-3}
    for suf, mult in sorted(suffixes.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suf):
            return float(text[: -len(suf)]) * mult
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{value!r} is not a Kubernetes quantity", "use e.g. 250m, 1, 512Mi") from None


@dataclass(frozen=True)
class Probe:
    """An httpGet probe as the kubelet runs it; unset fields take the Kubernetes API defaults
    (``initialDelaySeconds`` 0, ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``successThreshold`` 1,
    ``failureThreshold`` 3; k8s.io/api core/v1 Probe)."""

    path: str
    port: int
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def probe_of(container: dict[str, Any], key: str, default_port: int) -> Probe:
    """``container[key]`` (e.g. ``readinessProbe``) as a :class:`Probe`; a named port maps to ``default_port``."""
    p = container[key]
    port = p["httpGet"].get("port", default_port)
    return Probe(path=p["httpGet"]["path"], port=port if isinstance(port, int) else default_port,
                 initial_delay_s=float(p.get("initialDelaySeconds", 0)), period_s=float(p.get("periodSeconds", 10)),
                 timeout_s=float(p.get("timeoutSeconds", 1)), success_threshold=int(p.get("successThreshold", 1)),
                 failure_threshold=int(p.get("failureThreshold", 3)))


@dataclass(frozen=True)
class ConductorSpec:
    """What the Deployment says about the conductor container."""

    namespace: str
    replicas: int
    image: str
    http_port: int
    metrics_port: int
    cpu_request: float
    cpu_limit: float
    memory_request: float
    memory_limit: float
    readiness_path: str
    liveness_path: str
    env_from_secrets: dict[str, tuple[str, str]]  # env var -> (secret name, key)
    labels: dict[str, str]
    readiness: Probe | None = None   # the readinessProbe in full (what a Service's endpoints follow)

    def iter_env_names(self) -> Iterator[str]:
        yield from self.env_from_secrets


def conductor_spec(manifests_dir: str | Path = "k8s") -> ConductorSpec:
    dep = find_document(DEPLOYMENT, "Deployment", "conductor", manifests_dir)
    pod = dep["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] if c["name"] == "conductor")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    res = c.get("resources", {})
    secrets = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    return ConductorSpec(
        namespace=dep["metadata"]["namespace"],
        replicas=int(dep["spec"].get("replicas", 1)),
        image=c["image"],
        http_port=ports.get("http", 8080),
        metrics_port=ports.get("metrics", 9090),
        cpu_request=parse_quantity(res.get("requests", {}).get("cpu", "0")),
        cpu_limit=parse_quantity(res.get("limits", {}).get("cpu", "0")),
        memory_request=parse_quantity(res.get("requests", {}).get("memory", "0")),
        memory_limit=parse_quantity(res.get("limits", {}).get("memory", "0")),
        readiness_path=c["readinessProbe"]["httpGet"]["path"],
        liveness_path=c["livenessProbe"]["httpGet"]["path"],
        env_from_secrets=secrets,
        labels=dict(dep["spec"]["template"]["metadata"].get("labels", {})),
        readiness=probe_of(c, "readinessProbe", ports.get("http", 8080)),
    )
