"""The ``autoscaling/v2`` HorizontalPodAutoscaler as the controller sees it: the types, the API
server's validation that matters to the controller, and defaulting
(``pkg/apis/autoscaling/v2/defaults.go``: ``SetDefaults_HorizontalPodAutoscaler``,
``GenerateHPAScaleUpRules``/``GenerateHPAScaleDownRules``/``copyHPAScalingRules``).

``SetDefaults_HorizontalPodAutoscalerBehavior`` only fills the behavior when ``spec.behavior`` is
present: an HPA without ``behavior`` keeps ``Behavior == nil`` and the controller takes the legacy
path (see ``behavior.normalize_desired_replicas``). When ``behavior`` is present, a missing half
gets the documented defaults (scaleUp: window 0, Pods 4/15s + Percent 100/15s, Max; scaleDown:
window from the controller flag, Percent 100/15s, Max).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from harness.oracles.hpa.errors import HPAOracleError, ManifestError
from harness.oracles.hpa.quantity import quantity_to_float, quantity_to_milli

__all__ = ["MetricTarget", "MetricSpec", "ScalingPolicy", "ScalingRules", "Behavior", "HPASpec",
           "metric_key", "parse_hpa_manifest", "parse_behavior", "generate_scale_up_rules",
           "generate_scale_down_rules"]


@dataclass(frozen=True)
class MetricTarget:
    """``MetricTarget``: ``type`` is Utilization, Value or AverageValue; values are milli."""

    type: str
    average_utilization: Optional[int] = None
    value: Optional[int] = None
    average_value: Optional[int] = None


@dataclass(frozen=True)
class MetricSpec:
    """One ``spec.metrics`` entry. ``name`` is the resource name or the metric name."""

    type: str  # Resource, ContainerResource, Pods, Object, External
    name: str
    target: MetricTarget
    container: Optional[str] = None
    described_object: Optional[Mapping[str, Any]] = None
    selector: Optional[Mapping[str, Any]] = None

    @property
    def key(self) -> str:
        """The name this oracle uses for the metric's inputs and results."""
        return metric_key(self)

    def describe(self) -> str:
        t = self.target
        if t.type == "Utilization":
            want = f"{t.average_utilization}%"
        elif t.type == "Value":
            want = f"value {_fmt_milli(t.value)}"
        else:
            want = f"average {_fmt_milli(t.average_value)}"
        return f"{self.key} ({self.type}, target {want})"


def metric_key(spec: MetricSpec) -> str:
    """``cpu``/``memory`` for Resource, ``container/cpu`` for ContainerResource, else the metric name."""
    if spec.type == "ContainerResource":
        return f"{spec.container}/{spec.name}"
    return spec.name


def _fmt_milli(v: Optional[int]) -> str:
    if v is None:
        return "?"
    return str(v // 1000) if v % 1000 == 0 else f"{v}m"


@dataclass(frozen=True)
class ScalingPolicy:
    """``HPAScalingPolicy``: ``type`` Pods or Percent."""

    type: str
    value: int
    period_seconds: int

    def describe(self) -> str:
        return f"{self.type} {self.value}/{self.period_seconds}s"


@dataclass(frozen=True)
class ScalingRules:
    """``HPAScalingRules``. ``stabilization_window_seconds`` None = the controller flag."""

    stabilization_window_seconds: Optional[int]
    select_policy: str
    policies: Tuple[ScalingPolicy, ...]
    tolerance: Optional[float] = None

    def window(self, default: float) -> float:
        """The window after ``maybeInitScaleDownStabilizationWindow``."""
        return float(default if self.stabilization_window_seconds is None else self.stabilization_window_seconds)

    def longest_period(self) -> int:
        """``getLongestPolicyPeriod``."""
        return max((p.period_seconds for p in self.policies), default=0)

    def describe(self) -> str:
        pol = ", ".join(p.describe() for p in self.policies) or "no policies"
        return f"{pol}, select {self.select_policy}"


@dataclass(frozen=True)
class Behavior:
    """``HorizontalPodAutoscalerBehavior`` after defaulting (both halves set)."""

    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True)
class HPASpec:
    """A parsed, defaulted ``HorizontalPodAutoscaler``.

    ``behavior`` is ``None`` when the manifest has no ``spec.behavior`` (the legacy path).
    """

    name: str
    namespace: str
    min_replicas: int
    max_replicas: int
    metrics: Tuple[MetricSpec, ...]
    behavior: Optional[Behavior]
    scale_target_ref: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> MetricSpec:
        for m in self.metrics:
            if m.key == key:
                return m
        raise HPAOracleError(f"HPA {self.name} has no metric {key!r}",
                             f"use one of {[m.key for m in self.metrics]}")


_DEFAULT_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
_DEFAULT_DOWN = ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ManifestError(f"unknown field {where}.{unknown[0]}",
                            f"remove it or use one of {sorted(allowed)} (kubectl --validate=strict rejects it)")


def _as_mapping(obj: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} is {type(obj).__name__}, not a mapping", f"write {where} as a YAML mapping")
    return obj


