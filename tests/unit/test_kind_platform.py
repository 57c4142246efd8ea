"""KindPlatform at its boundaries: the exact kind/kubectl/docker commands it runs, in order, and the
Kubernetes API requests it makes.

kind cannot create a cluster on this machine and there is no Kubernetes API here, so commands go
through a recording runner (``kubectl kustomize`` runs for real) and the API is a fake behind a real
``kubernetes.client.ApiClient`` at the HTTP level (tests/unit/kube_fakes.py).
"""
from __future__ import annotations

import http.server
import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.config import Settings
from harness.errors import PlatformUnavailable, ReadinessTimeout, UsageError
from harness.kube.runner import CommandFailed
from harness.labels import RUN_ID_LABEL
from harness.conductor import Fault, Replica
from harness.kube.istio import istio_images
from harness.kube.toolchain import NODE_IMAGE
from harness.platforms.kind import OVERLAY_DIR, KindPlatform, preflight, sweep_kind_clusters
from tests.unit.kube_fakes import (DOCKER_INFO, KUBECTL_CLIENT, FakeHost, FakeKube, FakeProcess, RecordingRunner,
                                   deployment, event, node, pod)


@pytest.fixture(autouse=True)
def kind_ready_host(monkeypatch):
    """This machine's /proc and ~/.docker are not the subject here: a kind-ready Linux host (harness.doctor)."""
    import harness.doctor

    monkeypatch.setattr(harness.doctor, "Host", FakeHost)

RUN = "test-run-1"
CLUSTER = f"i2s-harness-{RUN}"
NODES = [f"{CLUSTER}-control-plane", f"{CLUSTER}-worker", f"{CLUSTER}-worker2", f"{CLUSTER}-worker3",
         f"{CLUSTER}-worker4"]
IPS = {"i2s-test-run-1-postgres": "172.30.0.2", "i2s-test-run-1-redis": "172.30.0.3",
       "i2s-test-run-1-rabbitmq": "172.30.0.4"}
PG_PASSWORD, MQ_PASSWORD = "pg-Secret-9f2c", "mq-Secret-77ab"
APP_ENV = {"DATABASE_URL": f"postgresql://postgres:{PG_PASSWORD}@postgres:5432/i2s_staging",
           "REDIS_URL": "redis://redis:6379/0",
           "RABBITMQ_URL": f"amqp://i2s:{MQ_PASSWORD}@rabbitmq:5672/%2F"}


class FakeService:
    def __init__(self, alias: str, port: int):
        self.alias, self.container_port = alias, port

    def get_wrapped_container(self):
        return SimpleNamespace(name=f"i2s-{RUN}-{self.alias}")


class FakeStack:
    network = SimpleNamespace(name=f"i2s-{RUN}")
    services = [FakeService("postgres", 5432), FakeService("redis", 6379), FakeService("rabbitmq", 5672)]

    def app_env(self):
        return dict(APP_ENV)


def docker_inspect(argv, _input):
    return json.dumps({f"i2s-{RUN}": {"IPAddress": IPS[argv[-1]]}, "bridge": {"IPAddress": "172.17.0.9"}})


PULL_LINES = ["v1.34.0: Pulling from kindest/node\n", "4f4fb700ef54: Pulling fs layer\n",
              "a1b2c3d4e5f6: Pulling fs layer\n", "4f4fb700ef54: Pull complete\n", "a1b2c3d4e5f6: Pull complete\n", "Digest: sha256:7416a61b...\n",
              f"Status: Downloaded newer image for {NODE_IMAGE}\n"]


def make_runner(overrides: dict | None = None, pull=None) -> RecordingRunner:
    responses = {
        ("kind", "version"): "kind v0.30.0 go1.24.6 linux/amd64\n",
        ("helm", "version"): "v3.19.0+g3d8990f\n",
        ("docker", "info", "--format", "{{json .}}"): json.dumps(DOCKER_INFO),
        ("docker", "info", "--format", "{{.Architecture}}"): "x86_64\n",
        ("docker", "version"): "1.51\n",
        ("kubectl", "version"): KUBECTL_CLIENT,
        ("docker", "image", "inspect", "i2s-harness/conductor:dev"): "[{}]",
        ("docker", "image", "inspect"): (1, "", "Error: No such image"),
        ("kind", "get", "nodes"): "\n".join(NODES) + "\n",
        ("kind", "get", "clusters"): "",
        ("docker", "inspect"): docker_inspect,
        ("docker", "port"): "127.0.0.1:30880\n",
    }
    return RecordingRunner(list((overrides or {}).items()) + list(responses.items()),  # overrides match first
                           start_responses=[(("docker", "pull"), pull or (lambda argv: FakeProcess(PULL_LINES, 0)))])


