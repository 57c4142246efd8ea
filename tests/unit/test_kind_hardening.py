"""Issue 12 at its boundaries: version checks on recorded tool outputs, the real CLI refusing on a PATH
without Helm, the kind config against kind's v1alpha4 API, host ports, the node-image pull, image
side-loading fallbacks, the re-apply to a kept cluster, and the Docker endpoint from fake config dirs.

kind cannot create a cluster here, so kind/helm/docker commands are recorded (tests/unit/kube_fakes.py)
or, for the CLI test, answered by stub executables on PATH; ``kubectl kustomize`` and the Kubernetes
client run for real (the API server is the in-memory fake).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from harness.config import PROJECT_ROOT, Settings
from harness.docker_env import docker_client, docker_endpoint
from harness.errors import EXIT_ENVIRONMENT, DockerUnavailable, HarnessError, PlatformUnavailable
from harness.kube.istio import istio_images
from harness.kube.kind_config import (CERTS_DIR, KIND_CONFIG, load_kind_config, mirror_hosts_toml, node_image,
                                      render_kind_config)
from harness.kube.kustomize import find_object, release_hpa_replicas, render
from harness.kube.runner import CommandFailed
from harness.kube.toolchain import MIN_HELM, NODE_IMAGE, check_helm, check_kind, parse_version
from harness.platforms.kind import OVERLAY_DIR, check_host_ports, preflight, pull_images, run_images
from tests.unit.kube_fakes import KUBECTL_CLIENT, FakeProcess, RecordingRunner, deployment
from tests.unit.test_kind_platform import APPLY, CLUSTER, kind_ready_host, make_kube, make_platform, make_runner  # noqa: F401 (fixture)

# `kind version` / `helm version --short` as the tools print them (kind: pkg/cmd/kind/version).
KIND_OUTPUTS = {
    "kind v0.30.0 go1.24.6 linux/amd64": (0, 30, 0),
    "kind v0.31.0 go1.25.5 darwin/arm64": (0, 31, 0),
    "kind v0.32.0-alpha+1c2d3e4f go1.25.1 linux/amd64": (0, 32, 0),
    "kind v0.20.0 go1.20.4 linux/amd64": (0, 20, 0),
}
HELM_OUTPUTS = {"v3.19.0+g3d8990f": (3, 19, 0), "v3.20.1+ga2369ca": (3, 20, 1), "v4.0.0+g4a1f5c2": (4, 0, 0),
                "v3.18.6+gb76a950": (3, 18, 6), "v2.17.0+ga690bad": (2, 17, 0)}


# -- versions (points 2 and 3) ------------------------------------------------------------------------
@pytest.mark.parametrize("text,version", KIND_OUTPUTS.items())
def test_kind_version_parsing_takes_the_kind_release_not_the_go_version(text, version):
    assert parse_version(text, after="kind") == version


@pytest.mark.parametrize("text,version", HELM_OUTPUTS.items())
def test_helm_version_parsing(text, version):
    assert parse_version(text) == version


def test_kind_older_than_the_node_images_release_is_refused_in_one_line():
    for text, version in KIND_OUTPUTS.items():
        runner = RecordingRunner([(("kind", "version"), text)])
        if version >= (0, 30, 0):
            assert check_kind(runner, "fix") == version
            continue
        with pytest.raises(PlatformUnavailable) as err:
            check_kind(runner, "use `make e2e PLATFORM=docker` here")
        msg = str(err.value)
        assert "\n" not in msg and err.value.exit_code == EXIT_ENVIRONMENT
        assert "kind v0.20.0 is older than v0.30.0" in msg and "install kind v0.30.0 or newer" in msg


def test_helm_outside_the_supported_range_is_refused_and_missing_helm_names_the_way_out():
    for text, version in HELM_OUTPUTS.items():
        runner = RecordingRunner([(("helm", "version"), text)])
        if version >= MIN_HELM:
            assert check_helm(runner, lambda t: t, "why", "skip") == version
        else:
            with pytest.raises(PlatformUnavailable, match=rf"helm v{version[0]}\.{version[1]}\.{version[2]} is not "
                                                          r"supported .*Helm 3\.19\.0 or newer \(3\.x or 4\.x\)"):
                check_helm(runner, lambda t: t, "why", "skip")
    runner = RecordingRunner()
    with pytest.raises(PlatformUnavailable) as err:
        check_helm(runner, lambda t: None, "the circuit-breaker scenarios", "set HARNESS_MESH=0 to skip them")
    assert "needs helm on PATH (not found)" in str(err.value) and "HARNESS_MESH=0" in str(err.value)
    assert runner.calls == []


def test_preflight_needs_helm_only_while_the_circuit_breaker_scenarios_are_selected():
    no_helm = lambda tool: None if tool == "helm" else f"/usr/bin/{tool}"  # noqa: E731
    with pytest.raises(PlatformUnavailable, match="needs helm on PATH"):
        preflight(Settings(), make_runner(), which=no_helm)
    runner = make_runner()
    preflight(Settings(mesh=False), runner, which=no_helm)
    assert ("helm", "version", "--short") not in runner.argvs()
    runner = make_runner()
    preflight(Settings(), runner, which=lambda t: t, tools_only=True)  # versions only: no engine, no ports
    assert runner.argvs() == [("kind", "version"), ("kubectl", "version", "--client", "-o", "json"),
                              ("helm", "version", "--short")]


def _stub(bin_dir: Path, name: str, stdout: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho '{stdout}'\n")
    path.chmod(0o755)


@pytest.mark.parametrize("kind_out,helm,expect", [
    ("kind v0.30.0 go1.24.6 linux/amd64", False, "needs helm on PATH (not found)"),
    ("kind v0.29.0 go1.24.2 linux/amd64", True, "kind v0.29.0 is older than v0.30.0"),
])
def test_the_real_cli_stops_in_preflight_with_one_line_and_exit_13(tmp_path, kind_out, helm, expect):
    """`make e2e` runs `harness preflight --tools-only` then `harness e2e`: both refuse here. The
    tools are stub scripts on a PATH of their own (kind cannot run on this machine)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "kind", kind_out)
    _stub(bin_dir, "kubectl", "Client Version: v1.34.0")
    _stub(bin_dir, "docker", "28.2.2")
    if helm:
        _stub(bin_dir, "helm", "v3.19.0+g3d8990f")
    env = {**os.environ, "PATH": str(bin_dir), "HARNESS_REPORT_DIR": str(tmp_path / "r")}
    env.pop("HARNESS_MESH", None)
    for args in (["preflight", "--platform", "kind", "--tools-only"], ["e2e", "--platform", "kind"]):
        proc = subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == EXIT_ENVIRONMENT, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expect in lines[0], proc.stderr
    # The chaos and capacity suites run no circuit-breaker scenario: Helm is not asked for there.
    for suite in ("chaos", "capacity"):
        proc = subprocess.run([sys.executable, "-m", "harness", "preflight", "--platform", "kind", "--suite", suite,
                               "--tools-only"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == (0 if not helm else EXIT_ENVIRONMENT), (suite, proc.stderr)
    env["HARNESS_MESH"] = "0"   # deselecting the circuit-breaker scenarios lifts the Helm requirement
    proc = subprocess.run([sys.executable, "-m", "harness", "preflight", "--platform", "kind", "--tools-only"],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if not helm else EXIT_ENVIRONMENT), proc.stderr


# -- the kind config against kind's own API (point 3, mirrors) ---------------------------------------
# Field names of kind's config API, from pkg/apis/config/v1alpha4/types.go (kubernetes-sigs/kind).
KIND_CLUSTER_FIELDS = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
                       "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
                       "containerdConfigPatchesJSON6902"}
KIND_NODE_FIELDS = {"role", "image", "labels", "extraMounts", "extraPortMappings", "gpus", "kubeadmConfigPatches",
                    "kubeadmConfigPatchesJSON6902"}
KIND_MOUNT_FIELDS = {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"}
KIND_PORT_FIELDS = {"containerPort", "hostPort", "listenAddress", "protocol"}


def _check_kind_api(cfg: dict) -> None:
    assert set(cfg) <= KIND_CLUSTER_FIELDS, set(cfg) - KIND_CLUSTER_FIELDS
    for n in cfg["nodes"]:
        assert set(n) <= KIND_NODE_FIELDS, set(n) - KIND_NODE_FIELDS
        assert all(set(m) <= KIND_MOUNT_FIELDS for m in n.get("extraMounts") or [])
        assert all(set(m) <= KIND_PORT_FIELDS for m in n.get("extraPortMappings") or [])


def test_kind_config_pins_the_node_image_from_the_kind_release_notes_by_digest():
    cfg = load_kind_config(KIND_CONFIG)
    assert node_image(cfg) == NODE_IMAGE
    assert NODE_IMAGE == ("kindest/node:v1.34.0@sha256:"
                          "7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a")  # kind v0.30.0 notes
    _check_kind_api(cfg)


def test_an_unpinned_or_mixed_node_image_is_refused(tmp_path):
    cfg = yaml.safe_load(KIND_CONFIG.read_text())
    for change in ("kindest/node:v1.34.0", None):
        bad = json.loads(json.dumps(cfg))
        if change is None:
            bad["nodes"][2].pop("image")
        else:
            bad["nodes"][1]["image"] = change
        path = tmp_path / "kind.yml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(HarnessError, match="every node must name the same kindest/node image pinned by digest"):
            load_kind_config(path)


def test_registry_mirror_renders_containerd_hosts_config_on_every_node(tmp_path):
    out = render_kind_config(load_kind_config(), "r1", mirror_dir=tmp_path / "certs.d")
    _check_kind_api(out)
    assert out["containerdConfigPatches"] == [
        f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_DIR}"\n']
    assert all(n["extraMounts"] == [{"hostPath": str((tmp_path / "certs.d").resolve()), "containerPath": CERTS_DIR,
                                     "readOnly": True}] for n in out["nodes"])
    assert mirror_hosts_toml("https://mirror.gcr.io/") == (
        'server = "https://registry-1.docker.io"\n\n[host."https://mirror.gcr.io"]\n'
        '  capabilities = ["pull", "resolve"]\n')
    assert "containerdConfigPatches" not in render_kind_config(load_kind_config(), "r1")


def test_the_platform_writes_the_mirror_config_it_mounts(tmp_path):
    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r"),
                        registry_mirror="http://127.0.0.1:5000", ready_timeout_s=5).validate()
    p = make_platform(settings, tmp_path)
    p.up()
    hosts = settings.report_path / "kind" / "certs.d" / "docker.io" / "hosts.toml"
    assert '[host."http://127.0.0.1:5000"]' in hosts.read_text()
    assert p.kind_config["nodes"][0]["extraMounts"][0]["hostPath"] == str(hosts.parent.parent.resolve())
    with pytest.raises(HarnessError, match="registry_mirror 'mirror.gcr.io' is not an http"):
        Settings(registry_mirror="mirror.gcr.io").validate()


# -- host ports (point 6) ----------------------------------------------------------------------------
def test_fixed_host_ports_in_use_are_refused_in_preflight(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = yaml.safe_load(KIND_CONFIG.read_text())
        cfg["nodes"][0]["extraPortMappings"][0]["hostPort"] = port
        path = tmp_path / "kind.yml"
        path.write_text(yaml.safe_dump(cfg))
        with pytest.raises(PlatformUnavailable) as err:
            preflight(Settings(kind_fixed_host_ports=True), make_runner(), which=lambda t: t, kind_config=path)
        assert f"host port 127.0.0.1:{port}" in str(err.value) and "is in use" in str(err.value)
        assert "unset HARNESS_KIND_FIXED_HOST_PORTS" in str(err.value) and err.value.exit_code == EXIT_ENVIRONMENT
        # the default (kind picks free ports) does not care
        preflight(Settings(), make_runner(), which=lambda t: t, kind_config=path)
    check_host_ports(cfg)  # released: free again


# -- the node image pull (point 8) ---------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "reports"),
                    ready_timeout_s=5).validate()


def test_the_node_image_is_pulled_before_create_with_progress(settings, tmp_path):
    p = make_platform(settings, tmp_path)
    p.up()
    argvs = p.runner.argvs()
    create = next(i for i, a in enumerate(argvs) if a[:3] == ("kind", "create", "cluster"))
    assert argvs[create - 1] == ("docker", "image", "inspect", NODE_IMAGE)
    assert p.runner.started[0][0] == ("docker", "pull", NODE_IMAGE)
    assert p._progress_seen[0].startswith("pulling the kind node image kindest/node:v1.34.0")
    assert any(m.startswith("node image pulled in") and m.endswith("(2/2 layers)") for m in p._progress_seen)


def test_a_local_node_image_is_not_pulled_again(settings, tmp_path):
    p = make_platform(settings, tmp_path, runner=make_runner({("docker", "image", "inspect", NODE_IMAGE): "[{}]"}))
    p.up()
    assert not any(argv[:2] == ("docker", "pull") for argv, _ in p.runner.started)


def test_a_failed_node_image_pull_stops_before_kind_create(settings, tmp_path):
    runner = make_runner(pull=lambda argv: FakeProcess(["Error response from daemon: toomanyrequests: rate limit\n"], 1))
    p = make_platform(settings, tmp_path, runner=runner)
    with pytest.raises(PlatformUnavailable, match="toomanyrequests.*harness images --pull"):
        p.up()
    assert not any(a[:3] == ("kind", "create", "cluster") for a in p.runner.argvs())


class StalledPull(FakeProcess):
    """A pull that prints one line and then nothing until killed (a dead link)."""

    def __init__(self):
        super().__init__([])
        self.killed = threading.Event()
        self.stdout = self._lines()

    def _lines(self):
        yield "v1.34.0: Pulling from kindest/node\n"
        self.killed.wait(30)

    def kill(self) -> None:
        self.returncode = -9
        self.killed.set()

    def wait(self, timeout=None):
        return self.returncode


def test_a_stalled_node_image_pull_is_killed_at_its_own_timeout(tmp_path):
    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r"), ready_timeout_s=5,
                        node_image_pull_timeout_s=0.3).validate()
    stalled = StalledPull()
    p = make_platform(settings, tmp_path, runner=make_runner(pull=lambda argv: stalled))
    with pytest.raises(PlatformUnavailable, match=r"did not arrive within 0s.*HARNESS_NODE_IMAGE_PULL_TIMEOUT_S"):
        p.up()
    assert stalled.killed.is_set()
    assert not any(a[:3] == ("kind", "create", "cluster") for a in p.runner.argvs())


