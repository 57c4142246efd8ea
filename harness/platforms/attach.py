"""``attach(configuration)``: the platform rebuilt in another process (the Chaos Toolkit run) from
its configuration, as chaostoolkit-kubernetes builds its client from the experiment's
configuration and secrets.

The harness passes what the chaos process needs as ``HARNESS_*`` variables
(``Platform.chaos_configuration``; chaos/shared/configuration.json maps them to configuration
keys): ``platform`` (docker | kind | context), and on a cluster its ``kube_namespace``,
``kube_context``/``context`` and ``kubeconfig`` file. Unset ``platform`` (an experiment run by
hand): Kubernetes when the configuration names a cluster side, else docker.

The attached platform offers the capabilities a fault needs (harness.platforms.capabilities):
``application_tier`` (lost and replaced) and ``zones`` (the failure modes a zone can be lost by:
harness.platforms.docker_zones, harness.platforms.kube_zones).
Faults use these and never ask which platform they are on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from harness.errors import UsageError
from harness.platforms.capabilities import ApplicationTier

__all__ = ["attach", "platform_of", "kube_target", "configuration_of", "AttachedPlatform", "ZoneFailures", "PLATFORM_NAMES"]

PLATFORM_NAMES = ("docker", "kind", "context")


@dataclass(frozen=True)
class ZoneFailures:
    """How a zone can be lost on a platform: the modes, the default first (the chaos activity
    harness.faults.zone_loss loses and restores the zone in the chosen one)."""

    modes: tuple[str, ...]

    def choose(self, platform: str, wanted: str = "") -> str:
        failure = (wanted or "").strip() or self.modes[0]
        if failure not in self.modes:
            raise UsageError(f"zone failure {failure!r} is not available on platform {platform!r}",
                             f"set HARNESS_ZONE_FAILURE to one of: {', '.join(self.modes)}")
        return failure


@dataclass
class AttachedPlatform:
    """The run's platform as a chaos process sees it."""

    name: str
    configuration: Mapping[str, Any]
    zones: ZoneFailures
    needs_kubernetes: bool

    @property
    def application_tier(self) -> ApplicationTier:
        run_id = str(self.configuration.get("run_id") or "")
        if self.needs_kubernetes:
            from harness.platforms.kube_tier import KubeApplicationTier

            return KubeApplicationTier(run_id, kube_target(self.configuration, kube=True))
        from harness.platforms.docker_tier import DockerApplicationTier

        return DockerApplicationTier(run_id)


def kube_target(configuration: Mapping[str, Any] | None, *, kube: bool = False) -> dict[str, str]:
    """Where the run's Kubernetes side is, resolved from the configuration without any check;
    ``{}`` when the run is not on Kubernetes (no ``kube_namespace``) and ``kube`` is false.

    The context is ``kube_context`` (the harness's kind context), else the one named explicitly
    (``context``), else the run's own kind cluster — never the kubeconfig's current context.
    """
    import os

    from harness.kube.client import kubeconfig_path
    from harness.labels import kind_cluster_name

    cfg = configuration or {}
    namespace = str(cfg.get("kube_namespace") or "").strip()
    if not namespace and not kube:
        return {}
    run_id = str(cfg.get("run_id") or "").strip()
    ctx = (str(cfg.get("kube_context") or "").strip() or str(cfg.get("context") or "").strip()
           or f"kind-{kind_cluster_name(run_id)}")
    return {"kube_namespace": namespace, "kube_context": ctx,
            # KUBECONFIG may be a list; kubectl's first file is the one the harness writes.
            "kubeconfig": kubeconfig_path(str(cfg.get("kubeconfig") or "").split(os.pathsep)[0] or None)}


def configuration_of(env: Mapping[str, str], run_id: str) -> dict[str, Any]:
    """The Chaos Toolkit configuration a chaos process would build from ``env`` (the ``HARNESS_*``
    variables of ``Platform.chaos_configuration``), by chaos/shared/configuration.json's own mapping:
    so the process that owns the platform attaches exactly as the chaos process does."""
    import json

    from harness.config import PROJECT_ROOT

    shared = json.loads((PROJECT_ROOT / "chaos" / "shared" / "configuration.json").read_text())
    by_env = {spec["key"]: key for key, spec in shared.items() if spec.get("type") == "env"}
    return {"run_id": run_id, **{by_env[k]: v for k, v in env.items() if k in by_env}}


def platform_of(configuration: Mapping[str, Any] | None) -> str:
    """The platform a configuration describes (``platform``, else inferred; see the module doc)."""
    cfg = configuration or {}
    named = str(cfg.get("platform") or "").strip()
    if named:
        if named not in PLATFORM_NAMES:
            raise UsageError(f"platform {named!r} in the chaos configuration is not one of {', '.join(PLATFORM_NAMES)}",
                             "set HARNESS_PLATFORM to docker, kind or context")
        return named
    kube = any(str(cfg.get(k) or "").strip() for k in ("kube_namespace", "kube_context", "context"))
    return "kind" if kube else "docker"


def attach(configuration: Mapping[str, Any] | None) -> AttachedPlatform:
    """The platform described by a Chaos Toolkit configuration, for the faults of that process."""
    name = platform_of(configuration)
    if name == "docker":
        from harness.platforms.docker_zones import FAILURES

        return AttachedPlatform(name, configuration or {}, ZoneFailures(FAILURES), False)
    from harness.platforms.kube_zones import FAILURES as KUBE_FAILURES

    return AttachedPlatform(name, configuration or {}, ZoneFailures(KUBE_FAILURES), True)
