"""`harness doctor` and the kind preflight that uses it: every row judged from faked readings (the
commands' outputs, /proc, the disk, ~/.docker/config.json), the refusals' one-line messages, the
`--platform auto` choice, and the real CLI printing the table and creating nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.config import PROJECT_ROOT, Settings
from harness.doctor import (GIB, INOTIFY_MIN, Machine, choose_platform, docker_hub_image, format_table, gate_failures,
                            judge, read_machine, stack_images)
from harness.errors import EXIT_ENVIRONMENT, PlatformUnavailable
from harness.kube.toolchain import KUBECTL_RANGE, kubectl_client_version
from harness.platforms.kind import preflight
from tests.unit.kube_fakes import DOCKER_INFO, KUBECTL_CLIENT, FakeHost, RecordingRunner

ALL = lambda tool: f"/usr/bin/{tool}"  # noqa: E731 - every tool on PATH


def runner(**over) -> RecordingRunner:
    """A kind-ready machine's command outputs; ``over`` replaces one (key: the tool or 'info')."""
    out = {("kind", "version"): over.get("kind", "kind v0.30.0 go1.24.6 linux/amd64\n"),
           ("kubectl", "version"): over.get("kubectl", KUBECTL_CLIENT),
           ("helm", "version"): over.get("helm", "v3.19.0+g3d8990f\n"),
           ("docker", "info"): over.get("info", json.dumps(DOCKER_INFO)),
           ("docker", "version"): over.get("api", "1.51\n"),
           ("docker", "image", "inspect"): over.get("inspect", (1, "", "Error: No such image"))}
    return RecordingRunner(list(out.items()))


def rows_of(settings=None, host=None, **over):
    settings = settings or Settings()
    m = read_machine(settings, runner(**over), ALL, host or FakeHost(),
                     images=[("kindest/node:v1.34.0@sha256:ab", "kind node"), ("i2s-harness/conductor:dev", "conductor"),
                             ("registry.k8s.io/metrics-server/metrics-server:v0.7.2", "metrics-server")])
    return {r.check: r for r in judge(m, settings)}


def test_a_kind_ready_machine_has_no_failing_row_and_every_area_is_covered():
    rows = rows_of()
    assert gate_failures(list(rows.values())) == []
    for check in ("kind", "kubectl", "helm", "fs.inotify.max_user_instances", "fs.inotify.max_user_watches",
                  "Docker engine", "engine CPUs", "engine memory", "free disk", "Docker Hub pulls", "host ports"):
        assert check in rows, check
    assert rows["kind"].seen == "v0.30.0" and rows["kubectl"].seen == "v1.34.1"
    assert rows["engine memory"].seen == "16.0 GiB" and rows["engine CPUs"].seen == "8"
    assert any(c.startswith("image kindest/node") for c in rows)


# -- inotify (kind known issues: 512 instances, 524288 watches) -------------------------------------------
def test_stock_ubuntu_inotify_is_refused_with_the_sysctl_fix():
    host = FakeHost(sysctls={"fs.inotify.max_user_instances": 128, "fs.inotify.max_user_watches": 65536})
    rows = rows_of(host=host)
    for name, seen in (("fs.inotify.max_user_instances", "128"), ("fs.inotify.max_user_watches", "65536")):
        assert rows[name].status == "fail" and rows[name].gate and rows[name].seen == seen
        assert "sysctl -w fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288" in rows[name].fix
    with pytest.raises(PlatformUnavailable) as err:
        preflight(Settings(), runner(), ALL, host=host)
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == EXIT_ENVIRONMENT
    assert "fs.inotify.max_user_instances is 128, below the 512 kind documents" in msg and "too many open files" in msg
    assert "sudo sysctl -w" in msg


def test_inotify_exactly_at_kinds_values_passes_and_one_below_fails():
    at = FakeHost(sysctls=dict(INOTIFY_MIN))
    assert {rows_of(host=at)[n].status for n in INOTIFY_MIN} == {"ok"}
    below = FakeHost(sysctls={**INOTIFY_MIN, "fs.inotify.max_user_watches": 524287})
    assert rows_of(host=below)["fs.inotify.max_user_watches"].status == "fail"


