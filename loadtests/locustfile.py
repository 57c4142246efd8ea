"""Load on the conductor's pipeline API.

Runs under the harness (``harness.load.runner``) and with the plain CLI too:

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8080 -u 10 -r 5 -t 30s

and in Locust's distributed mode (``--master`` / ``--worker``): the workers make and attribute the
requests and send their seconds to the master every second (a Locust custom message); the master merges them and
writes the attribution file (harness.load.distributed; docs/distributed-load.md).

Environment (all optional):
  HARNESS_TARGETS           comma-separated base URLs; requests are spread over them round-robin
                            (the docker platform has one URL per replica, kind one ingress URL)
  HARNESS_SHAPE             a JSON load shape (harness/load/shapes.py); absent: -u/-r/-t apply
  HARNESS_USER_RPS          requests/s each user offers (constant throughput); 0 = as fast as possible
  HARNESS_ATTRIBUTION_FILE  where per-second, per-replica counts, Locust's CPU usage, the time it
                            waited for a CPU and its scheduling lag (how late a fixed-period sleep
                            woke) are written
  HARNESS_TLS_SNI           for an https target on 127.0.0.1 behind a gateway that routes by name:
                            the name sent as TLS SNI and Host, and the name the certificate must carry
  HARNESS_TLS_CA_FILE       the CA (PEM) the gateway's certificate is verified against (with SNI)
"""
from __future__ import annotations

import itertools
import json
import os
import ssl
import time
import uuid
from collections import defaultdict

import gevent
import psutil
from locust import FastHttpUser, LoadTestShape, constant, constant_throughput, events, task

from harness.load.responses import classify_response
from harness.load.distributed import finish_line, histogram, merge_into
from harness.load.shapes import stage_at, stages_from_spec

TARGETS = [t.strip().rstrip("/") for t in os.environ.get("HARNESS_TARGETS", "").split(",") if t.strip()]
_target_cycle = itertools.cycle(TARGETS) if TARGETS else None
USER_RPS = float(os.environ.get("HARNESS_USER_RPS", "2"))
SERVED_BY = "X-Served-By"
TLS_SNI = os.environ.get("HARNESS_TLS_SNI", "")
TLS_CA_FILE = os.environ.get("HARNESS_TLS_CA_FILE", "")


class _SniContext(ssl.SSLContext):
    """Connects to the target's address (127.0.0.1) but presents ``TLS_SNI`` and checks the
    certificate against that name: the gateway picks its server by SNI, as for a real client."""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):  # noqa: ANN001 - ssl's signature
        return super().wrap_socket(sock, *args, server_hostname=TLS_SNI, **kwargs)


def sni_context(cafile: str | None = None) -> ssl.SSLContext:
    """geventhttpclient's ``ssl_context_factory``: the run's CA only (its ``cafile``, the public
    bundle, is ignored), hostname checked against ``TLS_SNI``."""
    ctx = _SniContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=TLS_CA_FILE)
    ctx.check_hostname = True
    return ctx


def _url(path: str) -> str:
    # Absolute URLs spread load over the targets; without targets, the host (-H) is used.
    return next(_target_cycle) + path if _target_cycle else path


class PipelineUser(FastHttpUser):
    """Creates pipelines and reads some back, as the API's clients do."""

    host = TARGETS[0] if TARGETS else None
    wait_time = constant_throughput(USER_RPS) if USER_RPS > 0 else constant(0)
    if TLS_SNI:
        insecure = False
        ssl_context_factory = staticmethod(sni_context)
        default_headers = {"Host": TLS_SNI}

    def on_start(self) -> None:
        self.created: list[str] = []

    @task(3)
    def create_pipeline(self) -> None:
        body = {"name": "load", "client": uuid.uuid4().hex[:8]}
        with self.client.post(_url("/api/v1/pipeline"), json=body, name="POST /api/v1/pipeline",
                              catch_response=True) as resp:
            if resp.status_code in (200, 201):
                try:
                    self.created.append(resp.json()["id"])
                    del self.created[:-50]
                    resp.success()
                except (ValueError, KeyError):
                    resp.failure("answer has no pipeline id")
            else:
                resp.failure(f"HTTP {resp.status_code}")

    @task(1)
    def read_pipeline(self) -> None:
        if not self.created:
            return
        self.client.get(_url(f"/api/v1/pipeline/{self.created[-1]}"), name="GET /api/v1/pipeline/{id}")


