"""A run-scoped certificate authority for the docker mesh: the Gateway's ``credentialName``
certificate and SPIFFE workload certificates, as Istio's CA (istiod's Citadel) would issue them.

Istio's workload certificates carry the identity as their only URI SAN,
``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``, are usable for both server and
client authentication (the same certificate serves inbound mTLS and outbound mTLS), and chain to
the mesh root. The Gateway's ``credentialName`` secret is an ordinary server certificate for the
server's hosts. Here one throwaway root per run signs both; nothing is trusted outside the run.

Pure: returns PEM strings; the time the certificates start from is the caller's; writing files (and keeping keys out of logs and reports) is the
caller's job. Uses ``cryptography`` (EC P-256 keys: fast to make, accepted by Envoy's BoringSSL).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.errors import UsageError

__all__ = ["Pem", "CertificateAuthority", "spiffe_id", "TRUST_DOMAIN"]

TRUST_DOMAIN = "cluster.local"     # Istio's default meshConfig.trustDomain
_VALIDITY = _dt.timedelta(days=2)  # a run is hours long; Istio's workload certs default to 24h
_BACKDATE = _dt.timedelta(minutes=5)  # tolerate small clock skew between containers


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """Istio's workload identity: ``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``."""
    for what, value in (("namespace", namespace), ("service account", service_account)):
        if not value or "/" in value:
            raise UsageError(f"SPIFFE {what} {value!r} is empty or contains '/'", "pass a Kubernetes name")
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM text (the key is a secret: never log it)."""

    cert: str
    key: str

    def __repr__(self) -> str:  # keep the key out of reprs and tracebacks
        return f"Pem(cert=<{len(self.cert)} chars>, key=<redacted>)"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class CertificateAuthority:
    """A self-signed root made for one run (``run_id`` in its subject), held in memory only."""

    def __init__(self, run_id: str, *, now: _dt.datetime) -> None:
        """``now``: the caller's clock (timezone-aware); every certificate is valid from a little
        before it (clock skew between containers) for the length of a run."""
        if not run_id:
            raise UsageError("CertificateAuthority needs a run id", "pass the harness run id")
        if now.tzinfo is None:
            raise UsageError("CertificateAuthority needs a timezone-aware time", "pass datetime.now(timezone.utc)")
        self.run_id = run_id
        self._now = now
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "i2s-harness"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"i2s-harness mesh root {run_id}")])
        self._name = name
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))

    def __repr__(self) -> str:
        return f"CertificateAuthority(run_id={self.run_id!r})"

    @property
    def ca_pem(self) -> str:
        """The root certificate (trust anchor for clients, gateway and sidecars)."""
        return self._cert.public_bytes(serialization.Encoding.PEM).decode()

    def _issue(self, common_name: str, sans: list[x509.GeneralName], usages: list[x509.ObjectIdentifier]) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._now
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "i2s-harness"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
            .issuer_name(self._name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            # Istio marks the SAN critical when the subject is empty; ours has a subject, so not critical.
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))

    def issue_server(self, hosts: Sequence[str]) -> Pem:
        """Server certificate for the Gateway's hosts (DNS SANs): the ``credentialName`` secret."""
        hosts = [h for h in hosts if h]
        if not hosts:
            raise UsageError("no hosts for the gateway's server certificate", "pass the Gateway server's hosts")
        return self._issue(hosts[0], [x509.DNSName(h) for h in hosts], [ExtendedKeyUsageOID.SERVER_AUTH])

    def issue_workload(self, spiffe: str) -> Pem:
        """Workload certificate with the SPIFFE ID as its only URI SAN (server and client auth)."""
        if not spiffe.startswith("spiffe://"):
            raise UsageError(f"{spiffe!r} is not a SPIFFE ID", "build it with harness.mesh.certs.spiffe_id")
        return self._issue(spiffe.rsplit("/", 1)[-1], [x509.UniformResourceIdentifier(spiffe)],
                           [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
