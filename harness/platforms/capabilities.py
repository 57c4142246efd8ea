"""The capability adapters a platform gives scenarios and faults: the one place docker and kind differ.

A scenario or a fault asks the platform for a capability and uses it the same way on every
platform; it never asks which platform it is on. Three capabilities:

* ``mesh`` (:class:`MeshAdapter`): install the mesh, inject sidecars, apply a reading of the seed's
  Istio objects, the ingress gateway's address and TLS trust, the gateway proxies as a list (each
  its own address and Envoy admin reads; docker runs ``mesh_gateways`` of them, kind one), the
  replicas' sidecars' own overflow, the replicas behind it and their faults (delay/abort through
  the conductor's fault endpoint).
  Docker: the harness does istiod's job with real Envoy (``harness.platforms.docker_mesh``);
  kind: Istio from its Helm charts (``harness.platforms.kind_mesh``).
* ``application_tier`` (:class:`ApplicationTier`): the conductor's replicas deployed, lost and
  replaced, scaled -- from the platform object or rebuilt in the chaos process
  (``harness.platforms.attach``).
* ``zones`` (:class:`Zones`): the placements and failure modes a zone-loss case can have here
  (one the platform lacks skips with its reason: :meth:`Zones.check`), the replicas placed and the
  layout reported (:class:`ZoneLayout`), what is still down after the restore; the zone itself is
  lost and restored in the chaos process by the attached platform's ``zones``
  (harness.platforms.attach.ZoneFailures: power loss or partition on docker, a drain on Kubernetes).

A platform that cannot do something raises :class:`Unsupported` with the reason from
``Platform.capability`` (a scenario turns it into a skip with that reason: :func:`require`).
``tests/unit/test_platform_seam.py`` checks that every platform implements or declines each one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.errors import HarnessError

__all__ = ["CAPABILITIES", "Unsupported", "MeshAdapter", "AppliedMesh", "GatewayAddress", "GatewayProxy",
           "ApplicationTier", "Zones", "ZoneLayout", "require"]

CAPABILITIES = ("mesh", "application_tier", "zones")


class Unsupported(HarnessError):
    """The platform cannot do this; ``reason`` says why (a scenario skips with it)."""

    def __init__(self, capability: str, reason: str):
        super().__init__(f"{capability}: {reason}", "run the scenario on a platform that supports it")
        self.capability, self.reason = capability, reason


def require(platform: Any, capability: str, **kw: Any) -> Any:
    """``platform.capability(capability, **kw)``, or the calling test skipped with the platform's reason."""
    import pytest

    try:
        return platform.capability(capability, **kw)
    except Unsupported as exc:
        pytest.skip(exc.reason)


@dataclass(frozen=True)
class GatewayAddress:
    """How users reach the mesh's ingress gateway: HTTPS on 127.0.0.1 with the Gateway's host as SNI."""

    url: str                 # https://127.0.0.1:<port>
    host: str                # SNI and Host header
    ca_pem: str              # what verifies the gateway's certificate (public)
    ca_file: Path            # the same, written for Locust

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@dataclass(frozen=True)
class GatewayProxy:
    """One ingress gateway proxy the harness reads: its name (in reports) and its Envoy admin API
    (harness.measure.envoy_admin.AdminReads). Each has its own outlier detector and counters."""

    name: str
    admin: Any


@dataclass
class AppliedMesh:
    """What applying a reading of the seed's Istio objects gave: the API server's strict verdict
    (kind; docker translates without one) and its warnings."""

    strict_ok: bool = True
    strict_message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class MeshAdapter(ABC):
    """One mesh on one platform, for one scenario module: set up, used, torn down."""

    #: the Envoy cluster the gateway routes the conductor through (harness.mesh.bootstrap.outbound_cluster_name)
    cluster: str = ""
    #: the platform the meshed replicas run on (faults go through its ``set_fault``/``clear_fault``)
    app: Any = None

    @abstractmethod
    def setup(self) -> dict[str, Any]:
        """Install the mesh and inject sidecars into the conductor's replicas; returns what the report's
        environment should say about it (versions, the gateway's address, no secret)."""

    @abstractmethod
    def apply(self, reading: Any) -> AppliedMesh:
        """Put a reading of the seed's mesh (harness.mesh.load_mesh: as written, or the what-if) in force."""

    @abstractmethod
    def gateway(self) -> GatewayAddress:
        """The ingress gateway as users reach it (after ``setup``/``apply``: it may move)."""

    @abstractmethod
    def gateways(self) -> list[GatewayProxy]:
        """Every ingress gateway proxy behind :meth:`gateway`, in a fixed order (docker: the
        ``mesh_gateways`` Envoys; kind: the one gateway pod the harness reads)."""

    @abstractmethod
    def gateway_direct(self, index: int) -> GatewayAddress:
        """The ``index``-th gateway of :meth:`gateways` on its own address, bypassing whatever spreads
        the load over the gateways (a connection-pool limit is each gateway's own)."""

    @abstractmethod
    def sidecar_overflow(self, replicas: Sequence[str]) -> tuple[float, dict[str, float]]:
        """``(wall time, {replica: its sidecar's inbound upstream_rq_pending_overflow})``: the local
        503 UO the receiver-side limits answered so far (harness.analysis.circuit_breaker.causes)."""

    def gateway_admin(self) -> Any:
        """The first gateway's Envoy admin API (harness.measure.envoy_admin.AdminReads: stats, clusters)."""
        return self.gateways()[0].admin

    @abstractmethod
    def ip_to_replica(self) -> dict[str, str]:
        """``{address the gateway sees: replica name}`` of the ready replicas."""

    @abstractmethod
    def teardown(self, *, failed: bool, interrupted: bool) -> None:
        """Remove what ``setup`` made (best effort, idempotent); export logs first when ``failed``."""

    def replicas(self) -> list[Any]:
        return [r for r in self.app.replicas() if r.ready]


