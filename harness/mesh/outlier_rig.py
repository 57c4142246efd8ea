"""A real Envoy's outlier detector driven on 127.0.0.1, for holding the oracle against it.

N tiny HTTP backends (threads in this process) answer with the status a fault schedule gives them
at that moment and record every request they serve (time, backend, status): that log is exactly
the stream of results Envoy's detector saw, since Envoy sent those requests. One Envoy
(:func:`harness.mesh.bootstrap.plain_proxy_bootstrap`: the DestinationRule's translated cluster)
balances a bounded sequential client loop over them, with its outlier-detection event log on, while
a sampler reads ``/clusters`` (``failed_outlier_check``) and ``/stats`` (``outlier_detection.*``).

Everything binds 127.0.0.1 on free ports; :meth:`OutlierRig.run` stops Envoy, the backends and the
threads in a ``finally``.
"""
from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import UsageError
from harness.analysis.envoy_stats import parse_clusters, parse_envoy_stats
from harness.mesh.bootstrap import plain_proxy_bootstrap, route_retry_policy
from harness.mesh.local import LocalEnvoy, free_port
from harness.mesh.objects import Endpoint, Mesh
from harness.oracles.envoy_agreement import EnvoyRecording
from harness.oracles.outlier import OutlierDetectionSettings

__all__ = ["FaultWindow", "Attempt", "RigRun", "OutlierRig", "RESET", "REFUSE", "TIMEOUT", "CONNECT_FAILED"]

#: A FaultWindow status: reset the connection instead of answering (see the oracle's local result "reset").
RESET = "reset"
#: A FaultWindow status: answer too late (after the route timeout the rig gives Envoy's route).
TIMEOUT = "timeout"
#: A FaultWindow status: refuse connections (the backend is not listening).
REFUSE = "refuse"
#: What a refused connect is as an attempt (the oracle's local result), read from Envoy's access log
#: (response flag UF with the upstream host it tried): no backend saw it.
CONNECT_FAILED = "connect_failed"
#: Envoy's access log of the rig's proxy: when each request ended, the upstream host, the flags.
_ACCESS_LOG_FORMAT = {"start": "%START_TIME(%s.%3f)%", "duration_ms": "%DURATION%", "upstream": "%UPSTREAM_HOST%",
                      "flags": "%RESPONSE_FLAGS%", "code": "%RESPONSE_CODE%"}


@dataclass(frozen=True)
class FaultWindow:
    """Backend ``host`` answers ``status`` from ``start`` to ``end`` seconds after the load starts.

    ``run`` > 0: ``status`` for ``run`` requests, then one 200, over and over (runs of failures of an
    exact length: one short of a threshold must not eject, the threshold must).

    ``status`` :data:`RESET`: the backend reads the request and resets the connection (TCP RST, no
    response); :data:`TIMEOUT`: the backend answers only after the rig's route timeout, so Envoy gives
    up (504, a local-origin timeout) at that time; :data:`REFUSE`: the backend stops listening and drops its connections for the window, so
    Envoy's connects are refused. Both are local-origin failures for Envoy's detector. ``run`` does not
    apply to :data:`REFUSE`. A request Envoy sends on a kept-alive connection as a REFUSE window begins
    (before the rig has closed it) is reset, not served: to Envoy a pool-ready stream, then a reset
    (flag UC), which the rig reads from the access log as :data:`RESET` (a CI run saw Envoy eject on
    UC, UF, UF while the oracle, without the UC, ejected 2.8 s later)."""

    host: str
    status: int | str
    start: float
    end: float = float("inf")
    run: int = 0


@dataclass(frozen=True)
class Attempt:
    """One request a backend served: epoch time, backend name, status it answered (or :data:`RESET`)."""

    t: float
    host: str
    status: int | str


