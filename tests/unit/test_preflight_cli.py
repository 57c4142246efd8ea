"""Bad input through the real CLI: every case is refused before anything starts.

Each case runs ``python -m harness preflight`` (or ``harness e2e``) as a subprocess with a unique
HARNESS_RUN_ID and checks the contract: exit 12, exactly one line on stderr naming the problem and
the fix (``problem; fix``), no traceback, and nothing labeled with that run id exists in Docker
afterwards (no container, no network). The Docker check is skipped only where no engine answers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import pytest
import yaml

from harness.config import PROJECT_ROOT
from harness.errors import EXIT_USAGE
from harness.labels import RUN_ID_LABEL

GOOD_CLUSTER = {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}
GOOD_USER = {"name": "u", "user": {"token": "not-used"}}


def kubeconfig(**doc) -> Callable[[Path], dict]:
    """A case: a kubeconfig file with ``doc`` (defaults: one good cluster/user/context ``ctx``)."""
    body = {"apiVersion": "v1", "kind": "Config", "clusters": [GOOD_CLUSTER], "users": [GOOD_USER],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}], **doc}
    return raw_kubeconfig(yaml.safe_dump(body))


def raw_kubeconfig(text: str | bytes, context: str = "ctx") -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        path = tmp / "kubeconfig"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return {"KUBECONFIG": str(path), "HARNESS_PLATFORM": "context", "HARNESS_CONTEXT": context}
    return make


def env_case(**env: str) -> Callable[[Path], dict]:
    return lambda tmp: dict(env)


def _report_in_file(tmp: Path) -> dict:
    (tmp / "afile").write_text("x")
    return {"HARNESS_REPORT_DIR": str(tmp / "afile")}


def _report_under_file(tmp: Path) -> dict:
    (tmp / "afile").write_text("x")
    return {"HARNESS_REPORT_DIR": str(tmp / "afile" / "reports")}


def _manifests_is_file(tmp: Path) -> dict:
    (tmp / "k8s").write_text("x")
    return {"HARNESS_MANIFESTS_DIR": str(tmp / "k8s")}


def _manifests_empty(tmp: Path) -> dict:
    (tmp / "k8s").mkdir()
    return {"HARNESS_MANIFESTS_DIR": str(tmp / "k8s")}


def _manifest_not_yaml(tmp: Path) -> dict:
    shutil.copytree(PROJECT_ROOT / "k8s", tmp / "k8s", ignore=shutil.ignore_patterns("overlays", "addons"))
    (tmp / "k8s" / "staging" / "conductor-hpa.yml").write_text("spec: [unclosed\n")
    return {"HARNESS_MANIFESTS_DIR": str(tmp / "k8s")}


def _kubeconfig_dir(tmp: Path) -> dict:
    (tmp / "kubedir").mkdir()
    return {"KUBECONFIG": str(tmp / "kubedir"), "HARNESS_PLATFORM": "context", "HARNESS_CONTEXT": "ctx"}


def _kubeconfig_missing(tmp: Path) -> dict:
    return {"KUBECONFIG": str(tmp / "nope"), "HARNESS_PLATFORM": "context", "HARNESS_CONTEXT": "ctx"}


# (id, case builder, a fragment the one line must contain)
CASES = [
    # kubeconfig files of every malformed kind (platform context, context named)
    ("kubeconfig-not-a-mapping", raw_kubeconfig("- a\n- b\n"), "is not a mapping"),
    ("kubeconfig-not-yaml", raw_kubeconfig("clusters: [\n  - {name: c\n"), "is not valid YAML"),
    ("kubeconfig-binary", raw_kubeconfig(b"\xff\xfe\x00\x01"), "is not text"),
    ("kubeconfig-empty", raw_kubeconfig(""), "is empty"),
    ("kubeconfig-scalar", raw_kubeconfig("just a string\n"), "is not a mapping"),
    ("kubeconfig-missing", _kubeconfig_missing, "does not exist"),
    ("kubeconfig-directory", _kubeconfig_dir, "is a directory"),
    ("kubeconfig-no-contexts", kubeconfig(contexts=None), "defines no contexts"),
    ("kubeconfig-contexts-not-list", kubeconfig(contexts={"ctx": {}}), "contexts is not a list"),
    ("kubeconfig-context-absent", raw_kubeconfig(yaml.safe_dump({
        "clusters": [GOOD_CLUSTER], "users": [GOOD_USER],
        "contexts": [{"name": "other", "context": {"cluster": "c", "user": "u"}}]})), "'ctx' is not in kubeconfig"),
    ("kubeconfig-cluster-undefined", kubeconfig(clusters=[]), "names cluster 'c', which the file does not define"),
    ("kubeconfig-user-undefined", kubeconfig(users=[]), "names user 'u', which the file does not define"),
    ("kubeconfig-context-without-cluster", kubeconfig(contexts=[{"name": "ctx", "context": {"user": "u"}}]),
     "context 'ctx' names no cluster"),
    ("kubeconfig-context-entry-unnamed", kubeconfig(contexts=[{"context": {"cluster": "c", "user": "u"}}]),
     "contexts[0] has no name"),
    ("kubeconfig-cluster-without-server", kubeconfig(clusters=[{"name": "c", "cluster": {}}]),
     "cluster 'c' has no server"),
    # paths
    ("report-path-is-a-file", _report_in_file, "is a file, not a directory"),
    ("report-parent-is-a-file", _report_under_file, "is a file, not a directory"),
    ("report-dir-not-writable", env_case(HARNESS_REPORT_DIR="/proc/harness-reports"), "is not writable"),
    ("manifests-dir-missing", env_case(HARNESS_MANIFESTS_DIR="/nonexistent/k8s"), "does not exist"),
    ("manifests-dir-is-a-file", _manifests_is_file, "is a file, not a directory"),
    ("manifests-dir-without-manifests", _manifests_empty, "has no staging/conductor-deployment.yml"),
    ("manifest-not-yaml", _manifest_not_yaml, "is not valid YAML"),
    # images
    ("image-with-spaces", env_case(HARNESS_POSTGRES_IMAGE="postgres 15-alpine"), "contains whitespace"),
    ("image-upper-case", env_case(HARNESS_CONDUCTOR_IMAGE="Registry/I2S/Conductor:v2"), "upper-case"),
    ("image-bad-digest", env_case(HARNESS_REDIS_IMAGE="redis@sha256:xyz"), "is not [registry/]name[:tag]"),
    ("image-empty-tag", env_case(HARNESS_RABBITMQ_IMAGE="rabbitmq:"), "is not [registry/]name[:tag]"),
    # counts and durations
    ("replicas-100000", env_case(HARNESS_REPLICAS="100000"), "replicas=100000"),
    ("users-100000", env_case(HARNESS_USERS="100000"), "users=100000"),
    ("duration-a-billion", env_case(HARNESS_DURATION_S="1000000000"), "duration_s=1e+09"),
    ("spawn-rate-negative", env_case(HARNESS_SPAWN_RATE="-1"), "spawn_rate=-1"),
    ("replicas-not-whole", env_case(HARNESS_REPLICAS="2.5"), "is not a valid whole number"),
    ("error-ratio-one", env_case(HARNESS_SLO_ERROR_RATIO="1"), "slo_error_ratio=1"),
    ("probe-interval-too-coarse", env_case(HARNESS_PROBE_INTERVAL_S="1"), "probe_interval_s=1"),
    ("peak-rps-negative", env_case(HARNESS_TARGET_PEAK_RPS="-5"), "target_peak_rps=-5"),
    ("capacity-warmup-eats-step", env_case(HARNESS_CAPACITY_STEP_S="5", HARNESS_CAPACITY_WARMUP_S="4"),
     "must leave at least 3 measured seconds"),
    ("capacity-repeats-huge", env_case(HARNESS_CAPACITY_REPEATS="1000"), "capacity_repeats=1000"),
    # names, zones, combinations
    ("run-id-invalid", env_case(HARNESS_RUN_ID="Not A Run"), "is not usable as a label"),
    ("zones-with-space", env_case(HARNESS_ZONES="us-east-1a,us east"), "is not a zone name"),
    ("zones-empty", env_case(HARNESS_ZONES=" , "), "zones is empty"),
    ("zones-duplicate", env_case(HARNESS_ZONES="a,a"), "name a zone twice"),
    ("platform-unknown", env_case(HARNESS_PLATFORM="minikube"), "unknown platform 'minikube'"),
    ("platform-context-unnamed", env_case(HARNESS_PLATFORM="context"), "needs the cluster named"),
    ("context-with-docker", env_case(HARNESS_CONTEXT="prod-eks"), "but the platform is docker"),
    ("kill-signal-unknown", env_case(HARNESS_KILL_SIGNAL="SIGSTOP"), "unknown kill_signal 'SIGSTOP'"),
    ("bucket-invalid", env_case(HARNESS_BACKUP_BUCKET="My Bucket"), "is not an S3 bucket name"),
    ("old-name-ssh-requests", env_case(HARNESS_SSH_REQUESTS="10"), "use HARNESS_PROBE_REQUESTS"),
    ("overlapping-kube-context", env_case(HARNESS_KUBE_CONTEXT="x"), "use HARNESS_CONTEXT"),
    ("typo-in-a-name", env_case(HARNESS_DURATON_S="10"), "did you mean HARNESS_DURATION_S?"),
]


def _clean_env(run_id: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_") and k != "KUBECONFIG"}
    env.update({"HARNESS_RUN_ID": run_id, "HARNESS_PLATFORM": "docker", "PYTHONWARNINGS": "ignore"})
    env.update(extra)
    return env


def _labeled(run_id: str) -> list[str]:
    """Containers and networks labeled with ``run_id`` (None: no Docker engine here)."""
    from harness.docker_env import docker_client
    from harness.errors import DockerUnavailable

    try:
        client = docker_client()
    except DockerUnavailable:
        return []
    selector = {"label": [f"{RUN_ID_LABEL}={run_id}"]}
    return ([c.name for c in client.containers.list(all=True, filters=selector)]
            + [n.name for n in client.networks.list(filters=selector)])


def _assert_refused(proc: subprocess.CompletedProcess, fragment: str, run_id: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == EXIT_USAGE, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert fragment in lines[0], lines[0]
    problem, _, fix = lines[0].removeprefix("harness: ").partition("; ")
    assert problem and fix, f"not 'problem; fix': {lines[0]}"
    assert _labeled(run_id) == []


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("make, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_preflight_refuses_bad_input_in_one_line(tmp_path, make, fragment):
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    proc = _run(["preflight"], _clean_env(run_id, make(tmp_path)))
    _assert_refused(proc, fragment, run_id)


E2E_CASES = ["image-with-spaces", "replicas-100000", "report-path-is-a-file", "manifests-dir-missing",
             "kubeconfig-not-a-mapping"]


@pytest.mark.parametrize("case", E2E_CASES)
def test_e2e_refuses_before_starting_anything(tmp_path, case):
    _, make, fragment = next(c for c in CASES if c[0] == case)
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    env = _clean_env(run_id, make(tmp_path))
    platform = env.pop("HARNESS_PLATFORM")
    proc = _run(["e2e", "--platform", platform], env)
    _assert_refused(proc, fragment, run_id)
    assert not (PROJECT_ROOT / "reports" / run_id).exists()


def test_the_pytest_plugin_refuses_too(tmp_path):
    """``pytest scenarios`` goes through the same preflight in its configure: nothing is collected."""
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    env = _clean_env(run_id, {"HARNESS_REPLICAS": "100000"})
    proc = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider", "-q"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "replicas=100000 (from HARNESS_REPLICAS) is out of range" in out and "Traceback" not in out
    assert "collected" not in out and _labeled(run_id) == []


@pytest.fixture
def shared_tmp():
    """A directory every user may enter (pytest's tmp_path is root's alone), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="harness-preflight-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody() -> list[str]:
    """Permissions only bind a non-root user: the CLI runs as nobody when the tests run as root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot bind here")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _kubeconfig_unreadable(tmp: Path) -> dict:
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump({"clusters": [GOOD_CLUSTER], "users": [GOOD_USER],
                                    "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}))
    path.chmod(0)
    reports = tmp / "reports"
    reports.mkdir()
    reports.chmod(0o777)
    return {"KUBECONFIG": str(path), "HARNESS_PLATFORM": "context", "HARNESS_CONTEXT": "ctx",
            "HARNESS_REPORT_DIR": str(reports)}


def _report_dir_read_only(tmp: Path) -> dict:
    (tmp / "ro").mkdir(mode=0o755)  # root's: nobody may not create anything in it
    return {"HARNESS_REPORT_DIR": str(tmp / "ro" / "reports")}


def _report_dir_unreachable(tmp: Path) -> dict:
    (tmp / "closed").mkdir(mode=0o700)
    return {"HARNESS_REPORT_DIR": str(tmp / "closed" / "reports")}


@pytest.mark.parametrize("make, fragment", [
    (_kubeconfig_unreadable, "cannot be read (permission denied)"),
    (_report_dir_read_only, "is not writable"),
    (_report_dir_unreachable, "cannot be reached"),
], ids=["kubeconfig-unreadable", "report-dir-read-only", "report-dir-unreachable"])
def test_permission_problems_are_refused(shared_tmp, make, fragment):
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    env = _clean_env(run_id, {**make(shared_tmp), "HOME": str(shared_tmp)})
    proc = subprocess.run([*_as_nobody(), sys.executable, "-m", "harness", "preflight"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    _assert_refused(proc, fragment, run_id)


def test_a_good_configuration_passes_the_same_checks(tmp_path):
    """The other side of every case above: valid files and values are accepted (exit 0, one line
    saying what was checked)."""
    make = kubeconfig()
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    env = _clean_env(run_id, {**make(tmp_path), "HARNESS_REPORT_DIR": str(tmp_path / "new" / "reports"),
                              "HARNESS_REPLICAS": "50", "HARNESS_POSTGRES_IMAGE": "mirror.example:5000/pg:15"})
    proc = _run(["preflight", "--tools-only"], env)
    assert proc.returncode == 0 and proc.stderr.count("\n") == 1, proc.stderr
    from harness.config import KNOBS

    assert proc.stderr.startswith(f"harness: preflight ok for e2e on context (tools only): {len(KNOBS)} settings; "
                                  "manifests in"), proc.stderr
    assert "report directory" in proc.stderr and "in the kubeconfig; allowed there: nothing but reads" in proc.stderr
    assert not (tmp_path / "new").exists()  # checked, not created


def test_settings_command_shows_each_value_and_its_source(tmp_path):
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    env = _clean_env(run_id, {"HARNESS_USERS": "7"})
    env.pop("HARNESS_PLATFORM")
    proc = _run(["settings", "--platform", "docker", "--replicas", "2"], env)
    assert proc.returncode == 0, proc.stderr
    title, header, *lines = proc.stdout.splitlines()
    assert title.startswith("harness settings for platform docker") and header.split()[0] == "setting"
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert rows["platform"] == ["docker", "flag", "HARNESS_PLATFORM"]
    assert rows["replicas"] == ["2", "flag", "HARNESS_REPLICAS"]
    assert rows["users"] == ["7", "env", "HARNESS_USERS"]
    assert rows["run_id"] == [run_id, "env", "HARNESS_RUN_ID"]
    assert rows["duration_s"] == ["60", "default", "HARNESS_DURATION_S"]
    from harness.config import KNOBS

    assert set(rows) == set(KNOBS)


@pytest.mark.parametrize("case", ["replicas-100000", "report-path-is-a-file"])
def test_standalone_chaos_stack_refuses_before_starting_anything(tmp_path, case):
    """``python -m harness.chaos_runner up`` (the stack for hand-run experiments) checks the same way."""
    _, make, fragment = next(c for c in CASES if c[0] == case)
    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    proc = subprocess.run([sys.executable, "-m", "harness.chaos_runner", "up"], cwd=PROJECT_ROOT,
                          env=_clean_env(run_id, make(tmp_path)), capture_output=True, text=True, timeout=120)
    _assert_refused(proc, fragment, run_id)


def test_settings_show_the_value_in_force_on_the_chosen_platform(tmp_path):
    """kind and context runs replace two capacity defaults (harness.capacity.measure.KUBE_STEP_DEFAULTS):
    `harness settings` shows those, not the docker ones; a value the user set is shown as set."""
    env = _clean_env(f"pf-{uuid.uuid4().hex[:10]}", {})
    env.pop("HARNESS_PLATFORM")
    rows = lambda proc: {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[2:]}  # noqa: E731
    kind = rows(_run(["settings", "--platform", "kind"], env))
    assert kind["capacity_step_s"] == ["45", "default", "(kind)", "HARNESS_CAPACITY_STEP_S"]
    assert kind["capacity_warmup_s"] == ["15", "default", "(kind)", "HARNESS_CAPACITY_WARMUP_S"]
    docker = rows(_run(["settings", "--platform", "docker"], env))
    assert docker["capacity_step_s"] == ["12", "default", "HARNESS_CAPACITY_STEP_S"]
    mine = rows(_run(["settings", "--platform", "kind"], {**env, "HARNESS_CAPACITY_STEP_S": "30"}))
    assert mine["capacity_step_s"] == ["30", "env", "HARNESS_CAPACITY_STEP_S"]


def test_settings_into_a_closed_pipe_ends_quietly():
    """`harness settings | head -n 3`: no BrokenPipeError traceback, exit 0."""
    env = _clean_env(f"pf-{uuid.uuid4().hex[:10]}", {})
    proc = subprocess.run(f"{sys.executable} -m harness settings | head -n 3; echo \"rc=${{PIPESTATUS[0]}}\"",
                          shell=True, executable="/bin/bash", cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("harness settings for platform docker")
    assert proc.stdout.strip().endswith("rc=0"), proc.stdout


def test_update_readme_implies_markdown(tmp_path, monkeypatch):
    """--update-readme writes the generated table (as --markdown prints it) into docs/settings.md,
    with or without --markdown."""
    from harness import cli
    from harness.config import settings_markdown

    doc = tmp_path / "docs" / "settings.md"
    doc.parent.mkdir()
    stale = "<!-- settings-table:begin -->\nold\n<!-- settings-table:end -->\n<!-- plumbing:begin -->\nx\n<!-- plumbing:end -->\n"
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    for args in (["settings", "--update-readme"], ["settings", "--markdown", "--update-readme"]):
        doc.write_text(stale)
        assert cli.main(args) == 0
        assert settings_markdown() in doc.read_text() and "\nold\n" not in doc.read_text()


# -- input the oracles cannot read: its own code (harness.errors.EXIT_ANALYSIS_INPUT) --------------------------
def _destination_rule_unreadable(tmp: Path) -> dict:
    """The seed's DestinationRule with a pool limit Istio's schema types as an integer, given as a word."""
    shutil.copytree(PROJECT_ROOT / "k8s", tmp / "k8s", ignore=shutil.ignore_patterns("overlays", "addons"))
    gateway = tmp / "k8s" / "istio" / "gateway.yml"
    text = gateway.read_text()
    assert "maxConnections: 100" in text
    gateway.write_text(text.replace("maxConnections: 100", "maxConnections: lots"))
    return {"HARNESS_MANIFESTS_DIR": str(tmp / "k8s")}


@pytest.mark.parametrize("command", [["preflight"], ["e2e", "--platform", "docker"]])
def test_a_destination_rule_the_oracle_cannot_read_is_one_line_and_exit_16(tmp_path, command):
    from harness.errors import EXIT_ANALYSIS_INPUT, EXIT_CODES

    run_id = f"pf-{uuid.uuid4().hex[:10]}"
    proc = _run(command, _clean_env(run_id, _destination_rule_unreadable(tmp_path)))
    lines = proc.stderr.splitlines()
    assert proc.returncode == EXIT_ANALYSIS_INPUT == 16 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert lines[0] == (f"harness: manifest {tmp_path}/k8s/istio/gateway.yml: DestinationRule conductor-destination: "
                        "spec.trafficPolicy.connectionPool.tcp.maxConnections: expected an integer, got 'lots'; "
                        "write a plain number")
    assert EXIT_ANALYSIS_INPUT not in range(0, 6) and list(EXIT_CODES).count(EXIT_ANALYSIS_INPUT) == 1
    assert _labeled(run_id) == [] and not (PROJECT_ROOT / "reports" / run_id).exists()
