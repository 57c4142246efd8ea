"""The zones capability on Kubernetes (kind, or a cluster named explicitly): a zone is lost by a drain.

* ``FAILURES``: what the chaos process (harness.platforms.attach) offers: ``drain`` -- the zone's nodes
  cordoned and drained with chaostoolkit-kubernetes, undone by an uncordon (harness.faults.zones).
* ``DRAIN_NOTE``: what a drain of the zone holding every replica means for users (the verdict's note).
* :func:`cordoned_nodes`: what of a zone is still down after the restore (the kind and context
  platforms' ``Zones.not_restored``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["FAILURES", "DRAIN_NOTE", "cordoned_nodes"]

FAILURES = ("drain",)
DRAIN_NOTE = ("a drain evicts every pod of the zone at once, and the replacements wait for the scheduler, the "
              "image and the readinessProbe in the other zones: a full outage, not 'degraded performance'")


def cordoned_nodes(apis: Any, zone: str) -> list[str]:
    """The nodes of ``zone`` still unschedulable (a drain not undone), one sentence each."""
    from harness.labels import ZONE_LABEL

    if apis is None:
        return []
    return [f"node {n.metadata.name} is still cordoned" for n in apis.core.list_node(
        label_selector=f"{ZONE_LABEL}={zone}").items if n.spec and n.spec.unschedulable]