@dataclass
class RigRun:
    """What one run recorded (epoch seconds throughout)."""

    hosts: list[str]
    t0: float                      # load start
    envoy_ready_at: float
    detector_start: float          # when Envoy armed the detector's interval timer (its log)
    attempts: list[Attempt]
    events: list[dict[str, Any]]   # Envoy's outlier event log, one dict per line
    flag_samples: list[tuple[float, frozenset[str]]]   # (t, hosts flagged failed_outlier_check)
    stats: dict[str, float]        # the cluster's outlier_detection.* at the end
    stats_at: float = 0.0          # when they were read (mid-way between two detector ticks)
    cluster: dict[str, Any] = field(default_factory=dict)   # the Envoy cluster the rig ran (translated)
    membership: list[tuple[float, str, str]] = field(default_factory=list)   # (epoch, "add"|"remove", host)
    host_of: dict[str, str] = field(default_factory=dict)   # "127.0.0.1:port" -> backend name
    client_statuses: dict[int, int] = field(default_factory=dict)
    envoy_log: str = ""

    def recording(self, name: str, meta: Mapping[str, Any] | None = None) -> EnvoyRecording:
        """This run as an :class:`~harness.oracles.envoy_agreement.EnvoyRecording` (times after ``t0``, ms)."""
        lb = self.cluster.get("common_lb_config") or {}
        attempts = tuple((round(a.t - self.t0, 4), a.host, a.status) for a in self.attempts)
        return EnvoyRecording(
            name=name, hosts=tuple(self.hosts), outlier_detection=dict(self.cluster.get("outlier_detection") or {}),
            healthy_panic_threshold=float((lb.get("healthy_panic_threshold") or {}).get("value", 50.0)),
            t0=self.t0, detector_start=round(self.detector_start - self.t0, 4),
            end=attempts[-1][0] if attempts else 0.0, stats_at=round(self.stats_at - self.t0, 4), attempts=attempts, events=tuple(self.events),
            host_of=dict(self.host_of), stats={k: v for k, v in sorted(self.stats.items())},
            flag_samples=tuple((round(t - self.t0, 4), tuple(sorted(h))) for t, h in self.flag_samples),
            membership=tuple((round(t - self.t0, 4), action, host) for t, action, host in self.membership),
            meta=dict(meta or {}))


