"""Postgres, Redis, RabbitMQ (the seed's development stack) and a moto server, as testcontainers.

One class per resource; ``with`` gives guaranteed teardown. Every container and the network carry
the run's labels; ports are published on 127.0.0.1 only; other containers reach each service by
its network alias (``postgres``, ``redis``, ``rabbitmq``, ``moto``), which is how the deployment's
URLs name them.
"""
from __future__ import annotations

import logging
import secrets
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.rabbitmq import RabbitMqContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from harness.config import Settings
from harness.docker_env import docker_client, ensure_image
from harness.labels import STANDBY_ZONE_LABEL, ZONE_LABEL, labels_for
from harness.placement import placement_for
from harness.wait import wait_for

__all__ = ["Stack", "PostgresService", "RedisService", "RabbitMqService", "MotoService", "loopback_ports"]

log = logging.getLogger(__name__)
logging.getLogger("pika").setLevel(logging.CRITICAL)  # its retries while RabbitMQ boots are expected, not errors
MOTO_IMAGE = "i2s-harness/moto"
_IMAGES_DIR = Path(__file__).parent / "images"


def loopback_ports(container: DockerContainer, *ports: int) -> None:
    """Publish ``ports`` on 127.0.0.1 only (random host ports), replacing testcontainers' 0.0.0.0."""
    container.ports = {f"{p}/tcp": ("127.0.0.1", None) for p in ports}  # type: ignore[misc]  # testcontainers types ports as int | None; docker-py also takes (address, port)


class _Service(DockerContainer):
    """Mixin for testcontainers' containers: run labels, network alias, and the two URLs every service offers."""

    alias: str
    container_port: int

    def _join(self, settings: Settings, network: Network | None, role: str, **zones: str) -> None:
        # ``zones``: the container's zone (and a database's standby zone) from harness.placement.
        labels = {"i2s-harness.role": role, **{k: v for k, v in (
            (ZONE_LABEL, zones.get("zone", "")), (STANDBY_ZONE_LABEL, zones.get("standby_zone", ""))) if v}}
        self.with_kwargs(labels=labels_for(settings.run_id, **labels))
        self.with_name(f"i2s-{settings.run_id}-{self.alias}")
        if network is not None:
            self.with_network(network).with_network_aliases(self.alias)
        loopback_ports(self, self.container_port)

    @property
    def host_port(self) -> int:
        return int(self.get_exposed_port(self.container_port))


class PostgresService(_Service, PostgresContainer):
    """Postgres 15 with a per-run random password (never logged)."""

    alias = "postgres"
    container_port = 5432

    def __init__(self, settings: Settings, network: Network | None = None, alias: str = "postgres",
                 dbname: str = "i2s_staging", password: str | None = None, zone: str = "",
                 standby_zone: str = "", **kwargs: Any):
        self.alias = alias
        super().__init__(settings.postgres_image, username="postgres",
                         password=password or secrets.token_urlsafe(16), dbname=dbname, driver=None, **kwargs)
        self._join(settings, network, "postgres", zone=zone, standby_zone=standby_zone)

    def in_network_url(self, host: str | None = None) -> str:
        return f"postgresql://{self.username}:{self.password}@{host or self.alias}:5432/{self.dbname}"

    def host_url(self) -> str:
        return f"postgresql://{self.username}:{self.password}@127.0.0.1:{self.host_port}/{self.dbname}"

    def connect(self, **kwargs: Any):
        import psycopg

        return psycopg.connect(self.host_url(), connect_timeout=5, **kwargs)


class RedisService(_Service, RedisContainer):
    """Redis 7 with an append-only file, as the seed's development stack runs it."""

    alias = "redis"
    container_port = 6379

    def __init__(self, settings: Settings, network: Network | None = None, zone: str = "", **kwargs: Any):
        super().__init__(settings.redis_image, **kwargs)
        self.with_command("redis-server --appendonly yes")
        self._join(settings, network, "redis", zone=zone)

    def in_network_url(self) -> str:
        return f"redis://{self.alias}:6379/0"

    def host_url(self) -> str:
        return f"redis://127.0.0.1:{self.host_port}/0"

    def get_client(self, **kwargs: Any):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.host_port, socket_timeout=5, **kwargs)


