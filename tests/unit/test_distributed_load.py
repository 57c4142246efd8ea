"""Locust workers' seconds merged on the master, and per-worker validity (pure; planted cases)."""
from __future__ import annotations

import pytest

from harness.load.distributed import (finish_line, histogram, histogram_percentile, latency_bucket, merge_into,
                                      worker_validity)
from harness.load.runner import LoadResult, combine_seconds
from harness.load.slo import evaluate_slo, evaluate_validity, steady_verdict


def test_latency_buckets_round_as_locust_does():
    assert [latency_bucket(v) for v in (3.4, 99, 147, 1234, 12345)] == [3, 99, 150, 1200, 12000]


def test_histogram_percentile_is_the_nearest_rank_of_the_raw_values():
    lat = list(range(1, 101))
    h = histogram(lat)
    sorted_lat = sorted(lat)
    assert histogram_percentile(h, 0.95) == sorted_lat[int(0.95 * len(lat))]
    assert histogram_percentile(h, 0.5) == sorted_lat[len(lat) // 2]
    assert histogram_percentile({}, 0.95) is None


def _worker_line(t, ok, lat, cpu, users=2, replica="r1", machine=20.0):
    return {"t": t, "ok": ok, "fail": 0, "hist": histogram(lat), "replicas": {replica: {"ok": ok, "fail": 0}},
            "codes": {f"200||{replica}": ok}, "cpu": cpu, "machine_cpu": machine, "users": users}


def test_two_workers_merge_into_one_second():
    merged: dict = {}
    merge_into(merged, "w1", _worker_line(10, 5, [10] * 5, 30.0, replica="r1"))
    merge_into(merged, "w2", _worker_line(10, 3, [200] * 3, 70.0, replica="r2"))
    line = finish_line(merged[10], {"w1": {"state": "running", "cpu": 25}, "w2": {"state": "running", "cpu": 60}},
                       expected_workers=2, master_state="running")
    assert (line["ok"], line["users"], line["locust_cpu"]) == (8, 4, 70.0)  # the busiest worker's CPU
    assert line["replicas"] == {"r1": {"ok": 5, "fail": 0}, "r2": {"ok": 3, "fail": 0}}
    assert line["p95_ms"] == 200.0 and line["p50_ms"] == 10.0  # from the merged histogram, not an average
    assert set(line["workers"]) == {"w1", "w2"}


def _run(workers_cpu, *, beats=None, states=None, expected=2, n=10):
    """Master lines: ``workers_cpu`` = {worker: cpu per second}; ``states`` = {worker: state from second k}."""
    lines = []
    for t in range(n):
        merged: dict = {}
        for w, cpus in workers_cpu.items():
            if cpus[t] is not None:
                merge_into(merged, w, _worker_line(t, 10, [10] * 10, cpus[t]))
        hb = {}
        for w in workers_cpu:
            state = "running"
            for at, st in (states or {}).get(w, []):
                if t >= at:
                    state = st
            if state != "gone":
                hb[w] = {"state": state, "cpu": (beats or {}).get(w, 0.0)}
        m = merged.get(t) or {"t": t, "ok": 0, "fail": 0}
        lines.append(finish_line(m, hb, expected, 5.0, "running"))
    return lines


def test_cool_workers_vouch_for_the_run():
    v = worker_validity(_run({"w1": [30] * 10, "w2": [40] * 10}))
    assert v.ok and v.samples == 20 and not v.lost


def _with(lines, worker, **fields):
    """``lines`` with ``fields`` (a worker's wait_pct, loop_lag_ms) set on ``worker`` in every second."""
    for line in lines:
        if worker in (line.get("workers") or {}):
            line["workers"][worker].update(fields)
    return lines


def test_a_starved_or_lagging_worker_voids_the_run_though_its_cpu_looks_cool():
    # planted: w2 used 30 % of a core but waited 70 % more for one (a busy load machine), or its event loop
    # woke 600 ms late every second: as one process is judged (harness.load.slo), its figures are not the system's
    starved = worker_validity(_with(_run({"w1": [30] * 10, "w2": [30] * 10}), "w2", wait_pct=70.0))
    assert not starved.ok and "worker w2 saturated in 10 of 10" in starved.explanation
    lagging = worker_validity(_with(_run({"w1": [30] * 10, "w2": [30] * 10}), "w2", loop_lag_ms=600.0))
    assert not lagging.ok and lagging.lagging_samples == 10 and lagging.max_lag_ms == 600.0
    assert "behind its schedule in 10 (max lag 600 ms)" in lagging.explanation
    calm = worker_validity(_with(_run({"w1": [30] * 10, "w2": [30] * 10}), "w2", wait_pct=5.0, loop_lag_ms=20.0))
    assert calm.ok and calm.lagging_samples == 0 and calm.max_lag_ms == 20.0


def test_a_workers_lag_and_wait_ride_through_the_merge():
    merged: dict = {}
    merge_into(merged, "w1", {**_worker_line(3, 1, [10], 20.0), "wait_pct": 40.0, "loop_lag_ms": 310.0})
    merge_into(merged, "w1", {"t": 3, "ok": 0, "fail": 0, "cpu": None, "wait_pct": None, "loop_lag_ms": 12.0})
    assert merged[3]["workers"]["w1"]["wait_pct"] == 40.0 and merged[3]["workers"]["w1"]["loop_lag_ms"] == 310.0


def test_one_saturated_worker_voids_the_run_though_the_master_and_the_mean_are_cool():
    # planted: w2 at its CPU limit, w1 idle; the mean over workers (55 %) would have passed
    v = worker_validity(_run({"w1": [10] * 10, "w2": [99] * 10}))
    assert not v.ok and "w2 saturated in 10 of 10 seconds" in v.explanation


def test_locusts_own_heartbeat_cpu_counts_too():
    v = worker_validity(_run({"w1": [10] * 10, "w2": [10] * 10}, beats={"w2": 97.0}))
    assert not v.ok and "w2" in v.explanation


def test_a_missing_worker_is_lost():
    v = worker_validity(_run({"w1": [20] * 10, "w2": [20] * 4 + [None] * 6}, states={"w2": [(7, "missing")]}))
    assert not v.ok and v.lost == ["w2"] and "missing 7s into the run" in v.explanation


def test_a_worker_that_left_is_lost():
    v = worker_validity(_run({"w1": [20] * 10, "w2": [20] * 4 + [None] * 6}, states={"w2": [(5, "gone")]}))
    assert not v.ok and "left the run" in v.explanation


def test_a_worker_that_never_connected_is_lost():
    v = worker_validity(_run({"w1": [20] * 10}, expected=2))
    assert not v.ok and "only 1 of 2 Locust workers connected" in v.explanation


def test_worker_states_after_the_run_are_not_losses():
    lines = _run({"w1": [20] * 10, "w2": [20] * 10})
    lines.append(finish_line({"t": 10, "ok": 0, "fail": 0}, {}, 2, 1.0, "stopping"))  # workers gone at the end
    assert worker_validity(lines).ok


def _result(lines):
    r = LoadResult(name="x", out_dir=None)  # type: ignore[arg-type]
    r.totals = {"Request Count": 200, "Failure Count": 0, "95%": 20}
    r.seconds = lines
    return r


@pytest.mark.parametrize("workers_cpu, states, outcome", [
    ({"w1": [20] * 10, "w2": [20] * 10}, None, "pass"),
    ({"w1": [20] * 10, "w2": [99] * 10}, None, "inconclusive"),
    ({"w1": [20] * 10, "w2": [20] * 3 + [None] * 7}, {"w2": [(6, "missing")]}, "inconclusive"),
])
def test_steady_verdict_with_workers_is_never_a_system_failure(workers_cpu, states, outcome):
    r = _result(_run(workers_cpu, states=states))
    slo = evaluate_slo(r, p95_limit_ms=500, error_ratio_limit=0.01)
    v = evaluate_validity(r)
    verdict = steady_verdict(slo, v)
    assert verdict.outcome == outcome, verdict
    assert "\n" not in verdict.explanation


def test_a_second_written_twice_by_the_master_is_combined():
    a = {"t": 1, "ok": 3, "fail": 0, "replicas": {"r": {"ok": 3, "fail": 0}}, "workers": {"w1": {"cpu": 1}}}
    b = {"t": 1, "ok": 2, "fail": 1, "replicas": {"r": {"ok": 2, "fail": 1}}, "workers": {"w2": {"cpu": 2}}}
    (one,) = combine_seconds([a, b])
    assert one["ok"] == 5 and one["fail"] == 1 and one["replicas"]["r"] == {"ok": 5, "fail": 1}
    assert set(one["workers"]) == {"w1", "w2"}


# -- where the workers run (harness.load.workers) ---------------------------------------------------------
def test_worker_pool_follows_the_settings_and_the_platform():
    from types import SimpleNamespace

    from harness.config import load_settings
    from harness.errors import UsageError
    from harness.load.workers import DockerWorkers, ExternalWorkers, LocalWorkers, worker_pool

    def settings(**env):
        return load_settings(env={f"HARNESS_{k.upper()}": str(v) for k, v in env.items()})

    assert worker_pool(settings(platform="docker")) is None  # 0: one process, as before
    docker = SimpleNamespace(name="docker", stack=SimpleNamespace(network=SimpleNamespace(name="net-1")))
    pool = worker_pool(settings(platform="docker", load_workers=2), docker)
    assert isinstance(pool, DockerWorkers) and pool.network == "net-1" and pool.count == 2
    assert isinstance(worker_pool(settings(platform="docker", load_workers=2, load_worker_placement="local"), docker),
                      LocalWorkers)
    ext = worker_pool(settings(platform="docker", load_workers=3, load_worker_placement="external",
                               load_master_port=6000, load_workers_wait_s=5))
    assert isinstance(ext, ExternalWorkers) and ext.master_port == 6000 and ext.wait_s == 5 and ext.count == 3
    with pytest.raises(UsageError, match="does not fit platform"):
        settings(platform="kind", load_workers=2, load_worker_placement="docker")


def test_docker_workers_reach_targets_by_container_name():
    from harness.errors import HarnessError
    from harness.load.workers import in_network_url

    published = {32768: "i2s-harness-r-capacityn-0-0:8080"}
    assert in_network_url("http://127.0.0.1:32768/api/v1", published) == "http://i2s-harness-r-capacityn-0-0:8080/api/v1"
    with pytest.raises(HarnessError, match="no container of the run publishes"):
        in_network_url("http://127.0.0.1:9/", published)


def test_the_master_command_waits_for_its_workers_with_a_limit():
    from harness.load.runner import _connected, _master_command
    from harness.load.workers import LocalWorkers

    pool = LocalWorkers(3, wait_s=42)
    pool.master_port = 5599
    cmd = _master_command(["locust", "--loglevel", "WARNING", "--skip-log-setup"], pool)
    assert cmd[cmd.index("--expect-workers") + 1] == "3" and cmd[cmd.index("--expect-workers-max-wait") + 1] == "42"
    assert cmd[cmd.index("--master-bind-port") + 1] == "5599" and "--master" in cmd
    assert cmd[cmd.index("--loglevel") + 1] == "INFO" and "--skip-log-setup" not in cmd
    log = "x (index 0) reported as ready. 1 workers connected.\nWaiting for workers to be ready, 1 of 3 connected\n"
    assert _connected(log) == "1" and _connected("nothing") == "0"


def test_a_workers_second_sent_in_two_reports_merges_into_one():
    # requests reported before the worker's CPU sample for that second, the sample in the next report
    merged: dict = {}
    merge_into(merged, "w1", {"t": 5, "ok": 7, "fail": 0, "hist": {"10": 7}, "cpu": None, "machine_cpu": None,
                              "users": 0})
    merge_into(merged, "w1", {"t": 5, "ok": 0, "fail": 0, "cpu": 40.0, "machine_cpu": 60.0, "users": 3})
    line = finish_line(merged[5], {}, 1, None, "running")
    assert (line["ok"], line["users"], line["locust_cpu"]) == (7, 3, 40.0)
