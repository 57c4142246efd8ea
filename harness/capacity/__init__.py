"""Pre-release capacity verification: one replica's measured capacity (``measure``), projected
through the staging and production HPAs and the node groups (``project``), judged against a target
peak (``verdict``), and compared with an observed HPA trajectory on Kubernetes (``calibrate``).

``project``, ``verdict`` and ``calibrate`` are pure; only ``measure`` touches containers or a cluster.
"""
from harness.errors import UsageError

__all__ = ["CapacityInputError"]


class CapacityInputError(UsageError):
    """Bad input to the capacity verification (a setting, node_groups.yml, a manifest, a model)."""
