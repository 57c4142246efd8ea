"""Which figures of a run are tracked, and the environment they were measured in. Pure: a run's
summary (``harness.report.writer.RunReport.summary``) in, measurements and a fingerprint out.

A tracked metric has a unit, a direction (``lower`` or ``higher`` is better) and a minimum effect:
a change smaller than ``max(min_rel × |baseline median|, min_abs)`` is never called a regression,
however consistent (a 0.1 s RTO drift on a 10 s outage is noise to a platform team, not news).

A measurement is ``valid`` when its scenario reached a verdict (pass or fail) and the value is a
number: an inconclusive or skipped scenario's figures are kept, marked invalid, and never used as a
baseline or judged.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["MetricSpec", "Measurement", "METRICS", "AUDIT_SCENARIO", "FINGERPRINT_SETTINGS", "spec_for",
           "extract_measurements", "fingerprint", "fingerprint_id", "SPEC_DEFAULT"]


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is judged: unit, which way is better, the smallest change worth a regression."""

    unit: str
    direction: str = "lower"        # lower | higher: which way is better
    min_rel: float = 0.10           # minimum effect, relative to the baseline median
    min_abs: float = 0.0            # minimum effect, absolute (for figures near zero: lost writes, RPO)

    def min_effect(self, baseline: float) -> float:
        return max(self.min_rel * abs(baseline), self.min_abs)

    def worse(self, value: float, than: float) -> float:
        """How much worse ``value`` is than ``than`` (positive: worse, in the metric's unit)."""
        return value - than if self.direction == "lower" else than - value


SPEC_DEFAULT = MetricSpec("", "lower", 0.10, 0.0)

# Measurement path (dots into a scenario's measurements) -> spec. Paths ending in "[]" + key read a
# list of trials (the capacity ramps): the metric's value is the scenario's own figure, the trials
# are its samples.
METRICS: dict[str, MetricSpec] = {
    # recovery (chaos, zone loss)
    "rto_s": MetricSpec("s", "lower", 0.10, 1.0),
    "rpo_s": MetricSpec("s", "lower", 0.10, 1.0),
    "loss_window_s": MetricSpec("s", "lower", 0.10, 1.0),
    "lost_writes": MetricSpec("writes", "lower", 0.25, 2.0),
    "rto_phases.detection_s": MetricSpec("s", "lower", 0.15, 0.5),
    "rto_phases.failover_s": MetricSpec("s", "lower", 0.15, 0.5),
    "rto_phases.reconnection_s": MetricSpec("s", "lower", 0.15, 0.5),
    "failover.promote_s": MetricSpec("s", "lower", 0.15, 0.5),      # database failover: pg_promote's own time
    "failover.total_s": MetricSpec("s", "lower", 0.15, 0.5),        # from the kill to the name moved
    "capacity.before_rps": MetricSpec("rps", "higher", 0.10, 0.5),
    "capacity.after_rps": MetricSpec("rps", "higher", 0.10, 0.5),
    "error_budget.failed": MetricSpec("requests", "lower", 0.25, 4.0),
    # load (steady load, HPA, circuit breaker)
    "load.p95_ms": MetricSpec("ms", "lower", 0.15, 5.0),
    "load.rps": MetricSpec("rps", "higher", 0.10, 0.5),
    "load.error_ratio": MetricSpec("ratio", "lower", 0.25, 0.005),
    "load.rps_per_replica": MetricSpec("rps", "higher", 0.10, 0.5),
    # circuit breaker: when Envoy ejected the failing replica and let it back
    "ejection_analysis.first_ejection_s": MetricSpec("s", "lower", 0.15, 1.0),
    "ejection_analysis.first_return_s": MetricSpec("s", "lower", 0.15, 1.0),
    # capacity (one replica: its figure is requests per second per replica)
    "max_sustainable_rps": MetricSpec("rps", "higher", 0.10, 0.5),
    "zone_loss_headroom_rps": MetricSpec("rps", "higher", 0.10, 0.5),
    # configuration audit (scenario "audit")
    "blocking_findings": MetricSpec("findings", "lower", 0.0, 1.0),
    "findings": MetricSpec("findings", "lower", 0.0, 1.0),
}
# Trials behind a figure: path of the list, key of each trial's value.
TRIALS: dict[str, tuple[str, str]] = {"max_sustainable_rps": ("measurement.ramps", "capacity_rps")}
AUDIT_SCENARIO = "audit"

# Settings that shape what is measured. Everything else differs between runs without changing the
# figures (run id, report directory, keep) or is a pass/fail target (rto_target_s: a target moves the
# verdict, not the measurement). zone_failover_delay_s is left out on purpose: it stands for the
# system's own failover time (RDS Multi-AZ), which is what a regression changes, not the harness's.
FINGERPRINT_SETTINGS = (
    "platform", "context", "replicas", "zones", "zone_placement", "postgres_image", "redis_image",
    "rabbitmq_image", "python_image", "conductor_image", "envoy_image", "cpu_cost_ms", "users", "spawn_rate",
    "duration_s", "probe_interval_s", "probe_requests", "outage_s", "replication_lag_s", "settle_s",
    "kill_signal", "backup_interval_s", "decision_s", "drain_timeout_s", "observe_s",
    "chaos_hypothesis_frequency_s", "capacity_repeats", "capacity_step_s", "capacity_warmup_s",
    "capacity_user_rps", "capacity_probe_rps", "capacity_refine_steps", "capacity_max_steps",
    "capacity_delivered_fraction", "capacity_cooldown_s", "mesh",
)
# Facts of the environment (not settings) that shape the figures, when the summary or the host has them.
_PLATFORM_FACTS = ("node_image", "image", "limits", "kubernetes_version", "istio_version", "envoy_version",
                   "nodes")