# -- side-loading (point 7) ---------------------------------------------------------------------------
MULTIARCH_ERROR = ('ERROR: failed to load image: command "docker exec --privileged -i x ctr --namespace=k8s.io images '
                   'import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1\n'
                   "Command Output: ctr: content digest sha256:44b2c602: not found\n")
METRICS = "registry.k8s.io/metrics-server/metrics-server:v0.7.2"


def _archive(tmp_path, n: int) -> str:
    return str(tmp_path / "state" / f"{CLUSTER}-images" / f"image-{n}.tar")


def test_images_are_side_loaded_as_archives_of_the_nodes_platform(settings, tmp_path):
    """`docker image save --platform <node's>` + `kind load image-archive` (kind#3795, the workaround kind
    documents in kind#4247): the platform is the engine's (arm64 on Apple Silicon)."""
    runner = make_runner({("docker", "info", "--format", "{{.Architecture}}"): "aarch64\n",
                          ("docker", "image", "inspect", METRICS): "[{}]"})
    p = make_platform(settings, tmp_path, runner=runner)
    p.up()
    argvs = p.runner.argvs()
    i = argvs.index(("docker", "image", "save", "--platform", "linux/arm64", "-o", _archive(tmp_path, 0),
                     "i2s-harness/conductor:dev"))
    assert argvs[i + 1] == ("kind", "load", "image-archive", _archive(tmp_path, 0), "--name", CLUSTER)
    assert ("docker", "image", "save", "--platform", "linux/arm64", "-o", _archive(tmp_path, 1), METRICS) in argvs
    assert not any(a[:3] == ("kind", "load", "docker-image") for a in argvs)
    assert ("docker", "pull", "--platform", "linux/arm64", istio_images()[1]) in argvs   # proxyv2 made local first


