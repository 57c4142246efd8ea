"""The files the capacity verification reads, read: the node groups (``node_groups.yml``), the
conductor's requests and limits from its Deployment, and what the HPA scenario left in its report
directory. Each file is read here and handed to the pure modules beside it; a missing or malformed one
is a one-line :class:`harness.capacity.CapacityInputError`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.capacity import CapacityInputError
from harness.capacity.node_groups import Infrastructure, infrastructure_from
from harness.capacity.pod_spec import PodResources, pod_resources_of
from harness.files import read_json, read_json_lines, read_yaml
from harness.manifests import find_document

__all__ = ["NODE_GROUPS_FILE", "load_infrastructure", "pod_resources", "read_hpa_run"]

NODE_GROUPS_FILE = Path(__file__).with_name("node_groups.yml")


def load_infrastructure(path: str | Path = NODE_GROUPS_FILE) -> Infrastructure:
    """Read ``node_groups.yml``; every missing or malformed field is a one-line error naming it."""
    raw = read_yaml(path, what="node group file", missing_fix="restore harness/capacity/node_groups.yml",
                    error=CapacityInputError)
    return infrastructure_from(raw, str(path))


def pod_resources(relpath: str, manifests_dir: str | Path = "k8s") -> PodResources:
    """The conductor container's requests and limits from the Deployment manifest at ``relpath``."""
    return pod_resources_of(find_document(relpath, "Deployment", "conductor", manifests_dir), relpath)


def read_hpa_run(scenario_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """(samples, per-second load lines, HPA manifest) the HPA scenario left in its report directory."""
    rerun = "re-run the HPA scenario"
    samples = read_json(scenario_dir / "hpa_samples.json", what="HPA samples",
                        missing_fix="run the HPA scenario (make e2e PLATFORM=kind) first", fix=rerun,
                        error=CapacityInputError)
    lines_path = scenario_dir / "hpa_seconds.jsonl"
    lines = read_json_lines(lines_path, what="HPA load lines", fix=rerun, error=CapacityInputError) \
        if lines_path.exists() else []
    manifest_path = scenario_dir / "hpa.yml"
    manifest = read_yaml(manifest_path, what="HPA manifest", fix=rerun, error=CapacityInputError) \
        if manifest_path.exists() else None
    return samples, lines, manifest
