"""Fast tests of the reference conductor that need no containers.

The end-to-end checks against real Postgres/Redis/RabbitMQ live in ../verify.sh."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conductor.breaker import Breaker  # noqa: E402
from conductor.config import Redactor, Settings, mask_url, replica_name  # noqa: E402
from conductor.faults import FaultState, parse_faults  # noqa: E402


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql://i2s:s3cr%40t@db:5432/i2s") == "postgresql://i2s:***@db:5432/i2s"
    assert mask_url("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert mask_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_redactor_masks_urls_bearer_tokens_and_known_secrets():
    r = Redactor(["tok-123456", "hunter22"])
    out = r("connect amqp://u:hunter22@mq:5672/ failed; Authorization: Bearer tok-123456; raw hunter22")
    assert "hunter22" not in out and "tok-123456" not in out
    assert "amqp://u:***@mq:5672/" in out


def test_settings_collect_secrets(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:dbpass@h/d")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://a:mqpass@h/")
    monkeypatch.setenv("ADMIN_TOKEN", "admintoken")
    assert set(Settings.from_env().secrets()) >= {"dbpass", "mqpass", "admintoken"}


def test_replica_name_precedence(monkeypatch):
    monkeypatch.delenv("REPLICA_NAME", raising=False)
    monkeypatch.setenv("POD_NAME", "conductor-abc")
    assert replica_name() == "conductor-abc"
    monkeypatch.setenv("REPLICA_NAME", "r1")
    assert replica_name() == "r1"


def test_fault_parsing_defaults_and_validation():
    f = parse_faults({"error_status": 502})
    assert (f.error_status, f.error_rate, f.paths) == (502, 1.0, ["/api/"])
    assert parse_faults({"latency_ms": 10}).error_rate == 0.0
    assert parse_faults({"error_status": 503, "error_rate": 0.25}).error_rate == 0.25
    for bad in ({"error_rate": 2}, {"error_status": 200}, {"paths": ["x"]}, {"nope": 1},
                {"fail_readiness": "yes"}, [1], {"latency_ms": True}):
        with pytest.raises(ValueError):
            parse_faults(bad)


class _Clock:
    """A monotonic clock the test moves: expiry and cooldown are checked against what the code
    decided, not against how long a busy machine took between two lines."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    import conductor.breaker
    import conductor.faults

    c = _Clock()
    monkeypatch.setattr(conductor.faults, "time", c)
    monkeypatch.setattr(conductor.breaker, "time", c)
    return c


def test_fault_ttl_expires(clock):
    state = FaultState()
    state.set(parse_faults({"error_status": 503, "ttl_s": 0.05}))
    clock.now += 0.049
    assert state.active() is not None
    clock.now += 0.002
    assert state.active() is None


def test_breaker_opens_then_lets_one_probe_through(clock):
    b = Breaker("x", threshold=2, cooldown_s=0.05)
    assert b.allow() and not b.failure() and b.allow()
    assert b.failure() and b.state == "open" and not b.allow()
    clock.now += 0.049
    assert b.state == "open" and not b.allow()
    clock.now += 0.002
    assert b.allow() and not b.allow()  # one probe at a time
    b.success()
    assert b.state == "closed" and b.allow()


def test_app_without_dependencies(monkeypatch):
    """Dependencies unreachable: live 200, ready 503 naming all three, POST fails fast, admin off."""
    pytest.importorskip("aiohttp")
    pytest.importorskip("asyncpg")
    from aiohttp.test_utils import TestClient, TestServer

    from conductor.app import Conductor, build_apps

    for key, url in (("DATABASE_URL", "postgresql://u:pw@127.0.0.1:1/db"),
                     ("REDIS_URL", "redis://127.0.0.1:1/0"),
                     ("RABBITMQ_URL", "amqp://u:pw@127.0.0.1:1/")):
        monkeypatch.setenv(key, url)
    monkeypatch.setenv("REPLICA_NAME", "unit-0")
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)

    async def run():
        settings = Settings.from_env()
        c = Conductor(settings, Redactor(settings.secrets()))
        app, _ = build_apps(c)
        await c.start()
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            r = await client.get("/health/live")
            assert r.status == 200 and r.headers["X-Served-By"] == "unit-0"
            r = await client.get("/health/ready")
            body = await r.json()
            assert r.status == 503 and set(body["failed"]) == {"postgres", "redis", "rabbitmq"}
            started = time.monotonic()
            r = await client.post("/api/v1/pipeline", data=json.dumps({"name": "x"}))
            assert r.status == 503 and (await r.json())["dependency"] == "postgres"
            # Refused at once, not after waiting: within the conductor's own connect + statement
            # timeouts (what the code decided), whatever the machine's load.
            assert time.monotonic() - started < settings.db_connect_timeout_s + settings.db_timeout_s
            assert (await client.get("/admin/faults")).status == 404
            text = await (await client.get("/metrics")).text()
            assert "active_pipeline_executions" in text and 'conductor_replica_info{' in text
        finally:
            await client.close()
            await c.stop()

    asyncio.run(run())