def test_an_engine_without_save_platform_saves_the_whole_image(settings, tmp_path):
    """API < 1.48 has no `docker image save --platform`: the archive is saved without it and still loaded."""
    runner = make_runner({("docker", "image", "save", "--platform"): (1, "", 'unknown flag: --platform')})
    p = make_platform(settings, tmp_path, runner=runner)
    p.up()
    argvs = p.runner.argvs()
    assert ("docker", "image", "save", "-o", _archive(tmp_path, 0), "i2s-harness/conductor:dev") in argvs
    assert ("kind", "load", "image-archive", _archive(tmp_path, 0), "--name", CLUSTER) in argvs


def test_a_failed_side_load_of_a_registry_image_falls_back_to_the_nodes_pulling_it(settings, tmp_path, caplog):
    runner = make_runner({("docker", "image", "inspect", METRICS): "[{}]",
                          ("kind", "load", "image-archive", _archive(tmp_path, 1)): (1, "", MULTIARCH_ERROR)})
    p = make_platform(settings, tmp_path, runner=runner)
    p.up()  # not aborted
    assert METRICS in p.nodes_pull
    assert "could not side-load registry.k8s.io/metrics-server" in caplog.text and "content digest" in caplog.text
    assert any("not side-loaded; the nodes pull it themselves" in m for m in p._progress_seen)
    assert p.describe()["pulled_by_nodes"] == p.nodes_pull


