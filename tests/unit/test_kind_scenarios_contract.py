"""The kind scenarios follow the exit-code contract (issue 12, point 9): the harness's shortfalls are
inconclusive (11), the system's shortcomings fail (10)."""
from __future__ import annotations

import pytest

from harness.errors import EXIT_INCONCLUSIVE, Inconclusive
from harness.analysis.hpa.verdict import hpa_unmeasured, hpa_verdict
from harness.pytest_plugin import ScenarioRecorder
from scenarios.test_circuit_breaker import MeshUnavailable, _ready
from tests.unit.test_hpa_sampler import SPEC, check, faithful_run, staging_plan


def test_a_load_that_never_demanded_max_is_inconclusive_not_a_fail():
    plan = staging_plan()
    obs = faithful_run(plan, demand_scale=0.3)
    reason = hpa_unmeasured(check(obs), obs, SPEC, plan, plan.stop_at)
    assert "never took the HPA to maxReplicas 6" in reason


def test_no_hpa_status_is_inconclusive():
    plan = staging_plan()
    assert "No HPA status could be read" in hpa_unmeasured(None, [], SPEC, plan, plan.stop_at, "403 Forbidden")


def test_the_systems_deviations_stay_fails():
    plan = staging_plan()
    obs = faithful_run(plan)
    assert hpa_unmeasured(check(obs), obs, SPEC, plan, plan.stop_at) == ""      # a clean run: judged
    for o in obs:
        if 250 <= o["t"] <= 300:
            o["desired"] = 7
    result = check(obs)
    assert hpa_unmeasured(result, obs, SPEC, plan, plan.stop_at) == ""
    assert not hpa_verdict(result, obs, SPEC, plan, plan.stop_at)[0]           # above max: the system's fail
    down = faithful_run(plan, end=plan.stop_at + 200)
    assert hpa_unmeasured(check(down), down, SPEC, plan, plan.stop_at) == ""   # no scale-down seen: a fail


def test_istio_that_could_not_be_set_up_makes_the_mesh_scenarios_inconclusive(tmp_path):
    rec = ScenarioRecorder("test_seed_istio_config_under_load", tmp_path)
    with pytest.raises(Inconclusive) as err:
        _ready(MeshUnavailable("Istio could not be set up on the kind cluster: helm upgrade failed"), rec)
    assert err.value.exit_code == EXIT_INCONCLUSIVE
    assert rec.result.verdict == "inconclusive" and "helm upgrade failed" in rec.result.explanation
    mesh = object()  # a mesh that was set up (any adapter) passes through
    assert _ready(mesh, rec) is mesh  # type: ignore[arg-type]
