"""The conductor as the harness sees it, as values: one running replica, and a fault its admin endpoint
accepts. Low in the stack so that analysis, Kubernetes helpers and platforms share them without
importing a platform."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Replica", "Fault"]


@dataclass
class Replica:
    """One running conductor: a container or a pod."""

    name: str
    zone: str
    ready: bool
    # Where the harness reaches this replica directly (admin and metrics), on 127.0.0.1.
    admin_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    """What the conductor's fault endpoint accepts (see sut/conductor/README.md)."""

    error_status: int | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    fail_readiness: bool | None = None
    cpu_cost_ms: float | None = None

    def body(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