@dataclass
class Measurement:
    """One figure of one run: scenario, metric, value (None: not measured), unit, direction, trials."""

    scenario: str
    metric: str
    value: float | None
    unit: str
    direction: str
    valid: bool
    samples: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spec_for(metric: str, unit: str = "", direction: str = "") -> MetricSpec:
    """The spec of a tracked metric; a benchmark's own metric gets the default effect with its unit."""
    if metric in METRICS:
        return METRICS[metric]
    return MetricSpec(unit, direction or "lower", SPEC_DEFAULT.min_rel, SPEC_DEFAULT.min_abs)


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _derived(measurements: Mapping[str, Any]) -> dict[str, Any]:
    """Figures computed from what scenarios record (error ratio, rps per replica, ejection times)."""
    out: dict[str, Any] = {}
    load = measurements.get("load")
    if isinstance(load, Mapping):
        requests, failures = _number(load.get("requests")), _number(load.get("failures"))
        if requests:
            out["load.error_ratio"] = (failures or 0.0) / requests
        per_replica = load.get("per_replica")
        rps = _number(load.get("rps"))
        if rps is not None and isinstance(per_replica, Mapping) and per_replica:
            out["load.rps_per_replica"] = rps / len(per_replica)
    ej = measurements.get("ejection_analysis")
    if isinstance(ej, Mapping):
        observed = ej.get("observed") or {}
        starts = [w[0] for ws in observed.values() for w in ws if w and _number(w[0]) is not None]
        ends = [w[1] for ws in observed.values() for w in ws if len(w) > 1 and _number(w[1]) is not None]
        if starts:
            out["ejection_analysis.first_ejection_s"] = min(starts)
        if ends:
            out["ejection_analysis.first_return_s"] = min(ends)
    return out


def extract_measurements(summary: Mapping[str, Any]) -> list[Measurement]:
    """Every tracked figure of a run summary, one ``Measurement`` each (scenarios in order, then the
    configuration audit's counts). Metrics a scenario does not record are absent, not None."""
    out: list[Measurement] = []
    for s in summary.get("scenarios") or []:
        measured = s.get("measurements") or {}
        reached = s.get("verdict") in ("pass", "fail")
        derived = _derived(measured)
        for metric, spec in METRICS.items():
            if metric in derived:
                raw: Any = derived[metric]
            else:
                raw = _dig(measured, metric)
                if raw is None and not _has_path(measured, metric):
                    continue
            if isinstance(raw, Mapping):  # a figure per variant (e.g. per environment): not one series
                continue
            value = _number(raw)
            samples: list[float] = []
            if metric in TRIALS:
                lst, key = TRIALS[metric]
                trials = _dig(measured, lst)
                if isinstance(trials, list):
                    samples = [v for v in (_number(t.get(key)) for t in trials if isinstance(t, Mapping))
                               if v is not None]
            out.append(Measurement(str(s.get("name", "")), metric, value, spec.unit, spec.direction,
                                   reached and value is not None, samples))
    audit = summary.get("audit")
    if isinstance(audit, Mapping) and not audit.get("errors"):
        blocking = _number(audit.get("blocking"))
        total = sum(v for v in (_number(n) for n in (audit.get("counts") or {}).values()) if v is not None)
        for metric, value in (("blocking_findings", blocking), ("findings", total)):
            if value is not None:
                spec = METRICS[metric]
                out.append(Measurement(AUDIT_SCENARIO, metric, value, spec.unit, spec.direction, True))
    return out


def _has_path(data: Any, path: str) -> bool:
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return isinstance(data, Mapping) and parts[-1] in data


def fingerprint(summary: Mapping[str, Any], facts: Mapping[str, Any] | None = None,
                keys: Sequence[str] = FINGERPRINT_SETTINGS) -> dict[str, Any]:
    """The stable configuration a run was measured in: its platform, the settings that shape the
    figures, the platform's versions and images, plus ``facts`` of the host (CPU count, harness
    version, seed hash, image digests). Never a measured value."""
    settings = summary.get("settings") or {}
    fp: dict[str, Any] = {"kind": "run", "settings": {k: settings.get(k) for k in keys if k in settings}}
    fp["settings"].setdefault("platform", summary.get("platform"))
    platform = (summary.get("environment") or {}).get("platform") or {}
    if isinstance(platform, Mapping):
        fp["platform"] = {k: platform[k] for k in _PLATFORM_FACTS if k in platform}
    fp.update({k: v for k, v in (facts or {}).items()})
    return fp


def fingerprint_id(fp: Mapping[str, Any]) -> str:
    """A short stable id of a fingerprint (sha256 of its canonical JSON, 12 hex digits)."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:12]

