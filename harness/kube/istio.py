"""Istio on the harness's kind cluster: install, sidecar injection, the seed's mesh objects, and
Envoy's own statistics read back from the proxies.

Install: the upstream Helm charts ``base``, ``istiod`` and ``gateway`` at a pinned version
(:data:`ISTIO_VERSION`, 1.31.1 of 2026-09-21, the newest supported release: "Istio 1.31.0 is
officially supported on Kubernetes versions 1.32 to 1.36" (istio.io announcing-1.31), which holds
the pinned kind node's 1.34 — see harness/kube/toolchain.py; Istio >= 1.30 supports Helm 4
(announcing-1.30); its gateway chart keeps ``additionalProperties:
false`` inside ``$defs.values``, the layout fixed in 1.26.4/1.27.1, so Helm >= 3.18.5 and Helm 4
accept the values below, where 1.26.3's root-level ``additionalProperties: false`` rejected every
value: istio/istio#57354, helm/helm#31160; tests/unit/test_istio_chart_schema.py checks them
against the chart's own schema), straight from the chart repository (``--repo``, so the user's Helm repo
list is never touched). Helm rather than istioctl: istioctl is a versioned binary users would have
to download and match, the charts are addressed by version alone. The gateway release is named
``istio-ingressgateway`` because the chart labels its pods ``istio: <release minus "istio-">``,
i.e. ``istio: ingressgateway``, which is what the seed's Gateway selects; its Service is a
NodePort on the ports kind-config.yml maps to 127.0.0.1 (30080 http2, 30443 https). The gateway's
HPA is off and it runs one replica: outlier detection and circuit breaking are per client proxy,
and one proxy keeps the stats and the oracle about the same detector.

Stats: Istio trims Envoy's stats to a small default set; the outlier-detection, circuit-breaker
and retry counters of the conductor's cluster are not in it. istiod is installed with
``meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes`` naming that cluster, so every
proxy (the gateway is the client that matters) exposes them.

Every command goes through one injectable :class:`~harness.kube.runner.CommandRunner`; Kubernetes
API calls (the TLS Secret, rollout waits, pod lookups) through :class:`~harness.kube.client.Apis`.
The TLS private key exists only in memory and in the Secret created through the API; it is never
written to disk, passed in argv or logged (only the certificate's SHA-256 fingerprint is).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from harness.analysis.envoy_stats import EnvoyCluster, parse_clusters, parse_envoy_stats
from harness.errors import HarnessError, ReadinessTimeout, UsageError
from harness.kube.client import Apis, KubeTarget
from harness.kube.conductor import create_or_replace
from harness.kube.kind_config import kind_host_port
from harness.kube.kustomize import FIELD_MANAGER, stamp_run_labels, to_yaml
from harness.kube.rollout import label_selector, wait_rollout
from harness.kube.runner import CommandRunner
from harness.labels import kube_labels

__all__ = [
    "ISTIO_VERSION", "CHART_REPO", "ISTIO_NAMESPACE", "GATEWAY_RELEASE", "GATEWAY_LABELS", "GATEWAY_PRINCIPAL",
    "PROXY_CONTAINER", "TLS_SECRET", "GATEWAY_HOSTS", "HTTP_NODE_PORT", "HTTPS_NODE_PORT", "STATS_PREFIXES",
    "MESH_GROUPS", "helm_install_argv", "istiod_values", "gateway_values", "kind_gateway_ports",
    "TlsMaterial", "server_tls", "tls_secret_body", "is_mesh_object", "mesh_objects",
    "ApplyOutcome", "IstioMesh", "has_sidecar", "kind_host_port", "istio_images", "ISTIO_HUB",
]

log = logging.getLogger(__name__)

ISTIO_VERSION = "1.31.1"
# From 1.31 Istio publishes charts only at blob.istio.io (and OCI at ghcr.io/istio/release/charts);
# istio-release.storage.googleapis.com is retired, with outage tests before its shutdown in
# December 2026 (istio.io 1.31 upgrade notes, "Deprecation of GCP infrastructure and hosting").
ISTIO_HUB = "docker.io/istio"     # images stay on Docker Hub (same notes); set explicitly in istiod's values
CHART_REPO = "https://blob.istio.io/istio-release/charts"
ISTIO_NAMESPACE = "istio-system"
BASE_RELEASE, ISTIOD_RELEASE, GATEWAY_RELEASE = "istio-base", "istiod", "istio-ingressgateway"
GATEWAY_LABELS = {"istio": "ingressgateway"}           # what the seed's Gateway selects
# The gateway chart's ServiceAccount is named after the release: the identity the conductor's
# sidecar sees on requests from the ingress gateway.
GATEWAY_PRINCIPAL = f"cluster.local/ns/{ISTIO_NAMESPACE}/sa/{GATEWAY_RELEASE}"
PROXY_CONTAINER = "istio-proxy"
TLS_SECRET = "i2s-tls-cert"                               # the seed Gateway's credentialName
GATEWAY_HOSTS = ("api.i2s.studio", "app.i2s.studio")     # the seed Gateway's hosts
HTTP_NODE_PORT, HTTPS_NODE_PORT = 30080, 30443            # kind-config.yml extraPortMappings
STATS_PREFIXES = ("cluster.outbound|8080||conductor.",)   # the conductor's Envoy cluster, any namespace
MESH_GROUPS = ("networking.istio.io", "security.istio.io")
INJECTION_LABEL = "istio-injection"


def istio_images(version: str = ISTIO_VERSION) -> list[str]:
    """What the charts run: istiod (``pilot``) and the gateway/sidecar proxy (``proxyv2``)."""
    return [f"{ISTIO_HUB}/pilot:{version}", f"{ISTIO_HUB}/proxyv2:{version}"]


# -- Helm ----------------------------------------------------------------------------------------------
def helm_install_argv(target: KubeTarget, release: str, chart: str, *, version: str = ISTIO_VERSION,
                      namespace: str = ISTIO_NAMESPACE, values: str | Path | None = None,
                      create_namespace: bool = False, timeout_s: int = 300) -> list[str]:
    """``helm upgrade --install`` pinned to ``target`` (idempotent, so a kept cluster is reused).

    A bare ``--wait`` works in both supported majors: a bool in Helm 3, and in Helm 4 a strategy
    flag whose no-argument default is ``watcher`` (helm/helm pkg/cmd/flags.go ``AddWaitFlag``:
    ``NoOptDefVal = string(kube.StatusWatcherStrategy)``)."""
    argv = ["helm", "upgrade", "--install", release, chart, "--repo", CHART_REPO, "--version", version,
            "--namespace", namespace]
    if create_namespace:
        argv.append("--create-namespace")
    if target.kubeconfig:
        argv += ["--kubeconfig", str(target.kubeconfig)]
    argv += ["--kube-context", target.context]
    if values is not None:
        argv += ["--values", str(values)]
    return argv + ["--wait", "--timeout", f"{int(timeout_s)}s"]


def istiod_values(stats_prefixes: Sequence[str] = STATS_PREFIXES) -> dict[str, Any]:
    return {
        # The image registry, explicit: 1.30's charts defaulted to registry.istio.io, which 1.31 no
        # longer publishes to; the images the harness side-loads are these.
        "global": {"hub": ISTIO_HUB},
        # HA off: one small control plane on a laptop-sized cluster.
        "pilot": {"autoscaleEnabled": False, "replicaCount": 1,
                  "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
        "meshConfig": {
            # Envoy's outlier/circuit-breaker/retry counters for the conductor's cluster
            # (excluded by Istio's default stats matcher).
            "defaultConfig": {"proxyStatsMatcher": {"inclusionPrefixes": list(stats_prefixes)},
                              # The conductor connects to Postgres/Redis/RabbitMQ at start-up:
                              # through a sidecar that is not yet up, those first connects fail.
                              "holdApplicationUntilProxyStarts": True},
            "accessLogFile": "/dev/stdout",   # response flags (UO, URX) in the exported logs
        },
    }


def gateway_values(http_node_port: int = HTTP_NODE_PORT, https_node_port: int = HTTPS_NODE_PORT) -> dict[str, Any]:
    return {
        "replicaCount": 1,
        "autoscaling": {"enabled": False},   # one client proxy: one outlier detector to observe
        "service": {
            "type": "NodePort",
            # The chart replaces the whole list, so the status port is listed again.
            "ports": [
                {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
                {"name": "http2", "port": 80, "targetPort": 80, "nodePort": http_node_port, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 443, "nodePort": https_node_port, "protocol": "TCP"},
            ],
        },
    }


def kind_gateway_ports(kind_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(http, https) NodePorts for the gateway; both must be mapped on 127.0.0.1 by kind-config.yml."""
    from harness.kube.kind_config import port_mappings

    mapped = {m.container_port: m for m in port_mappings(kind_cfg)}
    for port in (HTTP_NODE_PORT, HTTPS_NODE_PORT):
        m = mapped.get(port)
        if m is None or m.listen_address != "127.0.0.1":
            raise UsageError(f"kind-config.yml does not map the Istio ingress gateway NodePort {port} on 127.0.0.1",
                             f"add containerPort {port} with listenAddress 127.0.0.1 to the control-plane's "
                             "extraPortMappings")
    return HTTP_NODE_PORT, HTTPS_NODE_PORT