def test_inotify_is_not_read_off_linux():
    rows = rows_of(host=FakeHost(system="Darwin", sysctls={"fs.inotify.max_user_instances": 1}))
    assert rows["inotify limits"].status == "skip" and "Docker VM" in rows["inotify limits"].seen


# -- CPUs and memory of the engine (README: 4 CPUs, 8 GB) -------------------------------------------------
@pytest.mark.parametrize("cpus,mesh,status", [(2, True, "fail"), (3, False, "fail"), (4, False, "ok"),
                                              (4, True, "warn"), (6, True, "ok")])
def test_engine_cpus(cpus, mesh, status):
    rows = rows_of(Settings(mesh=mesh), info=json.dumps({**DOCKER_INFO, "NCPU": cpus}))
    assert rows["engine CPUs"].status == status
    assert rows["engine CPUs"].gate == (status == "fail")


def test_engine_memory_below_docker_desktops_8_gb_is_refused_with_the_figures():
    desktop_8gb = int(7.7 * GIB)   # what a VM given 8 GB reports
    assert rows_of(info=json.dumps({**DOCKER_INFO, "MemTotal": desktop_8gb}))["engine memory"].status == "ok"
    small = rows_of(info=json.dumps({**DOCKER_INFO, "MemTotal": 6 * GIB}), host=FakeHost(system="Darwin"))
    assert small["engine memory"].status == "fail" and small["engine memory"].seen == "6.0 GiB"
    assert "Docker Desktop's Settings > Resources" in small["engine memory"].fix
    with pytest.raises(PlatformUnavailable, match=r"engine memory is 6\.0 GiB, below what kind needs \(8 GB"):
        preflight(Settings(), runner(info=json.dumps({**DOCKER_INFO, "MemTotal": 6 * GIB})), ALL, host=FakeHost())


def test_a_stopped_engine_is_one_failing_row():
    rows = rows_of(info=(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"))
    assert rows["Docker engine"].status == "fail" and "Cannot connect" in rows["Docker engine"].seen
    assert "engine CPUs" not in rows


def test_disk_and_an_old_engine_api_are_warnings():
    rows = rows_of(host=FakeHost(disk_free=5 * GIB), api="1.41\n")
    assert rows["free disk"].status == "warn" and rows["free disk"].seen.startswith("5.0 GiB")
    assert rows["image side-loading"].status == "warn" and "kind#3795" in rows["image side-loading"].fix
    assert not gate_failures(list(rows.values()))


# -- versions -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version,ok", [("v1.32.9", False), ("v1.33.0", True), ("v1.34.1", True), ("v1.35.2", True),
                                        ("v1.36.0", False)])
def test_kubectl_is_checked_against_the_skew_policy(version, ok):
    assert KUBECTL_RANGE == ((1, 33), (1, 35))   # one minor either side of the nodes' 1.34
    out = json.dumps({"clientVersion": {"gitVersion": version}})
    row = rows_of(kubectl=out)["kubectl"]
    assert row.status == ("ok" if ok else "fail")
    if not ok:
        assert row.seen == version and "Docker Desktop bundles its own" in row.fix


def test_kubectl_text_output_is_read_too():
    assert kubectl_client_version("Client Version: v1.34.0\nKustomize Version: v5.7.1") == (1, 34, 0)
    assert kubectl_client_version("") is None


def test_missing_helm_fails_only_while_the_mesh_is_selected():
    no_helm = lambda t: None if t == "helm" else f"/usr/bin/{t}"  # noqa: E731
    m = read_machine(Settings(), runner(), no_helm, FakeHost(), images=[])
    row = {r.check: r for r in judge(m, Settings())}["helm"]
    assert row.status == "fail" and "HARNESS_MESH=0" in row.fix
    m = read_machine(Settings(mesh=False), runner(), no_helm, FakeHost(), images=[])
    assert {r.check: r for r in judge(m, Settings(mesh=False))}["helm"].status == "skip"