if os.environ.get("HARNESS_SHAPE"):
    _STAGES = stages_from_spec(json.loads(os.environ["HARNESS_SHAPE"]))

    class HarnessShape(LoadTestShape):
        """The shape the harness asked for (only defined then, so the plain CLI's -u/-r/-t work)."""

        def tick(self):
            stage = stage_at(_STAGES, self.get_run_time())
            return None if stage is None else (stage.users, stage.spawn_rate)


# -- per-second attribution, written as JSON lines (cheap: counters only on the hot path) ------------
_second: dict[int, dict] = defaultdict(lambda: {"replicas": defaultdict(lambda: [0, 0]), "ok": 0, "fail": 0,
                                               "lat": [], "codes": defaultdict(int)})


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, response=None, exception=None,
                **_kw) -> None:
    bucket = _second[int(time.time())]
    replica, status, flag = "-", 0, ""
    if response is not None:
        try:
            replica = response.headers.get(SERVED_BY) or "-"
            status = int(response.status_code or 0)
            if status >= 400:  # who answered an error: Envoy's RBAC/overflow reply or the app's fault
                _, flag = classify_response(status, dict(response.headers), response.text or "")
        except Exception:  # noqa: BLE001 - a failed connection has no headers
            replica = "-"
    # "<status>|<flag>|<replica>" -> count; status 0 = no HTTP answer
    bucket["codes"][f"{status}|{flag}|{replica}"] += 1
    counts = bucket["replicas"][replica]
    if exception is None:
        bucket["ok"] += 1
        counts[0] += 1
    else:
        bucket["fail"] += 1
        counts[1] += 1
    bucket["lat"].append(response_time)


_PROCESS = psutil.Process()

# -- scheduling lag: is the generator keeping its own schedule? ---------------------------------
# A greenlet sleeps LAG_PERIOD_S again and again and records how late it woke (the worst per
# second). A generator that cannot keep its schedule -- its event loop saturated, or the process
# starved of CPU by a busy machine -- wakes late whatever the machine's speed; its users then send
# late and its response times include its own delay. harness.load.slo.evaluate_validity judges it.
LAG_PERIOD_S = 0.1
_lag_ms: dict[int, float] = {}


def _runnable_wait_ns() -> int | None:
    """Nanoseconds this process's threads have spent runnable but waiting for a CPU
    (``/proc/self/task/*/schedstat``, second field); None where the kernel does not say."""
    total, found = 0, False
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"{task.path}/schedstat") as fh:
                    total += int(fh.read().split()[1])
                    found = True
            except (OSError, ValueError, IndexError):
                continue   # a thread that just ended
    except OSError:
        return None
    return total if found else None


_wait_mark: list = [None, None]   # (runnable-wait ns, monotonic s) at the previous flush


def _waiting_pct() -> float | None:
    """% of a core the generator spent waiting for a CPU since the previous call: with its CPU use,
    what it *needed* -- a generator starved on a busy host uses little CPU but waits the rest."""
    now_ns, now_s = _runnable_wait_ns(), time.monotonic()
    before_ns, before_s = _wait_mark
    _wait_mark[:] = [now_ns, now_s]
    if now_ns is None or before_ns is None or now_s <= before_s:
        return None
    return max(0.0, (now_ns - before_ns) / 1e9 / (now_s - before_s) * 100.0)


def _lag_probe() -> None:
    while True:
        before = time.monotonic()
        gevent.sleep(LAG_PERIOD_S)
        late_ms = max(0.0, (time.monotonic() - before - LAG_PERIOD_S) * 1000.0)
        second = int(time.time())
        _lag_ms[second] = max(_lag_ms.get(second, 0.0), late_ms)