# -- TLS for the seed Gateway's credentialName ------------------------------------------------------------
@dataclass(frozen=True)
class TlsMaterial:
    cert_pem: str
    key_pem: str = field(repr=False)     # never in reprs, logs or reports
    fingerprint_sha256: str = ""
    hosts: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"self-signed certificate for {', '.join(self.hosts)} (sha256 {self.fingerprint_sha256[:16]}...)"


def server_tls(ca: Any, hosts: Sequence[str] = GATEWAY_HOSTS) -> TlsMaterial:
    """The Gateway's server certificate (SANs = its hosts) issued by the run's CA
    (harness.mesh.certs.CertificateAuthority, the docker mesh's too: one certificate maker).
    Clients trust ``ca.ca_pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not hosts:
        raise UsageError("no hosts for the gateway certificate", "pass the Gateway's hosts (api.i2s.studio, ...)")
    pem = ca.issue_server(list(hosts))
    der = x509.load_pem_x509_certificate(pem.cert.encode()).public_bytes(serialization.Encoding.DER)
    return TlsMaterial(cert_pem=pem.cert, key_pem=pem.key, fingerprint_sha256=hashlib.sha256(der).hexdigest(),
                       hosts=tuple(hosts))


def tls_secret_body(name: str, namespace: str, tls: TlsMaterial, labels: Mapping[str, str]) -> dict[str, Any]:
    """A ``kubernetes.io/tls`` Secret; ``stringData`` so the API server does the encoding."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "annotations": {"i2s-harness/cert-sha256": tls.fingerprint_sha256}},
            "stringData": {"tls.crt": tls.cert_pem, "tls.key": tls.key_pem}}


