"""The host-starvation decision (pure) and the run-delay reading over a planted /proc and cgroup tree.

Mutants kept here: the throttled time not subtracted (a replica at its own limit called starved),
the CPU-bound guard dropped, the wait threshold compared the wrong way, the fraction rule turned
into "any second", threads that left counted with their whole history."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis import host_starvation as hs
from harness.analysis.host_starvation import HostStarvation, Interval, intervals, judge_host_starvation
from harness.capacity.run_delay import RunDelayReading, RunDelaySampler, cgroup_dir, read_tasks, reader_for
from harness.load.slo import SloResult, ValidityResult, steady_verdict

S = 1_000_000_000  # ns


def series(name: str, per_s: list[tuple[float, float, float]], limit: float | None = 1.0, t0: float = 100.0,
           tids: tuple[int, ...] = (1,)) -> list[RunDelayReading]:
    """Readings 1 s apart; per second (cpu s, run delay s, throttled s), spread evenly over ``tids``."""
    out, cpu, wait, thr = [], 0.0, 0.0, 0.0
    for i in range(len(per_s) + 1):
        tasks = {tid: (int(cpu * S / len(tids)), int(wait * S / len(tids))) for tid in tids}
        out.append(RunDelayReading(t0 + i, name, tasks, thr * S, limit))
        if i < len(per_s):
            c, w, t = per_s[i]
            cpu, wait, thr = cpu + c, wait + w, thr + t
    return out


def test_an_interval_subtracts_the_replicas_own_throttling():
    iv = intervals(series("r", [(0.5, 0.6, 0.5)]))[0]
    assert iv.cpu_s == pytest.approx(0.5) and iv.wait_s == pytest.approx(0.6) and iv.throttled_s == pytest.approx(0.5)
    assert iv.host_wait_pct == pytest.approx(10.0)
    assert iv.cpu_pct_of_limit == pytest.approx(50.0)


def test_a_replica_waiting_for_a_cpu_below_its_limit_is_host_starved():
    # 14% of its limit used, 60% of the time waiting for a CPU: the observed capacity failure
    v = judge_host_starvation(series("conductor-0-0", [(0.07, 0.6, 0.0)] * 8, limit=0.5))
    assert v.measured and v.starved and v.starved_intervals == 8 and v.intervals == 8
    assert v.wait_pct == pytest.approx(60.0) and v.cpu_pct_of_limit == pytest.approx(14.0)
    assert "conductor-0-0 waited 60%" in v.explanation and "14% of its CPU limit" in v.explanation


def test_a_replica_held_at_its_own_limit_is_not_host_starved():
    # run delay as large as the starved one's, but it is the quota's: throttled time takes it back
    own = judge_host_starvation(series("r", [(0.5, 0.5, 0.5)] * 8, limit=0.5))
    assert own.measured and not own.starved and own.wait_pct == pytest.approx(0.0)
    # a limit that bites (>= 85% used) with waits the throttled time does not cover (several threads)
    busy = judge_host_starvation(series("r", [(0.45, 0.9, 0.3)] * 8, limit=0.5, tids=(1, 2, 3)))
    assert not busy.starved and busy.wait_pct == pytest.approx(60.0)
    # throttled in bursts (9% of the time): its waits at the quota are not the host's
    bursts = judge_host_starvation(series("r", [(0.1, 0.3, 0.09)] * 8, limit=0.5))
    assert not bursts.starved and bursts.wait_pct == pytest.approx(21.0)


def test_a_replica_that_ran_longer_than_it_waited_is_busy_on_a_shared_host_not_starved():
    # measured in a capacity step on this 2-core box: 68% of its limit, 30% waiting (the load generator
    # and the dependencies fill the CPUs): the break is the measurement's, with the host_cpu caveat
    shared = judge_host_starvation(series("r", [(0.34, 0.30, 0.0)] * 8, limit=0.5))
    assert not shared.starved and shared.wait_pct == pytest.approx(30.0)
    assert judge_host_starvation(series("r", [(0.34, 0.30, 0.0)] * 8, limit=0.5), wait_per_cpu=0.5).starved


def test_throttled_a_fifth_of_the_time_is_the_replicas_own_limit():
    v = judge_host_starvation(series("r", [(0.3, 0.9, 0.25)] * 8, limit=0.5))
    assert not v.starved and v.throttled_pct == pytest.approx(25.0)


def test_a_quiet_host_or_a_short_hiccup_does_not_take_the_window():
    quiet = judge_host_starvation(series("r", [(0.3, 0.01, 0.0)] * 10))
    assert quiet.measured and not quiet.starved and quiet.starved_intervals == 0
    # 2 of 10 seconds starved: 20% <= 25%; 3 of 10: more than a quarter
    two = judge_host_starvation(series("r", [(0.3, 0.9, 0.0)] * 2 + [(0.3, 0.0, 0.0)] * 8))
    three = judge_host_starvation(series("r", [(0.3, 0.9, 0.0)] * 3 + [(0.3, 0.0, 0.0)] * 7))
    assert (two.starved, two.starved_intervals) == (False, 2)
    assert (three.starved, three.starved_intervals) == (True, 3)


def test_the_threshold_is_inclusive_and_configurable():
    at = series("r", [(0.1, 0.25, 0.0)] * 4)
    assert judge_host_starvation(at).starved
    assert not judge_host_starvation(at, wait_pct=26.0).starved
    assert not judge_host_starvation(series("r", [(0.1, 0.24, 0.0)] * 4)).starved
    # the ratio is inclusive too: waited exactly twice what it ran
    assert judge_host_starvation(series("r", [(0.125, 0.25, 0.0)] * 4)).starved
    assert not judge_host_starvation(series("r", [(0.13, 0.25, 0.0)] * 4)).starved


def test_the_worst_replica_speaks_for_the_window_and_the_window_is_bounded():
    ok = series("a", [(0.2, 0.0, 0.0)] * 10)
    hot = series("b", [(0.2, 0.0, 0.0)] * 5 + [(0.1, 0.8, 0.0)] * 5)
    v = judge_host_starvation(ok + hot)
    assert v.starved and v.replica == "b" and v.starved_intervals == 5
    # only the first five seconds (midpoints 100.5 .. 104.5): nothing starved there
    early = judge_host_starvation(ok + hot, 100.0, 105.0)
    assert not early.starved and early.intervals == 5
    assert not judge_host_starvation(ok + hot, 200.0, 210.0).measured


def test_threads_that_came_or_left_count_only_over_the_seconds_both_readings_saw():
    a = RunDelayReading(0.0, "r", {1: (0, 0), 2: (5 * S, 50 * S)}, 0.0, 1.0)
    b = RunDelayReading(1.0, "r", {1: (S // 10, S // 10), 3: (9 * S, 90 * S)}, 0.0, 1.0)
    iv = intervals([a, b])[0]
    assert iv.cpu_s == pytest.approx(0.1) and iv.wait_s == pytest.approx(0.1)


def test_no_readings_is_not_measured():
    v = judge_host_starvation([])
    assert v is hs.NOT_MEASURED and not v.measured and not v.starved and "not readable" in v.explanation


@pytest.mark.parametrize("mutant", ["no_throttle", "no_cpu_guard", "flipped_threshold", "any_second", "no_ratio"])
def test_planted_mutants_are_caught(monkeypatch, mutant):
    """Each mutant of the decision changes one of the outcomes above."""
    if mutant == "no_throttle":
        monkeypatch.setattr(Interval, "host_wait_s", property(lambda self: self.wait_s))
    elif mutant == "no_cpu_guard":
        monkeypatch.setattr(Interval, "starved", lambda self, w=25.0, c=85.0, t=20.0, r=2.0: self.host_wait_pct >= w)
    elif mutant == "no_ratio":
        monkeypatch.setattr(Interval, "starved", lambda self, w=25.0, c=85.0, t=20.0, r=2.0:
                            self.host_wait_pct >= w and (self.cpu_pct_of_limit or 0) < c and self.throttled_pct < t)
    elif mutant == "flipped_threshold":
        monkeypatch.setattr(Interval, "starved", lambda self, w=25.0, c=85.0, t=20.0, r=2.0:
                            self.host_wait_pct < w and self.throttled_pct < t)
    else:  # one starved second takes the window
        real = judge_host_starvation

        def any_second(readings, t0=None, t1=None, **kw):
            return real(readings, t0, t1, **dict(kw, starved_fraction=0.0))
        monkeypatch.setattr(hs, "judge_host_starvation", any_second)
    judge = hs.judge_host_starvation
    expectations = [
        (series("r", [(0.07, 0.6, 0.0)] * 8, limit=0.5), True),                       # starved
        (series("r", [(0.5, 0.5, 0.5)] * 8, limit=0.5), False),                       # own limit
        (series("r", [(0.45, 0.9, 0.3)] * 8, limit=0.5, tids=(1, 2, 3)), False),      # at the limit
        (series("r", [(0.1, 0.3, 0.09)] * 8, limit=0.5), False),                      # bursts at the quota
        (series("r", [(0.34, 0.30, 0.0)] * 8, limit=0.5), False),                     # busy on a shared host
        (series("r", [(0.3, 0.01, 0.0)] * 10), False),                                # quiet
        (series("r", [(0.3, 0.9, 0.0)] * 2 + [(0.3, 0.0, 0.0)] * 8), False),          # a hiccup
    ]
    assert any(judge(r).starved != want for r, want in expectations), f"mutant {mutant} survived"


# -- steady-load verdict --------------------------------------------------------------------------------
def _slo(ok: bool) -> SloResult:
    return SloResult(ok, 1000, 0 if ok else 470, 0.0 if ok else 0.47, 80.0, 500.0, 0.01,
                     "ok" if ok else "error ratio 47.00% exceeds 1.00%")


VALID = ValidityResult(True, 15, 0, 40.0, "load generator fine")
STARVED = HostStarvation(True, True, 15, 12, "conductor-0-0", 61.0, 90.0, 12.0, 0.0, "the host starved the replicas")
FED = HostStarvation(True, False, 15, 0, "conductor-0-0", 1.0, 3.0, 40.0, 0.0, "the replicas got the CPU")


def test_a_missed_slo_on_a_starved_host_is_inconclusive_not_a_failure():
    v = steady_verdict(_slo(False), VALID, [], starvation=STARVED)
    assert v.outcome == "inconclusive" and "the host starved the replicas" in v.explanation
    assert "error ratio 47.00%" in v.explanation


def test_a_missed_slo_with_fed_or_unmeasured_replicas_stays_a_failure():
    assert steady_verdict(_slo(False), VALID, [], starvation=FED).outcome == "fail"
    assert steady_verdict(_slo(False), VALID, [], starvation=hs.NOT_MEASURED).outcome == "fail"
    assert steady_verdict(_slo(False), VALID, []).outcome == "fail"


def test_a_met_slo_on_a_starved_host_still_passes():
    # the system met its targets even starved: that is the system's, and a lower bound
    assert steady_verdict(_slo(True), VALID, [], starvation=STARVED).outcome == "pass"


def test_an_idle_replica_on_a_starved_host_is_not_blamed_either():
    assert steady_verdict(_slo(True), VALID, ["conductor-0-1"], starvation=STARVED).outcome == "inconclusive"


# -- the reading ----------------------------------------------------------------------------------------
CID = "c" * 64


def _plant(tmp_path: Path, version: int) -> tuple[Path, Path]:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    for pid, tids in ((10, (10, 11)), (20, (20,))):
        for tid in tids:
            d = proc / str(pid) / "task" / str(tid)
            d.mkdir(parents=True)
            (d / "schedstat").write_text(f"{tid * 1000} {tid * 10} 3\n")
    if version == 1:
        (proc / "10" / "cgroup").write_text(f"2:cpuacct:/docker/{CID}\n1:cpu:/docker/{CID}\n")
        cg = root / "cpu" / "docker" / CID
        cg.mkdir(parents=True)
        (cg / "cpu.stat").write_text("nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n")
    else:
        (proc / "10" / "cgroup").write_text(f"0::/system.slice/docker-{CID}.scope\n")
        cg = root / "system.slice" / f"docker-{CID}.scope"
        cg.mkdir(parents=True)
        (cg / "cpu.stat").write_text("usage_usec 100\nnr_throttled 2\nthrottled_usec 5\n")
    (cg / "cgroup.procs").write_text("10\n20\n")
    return proc, root


class FakeContainer:
    def __init__(self, pid: int = 10, nano: int = 500_000_000):
        self.id = CID
        self.attrs = {"Id": CID, "State": {"Pid": pid}, "HostConfig": {"NanoCpus": nano}}

    def reload(self) -> None:
        pass


@pytest.mark.parametrize("version", [1, 2])
def test_the_reader_finds_the_cgroup_and_every_thread_of_its_processes(tmp_path, version):
    proc, root = _plant(tmp_path, version)
    assert cgroup_dir(CID, 10, root, proc) is not None
    read = reader_for({"conductor-0-0": FakeContainer()}, root=root, proc=proc)
    assert read is not None
    [r] = read()
    assert r.replica == "conductor-0-0" and r.cpu_limit_cores == 0.5 and r.throttled_ns == 5000.0
    assert r.tasks == {10: (10000, 100), 11: (11000, 110), 20: (20000, 200)}


def test_a_pid_that_is_not_the_containers_is_not_read(tmp_path):
    proc, root = _plant(tmp_path, 1)
    (proc / "10" / "cgroup").write_text("1:cpu:/docker/someone-else\n")
    import shutil
    shutil.rmtree(root)
    assert reader_for({"r": FakeContainer()}, root=root, proc=proc) is None  # a remote engine's pid 10
    assert reader_for({"r": FakeContainer(pid=99)}, root=root, proc=proc) is None
    assert read_tasks([99], proc) == {}


def test_an_unreadable_reader_samples_nothing():
    s = RunDelaySampler(None).start()
    assert not s.available and s.stop() == []


def test_without_a_cgroup_directory_the_main_process_is_read_when_it_is_the_containers(tmp_path):
    proc, root = _plant(tmp_path, 1)
    import shutil
    shutil.rmtree(root)  # cgroupfs not mounted here, but /proc/10/cgroup names the container
    read = reader_for({"r": FakeContainer()}, root=root, proc=proc)
    assert read is not None
    [r] = read()
    assert set(r.tasks) == {10, 11} and r.throttled_ns is None and r.cpu_limit_cores == 0.5
    # no throttled time: nothing subtracted, the CPU-bound guard still holds a replica at its limit
    assert intervals([r, RunDelayReading(r.t + 1, "r", {10: (10000 + S, 100 + S)}, None, 0.5)])[0].throttled_s == 0


def test_replica_containers_only_of_a_platform_that_runs_containers():
    from types import SimpleNamespace

    from harness.capacity.run_delay import replica_containers
    reps = [SimpleNamespace(name="conductor-0-0"), SimpleNamespace(name="gone")]

    def container(name):
        if name == "gone":
            raise KeyError(name)
        return f"container of {name}"
    docker_like = SimpleNamespace(replicas=lambda: reps, container=container)
    assert replica_containers(docker_like) == {"conductor-0-0": "container of conductor-0-0"}
    assert replica_containers(SimpleNamespace(replicas=lambda: reps)) == {}  # kind, context: no containers here
    assert reader_for({}) is None
