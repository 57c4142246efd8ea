"""Locust (the harness's runner and locustfile) through an HTTPS gateway on 127.0.0.1 that routes
by name: the seed Gateway's host as SNI and Host, the certificate verified against the run's CA.

The "gateway" is a real TLS server on loopback with a certificate from the run CA
(harness.mesh.certs) for the seed's host; it records the SNI and Host of every connection. A wrong
name (the certificate does not carry it) must fail every request, so the check can fail.
"""
from __future__ import annotations

from datetime import datetime, timezone
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.analysis.circuit_breaker.series import records_from_seconds
from harness.errors import UsageError
from harness.load.runner import run_locust
from harness.mesh.certs import CertificateAuthority

HOST = "api.i2s.studio"


@pytest.fixture(scope="module")
def gateway():
    ca = CertificateAuthority("tls-sni-test", now=datetime.now(timezone.utc))
    pem = ca.issue_server([HOST])
    seen: dict[str, set[str]] = {"sni": set(), "host": set()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: dict) -> None:
            seen["host"].add(self.headers.get("Host", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", "conductor-tls-0")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(201, {"id": "p-1"})

        def do_GET(self) -> None:  # noqa: N802
            self._answer(200, {"id": "p-1"})

        def log_message(self, *args) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_text(pem.cert)
        key.write_text(pem.key)
        key.chmod(0o600)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = lambda sock, name, _ctx: seen["sni"].add(name or "")
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        ca_file = Path(tmp) / "ca.pem"
        ca_file.write_text(ca.ca_pem)   # public half only
        try:
            yield f"https://127.0.0.1:{server.server_address[1]}", ca_file, seen
        finally:
            server.shutdown()


def test_locust_sends_sni_and_host_and_verifies_the_run_ca(gateway, tmp_path):
    url, ca_file, seen = gateway
    result = run_locust([url], tmp_path, name="tls", users=2, spawn_rate=2, duration_s=4, progress=lambda _m: None,
                        tls_sni=HOST, tls_ca_file=ca_file)
    assert result.requests >= 4 and result.failures_count == 0
    assert seen["sni"] == {HOST} and seen["host"] == {HOST}
    assert set(result.per_replica()) == {"conductor-tls-0"}
    records = records_from_seconds(result.seconds)   # per-response codes for the analysis
    assert len(records) == sum(s["ok"] + s["fail"] for s in result.seconds) >= result.requests
    assert {r.status for r in records} <= {200, 201}
    assert {r.pod for r in records} == {"conductor-tls-0"}


def test_a_name_the_certificate_does_not_carry_fails_every_request(gateway, tmp_path):
    url, ca_file, _ = gateway
    result = run_locust([url], tmp_path, name="badsni", users=1, spawn_rate=1, duration_s=3,
                        progress=lambda _m: None, tls_sni="app.other.example", tls_ca_file=ca_file)
    assert result.requests >= 1 and result.failures_count == result.requests
    assert {r.status for r in records_from_seconds(result.seconds)} == {0}   # no HTTP answer at all


def test_tls_without_a_ca_file_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(UsageError):
        run_locust(["https://127.0.0.1:1"], tmp_path, tls_sni=HOST, tls_ca_file=None)