class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rig: "OutlierRig"
    name: str

    def setup(self) -> None:
        super().setup()
        self.rig.connection_opened(self.name, self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.rig.connection_closed(self.name, self.connection)

    def do_GET(self) -> None:  # noqa: N802
        status = self.rig.status_of(self.name)
        if status == REFUSE:
            # the window has begun but this connection is not closed yet: reset, unrecorded (Envoy's
            # access log has it as UC, read back by OutlierRig._local_failures)
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if status == TIMEOUT:
            # Envoy's result is its route timeout firing: record it at that time, then answer too late.
            timeout = self.rig.route_timeout_s or 0.0
            self.rig.record(self.name, status, at=time.time() + timeout)
            time.sleep(timeout + 0.2)
            status = 200
        else:
            self.rig.record(self.name, status)
        if status == RESET:
            # SO_LINGER 0: close() sends RST instead of FIN, before any response byte.
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        body = self.name.encode()
        self.send_response(status)
        self.send_header("x-served-by", self.name)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def hcm_route_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The route configuration of the rig proxy's one listener."""
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Envoy closing an idle keep-alive connection with a reset (e.g. after a retried 5xx) is not
        # an error of the backend; anything else still prints.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OutlierRig:
    """``hosts`` backends behind one Envoy configured from ``mesh``'s DestinationRule."""

    def __init__(self, mesh: Mesh, hosts: Sequence[str], schedule: Sequence[FaultWindow], workdir: str | Path, *,
                 request_gap_s: float = 0.005, sample_every_s: float = 0.1,
                 outlier_overrides: Mapping[str, Any] | None = None, request_path: str = "/unrouted",
                 route_timeout_s: float | None = None,
                 membership: Sequence[tuple[float, str, str]] = (), workers: int = 1) -> None:
        if not hosts or len(set(hosts)) != len(hosts):
            raise UsageError("the rig needs distinct backend names", "pass e.g. ['a', 'b', 'c']")
        unknown = {w.host for w in schedule} - set(hosts)
        if unknown:
            raise UsageError(f"fault schedule names unknown backends {sorted(unknown)}", "use the rig's host names")
        self.mesh, self.hosts, self.schedule = mesh, list(hosts), list(schedule)
        self.workdir = Path(workdir)
        self.request_gap_s, self.sample_every_s = request_gap_s, sample_every_s
        # Envoy fields istiod never sets (e.g. max_ejection_time), merged into the translated cluster.
        self.outlier_overrides = dict(outlier_overrides or {})
        # The client's path; a VirtualService route matching it gives Envoy's route its retry policy.
        self.request_path = request_path
        self.route_timeout_s = route_timeout_s
        if any(w.status == TIMEOUT for w in self.schedule) and not route_timeout_s:
            raise UsageError("a TIMEOUT fault window needs the route timeout", "pass route_timeout_s, e.g. 0.3")
        # (seconds after the load starts, "add" | "remove", backend): the cluster's membership changes,
        # served to Envoy as EDS from a file; a backend first "add"ed starts outside the cluster.
        self.membership = sorted(membership)
        bad = [m for m in self.membership if m[1] not in ("add", "remove") or m[2] not in self.hosts]
        if bad:
            raise UsageError(f"membership changes {bad} name an unknown action or backend",
                             "use (seconds, 'add' or 'remove', one of the rig's hosts)")
        first = {}
        for _, action, host in self.membership:
            first.setdefault(host, action)
        self.initial_hosts = [h for h in self.hosts if first.get(h) != "add"]
        # Envoy worker threads; as many client connections, so each worker carries load (Envoy binds
        # a downstream connection to one worker).
        self.workers = workers
        self._served_in_window: dict[int, int] = {}
        self._t0: float | None = None
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []
        self._connections: dict[str, set[socket.socket]] = {h: set() for h in self.hosts}

    def connection_opened(self, host: str, conn: socket.socket) -> None:
        with self._lock:
            self._connections[host].add(conn)

    def connection_closed(self, host: str, conn: socket.socket) -> None:
        with self._lock:
            self._connections[host].discard(conn)

    # backend side
    def status_of(self, host: str) -> int | str:
        if self._t0 is None:
            return 200
        now = time.time() - self._t0
        for i, w in enumerate(self.schedule):
            if w.host == host and w.start <= now < w.end:
                if not w.run or w.status == REFUSE:
                    return w.status
                with self._lock:
                    k = self._served_in_window.get(i, 0)
                    self._served_in_window[i] = k + 1
                return 200 if k % (w.run + 1) == w.run else w.status
        return 200

    def record(self, host: str, status: int | str, at: float | None = None) -> None:
        with self._lock:
            self._attempts.append(Attempt(time.time() if at is None else at, host, status))

    def _serve_eds(self, cluster: dict[str, Any]) -> Callable[[set[str]], None]:
        """Turn the translated STATIC cluster into EDS read from a file Envoy watches (a
        ``path_config_source``), and return the function that (re)writes it for a set of backends:
        written aside and moved into place, as Envoy's file watch expects."""
        assignment = cluster.pop("load_assignment")
        path = self.workdir / "eds.json"
        cluster["type"] = "EDS"
        cluster["eds_cluster_config"] = {"eds_config": {"path_config_source": {"path": str(path)},
                                                        "resource_api_version": "V3"}}
        version = [0]

        def write(members: set[str]) -> None:
            version[0] += 1
            groups = [{**g, "lb_endpoints": [e for e in g["lb_endpoints"] if e["endpoint"].get("hostname") in members]}
                      for g in assignment["endpoints"]]
            resource = {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                        "cluster_name": assignment["cluster_name"], "endpoints": [g for g in groups if g["lb_endpoints"]]}
            tmp = path.with_name("eds.json.tmp")
            tmp.write_text(json.dumps({"version_info": str(version[0]), "resources": [resource]}))
            os.replace(tmp, path)
        return write

    @staticmethod
    def _local_failures(access_log: Path, by_port: Mapping[str, str],
                        refusing: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> list[Attempt]:
        """Requests no backend recorded, from Envoy's access log, at the time Envoy answered them (start +
        duration): a failed upstream connect (flag UF) as :data:`CONNECT_FAILED`, and a request reset on a
        connection to a host inside one of its REFUSE windows (flag UC; ``refusing``: host -> (start, end)
        epoch seconds) as :data:`RESET`. A UC elsewhere is a RESET window's, which its backend recorded."""
        out = []
        lines = access_log.read_text().splitlines() if access_log.exists() else []
        for line in lines:
            entry = json.loads(line) if line.strip() else {}
            host = by_port.get(str(entry.get("upstream", "")))
            if host is None:
                continue
            flags = str(entry.get("flags", ""))
            t = float(entry["start"]) + float(entry.get("duration_ms") or 0) / 1000
            if "UF" in flags:
                out.append(Attempt(t, host, CONNECT_FAILED))
            elif "UC" in flags and any(a <= t <= b for a, b in (refusing or {}).get(host, ())):
                out.append(Attempt(t, host, RESET))
        return out

    @staticmethod
    def _wait_between_ticks(cluster: Mapping[str, Any], armed: float) -> None:
        """Sleep until half an interval after the detector's next tick (its timer started at ``armed``,
        each tick a little late), so the ``ejections_active`` gauge is not read while a tick may be
        un-ejecting: the oracle's count at that time is then the gauge's, whichever way the tick ran."""
        od = cluster.get("outlier_detection")
        if not od:
            return
        interval = OutlierDetectionSettings.from_envoy(od).interval_ms / 1000
        now = time.time()
        ticks = int((now - armed) / interval)
        target = armed + (ticks + 0.5) * interval
        if target - now < interval * 0.3:
            target += interval
        time.sleep(max(0.0, target - now))

    def run(self, duration_s: float, progress: Callable[[str], None] | None = None) -> RigRun:
        """Serve, start Envoy, send load for ``duration_s`` seconds, return what was recorded."""
        servers: list[http.server.ThreadingHTTPServer] = []
        by_host: dict[str, _Server] = {}
        envoy: LocalEnvoy | None = None
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            endpoints = []
            for name in self.hosts:
                handler = type(f"Backend_{name}", (_Backend,), {"rig": self, "name": name})
                server = _Server(("127.0.0.1", 0), handler)
                servers.append(server)
                by_host[name] = server
                threading.Thread(target=server.serve_forever, daemon=True, name=f"backend-{name}").start()
                endpoints.append(Endpoint(name, "127.0.0.1", server.server_address[1], "local-1a"))
            listen = free_port()
            event_log = self.workdir / "outlier-events.jsonl"
            cfg = plain_proxy_bootstrap(self.mesh, endpoints, admin_port=free_port(), listen_port=listen,
                                        event_log_path=str(event_log),
                                        retry_policy=route_retry_policy(self.mesh, self.request_path))
            if self.outlier_overrides:
                cfg["static_resources"]["clusters"][0].setdefault("outlier_detection", {}).update(
                    self.outlier_overrides)
            if self.route_timeout_s:
                for vhost in hcm_route_config(cfg)["virtual_hosts"]:
                    for r in vhost["routes"]:
                        r["route"]["timeout"] = f"{self.route_timeout_s:g}s"
            access_log = self.workdir / "access.jsonl"
            hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["access_log"] = list(hcm.get("access_log") or []) + [{
                "name": "envoy.access_loggers.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": str(access_log), "log_format": {"json_format": _ACCESS_LOG_FORMAT}}}]
            members = set(self.initial_hosts)
            membership_log: list[tuple[float, str, str]] = []
            write_members = self._serve_eds(cfg["static_resources"]["clusters"][0]) if self.membership else None
            if write_members:
                write_members(members)
            cluster = cfg["static_resources"]["clusters"][0]["name"]
            envoy = LocalEnvoy(cfg, self.workdir, name="oracle-envoy", concurrency=self.workers)
            envoy.start()
            by_port = {f"127.0.0.1:{e.port}": e.name for e in endpoints}
            flags: list[tuple[float, frozenset[str]]] = []

            def sample() -> None:
                while not stop.is_set():
                    try:
                        asked = time.time()
                        c = parse_clusters(envoy.get("clusters"), only=cluster).get(cluster)
                        if c is not None:
                            flags.append((asked, frozenset(by_port.get(a, a) for a, h in c.hosts.items()
                                                                 if h.ejected)))
                    except OSError:
                        pass
                    stop.wait(self.sample_every_s)

            client_statuses: dict[int, int] = {}
            counting = threading.Lock()

            def load() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=30)
                while not stop.is_set():
                    try:
                        conn.request("GET", self.request_path)
                        r = conn.getresponse()
                        r.read()
                        with counting:
                            client_statuses[r.status] = client_statuses.get(r.status, 0) + 1
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=30)
                    stop.wait(self.request_gap_s)
                conn.close()

            def refuse(window: FaultWindow) -> None:
                # Stop listening and drop the backend's connections, so Envoy's next connects are refused.
                if stop.wait(max(0.0, self._t0 + window.start - time.time())):
                    return
                old = by_host[window.host]
                port = old.server_address[1]
                old.shutdown()
                old.server_close()
                with self._lock:
                    open_ = list(self._connections[window.host])
                for conn in open_:
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                if window.end == float("inf") or stop.wait(max(0.0, self._t0 + window.end - time.time())):
                    return
                new = _Server(("127.0.0.1", port), type(old.RequestHandlerClass.__name__,
                                                        (old.RequestHandlerClass,), {}))
                servers.append(new)
                by_host[window.host] = new
                threading.Thread(target=new.serve_forever, daemon=True, name=f"backend-{window.host}").start()

            def change_membership() -> None:
                for at, action, host in self.membership:
                    if stop.wait(max(0.0, self._t0 + at - time.time())):
                        return
                    (members.add if action == "add" else members.discard)(host)
                    assert write_members is not None
                    write_members(members)
                    membership_log.append((time.time(), action, host))

            self._t0 = time.time()
            if self.membership:
                t = threading.Thread(target=change_membership, daemon=True)
                threads.append(t)
                t.start()
            for w in self.schedule:
                if w.status == REFUSE:
                    t = threading.Thread(target=refuse, args=(w,), daemon=True)
                    threads.append(t)
                    t.start()
            for target in [sample] + [load] * self.workers:
                t = threading.Thread(target=target, daemon=True)
                threads.append(t)
                t.start()
            end = self._t0 + duration_s
            while time.time() < end:
                time.sleep(min(1.0, max(0.0, end - time.time())))
                if progress:
                    progress(f"{time.time() - self._t0:.0f}/{duration_s:.0f}s, {len(self._attempts)} requests")
            stop.set()
            for t in threads:
                t.join(30)
            # DetectorImpl::initialize arms the interval timer while the cluster manager loads the
            # static clusters, i.e. just before Envoy logs that it loads the listeners.
            armed = envoy.log_line_time("loading 1 listener(s)") or envoy.ready_at or self._t0
            self._wait_between_ticks(cfg["static_resources"]["clusters"][0], armed)
            stats_at = time.time()
            stats = {k.split(f"cluster.{cluster}.", 1)[1]: v for k, v in parse_envoy_stats(envoy.get("stats")).items()
                     if k.startswith(f"cluster.{cluster}.outlier_detection.")}
            log = envoy.log()
            envoy.stop()
            events = [json.loads(line) for line in event_log.read_text().splitlines() if line.strip()] \
                if event_log.exists() else []
            with self._lock:
                # a REFUSE window's resets end when Envoy's last request on a dropped connection does:
                # a second after the window, at most
                refusing: dict[str, list[tuple[float, float]]] = {}
                for w in self.schedule:
                    if w.status == REFUSE:
                        refusing.setdefault(w.host, []).append((self._t0 + w.start, self._t0 + w.end + 1.0))
                attempts = sorted(self._attempts + self._local_failures(access_log, by_port, refusing),
                                  key=lambda a: a.t)
            return RigRun(hosts=self.initial_hosts, membership=membership_log, t0=self._t0, envoy_ready_at=envoy.ready_at or 0.0, detector_start=armed,
                          attempts=attempts, events=events, flag_samples=flags, stats=stats, stats_at=stats_at,
                          cluster=cfg["static_resources"]["clusters"][0], host_of=by_port,
                          client_statuses=client_statuses, envoy_log=log)
        finally:
            stop.set()
            if envoy is not None:
                envoy.stop()
            for s in servers:
                s.shutdown()
                s.server_close()

