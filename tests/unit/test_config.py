"""The settings model: precedence flag > HARNESS_* env > [tool.harness] > default for every kind of
knob, sources reported, bounds and grammars refused in one line, the generated README table."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from harness.config import (CHAOS_SETTINGS, KNOBS, PROJECT_ROOT, RENAMED, Knob, Settings, chaos_env,
                            check_image_reference, describe_settings, env_name, load_settings, plumbing_markdown,
                            settings_markdown)
from harness.errors import UsageError


def _pyproject(tmp_path, body: str):
    p = tmp_path / "pyproject.toml"
    p.write_text(f"[tool.harness]\n{body}\n")
    return p


def test_precedence_flag_over_env_over_pyproject_over_default(tmp_path):
    pp = _pyproject(tmp_path, 'users = 7\nduration_s = 11\nplatform = "docker"')
    s = load_settings({"users": 3}, env={"HARNESS_USERS": "5", "HARNESS_DURATION_S": "13"}, pyproject=pp)
    assert (s.users, s.duration_s, s.platform) == (3, 13, "docker")
    assert (s.source("users"), s.source("duration_s"), s.source("platform"), s.source("spawn_rate")) == (
        "flag", "env", "pyproject", "default")
    s = load_settings({}, env={"HARNESS_USERS": "5"}, pyproject=pp)
    assert (s.users, s.duration_s) == (5, 11)
    s = load_settings({}, env={}, pyproject=tmp_path / "absent.toml")
    assert (s.users, s.platform) == (20, "auto")   # auto: kind when `harness doctor` passes, else docker


# One knob of each kind: (setting, flag value, env value, pyproject TOML value, default, expected per source)
KINDS = [
    ("replicas", 4, "5", "6", 3, (4, 5, 6)),                                  # int with a flag
    ("capacity_step_s", 20.0, "30", "40.5", 12.0, (20.0, 30.0, 40.5)),        # a capacity knob (was env-only)
    ("capacity_base_rps", 1.0, "2", "3", None, (1.0, 2.0, 3.0)),              # optional float
    ("zones", "a,b", "c,d", '["e", "f"]', ["us-east-1a", "us-east-1b", "us-east-1c"],
     (["a", "b"], ["c", "d"], ["e", "f"])),                                    # list
    ("keep", True, "yes", "false", False, (True, True, False)),               # bool
    ("postgres_image", "m/pg:1", "m/pg:2", '"m/pg:3"', "postgres:15-alpine",
     ("m/pg:1", "m/pg:2", "m/pg:3")),                                         # image reference
    ("outage_s", 11.0, "12", "13", 10.0, (11.0, 12.0, 13.0)),                 # a chaos knob (was JSON-env only)
    ("kill_signal", "SIGTERM", "SIGINT", '"SIGTERM"', "SIGKILL", ("SIGTERM", "SIGINT", "SIGTERM")),  # choice
]


@pytest.mark.parametrize("name, flag, env, toml, default, expected", KINDS, ids=[k[0] for k in KINDS])
def test_each_kind_of_knob_follows_the_precedence(tmp_path, name, flag, env, toml, default, expected):
    pp = _pyproject(tmp_path, f"{name} = {toml}")
    var = env_name(name)
    base = {"platform": "docker"}
    got = [load_settings({**base, name: flag}, env={var: env}, pyproject=pp),
           load_settings(base, env={var: env}, pyproject=pp),
           load_settings(base, env={}, pyproject=pp),
           load_settings(base, env={}, pyproject=tmp_path / "none.toml")]
    assert [getattr(s, name) for s in got] == [*expected, default]
    assert [s.source(name) for s in got] == ["flag", "env", "pyproject", "default"]


def test_the_capacity_knobs_reach_the_measurement_through_the_model(tmp_path):
    from harness.capacity.measure import measure_config
    from harness.capacity.project import profile_from_settings

    pp = _pyproject(tmp_path, "capacity_repeats = 4\ncapacity_hold_s = 100\ntarget_peak_rps = 50")
    s = load_settings({"platform": "docker"}, env={"HARNESS_CAPACITY_REPEATS": "3"}, pyproject=pp)
    assert measure_config(s).repeats == 3                     # env over pyproject
    assert profile_from_settings(s).hold_s == 100 and profile_from_settings(s).peak_rps == 50


def test_chaos_experiments_get_the_effective_values_and_their_defaults_match(tmp_path):
    s = load_settings({"platform": "docker"}, env={"HARNESS_OUTAGE_S": "60"}, pyproject=tmp_path / "x.toml")
    env = chaos_env(s)
    assert env["HARNESS_OUTAGE_S"] == "60" and env["HARNESS_PROBE_REQUESTS"] == "100"
    # A standalone `chaos run` uses the experiments' own defaults: they must equal the model's.
    defaults = {}
    for path in (PROJECT_ROOT / "chaos").glob("*.json"):
        for cfg in json.loads(path.read_text()).get("configuration", {}).values():
            if isinstance(cfg, dict) and cfg.get("type") == "env":
                defaults.setdefault(cfg["key"], set()).add(str(cfg.get("default")))
    for name in CHAOS_SETTINGS:
        var, want = env_name(name), chaos_env(Settings())[env_name(name)]
        if var in defaults:
            assert {float(d) if re.fullmatch(r"[\d.]+", d) else d for d in defaults[var]} == {
                float(want) if re.fullmatch(r"[\d.]+", want) else want}, var
    assert not set(defaults) & set(RENAMED), "an experiment reads a renamed variable"


@pytest.mark.parametrize("overrides, env, message", [
    ({"platform": "minikube"}, {}, "unknown platform 'minikube'"),
    ({"platform": "context"}, {}, "platform 'context' needs the cluster named"),
    ({"platform": "docker", "context": "prod"}, {}, "names an existing cluster, but the platform is docker"),
    ({}, {"HARNESS_USERS": "many"}, "HARNESS_USERS='many' is not a valid whole number"),
    ({}, {"HARNESS_USERS": "0"}, "users=0 (from HARNESS_USERS) is out of range (>= 1 and <= 5000)"),
    ({}, {"HARNESS_SLO_ERROR_RATIO": "1.5"}, "slo_error_ratio=1.5 (from HARNESS_SLO_ERROR_RATIO) is out of range"),
    ({}, {"HARNESS_KEEP": "maybe"}, "HARNESS_KEEP='maybe' is not a valid boolean"),
    ({"run_id": "Bad_ID!"}, {}, "run id 'Bad_ID!' is not usable"),
    ({}, {"HARNESS_SPAWN_RATE": "nan"}, "is not a finite number"),
    ({}, {"HARNESS_SSH_REQUESTS": "5"}, "use HARNESS_PROBE_REQUESTS instead"),
    ({}, {"HARNESS_KUBE_CONTEXT": "x"}, "use HARNESS_CONTEXT instead"),
    ({}, {"HARNESS_USRES": "5"}, "did you mean HARNESS_USERS?"),
    ({"replicas": 100000}, {}, "replicas=100000 (from --replicas) is out of range"),
    ({}, {"HARNESS_MESH_DEFAULT_OUTLIER_DETECTION": "consecutive5xxErrors=5"}, "mesh_default_outlier_detection is not"),
    ({}, {"HARNESS_MESH_DEFAULT_OUTLIER_DETECTION": "[5]"}, "a JSON object of Istio outlierDetection fields"),
])
def test_bad_input_is_one_line_naming_problem_and_fix(tmp_path, overrides, env, message):
    with pytest.raises(UsageError) as err:
        load_settings(overrides, env=env, pyproject=tmp_path / "x.toml")
    text = str(err.value)
    assert message in text and "\n" not in text and ";" in text  # problem; fix


def test_unknown_or_mistyped_pyproject_key_is_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown setting 'userz'"):
        load_settings({}, env={}, pyproject=_pyproject(tmp_path, "userz = 3"))
    with pytest.raises(UsageError, match=r"\[tool.harness\] users=True is not a valid whole number"):
        load_settings({}, env={}, pyproject=_pyproject(tmp_path, "users = true"))


def test_run_ids_are_unique_and_label_safe(tmp_path):
    ids = {load_settings({}, env={}, pyproject=tmp_path / "x.toml").run_id for _ in range(20)}
    assert len(ids) == 20
    assert all(i.replace("-", "").isalnum() and i == i.lower() for i in ids)


def test_every_knob_is_fully_defined():
    for k in KNOBS.values():
        assert k.help, f"{k.name} has no description: declare it with knob(...)"
        if k.type in ("int", "float", "float | None"):
            assert k.max is not None, f"{k.name} has no upper bound"
            assert k.min is not None or k.above is not None, f"{k.name} has no lower bound"
            default_ok = k.default is None or ((k.min is None or k.default >= k.min) and
                                               (k.above is None or k.default > k.above) and k.default <= k.max)
            assert default_ok, f"{k.name}'s default is outside its own bounds"


@pytest.mark.parametrize("ref, ok", [
    ("postgres:15-alpine", True), ("registry.example:5000/i2s/conductor:v2.1.0", True),
    ("mirror/postgres@sha256:" + "a" * 64, True), ("localhost/x_y__z-w:1.0", True),
    ("postgres 15", False), ("Postgres:15", False), ("postgres:", False), ("postgres:-bad", False),
    ("postgres@sha256:xyz", False), ("/postgres", False), ("pg:" + "t" * 129, False),
])
def test_image_reference_grammar(ref, ok):
    assert (check_image_reference(ref) is None) is ok


def test_secrets_are_masked_where_settings_are_shown(tmp_path):
    s = load_settings({}, env={}, pyproject=tmp_path / "x.toml")
    secret = Knob("backup_bucket", "str", "", "a secret knob", secret=True)
    row = describe_settings(s, [secret])[0]
    assert row["value"] == "***" and s.backup_bucket not in json.dumps(row)
    assert "(secret)" in settings_markdown([secret])


def test_the_settings_table_is_the_generated_one():
    """docs/settings.md (linked from the README) holds the generated table and plumbing list."""
    doc = (PROJECT_ROOT / "docs" / "settings.md").read_text()
    for marker, generated in (("settings-table", settings_markdown()), ("plumbing", plumbing_markdown())):
        m = re.search(rf"<!-- {marker}:begin[^>]*-->\n(.*?)<!-- {marker}:end -->", doc, re.S)
        assert m, f"docs/settings.md has no {marker} markers"
        assert m.group(1) == generated, (f"docs/settings.md's {marker} differs: regenerate it "
                                         "(harness settings --update-readme)")
    assert "docs/settings.md" in (PROJECT_ROOT / "README.md").read_text()


def test_a_runs_owner_label_tells_clean_whether_the_run_is_still_in_progress(monkeypatch):
    """`harness clean` spares resources whose owner (host:pid) is a live process on this host."""
    import os
    import socket
    import subprocess
    import sys

    from harness.labels import OWNER_ENV, OWNER_LABEL, claim_run_owner, labels_for, owner_alive

    monkeypatch.delenv(OWNER_ENV, raising=False)
    me = f"{socket.gethostname()}:{os.getpid()}"
    assert claim_run_owner() == me and labels_for("r-1")[OWNER_LABEL] == me and owner_alive(me)
    monkeypatch.setenv(OWNER_ENV, "elsewhere:1")          # an outer process already owns the run
    assert claim_run_owner() == "elsewhere:1" and labels_for("r-1")[OWNER_LABEL] == "elsewhere:1"
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert not owner_alive(f"{socket.gethostname()}:{exited}")
    assert not owner_alive(f"another-host:{os.getpid()}") and not owner_alive("") and not owner_alive("x:y")


def test_kubernetes_objects_get_only_valid_label_values():
    """The owner label (host:pid) is for Docker resources only: ':' is no valid Kubernetes label value."""
    import re

    from harness.labels import OWNER_LABEL, kube_labels, labels_for

    value = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # apimachinery validation.IsValidLabelValue
    assert OWNER_LABEL not in kube_labels("20260101-000000-abcd") and OWNER_LABEL in labels_for("20260101-000000-abcd")
    assert all(value.match(v) and len(v) <= 63 for v in kube_labels("20260101-000000-abcd", app="conductor").values())
    assert not value.match(labels_for("20260101-000000-abcd")[OWNER_LABEL])


def test_no_code_passes_a_setting_under_its_old_name():
    """An old name is refused from the user's environment, but one the harness sets for its own
    subprocesses is silently ignored there: the zone-loss scenario asked its chaos run for 10 requests
    per steady-state check under HARNESS_SSH_REQUESTS and got the default 100."""
    refusal_tests = {"tests/unit/test_config.py", "tests/unit/test_preflight_cli.py", "harness/config.py"}
    found = []
    for folder, dirs, files in os.walk(PROJECT_ROOT):
        dirs[:] = [d for d in dirs if d not in {".venv", "reports", ".git", "build", "__pycache__", "node_modules"}
                   and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            rel = path.relative_to(PROJECT_ROOT).as_posix()
            if rel in refusal_tests or path.suffix not in {".py", ".json", ".sh", ".yml", ".yaml", ".md", ".toml", ""}:
                continue
            text = path.read_text(errors="replace")
            found += [f"{rel}: {old}" for old in RENAMED if re.search(rf"\b{old}\b", text)]
    assert found == [], f"old setting names in use (use the new ones, {RENAMED}): {found}"