def _as_int(obj: Any, where: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise ManifestError(f"{where} is {obj!r}, not an integer", f"write {where} as an integer")
    if lo is not None and obj < lo:
        raise ManifestError(f"{where} is {obj}, below {lo}", f"set {where} to at least {lo}")
    if hi is not None and obj > hi:
        raise ManifestError(f"{where} is {obj}, above {hi}", f"set {where} to at most {hi}")
    return obj


def _parse_rules(raw: Any, where: str) -> Tuple[ScalingRules, bool]:
    """Parse one ``HPAScalingRules`` as written -> ``(rules, policies_given)``.

    Absent fields come back empty (window ``None``, select ``""``) for ``_copy_rules``.
    """
    rules = _as_mapping(raw, where)
    _check_keys(rules, ("stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"), where)
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        window = _as_int(window, f"{where}.stabilizationWindowSeconds", 0, 3600)
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Max", "Min", "Disabled"):
        raise ManifestError(f"unknown {where}.selectPolicy {select!r}", "use Max, Min or Disabled")
    policies: Optional[Tuple[ScalingPolicy, ...]] = None
    if "policies" in rules and rules["policies"] is not None:
        raw_pol = rules["policies"]
        if not isinstance(raw_pol, list):
            raise ManifestError(f"{where}.policies is not a list", f"write {where}.policies as a YAML list")
        if not raw_pol:
            raise ManifestError(f"{where}.policies is empty",
                                "give at least one policy or omit policies to get the defaults")
        out = []
        for i, p in enumerate(raw_pol):
            pw = f"{where}.policies[{i}]"
            p = _as_mapping(p, pw)
            _check_keys(p, ("type", "value", "periodSeconds"), pw)
            if p.get("type") not in ("Pods", "Percent"):
                raise ManifestError(f"unknown policy type {p.get('type')!r} in {pw}", "use type Pods or Percent")
            out.append(ScalingPolicy(p["type"], _as_int(p.get("value"), f"{pw}.value", 1),
                                     _as_int(p.get("periodSeconds"), f"{pw}.periodSeconds", 1, 1800)))
        policies = tuple(out)
    tol = rules.get("tolerance")
    tolerance = None
    if tol is not None:
        tolerance = quantity_to_float(tol, f"{where}.tolerance")
        if tolerance < 0:
            raise ManifestError(f"{where}.tolerance is negative", "set a tolerance of 0 or more, e.g. 0.1")
    return ScalingRules(window, select or "", policies or (), tolerance), policies is not None


def _copy_rules(raw: Any, default: ScalingRules, where: str) -> ScalingRules:
    """``GenerateHPAScale{Up,Down}Rules``: ``copyHPAScalingRules`` over the defaults."""
    if raw is None:
        return default
    parsed, has_policies = _parse_rules(raw, where)
    return ScalingRules(
        parsed.stabilization_window_seconds if parsed.stabilization_window_seconds is not None
        else default.stabilization_window_seconds,
        parsed.select_policy or default.select_policy,
        parsed.policies if has_policies else default.policies,
        parsed.tolerance if parsed.tolerance is not None else default.tolerance,
    )


def generate_scale_up_rules(raw: Optional[Mapping[str, Any]]) -> ScalingRules:
    """``GenerateHPAScaleUpRules`` from a manifest ``behavior.scaleUp`` (or ``None``)."""
    return _copy_rules(raw, _DEFAULT_UP, "spec.behavior.scaleUp")


def generate_scale_down_rules(raw: Optional[Mapping[str, Any]]) -> ScalingRules:
    """``GenerateHPAScaleDownRules`` from a manifest ``behavior.scaleDown`` (or ``None``)."""
    return _copy_rules(raw, _DEFAULT_DOWN, "spec.behavior.scaleDown")


def parse_behavior(raw: Union[None, Mapping[str, Any], Behavior]) -> Optional[Behavior]:
    """``SetDefaults_HorizontalPodAutoscalerBehavior`` on a manifest ``spec.behavior``.

    ``None`` stays ``None`` (upstream leaves ``Behavior`` nil); a present block gets
    both halves filled with the defaults for what is absent.
    """
    if raw is None or isinstance(raw, Behavior):
        return raw
    b = _as_mapping(raw, "spec.behavior")
    _check_keys(b, ("scaleUp", "scaleDown"), "spec.behavior")
    return Behavior(generate_scale_up_rules(b.get("scaleUp")), generate_scale_down_rules(b.get("scaleDown")))


def _parse_target(raw: Any, where: str, allowed: Tuple[str, ...]) -> MetricTarget:
    t = _as_mapping(raw, where)
    _check_keys(t, ("type", "averageUtilization", "value", "averageValue"), where)
    ttype = t.get("type")
    if ttype not in allowed:
        raise ManifestError(f"{where}.type is {ttype!r}", f"use one of {', '.join(allowed)} for this metric type")
    if ttype == "Utilization":
        if t.get("averageUtilization") is None:
            raise ManifestError(f"{where}.averageUtilization is missing", "set averageUtilization, e.g. 70")
        return MetricTarget("Utilization", average_utilization=_as_int(t["averageUtilization"],
                                                                         f"{where}.averageUtilization", 1))
    key = "value" if ttype == "Value" else "averageValue"
    if t.get(key) is None:
        raise ManifestError(f"{where}.{key} is missing", f"set {key}, e.g. \"100\"")
    milli = quantity_to_milli(t[key], f"{where}.{key}")
    if milli <= 0:
        raise ManifestError(f"{where}.{key} must be positive", f"set {key} above 0")
    return MetricTarget(ttype, value=milli) if ttype == "Value" else MetricTarget(ttype, average_value=milli)


def _parse_metric(raw: Any, i: int) -> MetricSpec:
    where = f"spec.metrics[{i}]"
    m = _as_mapping(raw, where)
    mtype = m.get("type")
    sub = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(mtype) if isinstance(mtype, str) else None
    if not isinstance(mtype, str) or sub is None:
        raise ManifestError(f"unknown {where}.type {mtype!r}",
                            "use Resource, ContainerResource, Pods, Object or External")
    _check_keys(m, ("type", sub), where)
    body = _as_mapping(m.get(sub), f"{where}.{sub}")
    sw = f"{where}.{sub}"
    if mtype in ("Resource", "ContainerResource"):
        _check_keys(body, ("name", "target", "container") if mtype == "ContainerResource" else ("name", "target"), sw)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{sw}.name is missing", "set the resource name, e.g. cpu or memory")
        container = body.get("container")
        if mtype == "ContainerResource" and not container:
            raise ManifestError(f"{sw}.container is missing", "name the container whose usage counts")
        return MetricSpec(mtype, name, _parse_target(body.get("target"), f"{sw}.target", ("Utilization", "AverageValue")),
                          container=container)
    _check_keys(body, ("metric", "target", "describedObject"), sw)
    metric = _as_mapping(body.get("metric"), f"{sw}.metric")
    _check_keys(metric, ("name", "selector"), f"{sw}.metric")
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{sw}.metric.name is missing", "set the metric name")
    allowed = {"Pods": ("AverageValue",), "Object": ("Value", "AverageValue"),
               "External": ("Value", "AverageValue")}[mtype]
    target = _parse_target(body.get("target"), f"{sw}.target", allowed)
    described = body.get("describedObject")
    if mtype == "Object" and not described:
        raise ManifestError(f"{sw}.describedObject is missing", "name the object the metric describes")
    return MetricSpec(mtype, name, target, described_object=described, selector=metric.get("selector"))


def parse_hpa_manifest(doc: Mapping[str, Any]) -> HPASpec:
    """Parse and default an ``autoscaling/v2`` HorizontalPodAutoscaler manifest (a YAML dict).

    Applies ``SetDefaults_HorizontalPodAutoscaler`` (minReplicas 1, a cpu 80% metric when
    none is given, behavior halves) and the API server's validation that matters for the
    controller. Raises ``ManifestError`` naming the field and the fix.
    """
    doc = _as_mapping(doc, "manifest")
    api = doc.get("apiVersion")
    if api not in ("autoscaling/v2", "autoscaling/v2beta2"):
        raise ManifestError(f"apiVersion is {api!r}", "write apiVersion: autoscaling/v2")
    if doc.get("kind") != "HorizontalPodAutoscaler":
        raise ManifestError(f"kind is {doc.get('kind')!r}", "write kind: HorizontalPodAutoscaler")
    meta = _as_mapping(doc.get("metadata") or {}, "metadata")
    spec = _as_mapping(doc.get("spec"), "spec")
    _check_keys(spec, ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"), "spec")
    if "maxReplicas" not in spec:
        raise ManifestError("spec.maxReplicas is missing", "set spec.maxReplicas (required), e.g. maxReplicas: 6")
    max_r = _as_int(spec["maxReplicas"], "spec.maxReplicas", 1)
    min_r = 1 if spec.get("minReplicas") is None else _as_int(spec["minReplicas"], "spec.minReplicas", 0)
    if min_r > max_r:
        raise ManifestError(f"spec.minReplicas {min_r} is above spec.maxReplicas {max_r}",
                            "set minReplicas <= maxReplicas")
    raw_metrics = spec.get("metrics") or [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    if not isinstance(raw_metrics, list):
        raise ManifestError("spec.metrics is not a list", "write spec.metrics as a YAML list")
    metrics = tuple(_parse_metric(m, i) for i, m in enumerate(raw_metrics))
    if min_r == 0 and not any(m.type in ("Object", "External") for m in metrics):
        raise ManifestError("spec.minReplicas is 0 without an Object or External metric",
                            "set minReplicas >= 1 (scale to zero needs HPAScaleToZero and an Object/External metric)")
    keys = [m.key for m in metrics]
    if len(set(keys)) != len(keys):
        raise ManifestError(f"spec.metrics names {keys} repeat a metric", "list each metric once")
    return HPASpec(name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")),
                   min_replicas=min_r, max_replicas=max_r, metrics=metrics,
                   behavior=parse_behavior(spec.get("behavior")),
                   scale_target_ref=dict(spec.get("scaleTargetRef") or {}))
