"""Render an overlay with ``kubectl kustomize`` and apply documents with server-side apply.

The kind overlay loads the real manifests from ``k8s/staging`` (outside the overlay directory),
which kustomize's default load restrictor refuses; ``render`` therefore passes
``--load-restrictor LoadRestrictionsNone`` (see k8s/overlays/kind/README.md).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from harness.errors import UsageError
from harness.kube.client import KubeTarget
from harness.kube.runner import CommandRunner, SubprocessRunner
from harness.labels import kube_labels

__all__ = ["render", "kustomize_argv", "load_yaml_documents", "stamp_run_labels", "apply", "to_yaml",
           "FIELD_MANAGER", "HANDOVER_MANAGER", "object_key", "find_object", "hpa_targets", "release_hpa_replicas",
           "replicas_handover"]

FIELD_MANAGER = "i2s-harness"
HANDOVER_MANAGER = "handover-to-hpa"   # the name Kubernetes' own "Transferring ownership" example uses


def kustomize_argv(overlay_dir: str | Path) -> list[str]:
    return ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay_dir)]


def render(overlay_dir: str | Path, runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """The overlay's objects, as ``kubectl kustomize`` builds them (a real subprocess by default)."""
    path = Path(overlay_dir)
    if not (path / "kustomization.yaml").exists() and not (path / "kustomization.yml").exists():
        raise UsageError(f"{path} has no kustomization.yaml", "point at an overlay directory such as k8s/overlays/kind")
    result = (runner or SubprocessRunner()).run(
        kustomize_argv(path), timeout=60,
        fix=f"fix the overlay in {path} (try: {' '.join(kustomize_argv(path))})")
    return load_yaml_documents(result.stdout, str(path))


def load_yaml_documents(text: str, where: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise UsageError(f"{where} did not yield valid YAML ({str(exc).splitlines()[0]})", "fix the file") from None


def object_key(doc: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) — how an object is identified across renderings."""
    meta = doc.get("metadata") or {}
    return doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", "")


def find_object(docs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d.get("kind") == kind and (d.get("metadata") or {}).get("name") == name:
            return d
    raise UsageError(f"no {kind}/{name} among the rendered objects", "check the overlay's resources")


def stamp_run_labels(docs: Sequence[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """Copies of ``docs`` with the run's labels on each object's own metadata.

    Only ``metadata.labels``: selectors and pod templates stay exactly as the manifests wrote
    them, so the Deployment, Service and HPA behave as specified.
    """
    out = []
    for d in docs:
        c = copy.deepcopy(d)
        meta = c.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **kube_labels(run_id)}
        out.append(c)
    return out


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def apply(docs: Sequence[dict[str, Any]], target: KubeTarget, runner: CommandRunner, *,
          timeout: float = 120, field_manager: str = FIELD_MANAGER, extra: Sequence[str] = ()) -> None:
    """Server-side apply through kubectl (documents on stdin, never in argv or logs).

    No ``--force-conflicts``: if another manager (a GitOps controller, a person) owns a field,
    the apply fails and says so instead of silently taking it over.
    """
    if not docs:
        return
    runner.run(target.kubectl("apply", "--server-side", f"--field-manager={field_manager}", *extra, "-f", "-"),
               input=to_yaml(docs), timeout=timeout,
               fix="see the conflict or validation error above; the objects were not (all) applied")


def hpa_targets(docs: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every workload an HPA among ``docs`` scales."""
    out = set()
    for d in docs:
        if d.get("kind") == "HorizontalPodAutoscaler":
            ref = (d.get("spec") or {}).get("scaleTargetRef") or {}
            out.add((ref.get("kind", ""), (d.get("metadata") or {}).get("namespace", ""), ref.get("name", "")))
    return out


def replicas_handover(live: dict[tuple[str, str, str], int]) -> list[dict[str, Any]]:
    """Replicas-only objects, applied under :data:`HANDOVER_MANAGER` before the manifests are
    re-applied without ``replicas``: with a second owner holding the live value, dropping the field
    from the harness's apply does not reset it to the default of 1 (a one-time collapse to one pod
    while the HPA had not yet taken the field). Kubernetes' server-side-apply documentation,
    "Transferring ownership", describes exactly this two-step hand-over."""
    return [{"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
             "spec": {"replicas": int(replicas)}} for (kind, ns, name), replicas in sorted(live.items())]


def release_hpa_replicas(docs: Sequence[dict[str, Any]], live: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Copies of ``docs`` without ``spec.replicas`` on each workload that an HPA among them scales and
    that already exists (``live``: its ``object_key``).

    Once the HPA has scaled a Deployment, the HPA controller owns ``.spec.replicas``; re-applying the
    manifest's ``replicas: 2`` with server-side apply then conflicts (or, forced, would fight the
    HPA). Kubernetes' own advice is to leave ``replicas`` out of the applied configuration when an HPA
    manages it (kubernetes.io/docs/reference/using-api/server-side-apply/#transferring-ownership).
    The seed's manifests are never edited: the first apply (object absent) keeps the field as
    written, so the Deployment starts exactly as specified; only re-applies to a kept cluster drop it.
    """
    targets = hpa_targets(docs)
    out = []
    for d in docs:
        c = copy.deepcopy(d)
        if object_key(c) in live and object_key(c) in targets:
            (c.get("spec") or {}).pop("replicas", None)
        out.append(c)
    return out
