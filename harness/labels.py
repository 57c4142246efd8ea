"""Run ids and the labels stamped on everything the harness creates, and the sweep of leftovers."""
from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import socket

__all__ = [
    "MANAGED_LABEL", "RUN_ID_LABEL", "OWNER_LABEL", "OWNER_ENV", "KIND_CLUSTER_PREFIX", "new_run_id", "labels_for",
    "validate_run_id", "kind_cluster_name", "kube_labels", "ZONE_LABEL", "STANDBY_ZONE_LABEL", "run_owner", "claim_run_owner",
    "owner_alive",
]

MANAGED_LABEL = "i2s-harness.managed"
RUN_ID_LABEL = "i2s-harness.run-id"
# host:pid of the process whose run created the resource, so `harness clean` spares runs in progress.
OWNER_LABEL = "i2s-harness.owner"
OWNER_ENV = "HARNESS_OWNER"   # set once per run by its outermost process; its subprocesses inherit it
KIND_CLUSTER_PREFIX = "i2s-harness-"
# The availability zone of a container, under Kubernetes' well-known node label (harness.placement).
ZONE_LABEL = "topology.kubernetes.io/zone"
# On a database container: the zone its streaming standby goes to (RDS Multi-AZ: another AZ).
STANDBY_ZONE_LABEL = "i2s-harness.standby-zone"
_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,40}$")


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A sortable, DNS-label-safe id: ``20261126-045630-a1b2c3``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"  # 24 random bits: runs started in one second stay apart


def validate_run_id(run_id: str) -> str:
    from harness.errors import UsageError

    if not _RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} is not usable as a label and cluster name",
                         "use 3-41 lowercase letters, digits and '-'")
    return run_id


def run_owner() -> str:
    """``host:pid`` of the process that owns the current run (``HARNESS_OWNER``, else this process)."""
    return os.environ.get(OWNER_ENV) or f"{socket.gethostname()}:{os.getpid()}"


def claim_run_owner() -> str:
    """Make this process the run's owner unless an outer process already is (``harness e2e`` before the
    pytest it starts; a chaos subprocess inherits it)."""
    os.environ.setdefault(OWNER_ENV, f"{socket.gethostname()}:{os.getpid()}")
    return os.environ[OWNER_ENV]


def owner_alive(owner: str) -> bool:
    """Whether ``host:pid`` names a process still running on this host. Another host's, or a label
    that does not parse, counts as not provably alive (``clean`` removes it, as before labels had it)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def kube_labels(run_id: str, **extra: str) -> dict[str, str]:
    """The run's labels on Kubernetes objects and kind nodes (valid Kubernetes label values)."""
    return {MANAGED_LABEL: "true", RUN_ID_LABEL: run_id, **extra}


def labels_for(run_id: str, **extra: str) -> dict[str, str]:
    """The run's labels on Docker containers, networks and volumes: also the owner process, so a
    concurrent ``harness clean`` spares a run in progress (a value Kubernetes would refuse: ':')."""
    return {**kube_labels(run_id), OWNER_LABEL: run_owner(), **extra}


def kind_cluster_name(run_id: str) -> str:
    # kind names become container-name prefixes and must be short DNS labels.
    return (KIND_CLUSTER_PREFIX + run_id)[:49]