def test_a_failed_side_load_of_the_local_conductor_still_stops(settings, tmp_path):
    runner = make_runner({("kind", "load", "image-archive", _archive(tmp_path, 0)): (1, "", MULTIARCH_ERROR)})
    p = make_platform(settings, tmp_path, runner=runner)
    with pytest.raises(CommandFailed, match="exists only locally"):
        p.up()


def test_a_registry_conductor_image_is_pulled_before_it_is_loaded(settings, tmp_path):
    image = "ghcr.io/example/conductor:2.2.0"
    p = make_platform(settings, tmp_path, image=image)
    p.up()
    argvs = p.runner.argvs()
    i = argvs.index(("docker", "image", "inspect", image))
    assert argvs[i + 1:i + 4] == [("docker", "pull", "--platform", "linux/amd64", image),
                                  ("docker", "image", "save", "--platform", "linux/amd64", "-o", _archive(tmp_path, 0), image),
                                  ("kind", "load", "image-archive", _archive(tmp_path, 0), "--name", CLUSTER)]
    runner = make_runner({("docker", "pull", "--platform", "linux/amd64", image):
                          (1, "", "Error response from daemon: manifest unknown")})
    p = make_platform(settings, tmp_path, runner=runner, image=image)
    with pytest.raises(CommandFailed, match=r"manifest unknown.*HARNESS_CONDUCTOR_IMAGE=ghcr.io/example/conductor:2.2.0 "
                                            r"is neither local nor pullable"):
        p.up()


