"""Envoy's admin API read the same way on every platform: one interface, two transports.

On kind the proxy's admin listener is bound to localhost inside the pod, reached with
``pilot-agent request GET <path>`` in its istio-proxy container (:class:`PilotAgentAdmin`); on
docker the harness's own Envoys publish their admin port on 127.0.0.1 (:class:`HttpAdmin`).
Parsing (``/stats`` text, ``/clusters`` text) is shared and pure (harness.kube.istio's parsers),
and :class:`ProxySampler` reads a :class:`~harness.analysis.circuit_breaker.series.ClusterSample`
every second through whichever transport it is given.
"""
from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Protocol

from harness.analysis.circuit_breaker.series import ClusterSample, cluster_sample
from harness.errors import UsageError
from harness.kube.istio import EnvoyCluster, parse_clusters, parse_envoy_stats

__all__ = ["EnvoyAdmin", "HttpAdmin", "PilotAgentAdmin", "sample_reader", "ProxySampler"]




class EnvoyAdmin(Protocol):
    """Envoy's admin API: ``get(path)`` returns the text of ``GET /<path>``."""

    def get(self, path: str) -> str: ...


class AdminReads:
    """The reads every transport offers, built on ``get``."""

    def get(self, path: str) -> str:  # pragma: no cover - implemented by transports
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """``/stats`` parsed (name -> value)."""
        return parse_envoy_stats(self.get("stats"))

    def clusters(self, only: str | None = None) -> dict[str, EnvoyCluster]:
        """``/clusters`` parsed (per cluster: hosts with counters and health flags, thresholds)."""
        return parse_clusters(self.get("clusters"), only=only)

    def server_info(self) -> dict[str, Any]:
        """``/server_info`` (JSON: version, state, uptime)."""
        import json

        return json.loads(self.get("server_info"))


class HttpAdmin(AdminReads):
    """Admin API over HTTP at a published 127.0.0.1 port (the docker platform's Envoys)."""

    def __init__(self, base_url: str, timeout: float = 5.0):
        host = urllib.parse.urlsplit(base_url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise UsageError(f"Envoy admin URL {base_url} is not loopback", "admin is published on 127.0.0.1 only")
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base_url}/{path.lstrip('/')}", timeout=self.timeout) as resp:
            return resp.read().decode()

    def post(self, path: str) -> str:
        """``POST /<path>`` (e.g. ``healthcheck/fail``, ``reset_counters``)."""
        req = urllib.request.Request(f"{self.base_url}/{path.lstrip('/')}", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return resp.read().decode()


class PilotAgentAdmin(AdminReads):
    """Admin API of an Istio proxy through ``pilot-agent request`` (kind; see IstioMesh.proxy_request)."""

    def __init__(self, mesh: Any, pod: str, namespace: str):
        self.mesh, self.pod, self.namespace = mesh, pod, namespace

    def get(self, path: str) -> str:
        return self.mesh.proxy_request(self.pod, self.namespace, path.lstrip("/"))


def sample_reader(admin: AdminReads, cluster: str) -> Callable[[], ClusterSample]:
    """A function reading one :class:`ClusterSample` of ``cluster`` (``/clusters`` then ``/stats``)."""
    def read() -> ClusterSample:
        t = time.time()
        return cluster_sample(t, admin.clusters(only=cluster), admin.stats(), cluster)
    return read


class ProxySampler:
    """Reads the gateway proxy's ``/clusters`` and ``/stats`` for one cluster every ``interval``
    seconds on a thread (``read`` returns a :class:`ClusterSample`); a failed read is kept as an
    error and sampling goes on, so a slow ``kubectl exec`` costs one point, not the run."""

    def __init__(self, read: Callable[[], ClusterSample], interval: float = 1.0):
        self.read, self.interval = read, interval
        self.samples: list[ClusterSample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ProxySampler":
        def loop() -> None:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    self.samples.append(self.read())
                except Exception as exc:  # noqa: BLE001 - one lost point; recorded, never silent
                    self.errors.append(f"{time.time():.1f}: {type(exc).__name__}: {str(exc)[:200]}")
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

        self._thread = threading.Thread(target=loop, daemon=True, name="proxy-sampler")
        self._thread.start()
        return self

    def stop(self) -> list[ClusterSample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return sorted(self.samples, key=lambda s: s.t)