# -- images, login, mirror ------------------------------------------------------------------------------
def test_anonymous_docker_hub_pulls_warn_and_a_login_or_a_mirror_clears_it():
    rows = rows_of()
    assert rows["Docker Hub pulls"].status == "warn" and "1 anonymous docker.io pull" in rows["Docker Hub pulls"].seen
    assert "docker login" in rows["Docker Hub pulls"].fix
    logged_in = FakeHost(docker_config={"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"})
    assert rows_of(host=logged_in)["Docker Hub pulls"].status == "ok"
    mirrored = json.dumps({**DOCKER_INFO, "RegistryConfig": {"Mirrors": ["https://mirror.gcr.io/"]}})
    assert rows_of(info=mirrored)["Docker Hub pulls"].status == "ok"
    other_registry = FakeHost(docker_config={"auths": {"ghcr.io": {}}})
    assert rows_of(host=other_registry)["Docker Hub pulls"].status == "warn"
    everything_local = rows_of(inspect="[{}]")
    assert everything_local["Docker Hub pulls"].status == "ok"


def test_the_preflight_warns_about_anonymous_pulls_but_runs():
    warned: list[str] = []
    preflight(Settings(), runner(), ALL, host=FakeHost(), warn=warned.append)
    assert any("Docker Hub pulls" in w and "docker login" in w for w in warned)


def test_which_images_come_from_docker_hub():
    assert docker_hub_image("postgres:15-alpine") and docker_hub_image("docker.io/istio/proxyv2:1.31.1")
    assert docker_hub_image("kindest/node:v1.34.0") and docker_hub_image("testcontainers/ryuk:0.8.1")
    assert not docker_hub_image("registry.k8s.io/metrics-server/metrics-server:v0.7.2")
    assert not docker_hub_image("ghcr.io/x/y:1") and not docker_hub_image("localhost:5000/x")


def test_the_stack_images_are_listed_with_ryuk_unless_the_reaper_is_off(monkeypatch):
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)
    names = [i for i, _ in stack_images(Settings())]
    assert names[:4] == ["postgres:15-alpine", "redis:7-alpine", "rabbitmq:3-management-alpine", "python:3.11-slim"]
    assert names[4].startswith("testcontainers/ryuk:")
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    assert len(stack_images(Settings())) == 4


def test_fixed_host_ports_in_use_fail(monkeypatch):
    host = FakeHost()
    monkeypatch.setattr(host, "port_free", lambda addr, port: port != 30880)
    settings = Settings(kind_fixed_host_ports=True)
    rows = {r.check: r for r in judge(read_machine(settings, runner(), ALL, host, images=[]), settings)}
    assert rows["host port 127.0.0.1:30880"].status == "fail" and rows["host port 127.0.0.1:30443"].status == "ok"


# -- what the doctor runs: nothing that creates ------------------------------------------------------------
def test_the_readings_run_only_read_only_commands():
    r = runner()
    read_machine(Settings(), r, ALL, FakeHost())
    verbs = {argv[:3] if argv[:2] == ("docker", "image") else argv[:2] for argv in r.argvs()}
    assert verbs <= {("kind", "version"), ("kubectl", "version"), ("helm", "version"), ("docker", "info"),
                     ("docker", "version"), ("docker", "image", "inspect")}, verbs


def test_the_table_has_one_line_per_row_and_the_fix():
    rows = list(rows_of(host=FakeHost(sysctls={"fs.inotify.max_user_instances": 128})).values())
    text = format_table(rows)
    assert len(text.splitlines()) == len(rows) + 1
    line = next(ln for ln in text.splitlines() if "max_user_instances" in ln)
    assert line.startswith("FAIL") and "128" in line and "sudo sysctl" in line