# -- mesh objects -----------------------------------------------------------------------------------------
def is_mesh_object(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in MESH_GROUPS


def mesh_objects(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Istio objects of a rendering (the kind overlay's objects are the platform's business)."""
    return [d for d in docs if is_mesh_object(d)]


@dataclass
class ApplyOutcome:
    """What the API server said about the mesh objects: strict rejections and pruning warnings."""

    strict_ok: bool
    strict_message: str            # the API server's own words when strict validation refused
    warnings: list[str]
    applied: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"strict_ok": self.strict_ok, "strict_message": self.strict_message, "warnings": self.warnings,
                "applied": self.applied}


# -- Envoy names (the /stats and /clusters parsers are harness.analysis.envoy_stats) ----------------------
def has_sidecar(pod: Any) -> bool:
    """An ``istio-proxy`` container, or an init container (Istio's native-sidecar mode)."""
    spec = pod.spec
    names = [c.name for c in (spec.containers or [])] + [c.name for c in (spec.init_containers or [])]
    return PROXY_CONTAINER in names


# -- the mesh on one cluster ------------------------------------------------------------------------------
class IstioMesh:
    """Istio on the harness's kind cluster: install, inject, apply, read the proxies, remove."""

    def __init__(self, target: KubeTarget, runner: CommandRunner, apis: Apis, *, run_id: str, work_dir: str | Path,
                 version: str = ISTIO_VERSION, http_node_port: int = HTTP_NODE_PORT,
                 https_node_port: int = HTTPS_NODE_PORT, ready_timeout: float = 300.0, interval: float = 2.0,
                 which: Callable[[str], str | None] = shutil.which, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.target, self.runner, self.apis = target, runner, apis
        self.run_id, self.work_dir, self.version = run_id, Path(work_dir), version
        self.http_node_port, self.https_node_port = http_node_port, https_node_port
        self.ready_timeout, self.interval = ready_timeout, interval
        self._which, self._clock, self._sleep = which, clock, sleep
        self.installed = False

    def _kubectl(self, *args: str) -> list[str]:
        return self.target.kubectl(*args)

    # -- install ---------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """The same Helm check as the kind platform's preflight (one place: harness.kube.toolchain)."""
        from harness.kube.toolchain import check_helm

        check_helm(self.runner, self._which, f"installing Istio {self.version} from its official charts",
                   "set HARNESS_MESH=0 to skip the circuit-breaker scenarios")

    def install(self) -> None:
        """base (CRDs) -> istiod -> ingress gateway, each waited for; then the rollouts checked."""
        self.preflight()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        istiod_file = self.work_dir / f"istiod-values-{self.run_id}.yaml"
        gateway_file = self.work_dir / f"gateway-values-{self.run_id}.yaml"
        istiod_file.write_text(yaml.safe_dump(istiod_values(), sort_keys=False))
        gateway_file.write_text(yaml.safe_dump(gateway_values(self.http_node_port, self.https_node_port),
                                               sort_keys=False))
        fix = (f"Helm could not install Istio {self.version} (no network to {CHART_REPO}, or the images "
               "docker.io/istio/* could not be pulled by the kind nodes?); see the output above")
        self.installed = True  # from here on, uninstall() has something to remove
        helm_s = int(self.ready_timeout)   # settings.mesh_ready_timeout_s: Helm's --wait and ours alike
        self.runner.run(helm_install_argv(self.target, BASE_RELEASE, "base", version=self.version,
                                          create_namespace=True, timeout_s=helm_s), timeout=helm_s + 60, fix=fix)
        self.runner.run(self._kubectl("label", "namespace", ISTIO_NAMESPACE, "--overwrite",
                                      *[f"{k}={v}" for k, v in kube_labels(self.run_id).items()]), timeout=60)
        self.runner.run(helm_install_argv(self.target, ISTIOD_RELEASE, "istiod", version=self.version,
                                          values=istiod_file, timeout_s=helm_s), timeout=helm_s + 60, fix=fix)
        self.runner.run(helm_install_argv(self.target, GATEWAY_RELEASE, "gateway", version=self.version,
                                          values=gateway_file, timeout_s=helm_s), timeout=helm_s + 60, fix=fix)
        for name, hint in ((ISTIOD_RELEASE, "istiod must be Ready before any sidecar can be injected "
                                            "(see the istio-system pod logs in the report)"),
                           (GATEWAY_RELEASE, "the ingress gateway's proxy gets its config from istiod; "
                                             "check both pods' logs in the report")):
            wait_rollout(self.apis, ISTIO_NAMESPACE, name, timeout=self.ready_timeout, interval=self.interval,
                         hint=hint, clock=self._clock, sleep=self._sleep)
        self._check_gateway_service()

    def _check_gateway_service(self) -> None:
        svc = self.apis.core.read_namespaced_service(GATEWAY_RELEASE, ISTIO_NAMESPACE)
        ports = {p.name: p.node_port for p in (svc.spec.ports or [])}
        want = {"http2": self.http_node_port, "https": self.https_node_port}
        if svc.spec.type != "NodePort" or any(ports.get(k) != v for k, v in want.items()):
            raise HarnessError(f"Service {ISTIO_NAMESPACE}/{GATEWAY_RELEASE} is {svc.spec.type} with node ports "
                               f"{ports}, not NodePort {want}",
                               "another gateway install owns it; delete it or use a fresh cluster")

    def uninstall(self) -> None:
        """Reverse order; best effort (a half-installed release must not stop the teardown)."""
        if not self.installed:
            return
        for release in (GATEWAY_RELEASE, ISTIOD_RELEASE, BASE_RELEASE):
            argv = ["helm", "uninstall", release, "--namespace", ISTIO_NAMESPACE]
            if self.target.kubeconfig:
                argv += ["--kubeconfig", str(self.target.kubeconfig)]
            argv += ["--kube-context", self.target.context, "--wait", "--timeout", "120s"]
            res = self.runner.run(argv, timeout=180, check=False)
            if not res.ok:
                log.warning("helm uninstall %s failed: %s", release, (res.stderr or res.stdout).strip()[:200])
        self.installed = False

    # -- TLS -------------------------------------------------------------------------------------------
    def create_tls_secret(self, ca: Any, name: str = TLS_SECRET, hosts: Sequence[str] = GATEWAY_HOSTS) -> TlsMaterial:
        """The Secret the seed Gateway's ``credentialName`` names, in the gateway's namespace (where
        Istio's SDS looks it up), issued by ``ca`` (:func:`server_tls`). Returns the material; only
        the certificate may leave memory."""
        tls = server_tls(ca, hosts)
        body = tls_secret_body(name, ISTIO_NAMESPACE, tls, kube_labels(self.run_id))
        how = create_or_replace(self.apis.core.create_namespaced_secret, self.apis.core.replace_namespaced_secret,
                                ISTIO_NAMESPACE, body)
        log.info("secret %s/%s %s: %s", ISTIO_NAMESPACE, name, how, tls)  # fingerprint only, never the key
        return tls

    # -- sidecar injection -----------------------------------------------------------------------------
    def enable_injection(self, namespace: str, deployment: str, selector: Mapping[str, str]) -> list[str]:
        """Label the namespace, restart the Deployment, wait, and check every pod got a sidecar.

        Returns the pod names. A pod without ``istio-proxy`` after the rollout means the webhook
        did not run (istiod not ready when the pods were created, or the label did not land)."""
        self.runner.run(self._kubectl("label", "namespace", namespace, f"{INJECTION_LABEL}=enabled", "--overwrite"),
                        timeout=60)
        self._restart(namespace, deployment)
        pods = [p for p in self.apis.core.list_namespaced_pod(namespace, label_selector=label_selector(dict(selector))).items
                if p.metadata.deletion_timestamp is None]
        bare = [p.metadata.name for p in pods if not has_sidecar(p)]
        if not pods or bare:
            raise HarnessError(f"conductor pods in {namespace} run without the {PROXY_CONTAINER} sidecar "
                               f"({', '.join(bare) or 'no pods at all'})",
                               f"check `kubectl get mutatingwebhookconfiguration istio-sidecar-injector` and the "
                               f"{INJECTION_LABEL}=enabled label on namespace {namespace}")
        return sorted(p.metadata.name for p in pods)

    def disable_injection(self, namespace: str, deployment: str) -> None:
        self.runner.run(self._kubectl("label", "namespace", namespace, f"{INJECTION_LABEL}-"), timeout=60, check=False)
        self._restart(namespace, deployment)

    def _restart(self, namespace: str, deployment: str) -> None:
        self.runner.run(self._kubectl("-n", namespace, "rollout", "restart", f"deployment/{deployment}"), timeout=60)
        wait_rollout(self.apis, namespace, deployment, timeout=self.ready_timeout, interval=self.interval,
                     hint="a pod with a sidecar that never gets Ready usually cannot reach istiod "
                          "(see the istio-proxy container's log in the report)",
                     clock=self._clock, sleep=self._sleep)

    # -- mesh objects ----------------------------------------------------------------------------------
    def apply_mesh(self, docs: Sequence[dict[str, Any]]) -> ApplyOutcome:
        """Server-side apply of the Istio objects, the way the API server judges them.

        First a strict server-side dry run: if the API server refuses a field (the seed's
        ``circuitBreaker``), its message is kept as the finding. Then the objects are applied with
        ``--validate=warn``, so an unknown field is pruned rather than the whole object refused —
        the most favourable reading of the seed (the rest of the rule, e.g. connectionPool, takes
        effect), in which the verdict about outlier detection still holds.
        """
        objs = stamp_run_labels(mesh_objects(docs), self.run_id)  # metadata.labels only; selectors untouched
        if not objs:
            raise UsageError("the rendering has no Istio objects", "render k8s/overlays/kind-istio")
        base = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-"]
        dry = self.runner.run(self._kubectl(*base, "--dry-run=server", "--validate=strict"), input=to_yaml(objs),
                              timeout=120, check=False)
        strict_message = "" if dry.ok else (dry.stderr or dry.stdout).strip()
        res = self.runner.run(self._kubectl(*base, "--validate=warn"), input=to_yaml(objs), timeout=120,
                              fix="the API server refused the Istio objects even with unknown fields pruned; "
                                  "are the Istio CRDs installed (helm release istio-base)?")
        warnings = [ln.strip() for ln in res.stderr.splitlines() if "warning" in ln.lower()]
        applied = [f"{d['kind']}/{d['metadata'].get('namespace', '')}/{d['metadata']['name']}" for d in objs]
        return ApplyOutcome(dry.ok, strict_message, warnings, applied)

    def delete_mesh(self, docs: Sequence[dict[str, Any]]) -> None:
        objs = mesh_objects(docs)
        if objs:
            self.runner.run(self._kubectl("delete", "--ignore-not-found", "--wait=true", "-f", "-"),
                            input=to_yaml(objs), timeout=120, check=False)

    # -- the proxies -----------------------------------------------------------------------------------
    def gateway_pod(self) -> str:
        pods = self.apis.core.list_namespaced_pod(ISTIO_NAMESPACE, label_selector=label_selector(GATEWAY_LABELS)).items
        ready = sorted(p.metadata.name for p in pods if p.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])))
        if not ready:
            raise ReadinessTimeout(f"no Ready ingress gateway pod ({label_selector(GATEWAY_LABELS)}) in {ISTIO_NAMESPACE}",
                                   "see the istio-system pod logs in the report")
        return ready[0]

    def proxy_request(self, pod: str, namespace: str, path: str, timeout: float = 20.0) -> str:
        """``pilot-agent request GET <path>`` in the pod's istio-proxy container (Envoy's admin API)."""
        res = self.runner.run(self._kubectl("-n", namespace, "exec", pod, "-c", PROXY_CONTAINER, "--",
                                            "pilot-agent", "request", "GET", path), timeout=timeout,
                              fix=f"could not read Envoy's {path} from {namespace}/{pod}; is its istio-proxy running?")
        return res.stdout

    def stats(self, pod: str, namespace: str = ISTIO_NAMESPACE) -> dict[str, float]:
        return parse_envoy_stats(self.proxy_request(pod, namespace, "stats"))

    def clusters(self, pod: str, namespace: str = ISTIO_NAMESPACE, only: str | None = None) -> dict[str, EnvoyCluster]:
        return parse_clusters(self.proxy_request(pod, namespace, "clusters"), only=only)

