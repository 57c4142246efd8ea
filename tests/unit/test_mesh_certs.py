"""The run-scoped CA is pure: its certificates' validity starts from the time the caller passes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509

from harness.errors import UsageError
from harness.mesh.certs import CertificateAuthority, spiffe_id

NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def test_validity_follows_the_callers_time() -> None:
    ca = CertificateAuthority("run-1", now=NOW)
    for pem in (ca.ca_pem, ca.issue_server(["api.example.test"]).cert, ca.issue_workload(spiffe_id("ns", "sa")).cert):
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
        assert cert.not_valid_after_utc == NOW + timedelta(days=2)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        CertificateAuthority("run-1", now=datetime(2031, 5, 6))
