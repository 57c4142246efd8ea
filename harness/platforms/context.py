"""The context platform: an existing cluster the user names explicitly (``--context NAME``).

Decision: this platform observes; it deploys nothing, changes nothing and deletes nothing through the
API. What the scenarios do to the cluster beyond reading it (user requests that write, a zone drain)
needs the user's explicit opt-in, ``HARNESS_CONTEXT_ALLOW`` (``harness.platforms.permissions``).
  * The context must be in the kubeconfig; otherwise ``UnsafeTarget`` is raised before any API call
    (a typo must never fall through to whatever kubectl's current-context happens to be).
  * The system must already be deployed there (namespace, Deployment ``conductor``, the HPA) by the
    team's own pipeline. The harness does not apply the kind overlay: it would replace the real image
    with the reference conductor and point the Secrets at testcontainers services a remote cluster
    cannot reach — i.e. it would overwrite a real environment with a test double.
  * Traffic goes only to 127.0.0.1: a ``kubectl port-forward`` to the Service. kubectl forwards to
    one pod, so load through it is not balanced (``balanced_ingress = False``): scenarios that need
    load spread over the replicas (the HPA scenario) skip here with that reason.
  * Faults through the conductor's admin endpoint need the token the harness gives the pods it
    deploys; a conductor deployed by someone else does not have it, so ``set_fault`` refuses.
  * ``down`` stops the port-forwards (the only things it started) and nothing else.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from harness.config import Settings
from harness.errors import HarnessError, UsageError
from harness.kube.client import Apis, KubeTarget, api_client, check_context
from harness.kube.conductor import ConductorOnCluster
from harness.kube.portforward import PortForwards
from harness.kube.rollout import wait_rollout
from harness.kube.runner import CommandRunner, SubprocessRunner
from harness.manifests import ConductorSpec, conductor_spec
from harness.platforms.base import Fault, Platform, Replica
from harness.platforms.capabilities import Zones
from harness.platforms.kube_zones import DRAIN_NOTE, FAILURES as KUBE_FAILURES, cordoned_nodes

__all__ = ["ContextPlatform", "preflight"]

log = logging.getLogger(__name__)


def preflight(settings: Settings, kubeconfig: str | os.PathLike | None = None) -> None:
    """The named context exists in the kubeconfig (reads the file only; no API call)."""
    if not settings.context:
        raise UsageError("platform 'context' needs the cluster named", "pass --context NAME or set HARNESS_CONTEXT")
    check_context(settings.context, kubeconfig)


class ContextPlatform(Platform):
    name = "context"
    owns_database = False   # the team's database: RTO and the SLO are measured, RPO is not
    unsupported = {"mesh": "the circuit-breaker scenario installs Istio, which the harness does only on its own "
                           "kind cluster (--platform kind), never on an existing one"}
    needs_kubernetes = True
    balanced_ingress = False

    def __init__(self, settings: Settings, stack: Any, *, runner: CommandRunner | None = None,
                 apis_factory: Callable[[KubeTarget], Apis] | None = None,
                 kubeconfig: str | os.PathLike | None = None, spec: ConductorSpec | None = None):
        super().__init__(settings, stack)
        self.kubeconfig = str(kubeconfig) if kubeconfig else None
        self.target = KubeTarget(settings.context, self.kubeconfig)
        self.runner = runner or SubprocessRunner()
        self._apis_factory = apis_factory or (lambda t: Apis(api_client(t)))
        self.spec = spec or conductor_spec(settings.manifests_dir)
        self.namespace = self.spec.namespace
        self.apis: Apis | None = None
        self.conductor: ConductorOnCluster | None = None
        self._forwards = PortForwards(self.runner, self.target, self.namespace)
        self._endpoint = ""

    def up(self) -> None:
        preflight(self.settings, self.kubeconfig)  # before the first request
        self.apis = self._apis_factory(self.target)
        from kubernetes.client.rest import ApiException

        try:
            dep = self.apis.apps.read_namespaced_deployment("conductor", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise HarnessError(f"context {self.settings.context!r} has no Deployment {self.namespace}/conductor",
                                   "deploy the system there first (the harness only observes existing clusters), "
                                   "or use --platform kind") from None
            raise HarnessError(f"context {self.settings.context!r} refused reading {self.namespace}/conductor "
                               f"(HTTP {exc.status} {exc.reason})", "check your access to that cluster") from None
        self.conductor = ConductorOnCluster(self.apis, self.namespace, "conductor", dep.spec.selector.match_labels or {})
        wait_rollout(self.apis, self.namespace, "conductor", timeout=self.settings.ready_timeout_s,
                     hint="the existing deployment is not healthy; the harness does not change it")
        self._endpoint = self._forwards.url("svc/conductor", self.spec.http_port)

    def endpoints(self) -> list[str]:
        return [self._endpoint] if self._endpoint else []

    def replicas(self) -> list[Replica]:
        return self.conductor.replicas() if self.conductor else []

    def set_fault(self, replica: Replica, fault: Fault) -> dict[str, Any]:
        raise HarnessError("faults through the conductor's admin endpoint need the token the harness gives the "
                           "pods it deploys; this cluster's conductor was deployed by someone else",
                           "run fault scenarios with --platform kind or docker")

    def clear_fault(self, replica: Replica) -> dict[str, Any]:
        return self.set_fault(replica, Fault())

    def make_zones(self) -> Any:
        return ContextZones(self)

    def chaos_configuration(self) -> dict[str, str]:
        env = {"HARNESS_PLATFORM": self.name, "HARNESS_ENDPOINTS": ",".join(self.endpoints())}
        if self.target.kubeconfig:  # the kubeconfig file the context was checked in
            env["KUBECONFIG"] = str(self.target.kubeconfig)
        return env

    def export_logs(self, dest: Path) -> list[Path]:
        if self.conductor is None:
            return []
        return self.conductor.export_logs(dest / "pods")  # read-only

    def down(self) -> None:
        self._forwards.stop_all()
        if self.apis is not None:
            self.apis.close()
            self.apis = None

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"context": self.settings.context, "deploys": False,
                  "allowed": list(self.settings.context_allow)})  # HARNESS_CONTEXT_ALLOW: write, drain
        return d


class ContextZones(Zones):
    """The zones capability on a cluster the harness did not create: its pods stay where the team's
    scheduler put them (placement ``as-deployed``: ``place`` only reports it); a zone is lost by a
    drain, with ``HARNESS_CONTEXT_ALLOW=drain`` (harness.platforms.kube_zones)."""

    placements = ("as-deployed",)
    failures = KUBE_FAILURES
    no_survivors_note = DRAIN_NOTE

    def __init__(self, platform: ContextPlatform):
        self.platform = platform

    def not_restored(self, zone: str) -> list[str]:
        return cordoned_nodes(self.platform.apis, zone)

    def place(self, zone: str, mode: str = "one-zone") -> dict[str, str]:
        return {r.name: r.zone for r in self.platform.replicas()}