def _flush(path: str, environment, final: bool = False) -> None:
    now = int(time.time())
    done = sorted(s for s in _second if final or s < now)
    if not done:
        return
    # Locust's own monitor samples every 10 s; validity needs each second. % of one core.
    cpu = _PROCESS.cpu_percent()
    machine = psutil.cpu_percent()  # all cores: a busy machine starves the generator below 100%
    waiting = _waiting_pct()
    lags = {s: _lag_ms.pop(s) for s in list(_lag_ms) if final or s < now}
    if final:
        # The last interval is Locust shutting down (writing its reports), not generating load.
        cpu = machine = waiting = None
        lags = {}
    users = environment.runner.user_count if environment.runner else 0
    with open(path, "a") as fh:
        for s in done:
            b = _second.pop(s)
            lat = sorted(b["lat"])
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None
            p50 = lat[len(lat) // 2] if lat else None
            fh.write(json.dumps({"t": s, "ok": b["ok"], "fail": b["fail"], "p50_ms": p50, "p95_ms": p95,
                                 "replicas": {k: {"ok": v[0], "fail": v[1]} for k, v in b["replicas"].items()},
                                 "codes": dict(b["codes"]),
                                 "locust_cpu": cpu, "machine_cpu": machine, "users": users,
                                 "locust_wait_pct": None if waiting is None else round(waiting, 1),
                                 "loop_lag_ms": round(lags[s], 1) if s in lags else None}) + "\n")


def _role(environment) -> str:
    """``local`` (one process), ``master`` or ``worker`` (Locust's distributed mode)."""
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    return "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"


@events.test_start.add_listener
def _start_writer(environment, **_kw) -> None:
    role = _role(environment)
    path = os.environ.get("HARNESS_ATTRIBUTION_FILE")
    if role == "worker":
        _start_worker_sampler(environment)
        return
    if not path or getattr(environment, "harness_writer", None) is not None:
        return
    _PROCESS.cpu_percent()  # start the measurement intervals
    psutil.cpu_percent()
    _waiting_pct()

    def loop() -> None:
        while True:
            gevent.sleep(1.0)
            if role == "master":
                _master_tick(path, environment)
            else:
                _flush(path, environment)

    environment.harness_writer = gevent.spawn(loop)
    if role == "local":  # the master sends no load; its workers run their own probe
        environment.harness_lag_probe = gevent.spawn(_lag_probe)


@events.quitting.add_listener
def _stop_writer(environment, **_kw) -> None:
    path = os.environ.get("HARNESS_ATTRIBUTION_FILE")
    for greenlet in (getattr(environment, "harness_writer", None), getattr(environment, "harness_lag_probe", None)):
        if greenlet is not None:
            greenlet.kill()
    if path and _role(environment) == "master":
        _master_flush(path, final=True)
    elif path and _role(environment) == "local":
        _flush(path, environment, final=True)


# -- distributed mode (locust --master / --worker): workers ship their seconds, the master merges ------
# A worker's second: counts, a latency histogram and its own CPU, sent every second as Locust's own custom
# message "harness_seconds" (runner.send_message / register_message), and once more the moment the
# worker stops, before the master quits; the master merges by second (harness.load.distributed) and
# writes each second once no worker can still send it, with Locust's own heartbeat view of every
# worker at that second.
_worker_cpu: dict[int, tuple[float, float, int]] = {}
_merged: dict[int, dict] = {}
_beats: dict[int, tuple[dict, str, float]] = {}
SECONDS_MESSAGE = "harness_seconds"
MASTER_LAG_S = 4  # a worker sends every second; a late line is merged into a second line for that second


def _start_worker_sampler(environment) -> None:
    if getattr(environment, "harness_sampler", None) is not None:
        return
    _PROCESS.cpu_percent()
    psutil.cpu_percent()
    _waiting_pct()
    environment.harness_lag_probe = gevent.spawn(_lag_probe)

    def loop() -> None:
        last = int(time.time()) - 1
        while True:
            gevent.sleep(1.0)
            runner = environment.runner
            sample = (_PROCESS.cpu_percent(), psutil.cpu_percent(), runner.user_count if runner else 0,
                      _waiting_pct())
            # A busy machine wakes this loop late: every second since the last sample gets this one
            # (CPU measured over that whole interval), so no second reads as "no users".
            now = int(time.time()) - 1
            for t in range(last + 1, now + 1):
                _worker_cpu[t] = sample
            last = max(last, now)
            _send_seconds(environment)

    environment.harness_sampler = gevent.spawn(loop)


def _worker_lines(final: bool) -> list[dict]:
    """The completed seconds (every one when ``final``): requests, and CPU-only seconds without any;
    each with the worker's CPU, the time it waited for a CPU and its scheduling lag that second."""
    now = int(time.time())
    lines = []

    def own(t: int) -> dict:
        cpu, machine, users, waiting = _worker_cpu.pop(t, (None, None, 0, None))
        lag = _lag_ms.pop(t, None)
        return {"cpu": cpu, "machine_cpu": machine, "users": users,
                "wait_pct": None if waiting is None else round(waiting, 1),
                "loop_lag_ms": None if lag is None else round(lag, 1)}

    for t in sorted(x for x in _second if final or x < now):
        b = _second.pop(t)
        lines.append({"t": t, "ok": b["ok"], "fail": b["fail"], "hist": histogram(b["lat"]),
                      "replicas": {k: {"ok": v[0], "fail": v[1]} for k, v in b["replicas"].items()},
                      "codes": dict(b["codes"]), **own(t)})
    for t in sorted(x for x in _worker_cpu if final or x < now):
        lines.append({"t": t, "ok": 0, "fail": 0, **own(t)})
    for t in [x for x in _lag_ms if final or x < now - 2]:   # a lag with no second of its own to ride on
        _lag_ms.pop(t)
    return lines


def _send_seconds(environment, final: bool = False) -> None:
    lines = _worker_lines(final)
    if lines and environment.runner is not None:
        environment.runner.send_message(SECONDS_MESSAGE, {"lines": lines})


@events.test_stop.add_listener
def _send_last_seconds(environment, **_kw) -> None:
    if _role(environment) == "worker":
        for attr in ("harness_sampler", "harness_lag_probe"):
            greenlet = getattr(environment, attr, None)
            if greenlet is not None:
                greenlet.kill()
                setattr(environment, attr, None)
        _send_seconds(environment, final=True)


@events.init.add_listener
def _register_seconds(environment, runner=None, **_kw) -> None:
    if runner is not None and _role(environment) == "master":
        runner.register_message(SECONDS_MESSAGE, _merge_worker_seconds)


def _merge_worker_seconds(environment, msg, **_kw) -> None:
    for line in (msg.data or {}).get("lines") or ():
        merge_into(_merged, msg.node_id, line)


def _master_tick(path: str, environment) -> None:
    runner = environment.runner
    beats = {c.id: {"state": c.state, "cpu": c.cpu_usage, "heartbeat": c.heartbeat} for c in runner.clients.values()}
    _beats[int(time.time())] = (beats, runner.state, _PROCESS.cpu_percent())
    _master_flush(path, expected=int(getattr(environment.parsed_options, "expect_workers", 0) or 0))


def _master_flush(path: str, final: bool = False, expected: int | None = None) -> None:
    if expected is not None:
        _master_flush.expected = expected
    limit = int(time.time()) - MASTER_LAG_S
    done = sorted(t for t in set(_merged) | set(_beats) if final or t < limit)
    if not done:
        return
    with open(path, "a") as fh:
        for t in done:
            beats, state, master_cpu = _beats.pop(t, ({}, "", None))
            m = _merged.pop(t, None) or {"t": t, "ok": 0, "fail": 0}
            fh.write(json.dumps(finish_line(m, beats, getattr(_master_flush, "expected", 0), master_cpu, state)) + "\n")
