"""Steady load within SLO: the conductor, as deployed, serves a steady user load within its SLO.

Setup: the stack and platform (session fixtures). Assess: a steady Locust run; Locust's own totals
against the SLO, the load generator's CPU against saturation, every replica serving, and how long the
replicas waited for a CPU held by other processes (a miss on a host that starved them is
inconclusive: docs/host-starvation.md; not readable on kind or a remote engine, then not judged).
Teardown: the fixtures.
"""
from __future__ import annotations

import pytest

from harness.analysis.host_starvation import NOT_MEASURED, intervals, judge_host_starvation
from harness.capacity.run_delay import RunDelaySampler, reader_for, replica_containers
from harness.load.runner import run_locust
from harness.load.workers import worker_pool
from harness.load.slo import (chance_some_replica_idle, evaluate_slo, evaluate_validity, idle_replicas_to_judge,
                              steady_verdict)
from harness.plotting import load_overview_png, timeseries_png

# Its users POST /api/v1/pipeline: on a cluster the harness did not create, only with HARNESS_CONTEXT_ALLOW=write.
pytestmark = [pytest.mark.e2e, pytest.mark.context_needs("write")]


def test_steady_load_within_slo(settings, platform, scenario):
    # Setup
    shape = {"kind": "steady", "users": settings.users, "spawn_rate": settings.spawn_rate,
             "duration": settings.duration_s}
    scenario.progress(f"steady load: {settings.users} users for {settings.duration_s}s")

    # Assess
    # through the Service (docker: the readiness-gated entry Envoy); X-Served-By attributes replicas
    delays = RunDelaySampler(reader_for(replica_containers(platform))).start()  # docker: each replica's run delay
    try:
        result = run_locust([platform.service_url()], scenario.dir, name="steady", shape=shape,
                            progress=scenario.progress, workers=worker_pool(settings, platform))  # 0 workers: None
    finally:
        delay_readings = delays.stop()
    window = (result.seconds[0]["t"], result.seconds[-1]["t"] + 1.0) if result.seconds else (None, None)
    starvation = (judge_host_starvation(delay_readings, *window, wait_pct=settings.host_starved_wait_pct,
                                        starved_fraction=settings.host_starved_fraction,
                                        wait_per_cpu=settings.host_starved_wait_per_cpu)
                  if delays.available else NOT_MEASURED)
    slo = evaluate_slo(result, p95_limit_ms=settings.slo_p95_ms, error_ratio_limit=settings.slo_error_ratio,
                       min_requests=settings.duration_s)  # at least ~1 request/s, or the run proved nothing
    validity = evaluate_validity(result)
    served = {r: c["ok"] for r, c in result.per_replica().items() if r != "-"}
    replicas = [r.name for r in platform.replicas()]
    # Judged only where the platform can say which replicas its Service routes to (docker's entry point).
    health = platform.service_health()
    idle = [r for r in replicas if served.get(r, 0) == 0] if health is not None else []
    by_chance: list[str] = []
    if idle:  # few keep-alive connections placed at random can miss a replica; a routable one is not a fault
        routable = {r for r, flags in (platform.service_health() or {}).items() if flags == ()}
        idle, by_chance = idle_replicas_to_judge(idle, routable, settings.users, len(replicas))
        scenario.measure("idle_but_routable", {"replicas": by_chance, "connections": settings.users,
                                               "chance": chance_some_replica_idle(settings.users, len(replicas))})

    scenario.measure("load", result.to_dict())
    scenario.measure("slo", slo.to_dict())
    scenario.measure("load_validity", validity.to_dict())
    scenario.measure("replica_host_wait", starvation.to_dict())
    if result.html:
        scenario.add_artifact(result.html)
    if result.seconds:
        scenario.add_plot("Throughput, errors and p95 latency",
                          load_overview_png(scenario.dir / "load.png", result.seconds, "Steady load"))
        t0 = result.seconds[0]["t"]
        per_rep = {r: ([s["t"] - t0 for s in result.seconds],
                       [s["replicas"].get(r, {}).get("ok", 0) for s in result.seconds]) for r in served}
        scenario.add_plot("Requests served per replica",
                          timeseries_png(scenario.dir / "replicas.png", "Requests served per replica",
                                         per_rep, ylabel="ok/s"))
        waits: dict[str, tuple[list[float], list[float]]] = {}
        for iv in intervals(delay_readings):
            xs, ys = waits.setdefault(iv.replica, ([], []))
            xs.append(iv.t1 - t0)
            ys.append(iv.host_wait_pct)
        if waits:
            scenario.add_plot("Replicas' wait for a CPU held by other processes",
                              timeseries_png(scenario.dir / "host_wait.png", "Host wait per replica (% of each second;"
                                             f" starved at >= {settings.host_starved_wait_pct:g}%)", waits,
                                             ylabel="% of wall time"))
    verdict = steady_verdict(slo, validity, idle, starvation=starvation)
    if verdict.outcome == "inconclusive":  # the generator or the host, not the system, set the figures
        scenario.inconclusive(verdict.explanation)
    ok = verdict.outcome == "pass"
    note = (f" ({', '.join(by_chance)} routable but given none of {settings.users} keep-alive connections: "
            f"chance {chance_some_replica_idle(settings.users, len(replicas)):.1%})") if by_chance else ""
    host = (f"; replicas' wait for a CPU held by others: {starvation.wait_pct:.0f}% of the time "
            f"(worst replica {starvation.replica}), host-starved in {starvation.starved_intervals} of {starvation.intervals} s"
            if starvation.measured else "; replicas' wait for a CPU not readable here (host starvation not judged)")
    scenario.verdict(ok, f"{verdict.explanation}; {len(served)} replicas served{note}{host}" if ok
                     else f"{verdict.explanation}{host}")
    assert ok, scenario.result.explanation
