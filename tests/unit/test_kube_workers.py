"""Locust worker pods, tested at their boundary (kind cannot run here): the objects rendered, checked
strictly against Kubernetes' own schema (kubernetes-validate, the cluster's 1.34), and the API calls
made on start and stop. The Kubernetes API itself is a fake: it cannot exist on this machine."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest

from harness.errors import HarnessError, UsageError
from harness.load.kube_workers import KubeWorkers, in_cluster_url, load_namespace, render_worker_manifests

KUBE_VERSION = "1.34"  # the kind node image's (README: The kind platform)


def _render(count=3):
    return render_worker_manifests(run_id="r-1", count=count, image="i2s-harness/locust-worker:ctx-abc",
                                   master_host="172.30.0.1", master_port=5557,
                                   env={"HARNESS_TARGETS": "http://conductor-nodeport.i2s.svc.cluster.local:8080"})


def test_rendered_objects_pass_kubernetes_strict_schema():
    for obj in _render():
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_a_planted_mistake_is_refused_by_the_schema():
    _, dep = _render()
    dep["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # misspelt "resources"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)


def test_workers_are_laid_out_as_the_helm_chart_does():
    ns, dep = _render(count=3)
    assert ns["metadata"]["name"] == load_namespace("r-1") == dep["metadata"]["namespace"]
    assert ns["metadata"]["labels"]["i2s-harness.run-id"] == "r-1"
    assert dep["spec"]["replicas"] == 3
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "locust" and labels["app.kubernetes.io/component"] == "worker"
    assert labels["i2s-harness.run-id"] == "r-1"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    cmd = c["command"]
    assert cmd[cmd.index("--master-host") + 1] == "172.30.0.1" and "--worker" in cmd
    assert cmd[cmd.index("--master-port") + 1] == "5557"
    assert c["resources"]["limits"]["cpu"] == c["resources"]["requests"]["cpu"]  # each worker gets its core


class FakeApis:
    def __init__(self, delete_status=None):
        self.calls = []
        outer = self

        class Core:
            def create_namespace(self, body):
                outer.calls.append(("create_namespace", body["metadata"]["name"]))

            def delete_namespace(self, name, propagation_policy=None):
                outer.calls.append(("delete_namespace", name, propagation_policy))
                if delete_status:
                    raise type("ApiException", (Exception,), {"status": delete_status})()

            def list_namespaced_pod(self, ns, label_selector):
                return SimpleNamespace(items=[SimpleNamespace(status=SimpleNamespace(phase="Running"))])

        class Apps:
            def create_namespaced_deployment(self, ns, body):
                outer.calls.append(("create_deployment", ns, body["spec"]["replicas"],
                                    body["spec"]["template"]["spec"]["containers"][0]["env"]))

        self.core, self.apps = Core(), Apps()


def _pool(apis, loaded):
    pool = KubeWorkers(2, "r-1", apis, network_gateway=lambda: "172.30.0.1",
                       service_url="http://conductor-nodeport.i2s.svc.cluster.local:8080",
                       image=lambda: "img:1", load_image=loaded.append)
    pool.master_port = 5557  # the gateway address exists only on a kind run's network
    return pool


def test_start_loads_the_image_and_creates_the_namespace_and_workers_stop_deletes_it(tmp_path: Path):
    apis, loaded = FakeApis(), []
    pool = _pool(apis, loaded)
    targets = pool.worker_targets(["http://127.0.0.1:31234/api"])
    assert targets == ["http://conductor-nodeport.i2s.svc.cluster.local:8080/api"]
    pool.start({"HARNESS_TARGETS": targets[0], "HARNESS_ATTRIBUTION_FILE": "/x", "PATH": "/bin"}, tmp_path, "s",
               Path("loadtests/locustfile.py"))
    assert loaded == ["img:1"]
    assert apis.calls[0] == ("create_namespace", "i2s-harness-load-r-1")
    kind, ns, replicas, env = apis.calls[1]
    assert (kind, ns, replicas) == ("create_deployment", "i2s-harness-load-r-1", 2)
    assert {e["name"] for e in env} == {"HARNESS_TARGETS"}  # the master writes the lines; no host env leaks
    assert pool.alive() == 1
    pool.stop()
    pool.stop()  # idempotent: one delete
    assert [c for c in apis.calls if c[0] == "delete_namespace"] == [("delete_namespace", "i2s-harness-load-r-1",
                                                                       "Foreground")]
    assert pool.alive() == 0


def test_a_namespace_already_gone_is_fine_other_errors_say_how_to_clean_up(tmp_path):
    pool = _pool(FakeApis(delete_status=404), [])
    pool.start({}, tmp_path, "s", Path("x"))
    pool.stop()
    pool = _pool(FakeApis(delete_status=500), [])
    pool.start({}, tmp_path, "s", Path("x"))
    with pytest.raises(HarnessError, match="kubectl delete namespace i2s-harness-load-r-1"):
        pool.stop()


def test_an_existing_cluster_gets_no_worker_pods_but_a_pointer_to_external_workers():
    with pytest.raises(UsageError, match="EXTERNAL|external"):
        KubeWorkers.for_platform(2, SimpleNamespace(run_id="r-1"), SimpleNamespace(name="context"), 60)


def test_in_cluster_url_keeps_the_path():
    assert in_cluster_url("http://127.0.0.1:1/a?b=1", "http://svc.ns.svc.cluster.local:8080") == \
        "http://svc.ns.svc.cluster.local:8080/a?b=1"


def test_tls_through_the_gateway_is_refused_before_anything_is_created(tmp_path):
    apis = FakeApis()
    with pytest.raises(UsageError, match="HARNESS_LOAD_WORKER_PLACEMENT=local"):
        _pool(apis, []).start({"HARNESS_TLS_CA_FILE": "/tmp/ca.pem", "HARNESS_TLS_SNI": "x"}, tmp_path, "s", Path("x"))
    assert apis.calls == []
