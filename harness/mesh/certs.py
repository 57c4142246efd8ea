"""A run-scoped certificate authority for the docker mesh: the Gateway's ``credentialName``
certificate and SPIFFE workload certificates, as Istio's CA would issue them.

Pure: returns PEM strings; writing files (and keeping keys out of logs) is the caller's job.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pem", "CertificateAuthority", "spiffe_id"]


def spiffe_id(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """Istio's workload identity: ``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM text (the key is a secret: never log it)."""

    cert: str
    key: str

    def __repr__(self) -> str:  # keep the key out of reprs and tracebacks
        return f"Pem(cert=<{len(self.cert)} chars>, key=<redacted>)"


class CertificateAuthority:
    """A self-signed root made for one run (``run_id`` in its subject)."""

    def __init__(self, run_id: str) -> None:
        raise NotImplementedError

    @property
    def ca_pem(self) -> str:
        """The root certificate (trust anchor for clients, gateway and sidecars)."""
        raise NotImplementedError

    def issue_server(self, hosts: list[str]) -> Pem:
        """Server certificate for the Gateway's hosts (DNS SANs), the ``credentialName`` secret."""
        raise NotImplementedError

    def issue_workload(self, spiffe: str) -> Pem:
        """Workload certificate with the SPIFFE ID as its only URI SAN (client and server auth)."""
        raise NotImplementedError
