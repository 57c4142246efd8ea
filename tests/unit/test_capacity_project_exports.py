"""harness.capacity.project re-exports the public names of the modules it was split into, so
``from harness.capacity.project import X`` keeps working whichever module X moved to."""
from __future__ import annotations

import importlib

import harness.capacity.project as project

MODULES = ("models", "node_groups", "pod_spec", "hpa_replicas", "inputs")

# project.py's __all__ before the split.
BEFORE_SPLIT = (
    "NODE_GROUPS_FILE", "ReplicaModel", "TrafficProfile", "InstanceType", "NodeGroup", "Reservations",
    "Environment", "Infrastructure", "load_infrastructure", "PodResources", "pod_resources",
    "allocatable", "pods_per_node", "nodes_for_pods", "StaticCapacity", "static_capacity",
    "Trajectory", "simulate_replicas", "ZoneLoss", "NodeProjection", "EnvironmentProjection",
    "project_environment", "project_all", "DEFAULT_POD_STARTUP_S", "DEFAULT_NODE_PROVISION_S",
    "METRIC_DERIVATIONS", "profile_from_settings",
)


def test_the_names_exported_before_the_split_still_are() -> None:
    assert [n for n in BEFORE_SPLIT if n not in project.__all__ or not hasattr(project, n)] == []


def test_re_exports_are_the_moved_objects_themselves() -> None:
    wrong = []
    for name in MODULES:
        module = importlib.import_module(f"harness.capacity.{name}")
        wrong += [f"{name}.{n}" for n in module.__all__ if hasattr(project, n) and getattr(project, n) is not getattr(module, n)]
    assert wrong == []
