"""Backing services from testcontainers on one dedicated, labeled Docker network."""
from harness.stack.services import (
    MotoService, PostgresService, RabbitMqService, RedisService, Stack, loopback_ports,
)

__all__ = ["Stack", "PostgresService", "RedisService", "RabbitMqService", "MotoService", "loopback_ports"]
