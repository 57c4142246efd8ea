"""Check an observed HPA trajectory against the upstream controller's rules.

``check_trajectory(manifest, samples)`` takes an HPA manifest (autoscaling/v2 dict or a
parsed ``HPASpec``) and what was observed over time -- per sample the time ``t`` (s), the
desired replicas (HPA ``status.desiredReplicas`` or the Deployment's ``spec.replicas``), and
optionally current/ready replicas and metric values -- and verifies:

(i)   ``envelope``: the replicas stay inside the band a faithful controller could show
      (``hpa.envelope`` fed with the load implied by the observed metrics);
(ii)  ``late``: the expected replicas are reached in time (below the band while the
      nominal controller is above the observed value);
(iii) ``bounds``: never above maxReplicas nor below minReplicas;
(iv)  ``scale_up_rate``: no faster than the scaleUp policies allow
      (``calculateScaleUpLimitWithScalingRules`` over the observed history);
(v)   ``scale_down_stabilization`` / ``scale_down_rate``: no scale-down while a recommendation
      inside the stabilization window was higher, and no faster than the scaleDown policies;
(vi)  ``stuck_below_target``: not held below what the metric demands for longer than the
      scale-up window, the longest policy period and the reaction allowance allow.

Every rule is applied permissively: where samples are coarser than the controller's sync
period, the change is assumed to have happened at the moment that favours the observed
system, and metric-based rules allow for the reaction allowance (metrics lag + sync).
Observed metric values are keyed by ``MetricSpec.key`` (``cpu``, ``memory``, the metric
name): utilization % for Utilization targets, the per-pod average for other Resource/Pods
targets, and the metric's value (total) for Object and External metrics.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from harness.oracles import hpa
from harness.oracles.hpa import HPAOracleError, HPASpec, ScalingRules

__all__ = ["ObservedSample", "ReactionAllowance", "Deviation", "TrajectoryResult", "check_trajectory",
           "load_from_samples", "recommendation_from_sample", "CHECKS", "Trajectory", "observe", "CheckOutcome",
           "check_bounds", "check_scale_up_rate", "check_scale_down_rate", "check_scale_down_stabilization",
           "check_stuck_below_target", "faithful_band", "check_late", "check_envelope"]

CHECKS = ("bounds", "scale_up_rate", "scale_down_stabilization", "scale_down_rate", "stuck_below_target",
          "late", "envelope")


@dataclass(frozen=True)
class ObservedSample:
    """One observation. ``metrics`` maps a metric key to the observed value (see module doc)."""

    t: float
    desired: int
    current: Optional[int] = None
    ready: Optional[int] = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a None value means "not observed": drop it so every reader sees a plain float
        if any(v is None for v in self.metrics.values()):
            object.__setattr__(self, "metrics", {k: v for k, v in self.metrics.items() if v is not None})

    @staticmethod
    def coerce(obj: Union["ObservedSample", Mapping[str, Any]], i: int) -> "ObservedSample":
        if isinstance(obj, ObservedSample):
            return obj
        if not isinstance(obj, Mapping):
            raise HPAOracleError(f"sample {i} is {type(obj).__name__}", "pass ObservedSample or a dict with t and desired")
        if "t" not in obj or "desired" not in obj:
            raise HPAOracleError(f"sample {i} lacks {'t' if 't' not in obj else 'desired'}",
                                 "give every sample its time t (s) and desired replicas")
        unknown = set(obj) - {"t", "desired", "current", "ready", "metrics"}
        if unknown:
            raise HPAOracleError(f"sample {i} has unknown field {sorted(unknown)[0]!r}",
                                 "use t, desired, current, ready and metrics")
        return ObservedSample(float(obj["t"]), int(obj["desired"]),
                              None if obj.get("current") is None else int(obj["current"]),
                              None if obj.get("ready") is None else int(obj["ready"]),
                              {k: float(v) for k, v in (obj.get("metrics") or {}).items() if v is not None})


@dataclass(frozen=True)
class ReactionAllowance:
    """How late a faithful controller may react: ``metrics_lag`` (metrics-server scrape
    resolution) plus ``sync_period``; Ready replicas lag a further ``pod_startup``."""

    metrics_lag: float = hpa.DEFAULT_METRIC_WINDOW
    sync_period: float = hpa.DEFAULT_SYNC_PERIOD
    pod_startup: float = 30.0

    @property
    def total(self) -> float:
        return self.metrics_lag + self.sync_period


@dataclass(frozen=True)
class Deviation:
    """One broken rule at time ``t``: ``kind`` is one of ``CHECKS``."""

    kind: str
    t: float
    message: str
    observed: Optional[int] = None
    allowed_lo: Optional[int] = None
    allowed_hi: Optional[int] = None


@dataclass
class TrajectoryResult:
    """``ok`` is True when no rule is broken; ``checks`` says per rule passed/failed/skipped."""

    ok: bool
    deviations: List[Deviation]
    explanation: str
    checks: Dict[str, str]
    samples: int
    expected: List[Tuple[float, int, int, int]] = field(default_factory=list)  # (t, expected, lo, hi)

    def kinds(self) -> List[str]:
        return sorted({d.kind for d in self.deviations})

    def to_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "explanation": self.explanation, "checks": dict(self.checks),
                "samples": self.samples, "deviations": [asdict(d) for d in self.deviations],
                "expected": [list(e) for e in self.expected]}


def _fmt_t(t: float) -> str:
    return f"{t:g}s"


def _count(s: ObservedSample) -> int:
    """The pods the controller counts: Ready if observed, else current, else desired."""
    for v in (s.ready, s.current, s.desired):
        if v is not None:
            return v
    return s.desired


def recommendation_from_sample(spec: HPASpec, s: ObservedSample, tolerances: hpa.Tolerances) -> Tuple[Optional[int], str]:
    """The controller's unstabilized recommendation implied by a sample's metrics.

    Per metric as in ``replica_calculator.go`` (``ceil(ratio * readyPods)``, current when
    within tolerance; ``ceil(total / target)`` for AverageValue Object/External targets),
    then the maximum over the observed metrics. Returns ``(None, "")`` without metrics.
    """
    best: Optional[int] = None
    why = ""
    current = s.current if s.current is not None else s.desired
    for m in spec.metrics:
        if m.key not in s.metrics:
            continue
        v = float(s.metrics[m.key])
        t = m.target
        if m.type in ("Object", "External") and t.type == "AverageValue":
            status = current
            ratio = v * 1000 / (t.average_value * status) if status else math.inf  # type: ignore[operator]
            rec = current if tolerances.is_within(ratio) else math.ceil(v * 1000 / t.average_value)  # type: ignore[operator]
            want = f"{m.key} at {v:g} (target average {t.average_value / 1000:g})"  # type: ignore[operator]
        else:
            if t.type == "Utilization":
                ratio, want = v / t.average_utilization, f"{m.key} at {v:g}% (target {t.average_utilization}%)"  # type: ignore[operator]
            elif t.type == "Value":
                ratio, want = v * 1000 / t.value, f"{m.key} at {v:g} (target {t.value / 1000:g})"  # type: ignore[operator]
            else:
                ratio, want = v * 1000 / t.average_value, f"{m.key} at {v:g} (target average {t.average_value / 1000:g})"  # type: ignore[operator]
            rec = current if tolerances.is_within(ratio) else math.ceil(ratio * _count(s) - 1e-9)
        if tolerances.is_within(ratio):
            want = want[:-1] + ", within tolerance)"
        if best is None or rec > best:
            best, why = int(rec), want
    return best, why


def load_from_samples(spec: HPASpec, samples: Sequence[ObservedSample],
                      workload: hpa.WorkloadModel) -> List[hpa.LoadPoint]:
    """The load timeline implied by the observed metrics, in the simulator's units.

    With the workload's requests taken as 1 (core/byte) per pod, a Utilization of u% with
    n Ready pods is a shared demand of ``u/100 * n`` or a per-pod value of ``u/100``.
    """
    points = []
    for s in samples:
        values: Dict[str, float] = {}
        n = _count(s)
        for m in spec.metrics:
            if m.key not in s.metrics:
                continue
            v = float(s.metrics[m.key])
            if m.type in ("Object", "External"):
                values[m.key] = v
                continue
            per_pod = v / 100.0 if m.target.type == "Utilization" else v
            values[m.key] = per_pod * n if workload.model_for(m) == "shared" else per_pod
        points.append(hpa.LoadPoint(s.t, values))
    return points


def _value_at(samples: Sequence[ObservedSample], times: List[float], at: float, pick: Callable[[int, int], int]) -> int:
    """Replicas at instant ``at``; between samples the change time is unknown, so ``pick``
    (max or min) chooses the reading that favours the observed system."""
    j = bisect.bisect_right(times, at) - 1
    if j < 0:
        return samples[0].desired
    if times[j] == at or j + 1 >= len(samples):
        return samples[j].desired
    return pick(samples[j].desired, samples[j + 1].desired)


@dataclass(frozen=True)
class Trajectory:
    """The observed samples, sorted, with the rules that apply to them: what every check reads.

    ``recs`` holds per sample the controller's unstabilized recommendation implied by its metrics
    (``recommendation_from_sample``); ``reaction`` is the allowance's total (metrics lag + sync).
    """

    spec: HPASpec
    obs: Tuple[ObservedSample, ...]
    allowance: ReactionAllowance
    tolerance: float
    tolerances: hpa.Tolerances
    downscale_stabilization_window: float
    recs: Tuple[Tuple[Optional[int], str], ...]

    @property
    def times(self) -> List[float]:
        return [s.t for s in self.obs]

    @property
    def up_rules(self) -> Optional[ScalingRules]:
        return self.spec.behavior.scale_up if self.spec.behavior else None

    @property
    def down_rules(self) -> Optional[ScalingRules]:
        return self.spec.behavior.scale_down if self.spec.behavior else None

    @property
    def up_window(self) -> float:
        return self.up_rules.window(0) if self.up_rules else 0.0

    @property
    def down_window(self) -> float:
        d = self.downscale_stabilization_window
        return self.down_rules.window(d) if self.down_rules else d

    @property
    def reaction(self) -> float:
        return self.allowance.total

    @property
    def have_metrics(self) -> bool:
        return any(r is not None for r, _ in self.recs)


def observe(manifest: Union[Mapping[str, Any], HPASpec], samples: Sequence[Union[ObservedSample, Mapping[str, Any]]],
            *, allowance: ReactionAllowance = ReactionAllowance(), tolerance: float = hpa.DEFAULT_TOLERANCE,
            downscale_stabilization_window: float = hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Trajectory:
    """Parse the manifest, validate and sort the samples, and derive each sample's recommendation."""
    spec = manifest if isinstance(manifest, HPASpec) else hpa.parse_hpa_manifest(manifest)
    obs = tuple(sorted((ObservedSample.coerce(s, i) for i, s in enumerate(samples)), key=lambda s: s.t))
    if not obs:
        raise HPAOracleError("no samples to check", "pass at least one observed sample")
    tol = hpa.tolerances_for_hpa(spec, tolerance)
    recs = tuple(recommendation_from_sample(spec, s, tol) for s in obs)
    return Trajectory(spec, obs, allowance, tolerance, tol, downscale_stabilization_window, recs)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found; ``status`` is reported when it found nothing ("passed", "skipped: why")."""

    deviations: Tuple[Deviation, ...] = ()
    status: str = "passed"


def check_bounds(tr: Trajectory) -> CheckOutcome:
    """(iii) Never above maxReplicas nor below minReplicas; one deviation per sample, desired first."""
    spec, devs = tr.spec, []
    for s in tr.obs:
        for label, v in (("desired", s.desired), ("current", s.current)):
            if v is None:
                continue
            if v > spec.max_replicas:
                devs.append(Deviation("bounds", s.t, f"{label} replicas were {v} at t={_fmt_t(s.t)}, above maxReplicas "
                                      f"{spec.max_replicas}", v, spec.min_replicas, spec.max_replicas))
                break
            if 0 < v < spec.min_replicas:  # 0 is "scaling disabled" (reconcileAutoscaler), not a breach
                devs.append(Deviation("bounds", s.t, f"{label} replicas were {v} at t={_fmt_t(s.t)}, below minReplicas "
                                      f"{spec.min_replicas}", v, spec.min_replicas, spec.max_replicas))
                break
    return CheckOutcome(tuple(devs))


def check_scale_up_rate(tr: Trajectory) -> CheckOutcome:
    """(iv) No scale-up faster than the scaleUp policies allow (``calculateScaleUpLimitWithScalingRules``
    over the observed history), or than ``max(2×current, 4)`` per sync on the legacy path."""
    spec, obs, times, up_rules, sync = tr.spec, tr.obs, tr.times, tr.up_rules, tr.allowance.sync_period
    devs = []
    for i in range(1, len(obs)):
        a, bv, tau = obs[i - 1].desired, obs[i].desired, obs[i].t
        if not (bv > a and spec.min_replicas <= a <= spec.max_replicas):
            continue
        if up_rules is None:
            # legacy path: max(2*current, 4) per sync, compounded over the syncs in the gap;
            # a gap of length g holds at most ceil(g / period) syncs of a periodic loop
            syncs = max(1, math.ceil((tau - obs[i - 1].t) / sync - 1e-9))
            allowed = a
            for _ in range(syncs):
                allowed = hpa.calculate_scale_up_limit(allowed)
            rule = f"the default limit max(2×current, 4) per {sync:g}s sync"
            until = tau + sync
        elif up_rules.select_policy == "Disabled":
            allowed, rule, until = a, "scaleUp selectPolicy Disabled", math.inf
        else:
            limit, pol = hpa.policy_limit(up_rules, lambda P: _value_at(obs, times, tau - P, max), up=True)
            allowed = max(limit, a)
            period = pol.period_seconds if pol else 0
            burst = [obs[j].t for j in range(1, i + 1) if obs[j].desired > obs[j - 1].desired and obs[j].t > tau - period]
            until = (burst[0] if burst else tau) + period
            rule = f"the scaleUp policy {pol.describe()}" if pol else "the scaleUp policies"
            if len(up_rules.policies) > 1:
                rule += f" (select {up_rules.select_policy})"
        allowed = min(allowed, spec.max_replicas) if bv <= spec.max_replicas else allowed
        if bv > allowed:
            until_s = "" if until == math.inf else f" until t={_fmt_t(until)}"
            devs.append(Deviation("scale_up_rate", tau, f"replicas went {a}→{bv} at t={_fmt_t(tau)}, but {rule} "
                                  f"allows at most {allowed}{until_s}", bv, None, allowed))
    return CheckOutcome(tuple(devs))


def check_scale_down_rate(tr: Trajectory) -> CheckOutcome:
    """(v) No scale-down faster than the scaleDown policies allow (the legacy path has no limit)."""
    spec, obs, times, down_rules = tr.spec, tr.obs, tr.times, tr.down_rules
    if down_rules is None:
        return CheckOutcome()
    devs = []
    for i in range(1, len(obs)):
        a, bv, tau = obs[i - 1].desired, obs[i].desired, obs[i].t
        if not (bv < a <= spec.max_replicas):
            continue
        if down_rules.select_policy == "Disabled":
            floor, rule = a, "scaleDown selectPolicy Disabled"
        else:
            limit, pol = hpa.policy_limit(down_rules, lambda P: _value_at(obs, times, tau - P, min), up=False)
            floor = min(a, max(spec.min_replicas, limit))
            rule = f"the scaleDown policy {pol.describe()}" if pol else "the scaleDown policies"
            if len(down_rules.policies) > 1:
                rule += f" (select {down_rules.select_policy})"
        if bv < floor:
            devs.append(Deviation("scale_down_rate", tau, f"replicas went {a}→{bv} at t={_fmt_t(tau)}, but {rule} "
                                  f"allows no fewer than {floor}", bv, floor, None))
    return CheckOutcome(tuple(devs))


def check_scale_down_stabilization(tr: Trajectory) -> CheckOutcome:
    """(v) No scale-down while a recommendation inside the stabilization window was higher.

    A scale-up to v records a recommendation >= v, which forbids going below v for one
    scale-down window; the recommendations implied by observed metrics likewise.
    """
    spec, obs, recs, down_window, A = tr.spec, tr.obs, tr.recs, tr.down_window, tr.reaction
    ups = [(obs[j - 1].t, obs[j].desired) for j in range(1, len(obs))
           if obs[j].desired > obs[j - 1].desired and obs[j - 1].desired >= spec.min_replicas]
    devs = []
    for i in range(1, len(obs)):
        a, bv, tau = obs[i - 1].desired, obs[i].desired, obs[i].t
        if bv >= a or a > spec.max_replicas:
            continue
        blocking = [(u, v) for u, v in ups if v > bv and u < tau < u + down_window]
        if blocking:
            u, v = blocking[-1]
            devs.append(Deviation("scale_down_stabilization", tau,
                                  f"replicas went {a}→{bv} at t={_fmt_t(tau)}, but the scale-up to {v} after "
                                  f"t={_fmt_t(u)} is inside the scaleDown stabilization window of {down_window:g}s "
                                  f"(no scale-down below {v} before t={_fmt_t(u + down_window)})", bv, v, None))
            continue
        # a sample's value may have been seen by the controller any time after the previous
        # sample: count it only if even its earliest possible time is inside the window
        window = [(obs[j].t, rec, recs[j][1]) for j in range(len(obs))
                  if (rec := recs[j][0]) is not None and obs[j].t <= tau - A
                  and (obs[j - 1].t if j else obs[0].t - tr.allowance.sync_period) > tau - down_window]
        if window:
            tj, rj, why = max(window, key=lambda x: (x[1], x[0]))  # the latest highest binds longest
            need = min(a, rj)
            if bv < need:
                devs.append(Deviation("scale_down_stabilization", tau,
                                      f"replicas went {a}→{bv} at t={_fmt_t(tau)}, but at t={_fmt_t(tj)} {why} "
                                      f"recommended {rj}, inside the scaleDown stabilization window of "
                                      f"{down_window:g}s (no scale-down below {need} before t={_fmt_t(tj + down_window)})",
                                      bv, need, None))
    status = "passed" if tr.have_metrics else "passed (event-based only: no metrics observed)"
    return CheckOutcome(tuple(devs), status)


def check_stuck_below_target(tr: Trajectory) -> CheckOutcome:
    """(vi) Not held below what the metric demands for longer than the scale-up window, the longest
    policy period and the reaction allowance allow (a scale-up restarts the clock)."""
    spec, obs, recs, up_rules, sync = tr.spec, tr.obs, tr.recs, tr.up_rules, tr.allowance.sync_period
    if not tr.have_metrics:
        return CheckOutcome(status="skipped: no metrics observed")
    if up_rules is not None and up_rules.select_policy == "Disabled":
        return CheckOutcome(status="skipped: scaleUp selectPolicy Disabled")
    longest = up_rules.longest_period() if up_rules else sync
    threshold = tr.up_window + longest + tr.reaction + sync
    devs = []
    run_start: Optional[int] = None
    reported = False
    for i, s in enumerate(obs):
        rec, _ = recs[i]
        below = rec is not None and rec > s.desired and s.desired < spec.max_replicas
        raised = i > 0 and s.desired > obs[i - 1].desired
        if not below:
            run_start, reported = None, False
            continue
        if raised or run_start is None:
            run_start, reported = i, False
            continue
        if not reported and s.t - obs[run_start].t > threshold:
            _, why = recs[run_start]
            devs.append(Deviation("stuck_below_target", obs[run_start].t,
                                  f"replicas stuck at {s.desired} from t={_fmt_t(obs[run_start].t)} to "
                                  f"t={_fmt_t(s.t)} while {why} demanded {rec}, longer than the "
                                  f"{threshold:g}s a faithful controller needs to react", s.desired, rec, None))
            reported = True
    return CheckOutcome(tuple(devs))


def faithful_band(tr: Trajectory, *, workload: Optional[hpa.WorkloadModel] = None,
                  load: Optional[hpa.LoadSource] = None, use_envelope: bool = True
                  ) -> Tuple[Optional[hpa.Envelope], str]:
    """The envelope (i)/(ii) compare against, or ``(None, why it was skipped)``.

    Without ``load`` the load implied by the observed metrics is used (requests taken as 1 per
    pod: the envelope works in utilization units). The observed metric of a sample may be up to
    one sample interval older than the value the controller acted on, hence the negative lag;
    the phases cover sync alignment and the band's window (the allowance) a later reaction.
    """
    if not use_envelope:
        return None, "skipped: envelope disabled"
    if load is None and not tr.have_metrics:
        return None, "skipped: no metrics observed and no load given"
    obs, spec, allowance = tr.obs, tr.spec, tr.allowance
    wl = workload or hpa.WorkloadModel(pod_startup_seconds=allowance.pod_startup,
                                       metric_resolution_seconds=allowance.metrics_lag)
    if load is None:
        wl = hpa.WorkloadModel(requests={m.name: 1 for m in spec.metrics if m.type in ("Resource", "ContainerResource")},
                               pod_startup_seconds=wl.pod_startup_seconds,
                               metric_resolution_seconds=wl.metric_resolution_seconds,
                               metric_models=wl.metric_models)
        load = load_from_samples(spec, obs, wl)
    gaps = sorted(b2.t - a2.t for a2, b2 in zip(obs, obs[1:])) or [0.0]
    dt = gaps[len(gaps) // 2]
    sp = allowance.sync_period
    env = hpa.envelope(spec, obs[0].desired, load, start=obs[0].t, end=obs[-1].t, workload=wl,
                       sync_period=sp, reaction_allowance=tr.reaction, phase_offsets=(0.0, sp / 3, 2 * sp / 3),
                       lags=sorted({-dt, 0.0}),
                       config=hpa.CalculatorConfig(tolerances=hpa.Tolerances(tr.tolerance, tr.tolerance)),
                       downscale_stabilization_window=tr.downscale_stabilization_window)
    return env, "passed"


def _late_samples(tr: Trajectory, band: hpa.Envelope) -> List[bool]:
    """Per sample: outside the band because it never got as high as a faithful controller is by
    now ("late"), as opposed to any other excursion (a premature drop, an overshoot)."""
    out, highest = [], 0
    for s in tr.obs:
        highest = max(highest, s.desired)
        p = band.at(s.t)
        out.append(s.desired < p.lo and p.expected > s.desired and highest < p.lo)
    return out


def check_late(tr: Trajectory, band: Optional[hpa.Envelope], skipped: str = "") -> CheckOutcome:
    """(ii) The expected replicas are reached in time: below the band while the nominal controller
    is above the observed value, and never yet as high as the band."""
    if band is None:
        return CheckOutcome(status=skipped)
    devs = []
    for s, late in zip(tr.obs, _late_samples(tr, band)):
        if late:
            p = band.at(s.t)
            devs.append(Deviation("late", s.t, f"replicas were {s.desired} at t={_fmt_t(s.t)}, but a faithful "
                                  f"controller reaches {p.lo} by then (expected {p.expected}, allowance "
                                  f"{tr.reaction:g}s)", s.desired, p.lo, p.hi))
    return CheckOutcome(tuple(devs))


def check_envelope(tr: Trajectory, band: Optional[hpa.Envelope], skipped: str = "") -> CheckOutcome:
    """(i) The replicas stay inside the band a faithful controller could show (excursions that are
    only lateness are ``check_late``'s)."""
    if band is None:
        return CheckOutcome(status=skipped)
    devs = []
    for s, late in zip(tr.obs, _late_samples(tr, band)):
        p = band.at(s.t)
        if p.lo <= s.desired <= p.hi or late:
            continue
        side = "below" if s.desired < p.lo else "above"
        devs.append(Deviation("envelope", s.t, f"replicas were {s.desired} at t={_fmt_t(s.t)}, {side} the "
                              f"band {p.lo}..{p.hi} a faithful controller could show (expected {p.expected})",
                              s.desired, p.lo, p.hi))
    return CheckOutcome(tuple(devs))


def _explain(tr: Trajectory, devs: Sequence[Deviation]) -> str:
    """The first deviation of the most basic kind, or a one-sentence pass."""
    obs, spec = tr.obs, tr.spec
    if devs:
        first = min(devs, key=lambda d: (CHECKS.index(d.kind), d.t))
        more = len(devs) - 1
        return first.message + (f" (and {more} more deviation{'s' if more > 1 else ''})" if more else "") + "."
    return (f"The {len(obs)} samples from t={_fmt_t(obs[0].t)} to t={_fmt_t(obs[-1].t)} follow the upstream "
            f"HPA rules for {spec.name or 'the HPA'} (bounds {spec.min_replicas}..{spec.max_replicas}, "
            f"policies and stabilization windows, reaction allowance {tr.reaction:g}s).")


def check_trajectory(manifest: Union[Mapping[str, Any], HPASpec],
                     samples: Sequence[Union[ObservedSample, Mapping[str, Any]]], *,
                     allowance: ReactionAllowance = ReactionAllowance(),
                     tolerance: float = hpa.DEFAULT_TOLERANCE,
                     workload: Optional[hpa.WorkloadModel] = None,
                     load: Optional[hpa.LoadSource] = None,
                     downscale_stabilization_window: float = hpa.DEFAULT_DOWNSCALE_STABILIZATION_WINDOW,
                     use_envelope: bool = True) -> TrajectoryResult:
    """Check ``samples`` against the upstream HPA rules for ``manifest``: every check in ``CHECKS``.

    ``workload`` sets the pod start-up time and per-metric load models for the envelope
    (requests do not matter: the envelope works in utilization units); ``load`` replaces
    the load implied by the observed metrics. Without observed metrics and ``load`` the
    metric-based checks (envelope, late, stuck, metric-based stabilization) are skipped.
    """
    tr = observe(manifest, samples, allowance=allowance, tolerance=tolerance,
                 downscale_stabilization_window=downscale_stabilization_window)
    band, skipped = faithful_band(tr, workload=workload, load=load, use_envelope=use_envelope)
    outcomes = {
        "bounds": check_bounds(tr),
        "scale_up_rate": check_scale_up_rate(tr),
        "scale_down_stabilization": check_scale_down_stabilization(tr),
        "scale_down_rate": check_scale_down_rate(tr),
        "stuck_below_target": check_stuck_below_target(tr),
        "late": check_late(tr, band, skipped),
        "envelope": check_envelope(tr, band, skipped),
    }
    devs = sorted((d for o in outcomes.values() for d in o.deviations), key=lambda d: (d.t, CHECKS.index(d.kind)))
    checks = {kind: ("failed" if o.deviations else o.status) for kind, o in outcomes.items()}
    expected = ([(s.t, band.at(s.t).expected, band.at(s.t).lo, band.at(s.t).hi) for s in tr.obs]
                if band is not None else [])
    return TrajectoryResult(not devs, devs, _explain(tr, devs), {c: checks[c] for c in CHECKS}, len(tr.obs), expected)
