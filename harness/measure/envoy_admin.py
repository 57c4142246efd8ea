"""Envoy's admin API read the same way on every platform: one interface, two transports.

On kind the proxy's admin listener is bound to localhost inside the pod, reached with
``pilot-agent request GET <path>`` in its istio-proxy container (:class:`PilotAgentAdmin`); on
docker the harness's own Envoys publish their admin port on 127.0.0.1 (:class:`HttpAdmin`).
Parsing (``/stats`` text, ``/clusters`` text) is shared and pure (harness.analysis.envoy_stats),
and :class:`ProxySampler` reads a :class:`~harness.analysis.circuit_breaker.series.ClusterSample`
every second through whichever transport it is given.
"""
from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Protocol

from harness.analysis.circuit_breaker.series import ClusterSample, cluster_sample
from harness.analysis.envoy_stats import EnvoyCluster, parse_clusters, parse_envoy_stats
from harness.errors import UsageError
from harness.sampling import Sampler

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
    seconds on a background :class:`harness.sampling.Sampler` (``read`` returns a
    :class:`ClusterSample`); a failed read is kept as an error and sampling goes on, so a slow
    ``kubectl exec`` costs one point, not the run."""

    def __init__(self, read: Callable[[], ClusterSample], interval: float = 1.0):
        self.read, self.interval = read, interval
        self._sampler: Sampler[ClusterSample] = Sampler(read, interval, name="proxy-sampler")

    @property
    def samples(self) -> list[ClusterSample]:
        """The samples read so far, in reading order."""
        return self._sampler.results

    @property
    def errors(self) -> list[str]:
        """The failed reads so far, one line each: ``<wall time>: <type>: <message>``."""
        return [f"{e.at:.1f}: {e.type}: {e.message[:200]}" for e in self._sampler.errors]

    def start(self) -> "ProxySampler":
        self._sampler.start()
        return self

    def stop(self) -> list[ClusterSample]:
        """Stop sampling; the samples sorted by their time."""
        return sorted(self._sampler.stop(30), key=lambda s: s.t)
