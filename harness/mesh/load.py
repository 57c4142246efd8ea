"""The seed's mesh read from the manifests directory: k8s/istio/gateway.yml, the conductor Deployment
and Services, and for the what-if the kind-istio-intended overlay; the translation itself is pure
(:func:`harness.mesh.objects.mesh_from_documents`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.manifest_facts import DEPLOYMENT, ISTIO
from harness.manifests import find_document, load_documents
from harness.mesh.objects import SERVICES, WHAT_IF_OVERLAY, Mesh, mesh_from_documents

__all__ = ["load_mesh"]


def load_mesh(manifests_dir: str | Path = "k8s", what_if: bool = False,
              mesh_default_policy: Mapping[str, Any] | None = None) -> Mesh:
    """Read the seed's mesh objects; ``what_if`` applies the kind-istio-intended overlay's patches,
    labeled as such. ``mesh_default_policy``: a mesh-wide default DestinationRule's traffic policy."""
    return mesh_from_documents(
        load_documents(ISTIO, manifests_dir), find_document(DEPLOYMENT, "Deployment", "conductor", manifests_dir),
        load_documents(SERVICES, manifests_dir),
        what_if_overlay=load_documents(WHAT_IF_OVERLAY, manifests_dir) if what_if else None,
        mesh_default_policy=mesh_default_policy)
