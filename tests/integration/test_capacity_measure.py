"""The capacity measurement against a real conductor replica (testcontainers stack, docker platform).

A short step ramp finds a capacity above zero with the SLO break above it; raising the conductor's
CPU cost per request through its fault endpoint lowers the measured capacity, which shows that the
measurement follows the replica's real CPU work. The replica runs under the manifest's limits, is
labeled with the run id, and is removed. Short steps (8 s, 2 s of warm-up) keep the module near two minutes.
"""
from __future__ import annotations

import os

import pytest

from harness.capacity.measure import MeasureConfig, SloSpec, measure_capacity
from harness.capacity.replica import SingleReplicaDockerPlatform, replica_under_test
from harness.config import load_settings
from harness.docker_env import docker_client
from harness.labels import RUN_ID_LABEL
from harness.manifests import conductor_spec
from harness.stack import Stack
from tests.conftest import docker_available

# solo: a capacity ramp measures this machine's throughput; `make test` runs it after the parallel tests, alone
pytestmark = [pytest.mark.skipif(not docker_available(), reason="needs a Docker engine"), pytest.mark.solo]

BASE_COST_MS = 5.0
HIGH_COST_MS = 40.0   # 8x the CPU per POST: the replica's CPU, not the host, must then set the break
SLO = SloSpec(p95_ms=500.0, error_ratio=0.01)


def short_config(probe_rps: float) -> MeasureConfig:
    return MeasureConfig(repeats=1, step_s=8.0, warmup_s=2.0, probe_rps=probe_rps, max_steps=10, refine_steps=1,
                         cooldown_s=0.5, idle_read_s=1.0)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    return load_settings({"platform": "docker", "report_dir": str(tmp_path_factory.mktemp("reports"))},
                         env=dict(env, HARNESS_CPU_COST_MS=str(BASE_COST_MS)))


@pytest.fixture(scope="module")
def platform(settings):
    with Stack(settings) as stack:
        platform = SingleReplicaDockerPlatform(settings, stack)
        try:
            platform.up()
            yield platform
        finally:
            platform.down()


@pytest.fixture(scope="module")
def base(platform, tmp_path_factory):
    replica = replica_under_test(platform)
    return measure_capacity(replica, tmp_path_factory.mktemp("base"), short_config(30.0), SLO, progress=print,
                            cpu_cost_ms=BASE_COST_MS)


def test_one_replica_under_the_manifests_limits_labeled_with_the_run(settings, platform):
    replica = replica_under_test(platform)
    spec = conductor_spec()
    assert replica.name == "capacity-0-0" and replica.cpu_limit_cores == spec.cpu_limit
    assert replica.memory_limit_bytes == spec.memory_limit
    c = replica.container
    c.reload()
    assert c.labels[RUN_ID_LABEL] == settings.run_id and c.labels["app"] == "conductor"
    assert replica.endpoint.startswith("http://127.0.0.1:")
    reading = replica.read_usage()
    assert reading.cpu_total_ns and reading.system_ns and reading.memory_bytes and reading.memory_bytes > 10 * 2**20
    read_delay = replica.run_delay_reader()  # a local engine: its threads' run delay is readable here
    assert read_delay is not None
    [delays] = read_delay()
    assert delays.replica == replica.name and delays.tasks and delays.cpu_limit_cores == spec.cpu_limit


def skip_if_the_host_starved_it(m) -> None:
    """The machine, not the replica, set the figures (the measurement says so from the replica's run
    delay, harness.analysis.host_starvation): nothing to assert about the replica. Only then."""
    if m.host_starved:
        pytest.skip("the host starved the replica: " + "; ".join(m.problems))


def test_a_step_ramp_finds_a_capacity_with_the_slo_break_above_it(base):
    skip_if_the_host_starved_it(base)
    assert base.valid, base.problems
    ramp = base.ramps[0]
    cap, brk = ramp.capacity_step, ramp.break_step
    assert base.capacity_rps > 0 and cap is not None and cap.slo_ok
    assert brk is not None and brk.offered_rps > cap.offered_rps and brk.slo_problems
    assert cap.cpu_pct_of_limit is not None and 0 < cap.cpu_pct_of_limit <= 110
    assert all(s.seconds >= 4 for s in ramp.steps)
    model = base.replica_model()
    assert model.cpu_per_request_core_s > 0 and 0.5 < model.publish_fraction < 1


def test_a_higher_cpu_cost_per_request_lowers_the_measured_capacity(platform, base, tmp_path):
    skip_if_the_host_starved_it(base)
    replica = replica_under_test(platform)
    replica.set_cpu_cost(HIGH_COST_MS)
    try:
        high = measure_capacity(replica, tmp_path, short_config(10.0), SLO, progress=print, cpu_cost_ms=HIGH_COST_MS)
    finally:
        replica.clear_faults()
    skip_if_the_host_starved_it(high)
    assert high.valid, high.problems
    print(f"capacity at {BASE_COST_MS:g} ms: {base.capacity_rps:.1f} rps ({base.cpu_at_capacity_pct}% CPU); "
          f"at {HIGH_COST_MS:g} ms: {high.capacity_rps:.1f} rps ({high.cpu_at_capacity_pct}% CPU)")
    assert 0 < high.capacity_rps < 0.75 * base.capacity_rps
    # the CPU each request costs follows the configured work
    assert high.replica_model().cpu_per_request_core_s > 2 * base.replica_model().cpu_per_request_core_s


def test_the_replica_is_removed(settings, platform):
    name = platform.container_name("capacity-0-0")
    platform.down()
    left = docker_client().containers.list(all=True, filters={"label": f"{RUN_ID_LABEL}={settings.run_id}",
                                                               "name": name})
    assert left == []
