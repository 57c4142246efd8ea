"""Checks of the settings that need the filesystem, made before anything starts (no container, no
cluster, no process): the manifests, the report directory, the kubeconfig of a named context, and the
capacity ramp's combined knobs. Each refusal is a ``UsageError``: one line naming the problem and the
fix, exit 12.

Types, bounds and grammars are checked when the settings load (``Settings.validate``); this module
adds what only the machine can answer. ``harness e2e|chaos|capacity|preflight`` and the pytest
plugin's configure call ``check_settings``.
"""
from __future__ import annotations

import os
import tempfile

from harness.config import Settings
from harness.errors import HarnessError, OutlierInputError, UsageError

__all__ = ["check_settings", "check_manifests", "check_destination_rules", "check_report_dir", "check_kubeconfig", "check_capacity",
           "check_history_dir"]


def check_settings(settings: Settings) -> None:
    """Every check that needs no running service, in the order a user would fix them."""
    check_manifests(settings)
    check_report_dir(settings)
    check_history_dir(settings)
    check_kubeconfig(settings)
    check_capacity(settings)


def check_manifests(settings: Settings) -> None:
    """The manifests directory exists and holds, as YAML, every file the harness reads from it."""
    from harness.manifests import REQUIRED_MANIFESTS, conductor_spec, load_documents

    root = settings.manifests_path
    fix = "set HARNESS_MANIFESTS_DIR to the system's manifests directory (the project's k8s/)"
    if not root.exists():
        raise UsageError(f"manifests directory {root} does not exist", fix)
    if not root.is_dir():
        raise UsageError(f"manifests directory {root} is a file, not a directory", fix)
    for rel in REQUIRED_MANIFESTS:
        if not (root / rel).is_file():
            raise UsageError(f"manifests directory {root} has no {rel}", fix + " (restore it: git checkout k8s/)")
        docs = load_documents(rel, root)  # YAML errors: one line naming the file
        if not docs or not all(isinstance(d, dict) for d in docs):
            raise UsageError(f"manifest {root / rel} holds no Kubernetes object (its YAML is not mappings)",
                             fix + " (restore it: git checkout k8s/)")
    check_destination_rules(settings)
    try:
        conductor_spec(root)
    except HarnessError:
        raise
    except (KeyError, StopIteration, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"manifest {root}/{REQUIRED_MANIFESTS[0]} has no usable conductor Deployment "
                         f"({type(exc).__name__}: {str(exc)[:80]})", fix) from None


def check_destination_rules(settings: Settings) -> None:
    """The outlier oracle can read every DestinationRule of the Istio manifest (what it cannot map, the
    circuit-breaker scenarios could not judge): else one line naming the file, the rule and the field,
    :class:`harness.errors.OutlierInputError` (exit 16). Fields Istio would drop or ignore are findings
    of the run, not refusals."""
    from harness.manifests import ISTIO, load_documents
    from harness.oracles.outlier import map_destination_rule

    path = settings.manifests_path / ISTIO
    for doc in load_documents(ISTIO, settings.manifests_path):
        if doc.get("kind") != "DestinationRule":
            continue
        try:
            map_destination_rule(doc)
        except OutlierInputError as exc:
            name = (doc.get("metadata") or {}).get("name", "?")
            raise OutlierInputError(f"manifest {path}: DestinationRule {name}: {exc.problem}", exc.fix) from None


def check_history_dir(settings: Settings) -> None:
    """The history directory (harness.history) is a directory, or can be made one: no part of it is a file."""
    from harness.history.recorder import history_path

    target = history_path(settings)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"the history directory {target} cannot be made: {existing} is a file",
                         "set HARNESS_HISTORY_DIR (or --history-dir) to a directory")
    if existing.is_dir() and not os.access(existing, os.W_OK):
        raise UsageError(f"the history directory {existing} is not writable",
                         "set HARNESS_HISTORY_DIR (or --history-dir) to a writable directory")


def check_report_dir(settings: Settings) -> None:
    """``report_dir/<run id>`` can be created and written: no part of it is a file, and the deepest
    existing directory accepts a file (tried with a temporary file, removed at once)."""
    target = settings.report_path
    fix = "set HARNESS_REPORT_DIR (or --report-dir) to a writable directory"
    existing = target
    try:
        while not existing.exists() and not existing.is_symlink():
            existing = existing.parent
        dangling = existing.is_symlink() and not existing.exists()
        is_dir = existing.is_dir()
    except OSError as exc:  # a parent that cannot be entered (EACCES) or looked into
        raise UsageError(f"report directory {target.parent} cannot be reached ({exc.strerror})", fix) from None
    if dangling:
        raise UsageError(f"report path {existing} is a dangling symlink", fix)
    if not is_dir:
        what = "the report directory" if existing in (target, target.parent) else "a parent of the report directory"
        raise UsageError(f"{what} {existing} is a file, not a directory", fix)
    try:
        fd, probe = tempfile.mkstemp(prefix=".harness-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"report directory {existing} is not writable ({exc.strerror})", fix) from None


def check_kubeconfig(settings: Settings) -> None:
    """A named context: the kubeconfig is a well-formed file that defines it (file read only)."""
    if not settings.context:
        return
    from harness.kube.client import check_context

    check_context(settings.context)


def check_capacity(settings: Settings) -> None:
    """The capacity ramp's knobs together (e.g. the warm-up leaves measured seconds in a step)."""
    from harness.capacity.measure import measure_config

    measure_config(settings)

