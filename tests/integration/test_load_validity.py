"""A real Locust run whose generator is saturated is flagged; a light one is not."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from harness.config import PROJECT_ROOT
from harness.load.runner import run_locust
from harness.load.slo import evaluate_validity


@pytest.fixture(scope="module")
def trivial_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "benchmarks" / "trivial_server.py"), str(port)])
    time.sleep(1.0)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def test_saturated_generator_is_flagged(trivial_endpoint, tmp_path):
    # 40 users with no wait time against a server that answers instantly: Locust is the bottleneck.
    r = run_locust([trivial_endpoint], tmp_path, name="hot", users=40, spawn_rate=40, duration_s=8, user_rps=0,
                   progress=lambda _m: None)
    v = evaluate_validity(r)
    assert r.requests > 1000
    assert not v.ok, v.explanation


def test_light_generator_is_valid(trivial_endpoint, tmp_path):
    r = run_locust([trivial_endpoint], tmp_path, name="light", users=3, spawn_rate=3, duration_s=6, user_rps=2,
                   progress=lambda _m: None)
    v = evaluate_validity(r)
    assert r.requests > 10 and r.failures_count == 0
    assert v.ok, v.explanation
    # Locust's shutdown (writing its reports) is not load generation: its CPU is not a sample.
    assert r.seconds[-1]["locust_cpu"] is None and v.samples == sum(1 for x in r.seconds if x["locust_cpu"] is not None)


def test_targets_off_loopback_are_refused(tmp_path):
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="not on this machine's loopback"):
        run_locust(["http://10.0.0.1:8080"], tmp_path, duration_s=1)