class RabbitMqService(_Service, RabbitMqContainer):
    """RabbitMQ 3 with the management plugin, per-run credentials."""

    alias = "rabbitmq"
    container_port = 5672

    def __init__(self, settings: Settings, network: Network | None = None, zone: str = "", **kwargs: Any):
        super().__init__(settings.rabbitmq_image, username="i2s", password=secrets.token_urlsafe(16), **kwargs)
        self._join(settings, network, "rabbitmq", zone=zone)

    def in_network_url(self) -> str:
        return f"amqp://{self.username}:{self.password}@{self.alias}:5672/%2F"

    def host_url(self) -> str:
        return f"amqp://{self.username}:{self.password}@127.0.0.1:{self.host_port}/%2F"

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (passive declare; 0 if the queue does not exist yet)."""
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(self.host_url()))
        try:
            ch = conn.channel()
            try:
                return ch.queue_declare(queue=queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                return 0
        finally:
            if conn.is_open:
                conn.close()


class MotoService(_Service, DockerContainer):
    """A moto server: S3 and Secrets Manager for backups and credentials, reachable from containers."""

    alias = "moto"
    container_port = 5000

    def __init__(self, settings: Settings, network: Network | None = None, **kwargs: Any):
        super().__init__(ensure_image(MOTO_IMAGE, _IMAGES_DIR / "moto"), **kwargs)
        self._join(settings, network, "moto")

    def start(self) -> "MotoService":
        super().start()
        wait_for(lambda: urllib.request.urlopen(self.host_url() + "/moto-api/", timeout=2).status == 200,
                 timeout=60, describe="the moto server to answer", hint="see the moto container's log")
        return self

    def in_network_url(self) -> str:
        return f"http://{self.alias}:5000"

    def host_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"


class Stack:
    """The backing services on one labeled network. ``with Stack(settings) as stack:``."""

    def __init__(self, settings: Settings, *, with_moto: bool = False):
        self.settings = settings
        docker_client()  # one clear line if Docker is not reachable, before anything is created
        self.network = Network(docker_network_kw={"labels": labels_for(settings.run_id)})
        self.network.name = f"i2s-{settings.run_id}"
        # Zones per harness.placement (the database pair in two zones, Redis/RabbitMQ in one); moto
        # stands in for regional AWS services and has no zone.
        self.placement = placement_for(settings)
        p = self.placement
        self.postgres = PostgresService(settings, self.network, zone=p.database_primary,
                                        standby_zone=p.database_standby)
        self.redis = RedisService(settings, self.network, zone=p.redis)
        self.rabbitmq = RabbitMqService(settings, self.network, zone=p.rabbitmq)
        self.moto = MotoService(settings, self.network) if with_moto else None
        self._started: list[_Service] = []

    @property
    def services(self) -> list[_Service]:
        return [s for s in (self.postgres, self.redis, self.rabbitmq, self.moto) if s is not None]

    def start(self) -> "Stack":
        t0 = time.monotonic()
        self.network.create()
        try:
            # RabbitMQ takes longest; start all at once so the stack is up in the time of the slowest.
            with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
                futures = {pool.submit(s.start): s for s in self.services}
                errors = []
                for fut, svc in futures.items():
                    try:
                        fut.result()
                        self._started.append(svc)
                    except Exception as exc:  # noqa: BLE001 - collect, then clean up everything
                        errors.append(f"{svc.alias}: {exc}")
                        self._started.append(svc)
                if errors:
                    raise RuntimeError("; ".join(errors))
        except BaseException:
            self.stop()
            raise
        log.info("stack up in %.1fs on network %s", time.monotonic() - t0, self.network.name)
        return self

    def stop(self) -> None:
        for svc in self._started:
            try:
                svc.stop()
            except Exception as exc:  # noqa: BLE001 - removal of the rest must go on
                log.warning("could not stop %s: %s", svc.alias, exc)
        self._started.clear()
        try:
            self.network.remove()
        except Exception as exc:  # noqa: BLE001 - the run sweep removes it by label
            log.debug("network removal: %s", exc)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def app_env(self) -> dict[str, str]:
        """The URLs the deployment provides to the conductor (secret values: never log these)."""
        return {
            "DATABASE_URL": self.postgres.in_network_url(),
            "REDIS_URL": self.redis.in_network_url(),
            "RABBITMQ_URL": self.rabbitmq.in_network_url(),
        }
