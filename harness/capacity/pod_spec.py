"""What the manifests say the conductor pod asks for: its container's CPU and memory requests and
limits (the HPA's Utilization targets and the node counts are relative to them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.capacity import CapacityInputError
from harness.oracles.hpa.quantity import quantity_to_float

__all__ = ["PodResources", "pod_resources_of"]


@dataclass(frozen=True)
class PodResources:
    cpu_request: float
    cpu_limit: float
    memory_request: float
    memory_limit: float


def pod_resources_of(dep: Mapping[str, Any], relpath: str) -> PodResources:
    """The conductor container's requests and limits from a Deployment document (read from ``relpath``
    by :func:`harness.capacity.inputs.pod_resources`)."""
    try:
        c = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c.get("name") == "conductor")
    except (KeyError, StopIteration, TypeError):
        raise CapacityInputError(f"{relpath} has no container named conductor", "check the Deployment") from None
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    missing = [f"{k}.{r}" for k, d in (("requests", req), ("limits", lim)) for r in ("cpu", "memory") if r not in d]
    if missing:
        raise CapacityInputError(f"{relpath}: the conductor container sets no resources.{missing[0]}",
                                 "the HPA's Utilization targets and the node counts need requests and limits")
    return PodResources(quantity_to_float(req["cpu"]), quantity_to_float(lim["cpu"]), quantity_to_float(req["memory"]),
                        quantity_to_float(lim["memory"]))
