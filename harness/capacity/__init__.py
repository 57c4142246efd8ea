"""Pre-release capacity verification: one replica's measured capacity (``measure``, on the replica
of ``replica`` with the readings of ``usage``), projected through the staging and production HPAs and
the node groups (``project``), judged against a target peak (``verdict``), and compared with an
observed HPA trajectory on Kubernetes (``calibrate``).

``project``, ``verdict`` and ``calibrate`` are pure; only ``measure``, ``replica`` and ``usage`` touch
containers or a cluster.
"""
from harness.errors import UsageError

__all__ = ["CapacityInputError"]


class CapacityInputError(UsageError):
    """Bad input to the capacity verification (a setting, node_groups.yml, a manifest, a model)."""
