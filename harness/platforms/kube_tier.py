"""The application tier capability on Kubernetes (kind, or a cluster named explicitly): the tier is
the Deployment ``conductor``. Losing it scales the Deployment to 0 -- every pod goes, and the HPA
leaves a Deployment at 0 replicas alone (autoscaling is disabled there), so the tier stays lost
until the recovery; replacing it scales it back to the replica count recorded at the loss and
waits for the rollout. Pods get the same Secrets, i.e. the same configuration, as a secondary
region deployed from the same manifests would. Only a Deployment labeled with the run id is scaled;
every call goes through a client built from the configuration's kubeconfig file and context.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from harness.errors import HarnessError, UnsafeTarget, UsageError
from harness.platforms.capabilities import ApplicationTier

__all__ = ["KubeApplicationTier", "APP_DEPLOYMENT"]

APP_DEPLOYMENT = "conductor"          # the application tier (k8s/overlays/kind)


def _own_deployment(apis: Any, namespace: str, run_id: str) -> Any:
    """The Deployment ``conductor`` of the run (read); ``UnsafeTarget`` if it is not labeled with the run id."""
    from kubernetes.client.rest import ApiException

    from harness.labels import RUN_ID_LABEL

    try:
        dep = apis.apps.read_namespaced_deployment(APP_DEPLOYMENT, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise HarnessError(f"Deployment {namespace}/{APP_DEPLOYMENT} does not exist in the cluster",
                               "the kind platform deploys it at `up`; check HARNESS_KUBE_NAMESPACE") from None
        raise
    found = (dep.metadata.labels or {}).get(RUN_ID_LABEL)
    if found != run_id:
        raise UnsafeTarget(f"refusing to scale Deployment {namespace}/{APP_DEPLOYMENT}: it is labeled "
                           f"{RUN_ID_LABEL}={found or '(none)'}, not {run_id}",
                           "the harness scales only the Deployment the kind platform created for this run")
    return dep


def _scale(apis: Any, namespace: str, replicas: int) -> None:
    """Set the Deployment's replica count through its scale subresource (what ``kubectl scale`` does)."""
    body = {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": APP_DEPLOYMENT, "namespace": namespace}, "spec": {"replicas": int(replicas)}}
    apis.apps.replace_namespaced_deployment_scale(APP_DEPLOYMENT, namespace, body)


def _spec_replicas(dep: Any) -> int:
    return 1 if dep.spec.replicas is None else int(dep.spec.replicas)  # the API's default is 1


class KubeApplicationTier(ApplicationTier):
    def __init__(self, run_id: str, kube: dict[str, str]):
        self.run_id, self.kube = run_id, kube
        self.namespace = kube["kube_namespace"]

    def _apis(self) -> Any:
        from harness.kube import client as kc

        return kc.Apis(kc.api_client(kc.KubeTarget(self.kube["kube_context"], self.kube["kubeconfig"])))

    def lose(self, record: Callable[[dict[str, Any]], Any] = lambda details: None) -> dict[str, Any]:
        """Scale the run's Deployment to 0; ``record`` gets its replica count first (the replacement,
        also undo_all's from another process, reads it from the fault log)."""
        ns = self.namespace
        apis = self._apis()
        try:
            replicas = _spec_replicas(_own_deployment(apis, ns, self.run_id))
            if replicas < 1:
                raise UsageError(f"Deployment {ns}/{APP_DEPLOYMENT} already has 0 replicas: there is no tier to lose",
                                 "redeploy it first (deploy_application_tier, or kubectl scale --replicas=N)")
            record({"deployment": f"{ns}/{APP_DEPLOYMENT}", "replicas": replicas})
            t = time.time()
            _scale(apis, ns, 0)
        finally:
            apis.close()
        return {"scaled_to_zero": f"{ns}/{APP_DEPLOYMENT}", "replicas_before": replicas, "lost_at": t}

    def replace(self, timeout_s: float, replicas: int = 0) -> dict[str, Any]:
        """Scale the Deployment back to ``replicas`` (when at 0) and wait for the rollout. Idempotent:
        a Deployment that has replicas is only waited for."""
        from harness.kube.rollout import wait_rollout

        ns = self.namespace
        t0 = time.monotonic()
        apis = self._apis()
        try:
            current = _spec_replicas(_own_deployment(apis, ns, self.run_id))
            if current > 0:
                action = f"already at {current} replicas"
            else:
                if replicas < 1:
                    raise HarnessError(f"no replica count is known for Deployment {ns}/{APP_DEPLOYMENT} at 0 replicas "
                                       "(no active application-tier-lost fault in the fault log)",
                                       f"pass replicas=N, or run kubectl --context {self.kube['kube_context']} -n {ns} "
                                       f"scale deployment/{APP_DEPLOYMENT} --replicas=N")
                _scale(apis, ns, replicas)
                action = f"scaled to {replicas} replicas"
            state = wait_rollout(apis, ns, APP_DEPLOYMENT, timeout=float(timeout_s), interval=1.0,
                                 hint="see the conductor pods' events; is the database reachable as 'postgres'?")
        finally:
            apis.close()
        return {"deployment": f"{ns}/{APP_DEPLOYMENT}", "action": action, "rollout": state,
                "ready_s": round(time.monotonic() - t0, 1)}