def make_kube(conductor_ready: bool = True) -> FakeKube:
    kube = FakeKube()
    kube.objects["/apis/apps/v1/namespaces/kube-system/deployments/metrics-server"] = deployment(
        "metrics-server", "kube-system", replicas=1, ready=1, match_labels={"k8s-app": "metrics-server"})
    kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment(
        "conductor", "i2s-staging", ready=2 if conductor_ready else 0)
    for i, zone in enumerate(["us-east-1a", "us-east-1b"]):
        kube.objects[f"/api/v1/nodes/{NODES[i + 1]}"] = node(NODES[i + 1], zone)
        ready = conductor_ready or i == 0
        waiting = None if ready else ("ImagePullBackOff", 'Back-off pulling image "i2s-harness/conductor:dev"')
        kube.objects[f"/api/v1/namespaces/i2s-staging/pods/conductor-{i}"] = pod(
            f"conductor-{i}", "i2s-staging", NODES[i + 1], ready=ready and conductor_ready, waiting=waiting)
    if not conductor_ready:
        kube.objects["/api/v1/namespaces/i2s-staging/events/conductor-1.1"] = event(
            "conductor-1", "Failed", "Failed to pull image: not found")
    return kube


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(platform="kind", run_id=RUN, report_dir=str(tmp_path / "reports"), ready_timeout_s=5).validate()


def make_platform(settings, tmp_path, runner=None, kube=None, image="i2s-harness/conductor:dev", **kw) -> KindPlatform:
    kube = kube or make_kube()
    progress: list[str] = []
    p = KindPlatform(settings, FakeStack(), runner=runner or make_runner(), apis_factory=lambda target: kube.apis(),
                     which=lambda tool: f"/usr/bin/{tool}", image_builder=lambda s: image,
                     http_get=lambda url: 200, state_dir=tmp_path / "state", ready_interval=0.01,
                     progress=progress.append, **kw)
    p._progress_seen = progress  # for assertions
    p._kube = kube  # for assertions
    return p


def kubectl(*args: str, tmp_path: Path) -> tuple[str, ...]:
    return ("kubectl", "--kubeconfig", str(tmp_path / "state" / f"{CLUSTER}.kubeconfig"), "--context",
            f"kind-{CLUSTER}", *args)


APPLY = ("apply", "--server-side", "--field-manager=i2s-harness", "-f", "-")


def ARCHIVES(tmp_path: Path) -> Path:  # noqa: N802 - where side-loaded image archives are written (and removed)
    return tmp_path / "state" / f"{CLUSTER}-images"


def test_preflight_names_the_missing_tool_in_one_line():
    runner = RecordingRunner()
    with pytest.raises(PlatformUnavailable) as err:
        preflight(None, runner, which=lambda tool: None if tool == "kind" else f"/usr/bin/{tool}")
    msg = str(err.value)
    assert "\n" not in msg
    assert "kind not found" in msg and "use `make e2e PLATFORM=docker` here" in msg
    assert runner.calls == []  # nothing is run when a binary is missing


def test_preflight_refuses_old_kind_and_a_stopped_docker_engine():
    with pytest.raises(PlatformUnavailable, match=r"kind v0\.11\.1 is older than v0\.30\.0, the release that publishes"):
        preflight(None, make_runner({("kind", "version"): "kind v0.11.1 go1.16 linux/amd64"}), which=lambda t: t)
    with pytest.raises(PlatformUnavailable, match="Docker engine is not reachable") as err:
        preflight(None, make_runner({("docker", "info"): (1, "", "Cannot connect to the Docker daemon")}),
                  which=lambda t: t)
    assert "make e2e PLATFORM=docker" in str(err.value)