# -- --platform auto ------------------------------------------------------------------------------------
def test_auto_picks_docker_without_kind_and_says_why():
    chosen, why = choose_platform(Settings(), which=lambda t: None if t == "kind" else t)
    assert chosen == "docker" and "kind not found on PATH" in why


def test_auto_picks_docker_when_the_doctor_fails_and_kind_when_it_passes():
    low = FakeHost(sysctls={"fs.inotify.max_user_instances": 128})
    chosen, why = choose_platform(Settings(), runner=runner(), which=ALL, host=low)
    assert chosen == "docker" and "fs.inotify.max_user_instances 128" in why and "make doctor" in why
    chosen, why = choose_platform(Settings(), runner=runner(), which=ALL, host=FakeHost())
    assert chosen == "kind" and "kind v0.30.0" in why and "kubectl v1.34.1" in why
    # the chaos suite runs no circuit-breaker scenario: Helm is not asked for
    no_helm = lambda t: None if t == "helm" else f"/usr/bin/{t}"  # noqa: E731
    assert choose_platform(Settings(), "chaos", runner=runner(), which=no_helm, host=FakeHost())[0] == "kind"
    assert choose_platform(Settings(), "e2e", runner=runner(), which=no_helm, host=FakeHost())[0] == "docker"


def test_platform_auto_is_the_default_and_kind_stays_strict(tmp_path):
    assert Settings().platform == "auto"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}, "PATH": str(tmp_path),
           "HARNESS_REPORT_DIR": str(tmp_path / "r")}
    proc = subprocess.run([sys.executable, "-m", "harness", "preflight", "--tools-only"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("harness: platform auto -> docker: kind, kubectl, docker not found")
    proc = subprocess.run([sys.executable, "-m", "harness", "preflight", "--platform", "kind", "--tools-only"], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_ENVIRONMENT and "kind is not installed" in proc.stderr


def test_the_doctor_cli_prints_the_table_and_exits_13_when_kind_cannot_run(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}, "PATH": str(tmp_path)}
    before = set(tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "harness", "doctor"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_ENVIRONMENT
    assert proc.stdout.splitlines()[1].startswith("FAIL  kind") and "not found on PATH" in proc.stdout
    assert "kind cannot run here" in proc.stderr and "--platform auto would run on docker" in proc.stderr
    assert set(tmp_path.iterdir()) == before   # creates nothing


def test_a_machine_read_tools_only_is_judged_on_its_tools():
    m = Machine(which={t: t for t in ("kind", "kubectl", "docker", "helm")}, tools_only=True)
    rows = judge(m, Settings())
    assert [r.check for r in rows] == ["kind", "kubectl", "helm"]


def test_make_images_lists_the_stack_images_too(tmp_path):
    """`harness images` (make images): kind's node, add-ons, Istio, the conductor, and the stack's
    Postgres, Redis, RabbitMQ, Python base and Ryuk: everything a run pulls."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "TESTCONTAINERS_"))}}
    proc = subprocess.run([sys.executable, "-m", "harness", "images"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    for image in ("postgres:15-alpine", "redis:7-alpine", "rabbitmq:3-management-alpine", "python:3.11-slim",
                  "docker.io/istio/proxyv2:1.31.1"):
        assert image in listed, image
    assert any(i.startswith("testcontainers/ryuk:") for i in listed) and listed[0].startswith("kindest/node:")


def test_the_real_host_reads_proc_the_disk_and_the_docker_config(tmp_path, monkeypatch):
    from harness.doctor import Host

    host = Host()
    if host.system() == "Linux":
        assert isinstance(host.sysctl("fs.inotify.max_user_instances"), int)
    assert host.sysctl("fs.no.such.setting") is None
    assert host.disk_free(str(tmp_path)) > 0 and host.disk_free(str(tmp_path / "missing")) is None
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert host.docker_config() is None
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {}}}))
    assert host.docker_config() == {"auths": {"https://index.docker.io/v1/": {}}}
    assert host.port_free("127.0.0.1", 0)