class ApplicationTier(ABC):
    """The conductor's replicas as a whole: lost (the cluster running them is gone) and replaced."""

    @abstractmethod
    def lose(self, record: Callable[[dict[str, Any]], Any] = lambda details: None) -> dict[str, Any]:
        """Remove every replica; what is needed to replace it is handed to ``record`` first (the fault
        log: never a secret in it)."""

    @abstractmethod
    def replace(self, timeout_s: float, replicas: int = 0) -> dict[str, Any]:
        """A fresh tier, routable when this returns; idempotent (a running tier is left as it is)."""


@dataclass(frozen=True)
class ZoneLayout:
    """Where the run's things are before ``zone`` is lost (what :meth:`Zones.arrange` gives)."""

    zone: str                                   # the zone that fails
    mode: str                                   # the placement asked for (Zones.placements)
    replicas: dict[str, str]                    # replica -> zone
    addresses: dict[str, str] = field(default_factory=dict)  # replica -> the address the entry point knows it by
    database_zone: str | None = None            # the database primary's zone, where the platform puts it in one
    reason: str = ""                            # why the placement is what it is, in a sentence
    details: dict[str, Any] = field(default_factory=dict)    # the report's "placement" measurement

    def lost(self) -> set[str]:
        return {name for name, zone in self.replicas.items() if zone == self.zone}


class Zones(ABC):
    """Zones of the run, in the process that owns the platform: which zone-loss cases it can run
    (``placements`` x ``failures``), the replicas placed, and what is left down after the restore. The
    zone is lost and restored by the chaos activities (harness.faults.zone_loss) through the attached
    platform's zones (harness.platforms.attach.ZoneFailures), in the modes ``failures`` names."""

    #: the placements ``place`` can make (``one-zone``: every replica in the zone; ``even``: spread;
    #: ``as-deployed``: left where they are, reported)
    placements: Sequence[str] = ()
    failures: Sequence[str] = ()
    #: why users had nothing left when every replica was in the lost zone (the verdict's note)
    no_survivors_note: str = ""

    def check(self, placement: str, failure: str) -> None:
        """:class:`Unsupported` with the reason when this platform cannot run the case."""
        if placement not in self.placements:
            raise Unsupported("zones", f"placement {placement!r} is not available here (this platform places "
                                       f"replicas {' or '.join(self.placements)})")
        if failure not in self.failures:
            raise Unsupported("zones", f"zone failure {failure!r} is not available here (this platform loses a "
                                       f"zone by {' or '.join(self.failures)})")

    def arrange(self, zone: str, mode: str, progress: Callable[[str], Any] = lambda _m: None) -> ZoneLayout:
        """The replicas placed for a loss of ``zone`` (:meth:`place`), and the layout to report."""
        replicas = self.place(zone, mode)
        return ZoneLayout(zone=zone, mode=mode, replicas=replicas,
                          details={"mode": mode, "failure_zone": zone, "replica_zones": replicas})

    @abstractmethod
    def not_restored(self, zone: str) -> list[str]:
        """What is still down after the zone's restore (a harness problem, not the system's), one
        sentence each; empty when everything is back."""

    @abstractmethod
    def place(self, zone: str, mode: str = "one-zone") -> dict[str, str]:
        """Place the replicas for a loss of ``zone``: ``one-zone`` = every replica the manifests allow
        in ``zone`` (the worst placement the Deployment permits), ``even`` = spread. Returns
        ``{replica: zone}``; raises :class:`harness.errors.HarnessError` when the placement fails."""

