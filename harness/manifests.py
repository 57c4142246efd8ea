"""Read the system's real manifests (k8s/) into the facts the harness needs (:mod:`harness.manifest_facts`).

The docker platform runs the conductor as the Deployment says (ports, probes, resource limits);
the oracles read the HPA and DestinationRule from here. Nothing is changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import PROJECT_ROOT
from harness.errors import UsageError
from harness.files import read_yaml_documents
from harness.manifest_facts import (DEPLOYMENT, ISTIO, PRODUCTION_HPA, REQUIRED_MANIFESTS, STAGING_HPA, ConductorSpec,
                                     Probe, conductor_spec_of, probe_of)

# The facts (paths, Probe, ConductorSpec) live in harness.manifest_facts; named here too for the readers' callers.
__all__ = ["REQUIRED_MANIFESTS", "DEPLOYMENT", "STAGING_HPA", "PRODUCTION_HPA", "ISTIO", "load_documents",
           "find_document", "ConductorSpec", "Probe", "probe_of", "conductor_spec"]


def _dir(manifests_dir: str | Path) -> Path:
    p = Path(manifests_dir)
    return p if p.is_absolute() else PROJECT_ROOT / p


def load_documents(relpath: str, manifests_dir: str | Path = "k8s") -> list[dict[str, Any]]:
    return read_yaml_documents(_dir(manifests_dir) / relpath, what="manifest",
                               missing_fix="restore it from the seed (git checkout k8s/) "
                                           "or point HARNESS_MANIFESTS_DIR at the system's manifests")


def find_document(relpath: str, kind: str, name: str | None = None,
                  manifests_dir: str | Path = "k8s") -> dict[str, Any]:
    for doc in load_documents(relpath, manifests_dir):
        if doc.get("kind") == kind and (name is None or doc.get("metadata", {}).get("name") == name):
            return doc
    raise UsageError(f"no {kind}{' ' + name if name else ''} in {relpath}", "check the manifests directory")


def conductor_spec(manifests_dir: str | Path = "k8s") -> ConductorSpec:
    """The conductor container as the Deployment in ``manifests_dir`` says."""
    return conductor_spec_of(find_document(DEPLOYMENT, "Deployment", "conductor", manifests_dir))
