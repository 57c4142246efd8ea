"""What the manifests say the conductor pod asks for: its container's CPU and memory requests and
limits (the HPA's Utilization targets and the node counts are relative to them)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.capacity import CapacityInputError
from harness.manifests import find_document, parse_quantity

__all__ = ["PodResources", "pod_resources"]


@dataclass(frozen=True)
class PodResources:
    cpu_request: float
    cpu_limit: float
    memory_request: float
    memory_limit: float


def pod_resources(relpath: str, manifests_dir: str | Path = "k8s") -> PodResources:
    """The conductor container's requests and limits from a Deployment manifest."""
    dep = find_document(relpath, "Deployment", "conductor", manifests_dir)
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
    return PodResources(parse_quantity(req["cpu"]), parse_quantity(lim["cpu"]), parse_quantity(req["memory"]),
                        parse_quantity(lim["memory"]))
