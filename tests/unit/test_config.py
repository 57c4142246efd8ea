"""Settings precedence and validation: flag > HARNESS_* env > [tool.harness] > default."""
from __future__ import annotations

import pytest

from harness.config import load_settings
from harness.errors import UsageError


def _pyproject(tmp_path, body: str):
    p = tmp_path / "pyproject.toml"
    p.write_text(f"[tool.harness]\n{body}\n")
    return p


def test_precedence_flag_over_env_over_pyproject_over_default(tmp_path):
    pp = _pyproject(tmp_path, 'users = 7\nduration_s = 11\nplatform = "docker"')
    s = load_settings({"users": 3}, env={"HARNESS_USERS": "5", "HARNESS_DURATION_S": "13"}, pyproject=pp)
    assert (s.users, s.duration_s, s.platform) == (3, 13, "docker")
    s = load_settings({}, env={"HARNESS_USERS": "5"}, pyproject=pp)
    assert (s.users, s.duration_s) == (5, 11)
    s = load_settings({}, env={}, pyproject=tmp_path / "absent.toml")
    assert (s.users, s.platform) == (20, "kind")


def test_types_are_converted(tmp_path):
    s = load_settings({}, env={"HARNESS_KEEP": "yes", "HARNESS_ZONES": "a, b ,c", "HARNESS_SLO_P95_MS": "250.5",
                               "HARNESS_PLATFORM": "docker"}, pyproject=tmp_path / "x.toml")
    assert s.keep is True and s.zones == ["a", "b", "c"] and s.slo_p95_ms == 250.5


@pytest.mark.parametrize("overrides, env, message", [
    ({"platform": "minikube"}, {}, "unknown platform 'minikube'"),
    ({"platform": "context"}, {}, "platform 'context' needs the cluster named"),
    ({}, {"HARNESS_USERS": "many"}, "environment users='many' is not a valid int"),
    ({}, {"HARNESS_USERS": "0"}, "users must be at least 1"),
    ({}, {"HARNESS_SLO_ERROR_RATIO": "1.5"}, "slo_error_ratio must be in [0, 1)"),
    ({}, {"HARNESS_KEEP": "maybe"}, "environment keep='maybe' is not a valid bool"),
    ({"run_id": "Bad_ID!"}, {}, "run id 'Bad_ID!' is not usable"),
])
def test_bad_input_is_one_line_naming_problem_and_fix(tmp_path, overrides, env, message):
    with pytest.raises(UsageError) as err:
        load_settings(overrides, env=env, pyproject=tmp_path / "x.toml")
    text = str(err.value)
    assert message in text and "\n" not in text and ";" in text  # problem; fix


def test_unknown_pyproject_key_is_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown setting 'userz'"):
        load_settings({}, env={}, pyproject=_pyproject(tmp_path, "userz = 3"))


def test_run_ids_are_unique_and_label_safe(tmp_path):
    ids = {load_settings({}, env={}, pyproject=tmp_path / "x.toml").run_id for _ in range(20)}
    assert len(ids) == 20
    assert all(i.replace("-", "").isalnum() and i == i.lower() for i in ids)
