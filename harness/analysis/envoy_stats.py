"""Envoy's admin output parsed, purely: ``/stats`` text (``name: value`` lines), one cluster's stats,
the outlier-detection snapshot the ejection analysis reads, and ``/clusters`` text (hosts with their
counters and health flags, circuit-breaker thresholds, the outlier detector).

No I/O: the readers (``harness.measure.envoy_admin`` over HTTP or ``pilot-agent request``, and
``harness.kube.istio.IstioMesh``) fetch the text and hand it here. Formats per Envoy's admin docs
(``/stats``, ``/clusters`` text output) and ``HostUtility::healthFlagsToString``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.errors import HarnessError

__all__ = ["parse_envoy_stats", "cluster_stats", "outlier_snapshot", "EnvoyHost", "EnvoyCluster", "parse_clusters"]


_STAT_LINE = re.compile(r"^([^:\s][^:]*?): (-?\d+(?:\.\d+)?)\s*$")


def parse_envoy_stats(text: str) -> dict[str, float]:
    """Envoy's ``/stats`` text (``name: value`` per line) as a dict.

    Histogram lines (``name: P0(...) P25(...)`` or ``No recorded values``) are skipped: only
    counters and gauges carry what the harness compares. Raises on text that is not stats at all
    (e.g. an error page from pilot-agent) so a broken read is never mistaken for "all zero".
    """
    out: dict[str, float] = {}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line in lines:
        m = _STAT_LINE.match(line)
        if m:
            v = float(m.group(2))
            out[m.group(1)] = int(v) if v.is_integer() else v
    if lines and not out:
        raise HarnessError(f"the proxy's stats output has no `name: value` line ({lines[0][:120]!r})",
                           "check that the pod runs an istio-proxy container (pilot-agent request GET stats)")
    return out


def cluster_stats(stats: Mapping[str, float], cluster: str) -> dict[str, float]:
    """The stats of one Envoy cluster, keyed by the part after ``cluster.<name>.``."""
    prefix = f"cluster.{cluster}."
    return {k[len(prefix):]: v for k, v in stats.items() if k.startswith(prefix)}


def outlier_snapshot(t: float, stats: Mapping[str, float], cluster: str) -> dict[str, Any]:
    """One ``envoy_stats`` entry for :func:`harness.oracles.ejection_analysis.analyze_ejections`:
    ``{"t": t, "stats": {"cluster.<name>.outlier_detection.<stat>": value}}`` (this cluster only)."""
    prefix = f"cluster.{cluster}.outlier_detection."
    return {"t": t, "stats": {k: v for k, v in stats.items() if k.startswith(prefix)}}


@dataclass
class EnvoyHost:
    address: str                       # "10.244.1.5:8080"
    counters: dict[str, int] = field(default_factory=dict)   # cx_*, rq_* (rq_error = 5xx, rq_success = not 5xx)
    health_flags: tuple[str, ...] = ()  # () = "healthy"
    hostname: str = ""
    success_rate: float | None = None

    @property
    def ip(self) -> str:
        return self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def ejected(self) -> bool:
        """Envoy's own ejection state (``HostUtility::healthFlagsToString``)."""
        return "failed_outlier_check" in self.health_flags


@dataclass
class EnvoyCluster:
    name: str
    thresholds: dict[str, dict[str, int]] = field(default_factory=dict)   # priority -> max_connections...
    hosts: dict[str, EnvoyHost] = field(default_factory=dict)
    outlier: dict[str, float] = field(default_factory=dict)   # only present with an outlier detector
    attributes: dict[str, str] = field(default_factory=dict)


_HOST_ATTRS = {"hostname", "health_flags", "weight", "region", "zone", "sub_zone", "canary", "priority",
               "success_rate", "local_origin_success_rate"}
_ADDR = re.compile(r"^(\[[0-9a-fA-F:]+\]|\d{1,3}(?:\.\d{1,3}){3}):\d+$")


def parse_clusters(text: str, only: str | None = None) -> dict[str, EnvoyCluster]:
    """Envoy's ``/clusters`` text output.

    Lines are ``<cluster>::<host addr>::<stat>::<value>`` per host,
    ``<cluster>::<priority>::<threshold>::<value>`` for circuit-breaker limits and
    ``<cluster>::outlier::<name>::<value>`` when the cluster has an outlier detector. Cluster names
    contain ``|`` but never ``::``.
    """
    out: dict[str, EnvoyCluster] = {}
    seen_any = False
    for line in text.splitlines():
        parts = line.strip().split("::")
        if len(parts) < 3:
            continue
        seen_any = True
        name = parts[0]
        if only is not None and name != only:
            continue
        c = out.setdefault(name, EnvoyCluster(name))
        if len(parts) == 4 and _ADDR.match(parts[1]):
            host = c.hosts.setdefault(parts[1], EnvoyHost(parts[1]))
            key, value = parts[2], parts[3]
            if key == "health_flags":
                host.health_flags = () if value == "healthy" else tuple(f for f in value.split("/") if f)
            elif key == "hostname":
                host.hostname = value
            elif key == "success_rate":
                host.success_rate = float(value)
            elif key not in _HOST_ATTRS and value.lstrip("-").isdigit():
                host.counters[key] = int(value)
        elif len(parts) == 4 and parts[1] == "outlier":
            c.outlier[parts[2]] = float(parts[3])
        elif len(parts) == 4 and parts[1].endswith("_priority"):
            c.thresholds.setdefault(parts[1], {})[parts[2]] = int(parts[3])
        elif len(parts) == 3:
            c.attributes[parts[1]] = parts[2]
    if text.strip() and not seen_any:
        raise HarnessError(f"the proxy's /clusters output is not in Envoy's text format ({text.strip()[:120]!r})",
                           "check that the pod runs an istio-proxy container (pilot-agent request GET clusters)")
    return out
