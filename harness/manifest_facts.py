"""What the system's manifests (k8s/) say, as values: where each manifest is, an httpGet probe, the
conductor's container. Parsed from documents already read (:mod:`harness.manifests` reads them);
quantities through the HPA oracle's parser, the one Kubernetes quantity parser of the harness."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from harness.oracles.hpa.quantity import quantity_to_float

__all__ = ["REQUIRED_MANIFESTS", "DEPLOYMENT", "STAGING_HPA", "PRODUCTION_HPA", "ISTIO", "ConductorSpec", "Probe",
           "probe_of", "conductor_spec_of"]

DEPLOYMENT = "staging/conductor-deployment.yml"
STAGING_HPA = "staging/conductor-hpa.yml"
PRODUCTION_HPA = "autoscaling/custom-metrics-hpa.yml"
ISTIO = "istio/gateway.yml"
# Every file the harness reads through the manifests_dir setting (checked by harness.preflight).
REQUIRED_MANIFESTS = (DEPLOYMENT, STAGING_HPA, PRODUCTION_HPA, ISTIO)



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


def conductor_spec_of(dep: Mapping[str, Any]) -> ConductorSpec:
    """The conductor container of the seed's Deployment document."""
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
        cpu_request=quantity_to_float(res.get("requests", {}).get("cpu", "0")),
        cpu_limit=quantity_to_float(res.get("limits", {}).get("cpu", "0")),
        memory_request=quantity_to_float(res.get("requests", {}).get("memory", "0")),
        memory_limit=quantity_to_float(res.get("limits", {}).get("memory", "0")),
        readiness_path=c["readinessProbe"]["httpGet"]["path"],
        liveness_path=c["livenessProbe"]["httpGet"]["path"],
        env_from_secrets=secrets,
        labels=dict(dep["spec"]["template"]["metadata"].get("labels", {})),
        readiness=probe_of(c, "readinessProbe", ports.get("http", 8080)),
    )