# -- images a run needs (pre-pull) ---------------------------------------------------------------------
def test_run_images_lists_everything_and_pull_images_fetches_what_is_missing():
    listed = run_images(Settings(), "i2s-harness/conductor:dev")
    assert [i for i, _ in listed] == [NODE_IMAGE, METRICS, *istio_images(), "i2s-harness/conductor:dev"]
    assert [i for i, _ in run_images(Settings(mesh=False), "x/y:1")] == [NODE_IMAGE, METRICS, "x/y:1"]
    runner = RecordingRunner([(("docker", "image", "inspect", METRICS), "[{}]"),
                              (("docker", "image", "inspect"), (1, "", "No such image"))])
    seen: list[str] = []
    pulled = pull_images([i for i, _ in listed], runner, seen.append)
    assert pulled == [NODE_IMAGE, *istio_images()]
    assert ("docker", "pull", "i2s-harness/conductor:dev") not in runner.argvs()   # local build: never pulled
    assert seen == [f"pulling {i}" for i in pulled]


# -- re-applying to a kept cluster (point 5) -------------------------------------------------------------
def test_rendered_overlay_keeps_replicas_on_first_apply_and_drops_them_once_the_hpa_owns_them():
    docs = render(OVERLAY_DIR)
    dep = find_object(docs, "Deployment", "conductor")
    assert dep["spec"]["replicas"] == 2   # the seed's value, applied as written on a fresh cluster
    key = ("Deployment", dep["metadata"]["namespace"], "conductor")
    assert find_object(release_hpa_replicas(docs, set()), "Deployment", "conductor")["spec"]["replicas"] == 2
    second = find_object(release_hpa_replicas(docs, {key}), "Deployment", "conductor")
    assert "replicas" not in second["spec"] and second["spec"]["template"] == dep["spec"]["template"]
    assert dep["spec"]["replicas"] == 2   # the rendering itself is not modified