def test_up_runs_these_commands_in_this_order(settings, tmp_path):
    p = make_platform(settings, tmp_path)
    p.up()
    rendered_cfg = settings.report_path / "kind" / "kind-config.yml"
    expected = [
        ("kind", "version"),             # no Helm check here: only the mesh scenarios need it (they skip)
        ("kubectl", "version", "--client", "-o", "json"),   # the skew policy: 1.33-1.35 for the 1.34 nodes
        ("docker", "info", "--format", "{{json .}}"),       # engine, CPUs, memory, mirrors (harness.doctor)
        ("docker", "version", "--format", "{{.Server.APIVersion}}"),
        ("kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY_DIR)),
        ("docker", "image", "inspect", NODE_IMAGE),          # not local: pulled apart from `kind create`
        ("kind", "create", "cluster", "--name", CLUSTER, "--config", str(rendered_cfg), "--kubeconfig",
         str(tmp_path / "state" / f"{CLUSTER}.kubeconfig"), "--wait", "180s"),
        # add-on images not local: pulled once by this machine for the nodes' platform, then side-loaded
        ("docker", "image", "inspect", "registry.k8s.io/metrics-server/metrics-server:v0.7.2"),
        ("docker", "info", "--format", "{{.Architecture}}"),
        ("docker", "pull", "--platform", "linux/amd64", "registry.k8s.io/metrics-server/metrics-server:v0.7.2"),
        *[c for i in istio_images() for c in (("docker", "image", "inspect", i),
                                              ("docker", "pull", "--platform", "linux/amd64", i))],
        ("docker", "image", "inspect", "i2s-harness/conductor:dev"),
        # each image as a single-platform archive (kind#3795), loaded into every node
        *[c for n, i in enumerate(["i2s-harness/conductor:dev", "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
                                   *istio_images()])
          for c in (("docker", "image", "save", "--platform", "linux/amd64", "-o", str(ARCHIVES(tmp_path) / f"image-{n}.tar"), i),
                    ("kind", "load", "image-archive", str(ARCHIVES(tmp_path) / f"image-{n}.tar"), "--name", CLUSTER))],
        ("kind", "get", "nodes", "--name", CLUSTER),
        *[("docker", "network", "connect", f"i2s-{RUN}", n) for n in NODES],
        *[("docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", c) for c in IPS],
        kubectl(*APPLY, tmp_path=tmp_path),   # metrics-server
        kubectl(*APPLY, tmp_path=tmp_path),   # the namespace
        kubectl(*APPLY, tmp_path=tmp_path),   # the rest of the overlay
        ("docker", "port", f"{CLUSTER}-control-plane", "30880/tcp"),
    ]
    assert p.runner.argvs() == expected
    assert [argv for argv, _proc in p.runner.started] == [("docker", "pull", NODE_IMAGE)]
    assert p.endpoints() == ["http://127.0.0.1:30880"]
    cfg = yaml.safe_load(rendered_cfg.read_text())
    assert all(n["labels"][RUN_ID_LABEL] == RUN for n in cfg["nodes"])
    assert {n["image"] for n in cfg["nodes"]} == {NODE_IMAGE}
    # free host ports: kind picks them (hostPort 0), the endpoint is read back from `docker port`
    assert {m["hostPort"] for n in cfg["nodes"] for m in n.get("extraPortMappings") or []} == {0}
    assert p.nodes_pull == []   # everything was pulled here once and side-loaded: no node pulls from Docker Hub
    assert not ARCHIVES(tmp_path).exists()   # the archives are removed once loaded


def test_up_applies_the_overlay_labeled_and_creates_secrets_through_the_api(settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    p = make_platform(settings, tmp_path)
    p.up()
    applies = [c.input for c in p.runner.calls if c.argv[-5:] == APPLY]
    metrics, namespace, rest = (list(yaml.safe_load_all(text)) for text in applies)
    assert {d["kind"] for d in metrics} >= {"APIService", "Deployment", "ServiceAccount", "ClusterRole"}
    assert [d["kind"] for d in namespace] == ["Namespace"]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rest) == [
        ("Deployment", "conductor"), ("HorizontalPodAutoscaler", "conductor-hpa"), ("Service", "conductor"),
        ("Service", "conductor-nodeport"), ("ServiceAccount", "conductor")]
    for d in metrics + namespace + rest:
        assert d["metadata"]["labels"][RUN_ID_LABEL] == RUN, d["metadata"]["name"]
    dep = next(d for d in rest if d["kind"] == "Deployment")
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "conductor"}}  # selectors untouched
    assert RUN_ID_LABEL not in dep["spec"]["template"]["metadata"]["labels"]

    writes = [(r.method, r.path, (r.body or {}).get("metadata", {}).get("name")) for r in p._kube.writes()]
    assert writes == [
        ("POST", "/api/v1/namespaces/i2s-staging/secrets", "database-credentials"),
        ("POST", "/api/v1/namespaces/i2s-staging/secrets", "redis-credentials"),
        ("POST", "/api/v1/namespaces/i2s-staging/secrets", "rabbitmq-credentials"),
        ("POST", "/api/v1/namespaces/i2s-staging/secrets", "conductor-harness"),
        ("POST", "/api/v1/namespaces/i2s-staging/services", "postgres"),
        ("POST", "/apis/discovery.k8s.io/v1/namespaces/i2s-staging/endpointslices", "postgres-harness"),
        ("POST", "/api/v1/namespaces/i2s-staging/services", "redis"),
        ("POST", "/apis/discovery.k8s.io/v1/namespaces/i2s-staging/endpointslices", "redis-harness"),
        ("POST", "/api/v1/namespaces/i2s-staging/services", "rabbitmq"),
        ("POST", "/apis/discovery.k8s.io/v1/namespaces/i2s-staging/endpointslices", "rabbitmq-harness"),
    ]
    bodies = {r.body["metadata"]["name"]: r.body for r in p._kube.writes()}
    assert bodies["database-credentials"]["stringData"] == {"url": APP_ENV["DATABASE_URL"]}
    assert bodies["rabbitmq-credentials"]["stringData"] == {"url": APP_ENV["RABBITMQ_URL"]}
    assert bodies["conductor-harness"]["stringData"] == {"admin-token": p.admin_token, "cpu-cost-ms": "5.0"}
    assert bodies["postgres-harness"]["endpoints"][0]["addresses"] == ["172.30.0.2"]
    assert bodies["postgres-harness"]["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    assert "selector" not in bodies["postgres"]["spec"]
    assert all(b["metadata"]["labels"][RUN_ID_LABEL] == RUN for b in bodies.values())

    # Secret values travel only in API bodies: never in argv, stdin, or any log line.
    secrets = [PG_PASSWORD, MQ_PASSWORD, p.admin_token]
    for call in p.runner.calls:
        for s in secrets:
            assert s not in " ".join(call.argv) and s not in (call.input or "")
    for s in secrets:
        assert s not in caplog.text
    assert "database-credentials" in caplog.text  # the log does name what was created


def test_down_exports_logs_before_deleting_the_cluster(settings, tmp_path):
    kube = make_kube()
    kube.on(r"/api/v1/namespaces/i2s-staging/pods/[^/]+/log", lambda req: "2026-01-01T00:00:00Z started\n")
    p = make_platform(settings, tmp_path, kube=kube)
    p.up()
    n = len(p.runner.calls)
    p.down()
    p.down()  # idempotent
    tail = p.runner.argvs()[n:]
    logs = settings.report_path / "logs"
    assert tail == [("kind", "export", "logs", str(logs / "kind"), "--name", CLUSTER),
                    ("kind", "delete", "cluster", "--name", CLUSTER, "--kubeconfig",
                     str(tmp_path / "state" / f"{CLUSTER}.kubeconfig"))]
    assert (logs / "pods" / "conductor-0_conductor.log").read_text() == "2026-01-01T00:00:00Z started\n"
    assert (logs / "pods" / "i2s-staging_events.txt").exists()


def test_keep_reuses_a_kept_cluster_and_leaves_it_running(tmp_path):
    settings = Settings(platform="kind", run_id=RUN, report_dir=str(tmp_path / "r"), keep=True).validate()
    p = make_platform(settings, tmp_path, runner=make_runner({("kind", "get", "clusters"): f"other\n{CLUSTER}\n"}))
    p.up()
    argvs = p.runner.argvs()
    assert ("kind", "get", "clusters") in argvs
    assert not any(a[:3] == ("kind", "create", "cluster") for a in argvs)
    assert ("kind", "export", "kubeconfig", "--name", CLUSTER, "--kubeconfig",
            str(tmp_path / "state" / f"{CLUSTER}.kubeconfig")) in argvs
    # a reused cluster already has the objects: create answers 409 and the harness replaces them
    p2 = make_platform(settings, tmp_path, runner=make_runner({("kind", "get", "clusters"): f"{CLUSTER}\n"}),
                       kube=p._kube)
    p2.up()
    assert [r.method for r in p._kube.writes()].count("PUT") == 10
    p.down()
    assert not any(a[:3] == ("kind", "delete", "cluster") for a in p.runner.argvs())


def test_a_failed_create_still_deletes_what_kind_left(settings, tmp_path):
    runner = make_runner({("kind", "create", "cluster"): (1, "", "ERROR: failed to create cluster: "
                                                                "failed to pull image kindest/node")})
    p = make_platform(settings, tmp_path, runner=runner)
    with pytest.raises(CommandFailed, match="failed to pull image kindest/node") as err:
        p.up()
    assert "make e2e PLATFORM=docker" in str(err.value)
    p.down()
    assert p.runner.argvs()[-1][:4] == ("kind", "delete", "cluster", "--name")


def test_nothing_is_created_when_the_overlay_does_not_render(settings, tmp_path):
    bad = tmp_path / "overlay"
    bad.mkdir()
    (bad / "kustomization.yaml").write_text("resources: [missing.yml]\n")
    p = make_platform(settings, tmp_path, overlay_dir=bad)
    with pytest.raises(CommandFailed):
        p.up()
    assert not any(a[0] == "kind" and a[1] in ("create", "load") for a in p.runner.argvs())
    p.down()
    assert not any(a[:2] == ("kind", "delete") for a in p.runner.argvs())


def test_a_user_image_replaces_the_reference_conductor(settings, tmp_path):
    p = make_platform(settings, tmp_path, image="registry.example/i2s/conductor:2.2.0")
    p.up()
    tar = str(ARCHIVES(tmp_path) / "image-0.tar")
    assert ("docker", "image", "save", "--platform", "linux/amd64", "-o", tar, "registry.example/i2s/conductor:2.2.0") \
        in p.runner.argvs()
    assert ("kind", "load", "image-archive", tar, "--name", CLUSTER) in p.runner.argvs()
    rest = list(yaml.safe_load_all([c.input for c in p.runner.calls if c.argv[-5:] == APPLY][2]))
    dep = next(d for d in rest if d["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/i2s/conductor:2.2.0"


def test_rollout_timeout_names_the_pod_its_reason_and_last_event(settings, tmp_path):
    settings.ready_timeout_s = 0.5
    p = make_platform(settings, tmp_path, kube=make_kube(conductor_ready=False))
    with pytest.raises(ReadinessTimeout) as err:
        p.up()
    msg = str(err.value)
    assert "\n" not in msg
    assert "deployment i2s-staging/conductor not rolled out" in msg and "0/2 ready" in msg
    assert "conductor-1" in msg and "ImagePullBackOff" in msg
    assert "last event: Failed: Failed to pull image: not found" in msg


def test_replicas_carry_the_zone_of_their_node(settings, tmp_path):
    p = make_platform(settings, tmp_path)
    p.up()
    assert [(r.name, r.zone, r.ready) for r in p.replicas()] == [
        ("conductor-0", "us-east-1a", True), ("conductor-1", "us-east-1b", True)]


def test_unmapped_nodeport_is_a_one_line_error(settings, tmp_path):
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "kind-config.yml").read_text())
    cfg["nodes"][0]["extraPortMappings"] = [m for m in cfg["nodes"][0]["extraPortMappings"]
                                            if m["containerPort"] != 30880]
    path = tmp_path / "kind.yml"
    path.write_text(yaml.safe_dump(cfg))
    p = make_platform(settings, tmp_path, kind_config=path)
    with pytest.raises(UsageError, match="NodePort 30880 of conductor-nodeport has no extraPortMapping"):
        p.up()


def test_faults_reach_one_pod_through_a_port_forward(settings, tmp_path):
    seen = []

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            seen.append((self.path, self.headers["Authorization"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runner = make_runner()
        runner.forward_port = server.server_address[1]
        p = make_platform(settings, tmp_path, runner=runner)
        p.up()
        assert p.set_fault(Replica("conductor-1", "us-east-1b", True), Fault(cpu_cost_ms=20)) == {"ok": True}
        argv, proc = runner.started[-1]  # [0] is the node image pull
        assert argv == kubectl("-n", "i2s-staging", "port-forward", "--address", "127.0.0.1", "pod/conductor-1",
                               ":8080", tmp_path=tmp_path)
        assert seen == [("/admin/faults", f"Bearer {p.admin_token}", b'{"cpu_cost_ms": 20}')]
        p.down()
        assert proc.terminated
    finally:
        server.shutdown()


def test_sweep_deletes_only_harness_clusters():
    runner = make_runner({("kind", "get", "clusters"): f"kind\n{CLUSTER}\ni2s-harness-other-run\n"})
    assert sweep_kind_clusters(RUN, runner) == [CLUSTER]
    assert sweep_kind_clusters(None, runner) == [CLUSTER, "i2s-harness-other-run"]
    assert ("kind", "delete", "cluster", "--name", "kind") not in runner.argvs()
