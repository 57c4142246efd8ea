"""Load through an HTTPS gateway on 127.0.0.1 with the seed's host as SNI and Host, the
certificate pinned to the run's CA (the kind path's direct load driver for the circuit-breaker
scenario: threads at a fixed rate or closed-loop, every response recorded)."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from typing import Any, Mapping

from harness.load.responses import ResponseRecord, classify_response
from harness.errors import UsageError

__all__ = ["GatewayClient"]


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 presenting ``sni`` (the Gateway's host) and verifying the cert for it."""

    def __init__(self, host: str, port: int, sni: str, context: ssl.SSLContext, timeout: float):
        super().__init__(host, port, timeout=timeout, context=context)
        self.sni = sni

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.sni)  # type: ignore[attr-defined]


class GatewayClient:
    """Requests to the Istio ingress gateway on 127.0.0.1 as ``https://<host_header>``.

    The gateway picks the server by SNI and the route by Host, so both carry the seed's host name
    while the TCP connection goes to the kind port mapping; the certificate is pinned to the
    harness's self-signed one (``ca_pem``), so a wrong listener fails loudly, not silently.
    """

    def __init__(self, port: int, *, host_header: str, ca_pem: str, address: str = "127.0.0.1",
                 timeout: float = 40.0):
        if address not in ("127.0.0.1", "localhost", "::1"):
            raise UsageError(f"gateway address {address} is not loopback", "traffic goes only to 127.0.0.1")
        self.port, self.host_header, self.address, self.timeout = port, host_header, address, timeout
        self.context = ssl.create_default_context(cadata=ca_pem)

    def connection(self) -> _SniConnection:
        return _SniConnection(self.address, self.port, self.host_header, self.context, self.timeout)

    def request(self, conn: _SniConnection | None, method: str = "POST", path: str = "/api/v1/pipeline",
                body: Mapping[str, Any] | None = None) -> tuple[_SniConnection | None, ResponseRecord]:
        """One request on ``conn`` (reconnects when needed); never raises for HTTP or socket errors."""
        t = time.time()
        data = json.dumps(body if body is not None else {"name": "circuit-breaker"}).encode() if method == "POST" else None
        headers = {"Host": self.host_header, "Content-Type": "application/json"}
        for attempt in (0, 1):  # a kept-alive connection the server closed: one fresh try
            conn = conn or self.connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                pod, flag = classify_response(resp.status, dict(resp.getheaders()), payload)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
                return conn, ResponseRecord(t, resp.status, pod, flag, (time.time() - t) * 1000)
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 1 or isinstance(exc, ssl.SSLCertVerificationError):
                    return None, ResponseRecord(t, 0, "-", "conn", (time.time() - t) * 1000)
        return None, ResponseRecord(t, 0, "-", "conn", 0.0)  # pragma: no cover - loop always returns