def test_the_second_run_on_a_kept_cluster_applies_the_deployment_without_replicas(tmp_path):
    settings = Settings(platform="kind", run_id="test-run-1", report_dir=str(tmp_path / "r"), keep=True,
                        ready_timeout_s=5).validate()
    kube = make_kube()
    dep_path = "/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"
    live = kube.objects.pop(dep_path)

    def applied(argv, text):
        if "kind: HorizontalPodAutoscaler" in (text or ""):   # the overlay apply, not metrics-server
            kube.objects[dep_path] = live   # the API server now has it
        return ""

    last_runner: list = []

    def run(kept: bool):
        over = {("kind", "get", "clusters"): f"{CLUSTER}\n" if kept else "", ("kubectl", "version"): KUBECTL_CLIENT,
                ("kubectl",): applied}
        p = make_platform(settings, tmp_path, runner=make_runner(over), kube=kube)
        p.up()
        last_runner[:] = [p.runner]
        rest = [c.input for c in p.runner.calls if c.argv[-5:] == APPLY][2]
        return find_object(list(yaml.safe_load_all(rest)), "Deployment", "conductor")

    assert run(kept=False)["spec"]["replicas"] == 2   # first run: the Deployment did not exist
    live.update(deployment("conductor", "i2s-staging", replicas=5, ready=5))   # the HPA scaled it meanwhile
    assert "replicas" not in run(kept=True)["spec"]      # second run: the HPA's field is left alone
    # ...after handing the live value to a second field manager (the upstream two-step hand-over), so
    # leaving the field out cannot reset it to 1
    calls = [c for c in last_runner[0].calls if c.argv[0] == "kubectl" and "apply" in c.argv]
    handover = next(c for c in calls if "--field-manager=handover-to-hpa" in c.argv)
    assert handover.argv[-3:] == ("--validate=false", "-f", "-")
    assert list(yaml.safe_load_all(handover.input)) == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "conductor", "namespace": "i2s-staging"},
         "spec": {"replicas": 5}}]
    assert calls.index(handover) == len(calls) - 2   # right before the overlay's re-apply
    reads = [r.path for r in kube.requests if r.method == "GET" and r.path == dep_path]
    assert len(reads) == 1   # only the kept cluster is asked whether the Deployment exists


