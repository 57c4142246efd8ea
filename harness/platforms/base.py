"""The platform interface every platform (docker, kind, an existing cluster) implements."""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

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
