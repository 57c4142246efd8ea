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

__all__ = ["KubeTarget", "kubeconfig_path", "kubeconfig_contexts", "require_context", "api_client", "Apis"]


def kubeconfig_path(explicit: str | os.PathLike | None = None) -> str:
    """The kubeconfig file kubectl would use: the explicit path, else the first of $KUBECONFIG, else ~/.kube/config."""
    if explicit:
        return str(explicit)
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return first or str(Path.home() / ".kube" / "config")


def kubeconfig_contexts(kubeconfig: str | os.PathLike | None = None) -> list[str]:
    """Context names in the kubeconfig (file read only; no API call)."""
    from kubernetes import config

    path = kubeconfig_path(kubeconfig)
    if not Path(path).exists():
        return []
    try:
        contexts, _active = config.list_kube_config_contexts(config_file=path)
    except config.ConfigException as exc:
        raise UsageError(f"kubeconfig {path} is not usable ({str(exc).splitlines()[0][:200]})",
                         "fix the file or point KUBECONFIG at a valid one") from None
    return [c["name"] for c in contexts or []]


def require_context(context: str, kubeconfig: str | os.PathLike | None = None) -> None:
    """Refuse a context that the kubeconfig does not define, before anything talks to a cluster."""
    if not context:
        raise UsageError("no kubeconfig context named", "pass --context NAME (see `kubectl config get-contexts`)")
    names = kubeconfig_contexts(kubeconfig)
    if context not in names:
        path = kubeconfig_path(kubeconfig)
        known = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "none"
        raise UnsafeTarget(f"context {context!r} is not in kubeconfig {path} (it has: {known})",
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
