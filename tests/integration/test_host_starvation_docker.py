"""The run-delay reading and the host-starvation decision on real containers.

A "replica" (a Python loop: 5 ms of work, then 40 ms asleep, ~10 % of a core) runs under a CPU limit,
pinned to CPU 0. Beside a CPU hog pinned to the same core, with a larger CPU weight (cpu_shares)
than the replica's, the replica waits for the core: the reading shows the wait and the decision
says host-starved. Alone and with the top weight, it does not wait its way past the threshold (the
weight keeps the other containers of this busy machine from taking its core). A replica that
spins under a tight limit (0.2 CPU) is held by its own quota: throttled, not host-starved.

What the code decided is asserted, with margins: the hog's starvation in (nearly) every second, the
alone replica's wait under half the starved one's, the spinning replica's CPU and throttled share
against the own-limit guards. The sampler's
readings are waited for (``Sampler.wait_for``), not slept for.
"""
from __future__ import annotations

import pytest

from harness.analysis.host_starvation import CPU_BOUND_PCT, THROTTLED_BOUND_PCT, judge_host_starvation
from harness.capacity.run_delay import RunDelaySampler, reader_for
from harness.docker_env import docker_client, sweep
from harness.labels import labels_for, new_run_id
from tests.conftest import docker_available

pytestmark = [pytest.mark.skipif(not docker_available(), reason="needs a Docker engine")]

LIGHT = ("import time\nwhile True:\n t = time.perf_counter()\n while time.perf_counter() - t < 0.005: pass\n"
         " time.sleep(0.04)\n")
SPIN = "while True: pass"
HOG = "for i in 1 2 3 4; do python -c 'while True: pass' & done; wait"
INTERVALS = 8


@pytest.fixture(scope="module")
def run_id():
    rid = new_run_id()
    try:
        yield rid
    finally:
        sweep(rid)


def _run(rid: str, name: str, cmd: list[str], **kw):
    return docker_client().containers.run("python:3.11-slim", cmd, detach=True, name=f"i2s-harness-{rid}-{name}",
                                          labels=labels_for(rid), **kw)


def _judge(containers: dict):
    read = reader_for(containers)
    assert read is not None, "the local engine's containers must be readable through /proc"
    sampler = RunDelaySampler(read, 1.0).start()
    try:
        assert sampler.wait_for_readings(INTERVALS + 1, timeout_s=120)
    finally:
        readings = sampler.stop()
    verdict = judge_host_starvation(readings)
    print(verdict.to_dict())
    return verdict


def test_a_replica_beside_a_hog_on_its_core_is_host_starved_and_alone_it_is_not(run_id):
    replica = _run(run_id, "replica", ["python", "-c", LIGHT], nano_cpus=500_000_000, cpuset_cpus="0",
                   cpu_shares=262144)
    alone = _judge({"replica": replica})
    # the hog (1024) outweighs it sixteen to one on CPU 0: at most ~6% of the core, for ~11% of work
    replica.update(cpu_shares=64)
    hog = _run(run_id, "hog", ["sh", "-c", HOG], cpuset_cpus="0")
    try:
        starved = _judge({"replica": replica})
    finally:
        hog.remove(force=True)
    assert starved.measured and starved.starved, starved.explanation
    assert starved.starved_intervals >= INTERVALS - 1 and starved.cpu_pct_of_limit < CPU_BOUND_PCT
    assert alone.measured and not alone.starved, alone.explanation
    assert alone.wait_pct < starved.wait_pct / 2


def test_a_replica_at_its_own_limit_is_throttled_not_host_starved(run_id):
    spinner = _run(run_id, "spinner", ["python", "-c", SPIN], nano_cpus=200_000_000, cpu_shares=262144)
    own = _judge({"spinner": spinner})
    assert own.measured and not own.starved, own.explanation
    # held by its quota: it used its limit or was throttled well past the guard
    assert own.cpu_pct_of_limit >= CPU_BOUND_PCT or own.throttled_pct >= 2 * THROTTLED_BOUND_PCT
    assert own.starved_intervals <= INTERVALS // 4
