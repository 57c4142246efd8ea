"""HTTP API: pipelines, health, metrics and the fault-injection admin endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from . import metrics as m
from .config import Redactor, Settings
from .deps import DependencyUnavailable, Overloaded, Postgres, RabbitMQ, Redis, describe, record_json
from .faults import FaultState, parse_faults
from .lag import LagMonitor

log = logging.getLogger("conductor")

PIPELINE_PREFIX = "/api/v1/pipeline"  # also matches /api/v1/pipelines/...
MAX_IDEMPOTENCY_KEY = 255


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


def json_response(obj: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=_dumps(obj), status=status, content_type="application/json", headers=headers)


def burn_cpu(ms: float) -> None:
    """Real CPU work: hash until this thread has used `ms` of CPU time."""
    if ms <= 0:
        return
    end = time.thread_time() + ms / 1000.0
    digest = hashlib.sha256(b"conductor")
    block = b"\x5a" * 1024
    while time.thread_time() < end:
        for _ in range(16):
            digest.update(block)


# --------------------------------------------------------------------------- state

@dataclass
class CheckResult:
    ok: bool
    checks: dict
    at: float = field(default_factory=time.monotonic)


class Readiness:
    """Runs the three dependency checks concurrently; results live at most
    `ready_cache_s` (≤ 1 s). Concurrent callers share one evaluation."""

    def __init__(self, settings: Settings, deps: list, redact: Redactor, lag: LagMonitor) -> None:
        self.s = settings
        self.deps = deps
        self.lag = lag
        self.redact = redact
        self.last: CheckResult | None = None
        self._inflight: asyncio.Future | None = None
        self._last_failed: tuple[str, ...] | None = None

    async def get(self) -> CheckResult:
        last = self.last
        if last is not None and time.monotonic() - last.at <= self.s.ready_cache_s:
            return last
        return await self.refresh()

    async def refresh(self) -> CheckResult:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._evaluate())
        return await asyncio.shield(self._inflight)

    async def _check_one(self, dep) -> tuple[str, dict]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.s.ready_timeout_s):
                await dep.check()
            ok, error = True, None
        except TimeoutError:
            ok, error = False, f"timeout after {self.s.ready_timeout_s:.2f}s"
            if self.lag.lagging():
                error += f" (this replica's event loop lags {self.lag.recent():.2f}s: overloaded)"
        except DependencyUnavailable as exc:
            ok, error = False, exc.reason
        except Exception as exc:
            ok, error = False, describe(exc)
        elapsed = time.perf_counter() - started
        m.DEPENDENCY_CHECK_DURATION.labels(dep.name).observe(elapsed)
        m.DEPENDENCY_UP.labels(dep.name).set(1 if ok else 0)
        entry: dict = {"ok": ok, "latency_ms": round(elapsed * 1000, 1)}
        if error:
            entry["error"] = self.redact(error)
        return dep.name, entry

    async def _evaluate(self) -> CheckResult:
        pairs = await asyncio.gather(*(self._check_one(d) for d in self.deps))
        checks = dict(pairs)
        result = CheckResult(ok=all(c["ok"] for c in checks.values()), checks=checks)
        self.last = result
        failed = tuple(name for name, c in checks.items() if not c["ok"])
        if failed != self._last_failed:
            if failed:
                log.warning(
                    "dependencies not ready: %s",
                    ", ".join(f"{n} ({checks[n].get('error')})" for n in failed),
                )
            else:
                log.info("all dependencies ready (postgres, redis, rabbitmq)")
            self._last_failed = failed
        return result


class Conductor:
    def __init__(self, settings: Settings, redact: Redactor) -> None:
        self.s = settings
        self.redact = redact
        self.lag = LagMonitor()
        self.pg = Postgres(settings, self.lag)
        self.redis = Redis(settings)
        self.mq = RabbitMQ(settings, self.lag)
        self.readiness = Readiness(settings, [self.pg, self.redis, self.mq], redact, self.lag)
        self.faults = FaultState()
        self.shutting_down = False
        self.started_at = time.time()
        m.REPLICA_INFO.labels(settings.replica, settings.environment, settings.version).set(1)
        m.CPU_COST_MS.set(settings.cpu_cost_ms)
        m.READY.set(0)
        self._monitor: asyncio.Task | None = None

    # ---- lifecycle
    async def start(self) -> None:
        self.lag.start()
        await self.pg.start()
        self._monitor = asyncio.create_task(self._monitor_loop(), name="dependency-monitor")

    async def _monitor_loop(self) -> None:
        """Keeps readiness fresh (and so: connects at start-up, creates the schema,
        heals broken connections) once per READY_CACHE_S, even without probes."""
        interval = max(self.s.ready_cache_s, 0.5)
        while True:
            try:
                result = await self.readiness.refresh()
                m.READY.set(1 if result.ok and not self._not_ready_reason() else 0)
            except Exception:
                log.exception("dependency monitor iteration failed")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            try:
                await self._monitor
            except BaseException:
                pass
        await self.lag.stop()
        await asyncio.gather(self.pg.close(), self.redis.close(), self.mq.close(), return_exceptions=True)

    def begin_shutdown(self) -> None:
        self.shutting_down = True
        m.READY.set(0)

    def _not_ready_reason(self) -> str | None:
        if self.shutting_down:
            return "shutting_down"
        f = self.faults.active()
        if f is not None and f.fail_readiness:
            return "fault_injection"
        return None

    def cpu_cost_ms(self) -> float:
        f = self.faults.active()
        if f is not None and f.cpu_cost_ms is not None:
            return f.cpu_cost_ms
        return self.s.cpu_cost_ms

    # ---- health
    async def live(self, request: web.Request) -> web.Response:
        return json_response({"status": "alive", "replica": self.s.replica,
                              "uptime_s": round(time.time() - self.started_at, 1)})

    async def ready(self, request: web.Request) -> web.Response:
        result = await self.readiness.get()
        failed = [name for name, c in result.checks.items() if not c["ok"]]
        reason = self._not_ready_reason()
        if reason:
            failed.insert(0, reason)
        ok = not failed
        m.READY.set(1 if ok else 0)
        body = {
            "status": "ready" if ok else "not_ready",
            "replica": self.s.replica,
            "failed": failed,
            "checks": result.checks,
            "checked_ms_ago": round((time.monotonic() - result.at) * 1000),
        }
        return json_response(body, status=200 if ok else 503)

    # ---- pipelines
    async def create_pipeline(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return json_response({"error": "invalid_json"}, status=400)
        if not isinstance(body, dict):
            return json_response({"error": "body must be a JSON object"}, status=400)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            key = key.strip()
            if not key or len(key) > MAX_IDEMPOTENCY_KEY:
                return json_response({"error": f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} chars"}, status=400)

        burn_cpu(self.cpu_cost_ms())

        pid = uuid.uuid4()
        payload_json = _dumps(body)

        async def publish() -> None:
            message = {"id": str(pid), "payload": body, "served_by": self.s.replica, "idempotency_key": key}
            headers = {"idempotency_key": key} if key else {}
            await self.mq.publish(_dumps(message).encode(), str(pid), headers)

        row, created = await self.pg.create_pipeline(pid, key, payload_json, self.s.replica, publish)
        rid = str(row["id"])
        if not created:
            m.IDEMPOTENT_REPLAYS.inc()
            return json_response({"id": rid, "served_by": row["served_by"], "idempotent_replay": True}, status=200)
        m.PIPELINES_CREATED.inc()
        # Committed: the cache is best effort from here on (a Redis outage must not
        # turn a committed write into an error that invites a duplicate retry).
        await self.redis.cache_set(rid, _dumps({
            "id": rid, "idempotency_key": key, "payload": body,
            "created_at": row["created_at"].isoformat(), "served_by": row["served_by"],
        }).encode())
        return json_response({"id": rid, "served_by": self.s.replica}, status=201,
                             headers={"Location": f"/api/v1/pipeline/{rid}"})

    async def get_pipeline(self, request: web.Request) -> web.Response:
        try:
            pid = uuid.UUID(request.match_info["id"])
        except ValueError:
            return json_response({"error": "not_found"}, status=404)
        cached = await self.redis.cache_get(str(pid))
        if cached is not None:
            m.CACHE_REQUESTS.labels("hit").inc()
            return web.Response(body=cached, content_type="application/json", headers={"X-Cache": "hit"})
        m.CACHE_REQUESTS.labels("miss").inc()
        row = await self.pg.get_pipeline(pid)
        if row is None:
            return json_response({"error": "not_found"}, status=404)
        data = record_json(row)
        await self.redis.cache_set(str(pid), data)
        return web.Response(body=data, content_type="application/json", headers={"X-Cache": "miss"})

    async def count_pipelines(self, request: web.Request) -> web.Response:
        return json_response({"count": await self.pg.count()})

    async def index(self, request: web.Request) -> web.Response:
        return json_response({"service": "conductor", "version": self.s.version,
                              "replica": self.s.replica, "environment": self.s.environment})

    async def metrics(self, request: web.Request) -> web.Response:
        m.CPU_COST_MS.set(self.cpu_cost_ms())
        return web.Response(body=m.generate_latest(), headers={"Content-Type": m.CONTENT_TYPE})

    # ---- admin
    def _authorized(self, request: web.Request) -> None:
        if not self.s.admin_token:
            raise web.HTTPNotFound(text=_dumps({"error": "not_found"}), content_type="application/json")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.s.admin_token.encode()):
            raise web.HTTPUnauthorized(text=_dumps({"error": "unauthorized"}), content_type="application/json",
                                       headers={"WWW-Authenticate": "Bearer"})

    def _fault_view(self) -> dict:
        f = self.faults.active()
        return {"active": f is not None, "faults": f.to_dict() if f else None,
                "effective_cpu_cost_ms": self.cpu_cost_ms(), "replica": self.s.replica}

    async def get_faults(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return json_response(self._fault_view())

    async def put_faults(self, request: web.Request) -> web.Response:
        self._authorized(request)
        try:
            faults = parse_faults(await request.json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return json_response({"error": "invalid_json"}, status=400)
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        self.faults.set(faults)
        log.warning("faults set: %s", _dumps(faults.to_dict()))
        return json_response(self._fault_view())

    async def delete_faults(self, request: web.Request) -> web.Response:
        self._authorized(request)
        self.faults.clear()
        log.warning("faults cleared")
        return json_response(self._fault_view())


# --------------------------------------------------------------------------- middleware

def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def make_middlewares(c: Conductor) -> list:
    @web.middleware
    async def observe(request: web.Request, handler):
        started = time.perf_counter()
        pipeline = request.path.startswith(PIPELINE_PREFIX)
        if pipeline:
            m.ACTIVE_PIPELINE_EXECUTIONS.inc()
        m.HTTP_IN_FLIGHT.inc()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            m.HTTP_IN_FLIGHT.dec()
            if pipeline:
                m.ACTIVE_PIPELINE_EXECUTIONS.dec()
            labels = (request.method, _route_label(request), str(status))
            m.HTTP_REQUESTS.labels(*labels).inc()
            m.HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except DependencyUnavailable as exc:
            return json_response(
                {"error": "dependency_unavailable", "dependency": exc.dependency, "detail": c.redact(exc.reason)},
                status=503, headers={"Retry-After": "1"},
            )
        except Overloaded as exc:
            return json_response({"error": "overloaded", "detail": exc.reason}, status=503,
                                 headers={"Retry-After": "1"})
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return json_response({"error": "internal_error"}, status=500)

    @web.middleware
    async def inject_faults(request: web.Request, handler):
        f = c.faults.active()
        if f is None or request.path.startswith("/admin/") or not f.applies_to(request.path):
            return await handler(request)
        if f.latency_ms > 0:
            m.FAULTS_INJECTED.labels("latency").inc()
            await asyncio.sleep(f.latency_ms / 1000.0)
        if f.error_rate > 0 and random.random() < f.error_rate:
            m.FAULTS_INJECTED.labels("error").inc()
            return json_response({"error": "injected_fault", "status": f.error_status},
                                 status=f.error_status, headers={"X-Fault-Injected": "error"})
        return await handler(request)

    return [observe, errors, inject_faults]


def _served_by(c: Conductor):
    replica = c.s.replica

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Served-By"] = replica
        if c.shutting_down:
            # Draining: ask keep-alive clients to reconnect (to another replica).
            response.force_close()
    return on_prepare


def build_apps(c: Conductor) -> tuple[web.Application, web.Application]:
    app = web.Application(middlewares=make_middlewares(c), client_max_size=1024 * 1024)
    app.on_response_prepare.append(_served_by(c))
    app.router.add_get("/", c.index)
    app.router.add_get("/health/live", c.live)
    app.router.add_get("/health/ready", c.ready)
    app.router.add_get("/metrics", c.metrics)
    app.router.add_post("/api/v1/pipeline", c.create_pipeline)
    app.router.add_get("/api/v1/pipeline/{id}", c.get_pipeline)
    app.router.add_get("/api/v1/pipelines/count", c.count_pipelines)
    app.router.add_get("/admin/faults", c.get_faults)
    app.router.add_put("/admin/faults", c.put_faults)
    app.router.add_delete("/admin/faults", c.delete_faults)

    metrics_app = web.Application()
    metrics_app.on_response_prepare.append(_served_by(c))
    metrics_app.router.add_get("/metrics", c.metrics)
    return app, metrics_app
