"""Kubernetes API clients for one kubeconfig context, and the context check that precedes them.

``kubeconfig_contexts`` reads the kubeconfig file only (no network), so a context the user did
not define is refused before any request is made.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UnsafeTarget, UsageError
from harness.files import read_yaml

__all__ = ["KubeTarget", "kubeconfig_path", "read_kubeconfig", "kubeconfig_contexts", "check_context",
           "require_context", "api_client", "Apis"]


def kubeconfig_path(explicit: str | os.PathLike | None = None) -> str:
    """The kubeconfig file kubectl would use: the explicit path, else the first of $KUBECONFIG, else ~/.kube/config."""
    if explicit:
        return str(explicit)
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return first or str(Path.home() / ".kube" / "config")


def read_kubeconfig(kubeconfig: str | os.PathLike | None = None, *, must_exist: bool = True) -> dict[str, Any]:
    """The kubeconfig as a mapping, checked the way client-go's ``clientcmd`` validation checks it
    (validation.go ``validateContext``: every context names a cluster and a user that the file
    defines), or ``UsageError`` with one line naming the file, what is wrong and the fix.

    Every kubeconfig the harness reads goes through here (the context platform's preflight, the
    faults' context check, zone loss). File read only; no network. A missing file is ``{}`` when
    ``must_exist`` is false (kubectl's own behaviour with no config).
    """
    path = Path(kubeconfig_path(kubeconfig))
    fix = "fix the file or point KUBECONFIG at a valid kubeconfig (kubectl config view)"
    if path.is_dir():
        raise UsageError(f"kubeconfig {path} is a directory, not a file", "point KUBECONFIG at the kubeconfig file")
    if not path.exists():
        if not must_exist:
            return {}
        raise UsageError(f"kubeconfig {path} does not exist",
                         "point KUBECONFIG at the file that defines the context (kubectl config view)")
    doc = read_yaml(path, what="kubeconfig", fix=fix)
    if doc is None:
        raise UsageError(f"kubeconfig {path} is empty", fix)
    if not isinstance(doc, dict):
        raise UsageError(f"kubeconfig {path} is not a mapping (its YAML is a {type(doc).__name__})", fix)
    named: dict[str, dict[str, dict]] = {}
    for key, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        entries = doc.get(key)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise UsageError(f"kubeconfig {path}: {key} is not a list", fix)
        named[key] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise UsageError(f"kubeconfig {path}: {key}[{i}] has no name", fix)
            body = entry.get(inner)
            if key != "users" and not isinstance(body, dict):  # a user may be empty (no credentials)
                raise UsageError(f"kubeconfig {path}: {key[:-1]} {entry['name']!r} has no {inner} mapping", fix)
            named[key][entry["name"]] = body or {}
    if not named["contexts"]:
        raise UsageError(f"kubeconfig {path} defines no contexts", fix)
    for name, ctx in named["contexts"].items():
        for ref, table in (("cluster", "clusters"), ("user", "users")):
            target = ctx.get(ref)
            if not target:
                raise UsageError(f"kubeconfig {path}: context {name!r} names no {ref}", fix)
            if target not in named[table]:
                raise UsageError(f"kubeconfig {path}: context {name!r} names {ref} {target!r}, which the file does "
                                 f"not define", fix)
    for name, cluster in named["clusters"].items():
        if not cluster.get("server"):
            raise UsageError(f"kubeconfig {path}: cluster {name!r} has no server", fix)
    return doc


def kubeconfig_contexts(kubeconfig: str | os.PathLike | None = None) -> list[str]:
    """Context names in the kubeconfig (file read only; no API call); none if there is no file."""
    doc = read_kubeconfig(kubeconfig, must_exist=False)
    return [c["name"] for c in doc.get("contexts") or []]


def check_context(context: str, kubeconfig: str | os.PathLike | None = None) -> None:
    """Preflight: the named context exists in a well-formed kubeconfig, else ``UsageError`` (a
    mistake in the user's input, refused before anything starts)."""
    doc = read_kubeconfig(kubeconfig)
    names = [c["name"] for c in doc.get("contexts") or []]
    if context not in names:
        raise UsageError(f"context {context!r} is not in kubeconfig {kubeconfig_path(kubeconfig)} "
                         f"(it has: {_listed(names)})",
                         "name an existing context exactly (kubectl config get-contexts -o name)")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "none"


def require_context(context: str, kubeconfig: str | os.PathLike | None = None) -> None:
    """Refuse a context that the kubeconfig does not define, before anything talks to a cluster."""
    if not context:
        raise UsageError("no kubeconfig context named", "pass --context NAME (see `kubectl config get-contexts`)")
    names = kubeconfig_contexts(kubeconfig)
    if context not in names:
        path = kubeconfig_path(kubeconfig)
        raise UnsafeTarget(f"context {context!r} is not in kubeconfig {path} (it has: {_listed(names)})",
                           "name an existing context exactly (kubectl config get-contexts -o name)")


@dataclass(frozen=True)
class KubeTarget:
    """Where kubectl and the API client point: a kubeconfig file and a context in it."""

    context: str
    kubeconfig: str | None = None

    def kubectl(self, *args: str) -> list[str]:
        """A kubectl argv pinned to this target (never the ambient current-context)."""
        argv = ["kubectl"]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        return argv + ["--context", self.context, *args]


def api_client(target: KubeTarget) -> Any:
    """A ``kubernetes.client.ApiClient`` for the target's context (one per platform; not the global default)."""
    from kubernetes import config

    read_kubeconfig(target.kubeconfig)  # a malformed file is one line here, not the loader's traceback
    return config.new_client_from_config(config_file=kubeconfig_path(target.kubeconfig), context=target.context,
                                         persist_config=False)


@dataclass
class Apis:
    """The typed API groups the harness uses, over one ``ApiClient`` (tests pass a fake-backed one)."""

    client: Any
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def _get(self, name: str) -> Any:
        if name not in self._cache:
            from kubernetes import client as k

            self._cache[name] = getattr(k, name)(self.client)
        return self._cache[name]

    @property
    def core(self) -> Any:
        return self._get("CoreV1Api")

    @property
    def apps(self) -> Any:
        return self._get("AppsV1Api")

    @property
    def autoscaling(self) -> Any:
        return self._get("AutoscalingV2Api")

    @property
    def discovery(self) -> Any:
        return self._get("DiscoveryV1Api")

    @property
    def custom(self) -> Any:
        return self._get("CustomObjectsApi")

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a pool that never opened is fine
            pass
