"""The seed's Istio objects (k8s/istio/gateway.yml) read into what the translation needs, with the
findings the kind path reports (namespace mismatch, ``circuitBreaker`` not an Istio field, ...).

Pure apart from reading manifests through :mod:`harness.manifests`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.oracles.outlier import DestinationRuleMapping, Finding

__all__ = ["Endpoint", "TlsBundle", "Mesh", "load_mesh", "GATEWAY_NAMESPACE", "GATEWAY_SERVICE_ACCOUNT"]

GATEWAY_NAMESPACE = "istio-system"
#: The ingress gateway's ServiceAccount as the harness installs it on kind (Helm ``gateway`` chart,
#: release ``istio-ingressgateway``; see harness/kube/istio.py GATEWAY_PRINCIPAL and the what-if overlay).
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway"


@dataclass(frozen=True)
class Endpoint:
    """One upstream endpoint the caller knows (no Kubernetes DNS on docker): a STATIC cluster member.

    ``zone`` becomes the Envoy locality's ``zone``; its ``region`` is the zone name without its
    trailing letter (``us-east-1a`` -> ``us-east-1``), as cloud zone names are built.
    """

    name: str
    address: str
    port: int
    zone: str = ""


@dataclass(frozen=True)
class TlsBundle:
    """The TLS material one Envoy uses. Each value is either PEM text (inlined into the bootstrap:
    then the bootstrap holds a private key and must not be copied into reports) or a file path as
    the Envoy process sees it (the caller writes the PEMs from :mod:`harness.mesh.certs`).

    ``ca``: the run's root; ``cert``/``key``: the workload's SPIFFE certificate;
    ``server_cert``/``server_key``: the Gateway's ``credentialName`` certificate (gateway only).
    """

    ca: str
    cert: str
    key: str
    server_cert: str | None = None
    server_key: str | None = None

    def __repr__(self) -> str:
        return "TlsBundle(<redacted>)"


@dataclass
class Mesh:
    """The seed's mesh objects as the translation reads them, and what the harness found in them.

    ``objects``: the documents after the harness's changes (namespace moved to the workload's, and
    in the what-if the kind-istio-intended overlay's patches); ``seed``: as written.
    """

    what_if: bool
    seed: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    workload_namespace: str
    conductor_service_account: str
    destination_rule: DestinationRuleMapping
    findings: list[Finding] = field(default_factory=list)

    @property
    def gateway_hosts(self) -> list[str]:
        """The Gateway's hosts (the server certificate's DNS names and the SNI match)."""
        raise NotImplementedError

    @property
    def gateway_identity(self) -> str:
        """The ingress gateway's SPIFFE ID."""
        raise NotImplementedError

    @property
    def conductor_identity(self) -> str:
        """The conductor's SPIFFE ID (its Deployment's serviceAccountName in its namespace)."""
        raise NotImplementedError

    def object(self, kind: str) -> dict[str, Any] | None:
        """The first object of ``kind`` (the seed has one of each)."""
        return next((d for d in self.objects if d.get("kind") == kind), None)


def load_mesh(manifests_dir: str | Path = "k8s", what_if: bool = False) -> Mesh:
    """Read k8s/istio/gateway.yml and the conductor Deployment; ``what_if`` applies the
    kind-istio-intended overlay's reading (``circuitBreaker`` as ``outlierDetection``, the
    AuthorizationPolicy's principal set to the ingress gateway's identity), labeled as such."""
    raise NotImplementedError
