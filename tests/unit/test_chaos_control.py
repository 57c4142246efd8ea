"""The harness control and the continuous hypothesis in real ``chaos run`` processes (no Docker needed).

A small HTTP server on 127.0.0.1 plays the conductor's two endpoints the steady state uses
(``POST /api/v1/pipeline``, ``GET /health/ready``) and has an ``/outage`` switch. Each test writes
an experiment that declares the harness control and the real steady-state hypothesis (copied from
chaos/database-outage.json), and runs it through ``harness.chaos_runner.run_experiment``: the
chaostoolkit CLI, chaoslib's control machinery and the harness control all run for real.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.chaos_runner import run_experiment
from harness.config import PROJECT_ROOT

RUN = "20260101-000000-c0de"
PROBE_REQUESTS = 5   # user requests per steady-state check
HYPOTHESIS = json.loads((PROJECT_ROOT / "chaos" / "database-outage.json").read_text())["steady-state-hypothesis"]
CONTROLS = json.loads((PROJECT_ROOT / "chaos" / "database-outage.json").read_text())["controls"]


class Service:
    """Answers like a conductor; ``/outage?s=N`` makes user requests fail for N seconds."""

    def __init__(self) -> None:
        self.failing_until = 0.0
        self.requests = 0
        self.outages: list[float] = []   # the s= of each /outage call
        self.posts = 0                     # user requests (the steady state's probes)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                service.requests += 1
                service.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(503 if time.time() < service.failing_until else 200)

            def do_GET(self) -> None:  # noqa: N802
                service.requests += 1
                if self.path.startswith("/outage"):
                    query = parse_qs(urlsplit(self.path).query)
                    service.outages.append(float(query["s"][0]))
                    service.failing_until = time.time() + service.outages[-1]
                    # hold=N: answer once the outage is over and N more user requests came in after it
                    # (the checks during the method), so that the method lasts a state, not a clock
                    hold, deadline = int(query.get("hold", ["0"])[0]), time.time() + 120
                    while hold and time.time() < min(service.failing_until, deadline):
                        time.sleep(0.05)
                    until = service.posts + hold
                    while service.posts < until and time.time() < deadline:
                        time.sleep(0.05)
                self._answer(200)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def service() -> Iterator[Service]:
    s = Service()
    yield s
    s.server.shutdown()


def experiment(tmp_path: Path, service: Service, *, outage_s: float, observe_s: float,
               rollbacks: list[dict[str, Any]] = (), hold_requests: int = 0) -> Path:
    """A method of one action, ``/outage``: with ``hold_requests`` it answers once the outage is over and
    that many user requests came in after it (the checks during the method), then pauses ``observe_s``."""
    method = [{"type": "action", "name": "outage", "pauses": {"after": observe_s},
               "provider": {"type": "http", "url": f"{service.url}/outage?s={outage_s}&hold={hold_requests}",
                            "timeout": 130}}]
    exp = {"version": "1.0.0", "title": "fault under a continuous hypothesis", "description": "test",
           "runtime": {"rollbacks": {"strategy": "always"}, "hypothesis": {"strategy": "continuously"}},
           "controls": CONTROLS, "configuration": {}, "steady-state-hypothesis": HYPOTHESIS, "method": method,
           "rollbacks": list(rollbacks)}
    path = tmp_path / "continuous.json"
    path.write_text(json.dumps(exp))
    return path


def env_for(service: Service, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HARNESS_ENDPOINTS": service.url, "HARNESS_PROBE_REQUESTS": str(PROBE_REQUESTS), "HARNESS_KUBE_NAMESPACE": "",
            "HARNESS_FAULT_LOG": str(tmp_path / "faults.jsonl"), **extra}


def test_a_failure_during_the_fault_is_caught_although_before_and_after_hold(service, tmp_path):
    """The SLO "throughout" a fault: the outage starts and ends inside the method, so the classic
    before/after hypothesis passes; only the continuous checks see it. chaostoolkit does not mark
    the run deviated for them (without --fail-fast): the harness reads ``steady_states.during``."""
    lines: list[str] = []
    run = run_experiment(experiment(tmp_path, service, outage_s=4, observe_s=0, hold_requests=2 * PROBE_REQUESTS),
                         tmp_path, run_id=RUN,
                         env=env_for(service, tmp_path), hypothesis_frequency_s=0.5, progress=lines.append,
                         progress_every_s=1.0, name="outage")
    assert run.status == "completed" and not run.deviated, run.to_dict()
    assert run.steady_state("before") is True and run.steady_state("after") is True
    assert run.held_throughout is False and not run.ok
    assert 0 < run.steady_state_during.count(False) < len(run.steady_state_during), run.steady_state_during
    assert run.to_dict()["steady_state_during"]["deviations"] == run.steady_state_during.count(False)
    # Progress came from the control's events, not from chaos's log text.
    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "experiment-started" and kinds[-1] == "experiment-ended"
    assert {"activity-started", "activity-ended", "hypothesis-ended", "method-started"} <= set(kinds)
    assert any(e["event"] == "activity-ended" and e["activity"] == "outage" and e["status"] == "succeeded"
               for e in run.events)
    assert run.events[-1]["during_deviations"] == run.steady_state_during.count(False)
    assert any("method: action outage" in line for line in lines), lines


def test_without_an_outage_the_continuous_hypothesis_holds(service, tmp_path):
    # two checks' worth of requests during the method (HARNESS_PROBE_REQUESTS each), whatever the machine's speed
    run = run_experiment(experiment(tmp_path, service, outage_s=0, observe_s=0, hold_requests=2 * PROBE_REQUESTS),
                         tmp_path, run_id=RUN, env=env_for(service, tmp_path), hypothesis_frequency_s=0.5,
                         name="steady")
    assert run.ok and run.held_throughout is True and len(run.steady_state_during) >= 2, run.to_dict()


def test_ctrl_c_during_the_pause_of_a_continuously_checked_fault_stops_at_once_and_plays_the_rollbacks(
        service, tmp_path):
    """Ctrl-C (the runner's SIGINT) while the method pauses and the steady state is checked in
    chaoslib's background thread: chaostoolkit ends the method, the background checks stop, the
    rollbacks run, and the process exits by itself. The pause (1 h) and the grace (2 min) are long
    so that only acting on SIGINT ends the run (chaoslib 1.44 alone sits out the pause: see
    harness.faults.chaos_interrupt); the runner's SIGTERM fallback would show in chaos's log."""
    from harness.wait import wait_for

    stop = threading.Event()

    def interrupt_once_the_fault_is_in() -> None:
        wait_for(lambda: service.outages, timeout=120, interval=0.1, describe="the method's fault")
        stop.set()

    threading.Thread(target=interrupt_once_the_fault_is_in, daemon=True).start()
    restore = {"type": "action", "name": "restore",
               "provider": {"type": "http", "url": f"{service.url}/outage?s=0", "timeout": 5}}
    run = run_experiment(experiment(tmp_path, service, outage_s=3600, observe_s=3600, rollbacks=[restore]),
                         tmp_path, run_id=RUN, env=env_for(service, tmp_path), hypothesis_frequency_s=0.5,
                         interrupt=stop, grace_s=120, name="interrupted")
    assert run.interrupted and run.status == "interrupted", run.to_dict()
    log = run.log_path.read_text()
    assert "Received a termination signal (Ctrl-C)" in log and "SIGTERM" not in log, log[-600:]
    assert [(r["name"], r["status"]) for r in run.rollbacks] == [("restore", "succeeded")]
    assert service.outages == [3600, 0]


def test_the_control_refuses_a_foreign_cluster_before_the_first_activity(service, tmp_path):
    """On kind the target is checked before every activity, probes included: a context that is not
    the run's stops the run before a single request is made."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-eks",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}], "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "prod-eks", "context": {"cluster": "c", "user": "u"}}]}))
    run = run_experiment(experiment(tmp_path, service, outage_s=4, observe_s=1), tmp_path, run_id=RUN,
                         env=env_for(service, tmp_path, HARNESS_KUBE_NAMESPACE="i2s-staging",
                                     HARNESS_KUBE_RUN_CONTEXT="prod-eks", KUBECONFIG=str(kubeconfig)),
                         name="refused")
    assert run.status == "interrupted" and service.requests == 0, run.to_dict()
    refused = [e for e in run.events if e["event"] == "refused"]
    assert refused and "refusing to act on kube context 'prod-eks'" in refused[0]["reason"]
    assert not (tmp_path / "faults.jsonl").exists()


def test_without_a_run_id_the_experiment_stops_before_anything_runs(service, tmp_path, monkeypatch):
    from harness.chaos_runner import chaos_binary
    import subprocess

    path = experiment(tmp_path, service, outage_s=4, observe_s=1)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("HARNESS_")}
    env.update(HARNESS_ENDPOINTS=service.url, HARNESS_CHAOS_EVENTS=str(tmp_path / "events.jsonl"))
    subprocess.run([chaos_binary(), "--no-version-check", "--no-log-file", "run", "--journal-path",
                    str(tmp_path / "j.json"), str(path)], env=env, cwd=tmp_path, capture_output=True, timeout=120)
    journal = json.loads((tmp_path / "j.json").read_text())
    assert journal["status"] == "interrupted" and service.requests == 0
    assert "export HARNESS_RUN_ID" in (tmp_path / "events.jsonl").read_text()


def test_the_progress_line_names_the_step_and_the_checks_during_the_method():
    from harness.chaos_runner import describe_progress

    assert describe_progress([]) == "starting"
    events = [{"event": "experiment-started", "phase": ""},
              {"event": "activity-started", "phase": "", "activity": "all-replicas-ready", "type": "probe",
               "hypothesis": True}]
    assert describe_progress(events) == "checking the steady state"
    events += [{"event": "hypothesis-ended", "phase": "", "met": True},
               {"event": "activity-started", "phase": "method", "activity": "drain-zone", "type": "action",
                "hypothesis": False},
               {"event": "fault-injected", "phase": "method", "fault": "zone-drained", "target": "us-east-1a"},
               {"event": "hypothesis-ended", "phase": "method", "met": True},
               {"event": "hypothesis-ended", "phase": "method", "met": False}]
    assert describe_progress(events) == ("method: action drain-zone running; steady state NOT met, "
                                         "1 of 2 checks during the method failed")
