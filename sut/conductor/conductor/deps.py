"""Clients for Postgres, Redis and RabbitMQ that survive outages.

Common rules:
  * every operation is bounded by a short timeout, so a request fails within seconds;
  * a connection that failed (or timed out) is thrown away, never reused, and new
    connections are made by host name, so a moved DNS name is followed;
  * a circuit breaker per dependency turns a run of failures into immediate 503s;
  * the readiness checks bypass the breakers and close them again on success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import aio_pika
import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from yarl import URL

from . import metrics as m
from .breaker import Breaker
from .config import Settings
from .lag import LagMonitor

log = logging.getLogger("conductor.deps")


class DependencyUnavailable(Exception):
    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency}: {reason}")
        self.dependency = dependency
        self.reason = reason


class Overloaded(Exception):
    """This replica is saturated (pool exhausted, event loop stalled): not a dependency fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


# Errors that say "this connection / server is not usable", as opposed to SQL errors.
PG_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a demoted primary after failover
)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS pipelines (
    id              uuid PRIMARY KEY,
    idempotency_key text UNIQUE,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    served_by       text
)
"""
SCHEMA_LOCK_ID = 724105510  # pg_advisory_xact_lock key: serialises concurrent replicas


def _terminate(con: Any) -> None:
    """Abort a connection without waiting; harmless if it is already closed or released."""
    try:
        con.terminate()
    except Exception:
        pass


def _update_breaker_metric(breaker: Breaker) -> None:
    m.BREAKER_OPEN.labels(breaker.name).set(1 if breaker.state == "open" else 0)


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings, lag: LagMonitor) -> None:
        self.s = settings
        self.lag = lag
        self.breaker = Breaker(self.name, settings.breaker_threshold, settings.breaker_cooldown_s)
        self.pool: asyncpg.Pool | None = None
        # Requests queue here for a pool slot; waiting too long is overload, not an outage.
        self._slots = asyncio.Semaphore(settings.db_pool_max)
        self._health_con: asyncpg.Connection | None = None
        self._schema_ok = False

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "timeout": self.s.db_connect_timeout_s,
            "command_timeout": self.s.db_timeout_s,
            "server_settings": {"application_name": f"conductor:{self.s.replica}"[:63]},
        }

    async def start(self) -> None:
        # min_size=0: creating the pool does not connect, so start-up never blocks on
        # the database; holders connect (resolving the host name anew) on demand.
        self.pool = await asyncpg.create_pool(
            self.s.database_url,
            min_size=0,
            max_size=self.s.db_pool_max,
            max_inactive_connection_lifetime=60.0,
            **self._connect_kwargs(),
        )

    async def close(self) -> None:
        if self._health_con is not None:
            _terminate(self._health_con)
            self._health_con = None
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=3)
            except Exception:
                self.pool.terminate()

    async def _connection_failed(self, exc: BaseException, operation: str) -> None:
        if self.breaker.failure():
            log.warning("postgres circuit opened after %d failures (last: %s %s)",
                        self.breaker.failures, operation, describe(exc))
        _update_breaker_metric(self.breaker)
        m.DEPENDENCY_ERRORS.labels(self.name, operation).inc()
        if self.pool is not None:
            # Every other pooled connection probably points at the same dead server
            # (or the old address of a moved name): replace them all.
            await self.pool.expire_connections()
        log.debug("postgres %s failed: %s", operation, describe(exc))

    def _overloaded(self, exc: BaseException) -> bool:
        return isinstance(exc, (asyncio.TimeoutError, TimeoutError)) and self.lag.lagging()

    @asynccontextmanager
    async def connection(self, operation: str) -> AsyncIterator[asyncpg.Connection]:
        assert self.pool is not None
        try:
            async with asyncio.timeout(self.s.db_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            m.OVERLOAD_REJECTIONS.labels("postgres_pool_exhausted").inc()
            raise Overloaded(f"no postgres connection free within {self.s.db_timeout_s:.1f}s") from None
        try:
            if not self.breaker.allow():
                raise DependencyUnavailable(self.name, "circuit open after repeated failures")
            try:
                con = await self.pool.acquire(timeout=self.s.db_connect_timeout_s + 0.5)
            except PG_CONNECTION_ERRORS as exc:
                if self._overloaded(exc):
                    self.breaker.abandon_probe()
                    m.OVERLOAD_REJECTIONS.labels("event_loop_lag").inc()
                    raise Overloaded(
                        f"postgres connect timed out during event-loop lag ({self.lag.recent():.2f}s)"
                    ) from exc
                await self._connection_failed(exc, operation)
                raise DependencyUnavailable(self.name, describe(exc)) from exc
            except BaseException:
                self.breaker.abandon_probe()
                raise
            verdict: str | None = "success"
            try:
                yield con
            except PG_CONNECTION_ERRORS as exc:
                _terminate(con)  # never reuse a connection that failed or timed out
                if self._overloaded(exc):
                    verdict = None
                    m.OVERLOAD_REJECTIONS.labels("event_loop_lag").inc()
                    raise Overloaded(
                        f"postgres {operation} timed out during event-loop lag ({self.lag.recent():.2f}s)"
                    ) from exc
                verdict = "failure"
                await self._connection_failed(exc, operation)
                raise DependencyUnavailable(self.name, describe(exc)) from exc
            except asyncio.CancelledError:
                verdict = None
                _terminate(con)  # state of the wire protocol unknown
                raise
            finally:
                if verdict == "success":
                    self.breaker.success()
                    _update_breaker_metric(self.breaker)
                elif verdict is None:
                    self.breaker.abandon_probe()
                try:
                    await self.pool.release(con, timeout=1.0)
                except Exception:
                    _terminate(con)
        finally:
            self._slots.release()

    async def ensure_schema(self, con: asyncpg.Connection) -> None:
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_ID)
            await con.execute(SCHEMA_SQL)
        if not self._schema_ok:
            log.info("postgres schema ensured (table pipelines)")
        self._schema_ok = True

    async def _with_schema_retry(self, operation: str, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with self.connection(operation) as con:
            try:
                return await fn(con)
            except asyncpg.exceptions.UndefinedTableError:
                # E.g. the name "postgres" now points at a fresh server: recreate and retry once.
                log.warning("table pipelines missing; recreating it")
                self._schema_ok = False
                await self.ensure_schema(con)
                return await fn(con)

    async def create_pipeline(
        self,
        pid: uuid.UUID,
        idempotency_key: str | None,
        payload_json: str,
        served_by: str,
        publish: Callable[[], Awaitable[None]],
    ) -> tuple[asyncpg.Record, bool]:
        """Insert + publish inside one transaction. Returns (row, created)."""

        async def work(con: asyncpg.Connection) -> tuple[asyncpg.Record, bool]:
            async with con.transaction():
                row = await con.fetchrow(
                    "INSERT INTO pipelines (id, idempotency_key, payload, served_by) "
                    "VALUES ($1, $2, $3::jsonb, $4) "
                    "ON CONFLICT (idempotency_key) DO NOTHING "
                    "RETURNING id, served_by, created_at",
                    pid, idempotency_key, payload_json, served_by,
                )
                if row is None:
                    # Key already used (possibly by a concurrent request that just
                    # committed: ON CONFLICT waited for it). Nothing is written.
                    existing = await con.fetchrow(
                        "SELECT id, served_by, created_at FROM pipelines WHERE idempotency_key = $1",
                        idempotency_key,
                    )
                    if existing is None:  # the other writer rolled back in between
                        raise DependencyUnavailable(self.name, "idempotency key conflict, retry")
                    return existing, False
                # Publish before COMMIT: a failed publish rolls the row back, so a 2xx
                # always means "row committed and message confirmed by the broker".
                await publish()
            return row, True

        return await self._with_schema_retry("insert", work)

    async def get_pipeline(self, pid: uuid.UUID) -> asyncpg.Record | None:
        async def work(con: asyncpg.Connection) -> asyncpg.Record | None:
            return await con.fetchrow(
                "SELECT id, idempotency_key, payload, created_at, served_by FROM pipelines WHERE id = $1",
                pid,
            )

        return await self._with_schema_retry("select", work)

    async def count(self) -> int:
        async def work(con: asyncpg.Connection) -> int:
            return await con.fetchval("SELECT count(*) FROM pipelines")

        return await self._with_schema_retry("count", work)

    async def check(self) -> None:
        """Live check on a dedicated connection (not the request pool, so a busy pool
        does not make the replica unready). Also (re)creates the schema if missing."""
        con = self._health_con
        try:
            if con is None or con.is_closed():
                self._health_con = None
                con = await asyncpg.connect(self.s.database_url, **self._connect_kwargs())
                self._health_con = con
            row = await con.fetchrow(
                "SELECT pg_is_in_recovery() AS recovery, "
                "to_regclass('public.pipelines') IS NOT NULL AS has_table"
            )
            if row["recovery"]:
                raise DependencyUnavailable(self.name, "server is a read-only standby (in recovery)")
            if not row["has_table"]:
                await self.ensure_schema(con)
            self._schema_ok = True
        except BaseException:
            # Never reuse a health connection that failed or timed out.
            if self._health_con is not None:
                _terminate(self._health_con)
                self._health_con = None
            m.DEPENDENCY_ERRORS.labels(self.name, "check").inc()
            raise
        # The server answers: let requests through again right away.
        if self.breaker.failures:
            self.breaker.success()
            _update_breaker_metric(self.breaker)


class Redis:
    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.breaker = Breaker(self.name, settings.breaker_threshold, settings.breaker_cooldown_s)
        # One retry on a fresh connection covers pooled connections killed by a restart.
        self.client = aioredis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), 1),
            max_connections=256,
            client_name=f"conductor:{settings.replica}"[:60].replace(" ", "_"),
        )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.client.aclose(), timeout=2)
        except Exception:
            pass

    def _failed(self, exc: BaseException, operation: str) -> None:
        if self.breaker.failure():
            log.warning("redis circuit opened after %d failures (last: %s %s); cache bypassed",
                        self.breaker.failures, operation, describe(exc))
        _update_breaker_metric(self.breaker)
        m.DEPENDENCY_ERRORS.labels(self.name, operation).inc()
        log.debug("redis %s failed: %s", operation, describe(exc))

    async def _op(self, operation: str, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        """Best-effort cache operation: returns None (and counts) instead of raising."""
        if not self.breaker.allow():
            return None
        try:
            async with asyncio.timeout(self.s.redis_timeout_s * 2):
                result = await coro_fn()
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc, operation)
            return None
        except asyncio.CancelledError:
            self.breaker.success()
            raise
        self.breaker.success()
        return result

    async def cache_get(self, pid: str) -> bytes | None:
        return await self._op("get", lambda: self.client.get(f"pipeline:{pid}"))

    async def cache_set(self, pid: str, record_json: bytes) -> None:
        await self._op("set", lambda: self.client.set(f"pipeline:{pid}", record_json, ex=self.s.cache_ttl_s))

    async def check(self) -> None:
        try:
            await self.client.ping()
        except (TimeoutError, RedisError, OSError):
            m.DEPENDENCY_ERRORS.labels(self.name, "check").inc()
            raise
        if self.breaker.failures:
            self.breaker.success()
            _update_breaker_metric(self.breaker)


class RabbitMQ:
    name = "rabbitmq"

    def __init__(self, settings: Settings, lag: LagMonitor) -> None:
        self.s = settings
        self.lag = lag
        self.breaker = Breaker(self.name, settings.breaker_threshold, settings.breaker_cooldown_s)
        url = URL(settings.rabbitmq_url)
        if "heartbeat" not in url.query:
            url = url.update_query(heartbeat=10)  # detect silently dead peers within ~20 s
        self._url = url
        self._conn: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._silent_checks = 0

    def _usable(self) -> bool:
        return (
            self._conn is not None and not self._conn.is_closed
            and self._channel is not None and not self._channel.is_closed
        )

    async def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=1)
            except BaseException:
                pass

    async def _ensure_channel(self) -> aio_pika.abc.AbstractChannel:
        if self._usable():
            return self._channel  # type: ignore[return-value]
        async with self._lock:
            if self._usable():
                return self._channel  # type: ignore[return-value]
            await self._drop()
            conn = await aio_pika.connect(
                self._url,
                timeout=self.s.mq_timeout_s,
                client_properties={"connection_name": f"conductor:{self.s.replica}"},
            )
            try:
                channel = await conn.channel(publisher_confirms=True)
                await channel.declare_queue(self.s.queue_name, durable=True)
            except BaseException:
                await asyncio.shield(self._close_quietly(conn))
                raise
            self._conn, self._channel = conn, channel
            log.info("rabbitmq connected, queue %s declared", self.s.queue_name)
            return channel

    @staticmethod
    async def _close_quietly(conn: aio_pika.abc.AbstractConnection) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=1)
        except BaseException:
            pass

    async def close(self) -> None:
        await self._drop()

    async def _publish_failed(self, exc: BaseException) -> None:
        if self.breaker.failure():
            log.warning("rabbitmq circuit opened after %d failures (last: publish %s)",
                        self.breaker.failures, describe(exc))
        _update_breaker_metric(self.breaker)
        m.DEPENDENCY_ERRORS.labels(self.name, "publish").inc()
        await self._drop()
        raise DependencyUnavailable(self.name, describe(exc)) from exc

    async def publish(self, body: bytes, message_id: str, headers: dict[str, Any]) -> None:
        if not self.breaker.allow():
            raise DependencyUnavailable(self.name, "circuit open after repeated failures")
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
            app_id="conductor",
            headers=headers,
            timestamp=datetime.now(timezone.utc),
        )
        try:
            async with asyncio.timeout(self.s.mq_timeout_s):
                channel = await self._ensure_channel()
                # mandatory: an unroutable message (queue deleted) is an error, not a loss;
                # publisher confirms: returns only once the broker has taken responsibility.
                await channel.default_exchange.publish(message, routing_key=self.s.queue_name, mandatory=True)
        except asyncio.CancelledError:
            self.breaker.abandon_probe()
            raise
        except TimeoutError as exc:
            if self.lag.lagging():
                # Our loop stalled, the broker did not: keep the connection (dropping it
                # would fail every other in-flight publish too).
                self.breaker.abandon_probe()
                m.OVERLOAD_REJECTIONS.labels("event_loop_lag").inc()
                raise Overloaded(
                    f"rabbitmq publish timed out during event-loop lag ({self.lag.recent():.2f}s)"
                ) from exc
            await self._publish_failed(exc)
        except Exception as exc:  # aio-pika/aiormq raise a wide variety of types
            await self._publish_failed(exc)
        self.breaker.success()
        m.MESSAGES_PUBLISHED.inc()

    async def check(self) -> None:
        try:
            channel = await self._ensure_channel()
            # A real round trip: (re)declaring the durable queue is idempotent.
            await channel.declare_queue(self.s.queue_name, durable=True)
        except asyncio.CancelledError:
            # The readiness timeout fired. Under CPU saturation that can be event-loop
            # lag on a healthy connection, so drop the connection (and with it the
            # in-flight publishes) only after several silent checks in a row.
            m.DEPENDENCY_ERRORS.labels(self.name, "check").inc()
            if not self.lag.lagging():
                self._silent_checks += 1
            if self._silent_checks >= 3:
                self._silent_checks = 0
                await asyncio.shield(self._drop())
            raise
        except Exception:
            m.DEPENDENCY_ERRORS.labels(self.name, "check").inc()
            await self._drop()
            raise
        self._silent_checks = 0
        if self.breaker.failures:
            self.breaker.success()
            _update_breaker_metric(self.breaker)


def record_json(row: asyncpg.Record) -> bytes:
    return json.dumps(
        {
            "id": str(row["id"]),
            "idempotency_key": row["idempotency_key"],
            "payload": json.loads(row["payload"]),
            "created_at": row["created_at"].isoformat(),
            "served_by": row["served_by"],
        },
        separators=(",", ":"),
    ).encode()


__all__ = ["DependencyUnavailable", "Overloaded", "Postgres", "RabbitMQ", "Redis", "describe", "record_json"]