# -- Docker endpoint from DOCKER_HOST or the docker context -------------------------------------------------
def _context(cfg_dir: Path, name: str, host: str) -> None:
    meta = cfg_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))


def test_docker_endpoint_follows_docker_host_then_the_current_context(tmp_path):
    cfg = tmp_path / ".docker"
    cfg.mkdir()
    _context(cfg, "colima", "unix:///home/u/.colima/default/docker.sock")
    _context(cfg, "orbstack", "unix:///home/u/.orbstack/run/docker.sock")
    (cfg / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    assert docker_endpoint({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, tmp_path) == ("tcp://127.0.0.1:2375", "DOCKER_HOST")
    host, source = docker_endpoint({}, tmp_path)
    assert host == "unix:///home/u/.colima/default/docker.sock" and "docker context 'colima'" in source
    assert docker_endpoint({"DOCKER_CONTEXT": "orbstack"}, tmp_path)[0] == "unix:///home/u/.orbstack/run/docker.sock"
    assert docker_endpoint({"DOCKER_CONFIG": str(tmp_path / "none")}, tmp_path) == ("", "DOCKER_HOST unset, no docker context")
    assert docker_endpoint({"DOCKER_CONTEXT": "default"}, tmp_path)[0] == ""
    with pytest.raises(DockerUnavailable, match="docker context 'gone' .*has no readable endpoint"):
        docker_endpoint({"DOCKER_CONTEXT": "gone"}, tmp_path)


def test_docker_client_names_the_endpoint_and_where_it_came_from_when_nothing_answers(tmp_path, monkeypatch):
    cfg = tmp_path / ".docker"
    cfg.mkdir()
    _context(cfg, "rootless", f"unix://{tmp_path}/nothing.sock")
    (cfg / "config.json").write_text(json.dumps({"currentContext": "rootless"}))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    docker_client.cache_clear()
    try:
        with pytest.raises(DockerUnavailable) as err:
            docker_client()
    finally:
        docker_client.cache_clear()
    msg = str(err.value)
    assert "\n" not in msg and f"unix://{tmp_path}/nothing.sock" in msg and "docker context 'rootless'" in msg
    assert "DOCKER_HOST" in msg and "docker context use" in msg
    assert "DOCKER_HOST" not in os.environ  # only an endpoint that answered is handed on


def test_the_platform_itself_comes_up_without_helm_so_the_mesh_scenarios_can_skip(settings, tmp_path):
    """Run through plain pytest, a machine without Helm still gets its cluster; only the circuit-breaker
    scenarios skip (their fixture runs IstioMesh.preflight, which raises the same one line)."""
    p = make_platform(settings, tmp_path)
    p._which = lambda tool: None if tool == "helm" else f"/usr/bin/{tool}"
    p.up()
    assert not any(a[0] == "helm" for a in p.runner.argvs())


def test_harness_images_lists_what_a_run_needs_through_the_real_cli(tmp_path):
    env = {**os.environ, "HARNESS_REPORT_DIR": str(tmp_path)}
    env.pop("HARNESS_MESH", None)
    proc = subprocess.run([sys.executable, "-m", "harness", "images"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    from harness.config import Settings
    from harness.doctor import stack_images

    # kind's images, then the stack's (Postgres, Redis, RabbitMQ, Python base, and Ryuk unless disabled)
    assert listed == [NODE_IMAGE, METRICS, *istio_images(), "i2s-harness/conductor:dev",
                      *[i for i, _ in stack_images(Settings())]]
