"""The platform interface every platform (docker, kind, an existing cluster) implements."""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.conductor import Fault, Replica
from harness.config import Settings

# Replica and Fault are values of harness.conductor, named here too for the platforms' callers.
__all__ = ["Platform", "Replica", "Fault"]


class Platform(ABC):
    """Brings the conductor up on some substrate and answers questions about it.

    Implementations must make ``down`` safe to call at any point (after a failed ``up`` too),
    and must label everything they create with the run id.
    """

    name: str = "abstract"
    needs_kubernetes: bool = False
    #: capabilities (harness.platforms.capabilities.CAPABILITIES) this platform declines, with the reason
    unsupported: dict[str, str] = {}

    def __init__(self, settings: Settings, stack: Any):
        self.settings = settings
        self.stack = stack
        # The conductor's admin token: per run, passed to the app by env, never logged.
        self.admin_token = secrets.token_urlsafe(24)

    @abstractmethod
    def up(self) -> None:
        """Deploy the conductor and wait until it is ready."""

    @abstractmethod
    def endpoints(self) -> list[str]:
        """Base URLs users reach the service by (127.0.0.1 only)."""

    def service_url(self) -> str:
        """The one URL users reach the conductor by, as through its Kubernetes Service (127.0.0.1).

        kind and an existing cluster already expose the Service (a NodePort, a port-forward to the
        Service) as their only endpoint; the docker platform overrides this with its entry Envoy.
        """
        return self.endpoints()[0]

    @abstractmethod
    def replicas(self) -> list[Replica]:
        """The conductor replicas as they are now."""

    @abstractmethod
    def export_logs(self, dest: Path) -> list[Path]:
        """Write logs of everything the platform runs into ``dest`` (before teardown)."""

    @abstractmethod
    def down(self) -> None:
        """Remove everything this platform created. Idempotent."""

    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "endpoints": self.endpoints(),
                "replicas": [r.to_dict() for r in self.replicas()]}

    # -- capability adapters (harness.platforms.capabilities): where docker and kind differ --------
    def capability(self, name: str, **kw: Any) -> Any:
        """The adapter for capability ``name`` (``mesh``, ``application_tier``, ``zones``), or
        :class:`~harness.platforms.capabilities.Unsupported` with this platform's reason."""
        from harness.platforms.capabilities import CAPABILITIES, Unsupported

        if name not in CAPABILITIES:
            raise KeyError(f"no capability {name!r} (known: {', '.join(CAPABILITIES)})")
        if name in self.unsupported:
            raise Unsupported(name, self.unsupported[name])
        return getattr(self, f"make_{name}")(**kw)

    def make_mesh(self, reading: Any) -> Any:
        raise NotImplementedError  # a platform implements it or declines it in ``unsupported``

    def make_application_tier(self) -> Any:
        from harness.platforms.attach import attach, configuration_of

        return attach(configuration_of(self.chaos_configuration(), self.settings.run_id)).application_tier

    def make_zones(self) -> Any:
        raise NotImplementedError  # a platform implements it or declines it in ``unsupported``

    @classmethod
    @contextmanager
    def for_zone_loss(cls, settings: Settings, shared: Callable[[], "Platform"],
                      failed: Callable[[], bool] = lambda: False) -> Iterator["Platform"]:
        """The deployment a zone-loss scenario may break, up while the context lasts. By default the
        session's own (``shared()``): on Kubernetes a drain reaches only the zone's nodes, and the
        database is not in a zone. A platform whose zone faults take its database down (docker: the
        primary is in a zone, and a failover fences it) builds one of its own; ``failed()`` says
        whether to export its logs before removing it."""
        yield shared()

    def chaos_configuration(self) -> dict[str, str]:
        """What a Chaos Toolkit process needs to rebuild this platform (``harness.platforms.attach``),
        as ``HARNESS_*`` environment variables (chaos/shared/configuration.json reads them)."""
        return {"HARNESS_PLATFORM": self.name}

    def user_endpoints(self) -> Callable[[], list[str]]:
        """A function giving the base URLs users reach now, for probes that must follow a replaced tier."""
        return self.endpoints

    def service_health(self) -> dict[str, tuple[str, ...]] | None:
        """``{replica: health flags}`` at the Service's entry point (``()`` = routable), or ``None``
        when the platform cannot tell which replica its Service routes to."""
        return None

    #: whether the run's database is the harness's own (RPO can be verified against it)
    owns_database: bool = True
    #: whether the users' entry point spreads load over every ready replica (the HPA scenario needs it)
    balanced_ingress: bool = False

    # Faults through the conductor's authenticated admin endpoint, the same on every platform.
    def _admin(self, replica: Replica, method: str, body: dict | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{replica.admin_url}/admin/faults", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.admin_token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode() or "{}"
            return json.loads(text)

    def set_fault(self, replica: Replica, fault: Fault) -> dict[str, Any]:
        return self._admin(replica, "PUT", fault.body())

    def clear_fault(self, replica: Replica) -> dict[str, Any]:
        return self._admin(replica, "DELETE")

    def __enter__(self) -> "Platform":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
