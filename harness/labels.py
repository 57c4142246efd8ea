"""Run ids and the labels stamped on everything the harness creates, and the sweep of leftovers."""
from __future__ import annotations

import datetime as _dt
import re
import secrets

__all__ = [
    "MANAGED_LABEL", "RUN_ID_LABEL", "KIND_CLUSTER_PREFIX", "new_run_id", "labels_for",
    "validate_run_id", "kind_cluster_name", "ZONE_LABEL", "STANDBY_ZONE_LABEL",
]

MANAGED_LABEL = "i2s-harness.managed"
RUN_ID_LABEL = "i2s-harness.run-id"
KIND_CLUSTER_PREFIX = "i2s-harness-"
# The availability zone of a container, under Kubernetes' well-known node label (harness.placement).
ZONE_LABEL = "topology.kubernetes.io/zone"
# On a database container: the zone its streaming standby goes to (RDS Multi-AZ: another AZ).
STANDBY_ZONE_LABEL = "i2s-harness.standby-zone"
_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,40}$")


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A sortable, DNS-label-safe id: ``20261126-045630-a1b2``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def validate_run_id(run_id: str) -> str:
    from harness.errors import UsageError

    if not _RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} is not usable as a label and cluster name",
                         "use 3-41 lowercase letters, digits and '-'")
    return run_id


def labels_for(run_id: str, **extra: str) -> dict[str, str]:
    return {MANAGED_LABEL: "true", RUN_ID_LABEL: run_id, **extra}


def kind_cluster_name(run_id: str) -> str:
    # kind names become container-name prefixes and must be short DNS labels.
    return (KIND_CLUSTER_PREFIX + run_id)[:49]
