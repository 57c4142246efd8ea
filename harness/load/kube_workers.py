"""Locust worker pods on the run's kind cluster, laid out as the Locust Helm chart lays out its workers.

The chart (deliveryhero/helm-charts ``stable/locust``) and the operator (locust-k8s-operator) run
workers as a Deployment whose pods start ``locust --worker --master-host <master>`` with the
locustfile in the image or a ConfigMap, labeled ``app.kubernetes.io/name: locust`` and
``app.kubernetes.io/component: worker``, with CPU requests and limits so that each worker gets its
core. Here the master is the harness's own Locust process (it aggregates the stats, writes the CSV
and HTML, and reads every worker's CPU from Locust's heartbeats): it listens on the gateway of the
run's Docker network, which the kind nodes are attached to (``harness.platforms.kind``), so the pods
reach it through their node. The pods load the conductor through its in-cluster Service.

Everything is in one namespace per run (``i2s-harness-load-<run id>``, the run's labels), deleted as
a whole by ``stop`` — on success, failure and Ctrl-C — and by the run's kind cluster going away.

Rendering is pure (``render_worker_manifests``); ``KubeWorkers`` only creates and deletes the objects
through the Kubernetes API client the kind platform already holds. kind cannot run on the
development machine, so this path is tested at that boundary: the objects sent, the calls made.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from harness.errors import HarnessError, UsageError
from harness.labels import kube_labels
from harness.load.workers import WorkerPool, locust_worker_image, locustfile_env, worker_command

__all__ = ["render_worker_manifests", "KubeWorkers", "load_namespace", "WORKER_LABELS"]

WORKER_LABELS = {"app.kubernetes.io/name": "locust", "app.kubernetes.io/component": "worker"}


def load_namespace(run_id: str) -> str:
    return f"i2s-harness-load-{run_id}"[:63]


def render_worker_manifests(*, run_id: str, count: int, image: str, master_host: str, master_port: int,
                            env: Mapping[str, str], cpu: str = "1", memory: str = "512Mi") -> list[dict[str, Any]]:
    """The Namespace and the worker Deployment (``count`` pods), as plain objects."""
    ns = load_namespace(run_id)
    labels = {**kube_labels(run_id), **WORKER_LABELS}
    container = {
        "name": "locust-worker", "image": image, "imagePullPolicy": "IfNotPresent", "workingDir": "/harness",
        "command": worker_command("/harness/loadtests/locustfile.py", master_host, master_port, python="python"),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": kube_labels(run_id)}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "locust-worker", "namespace": ns, "labels": labels},
         "spec": {"replicas": count, "selector": {"matchLabels": {**WORKER_LABELS, **kube_labels(run_id)}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [container], "terminationGracePeriodSeconds": 10,
                                        "restartPolicy": "Always"}}}},
    ]


def in_cluster_url(url: str, service_url: str) -> str:
    """A 127.0.0.1 URL of the system (its NodePort) as the pods reach it: the Service's in-cluster URL,
    the path kept."""
    parts, svc = urlsplit(url), urlsplit(service_url)
    return urlunsplit((svc.scheme, svc.netloc, parts.path, parts.query, parts.fragment))


class KubeWorkers(WorkerPool):
    """``count`` worker pods in the run's load namespace (see the module doc)."""

    placement = "kube"

    def __init__(self, count: int, run_id: str, apis: Any, *, network_gateway: Callable[[], str], service_url: str,
                 image: Callable[[], str], load_image: Callable[[str], None], wait_s: float = 120.0,
                 cpu: str = "1"):
        super().__init__(count, wait_s)
        self.run_id, self.apis, self.service_url, self.cpu = run_id, apis, service_url, cpu
        self._gateway, self._image, self._load_image = network_gateway, image, load_image
        self.namespace = load_namespace(run_id)
        self.created = False

    @classmethod
    def for_platform(cls, count: int, settings: Any, platform: Any, wait_s: float) -> "KubeWorkers":
        if getattr(platform, "name", "") != "kind":
            raise UsageError("worker pods need a master the pods can reach; on an existing cluster the harness does "
                             "not deploy one", "start workers yourself and use HARNESS_LOAD_WORKER_PLACEMENT=external "
                             "(docs/distributed-load.md), or local workers")
        from harness.load.workers import DockerWorkers

        gateway = DockerWorkers(count, settings.run_id, platform.stack.network.name, settings.python_image)
        service = f"http://conductor-nodeport.{platform.namespace}.svc.cluster.local:{platform.spec.http_port}"
        return cls(count, settings.run_id, platform.apis, network_gateway=gateway.master_bind_host,
                   service_url=service, image=lambda: locust_worker_image(settings.python_image),
                   load_image=lambda img: platform.runner.run(["kind", "load", "docker-image", img, "--name",
                                                               platform.cluster], timeout=600),
                   wait_s=max(wait_s, 120.0))

    def master_bind_host(self) -> str:
        return self._gateway()

    def master_host_for_workers(self) -> str:
        return self.master_bind_host()

    def worker_targets(self, targets: list[str]) -> list[str]:
        return [in_cluster_url(t, self.service_url) for t in targets]

    def start(self, env: Mapping[str, str], out_dir: Path, name: str, locustfile: Path) -> None:
        keep = locustfile_env(env)
        if keep.get("HARNESS_TLS_CA_FILE"):
            raise UsageError("worker pods cannot verify the gateway's certificate (the run CA is a file here)",
                             "use HARNESS_LOAD_WORKER_PLACEMENT=local for TLS load through the gateway")
        image = self._image()
        self._load_image(image)
        ns, deployment = render_worker_manifests(run_id=self.run_id, count=self.count, image=image,
                                                 master_host=self.master_host_for_workers(),
                                                 master_port=self.choose_port(), env=keep, cpu=self.cpu)
        try:
            self.created = True
            self.apis.core.create_namespace(ns)
            self.apis.apps.create_namespaced_deployment(self.namespace, deployment)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self.created:
            return
        try:
            self.apis.core.delete_namespace(self.namespace, propagation_policy="Foreground")
        except Exception as exc:  # noqa: BLE001 - a namespace already gone is what stop wants
            if getattr(exc, "status", None) != 404:
                raise HarnessError(f"could not delete the Locust worker namespace {self.namespace}: {exc}",
                                   f"kubectl delete namespace {self.namespace}") from None
        self.created = False

    def alive(self) -> int:
        if not self.created:
            return 0
        pods = self.apis.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/component=worker")
        return sum(1 for p in pods.items if getattr(p.status, "phase", "") in ("Pending", "Running"))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "namespace": self.namespace}
