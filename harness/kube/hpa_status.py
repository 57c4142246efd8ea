"""Read what the HPA, the Deployment and metrics-server report, as JSON-friendly dicts."""
from __future__ import annotations

import time
from typing import Any, Callable

from harness.kube.client import Apis
from harness.oracles.hpa import quantity_to_float

__all__ = ["hpa_status", "deployment_replicas", "pod_usage", "take_sample", "METRICS_GROUP", "METRICS_VERSION"]

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"


def _metric_value(current: Any) -> tuple[float | None, float | None]:
    """(averageUtilization %, averageValue in base units) of a MetricValueStatus."""
    if current is None:
        return None, None
    util = current.average_utilization
    avg = quantity_to_float(current.average_value, "averageValue") if current.average_value is not None else None
    return (float(util) if util is not None else None), avg


def hpa_status(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    """``autoscaling/v2`` status: replicas, per-metric current values and the controller's conditions.

    ``metrics`` maps the metric key (``cpu``, ``memory``, a metric name) to the utilization %
    for Resource metrics that report one, else to the average value; these are the values the
    controller itself computed, which is what ``check_trajectory`` wants.
    """
    h = apis.autoscaling.read_namespaced_horizontal_pod_autoscaler_status(name, namespace)
    st = h.status
    metrics: dict[str, float] = {}
    raw: dict[str, dict[str, float | None]] = {}
    for m in st.current_metrics or []:
        if m.type == "Resource" and m.resource is not None:
            key, cur = m.resource.name, m.resource.current
        elif m.type == "ContainerResource" and m.container_resource is not None:
            key, cur = f"{m.container_resource.container}/{m.container_resource.name}", m.container_resource.current
        elif m.type == "Pods" and m.pods is not None:
            key, cur = m.pods.metric.name, m.pods.current
        elif m.type == "Object" and m.object is not None:
            key, cur = m.object.metric.name, m.object.current
        elif m.type == "External" and m.external is not None:
            key, cur = m.external.metric.name, m.external.current
        else:
            continue
        util, avg = _metric_value(cur)
        value = quantity_to_float(cur.value, "value") if getattr(cur, "value", None) is not None else None
        raw[key] = {"utilization": util, "average": avg, "value": value}
        chosen = util if util is not None else (avg if avg is not None else value)
        if chosen is not None:
            metrics[key] = chosen
    return {
        "current": st.current_replicas,
        "desired": st.desired_replicas,
        "min": h.spec.min_replicas,
        "max": h.spec.max_replicas,
        "metrics": metrics,
        "metrics_raw": raw,
        "last_scale_time": st.last_scale_time.isoformat() if st.last_scale_time else None,
        "conditions": {c.type: {"status": c.status, "reason": c.reason} for c in st.conditions or []},
    }


def deployment_replicas(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    d = apis.apps.read_namespaced_deployment_status(name, namespace)
    st = d.status
    return {"spec": d.spec.replicas, "replicas": st.replicas or 0, "ready": st.ready_replicas or 0,
            "available": st.available_replicas or 0, "updated": st.updated_replicas or 0}


def pod_usage(apis: Apis, namespace: str, selector: str) -> dict[str, dict[str, float]]:
    """Per pod: CPU (cores) and memory (bytes) from metrics.k8s.io, summed over containers."""
    out: dict[str, dict[str, float]] = {}
    data = apis.custom.list_namespaced_custom_object(METRICS_GROUP, METRICS_VERSION, namespace, "pods",
                                                     label_selector=selector)
    for item in data.get("items", []):
        cpu = mem = 0.0
        for c in item.get("containers", []):
            usage = c.get("usage", {})
            cpu += quantity_to_float(usage.get("cpu", "0"), "cpu usage")
            mem += quantity_to_float(usage.get("memory", "0"), "memory usage")
        out[item["metadata"]["name"]] = {"cpu_cores": cpu, "memory_bytes": mem}
    return out


def take_sample(apis: Apis, namespace: str, hpa: str, deployment: str, selector: str,
                wall: Callable[[], float] = time.time) -> dict[str, Any]:
    """One observation. A part that fails is recorded under ``errors`` instead of losing the sample."""
    sample: dict[str, Any] = {"t_wall": wall(), "errors": {}}
    for key, fn in (("hpa", lambda: hpa_status(apis, namespace, hpa)),
                    ("deployment", lambda: deployment_replicas(apis, namespace, deployment)),
                    ("pods", lambda: pod_usage(apis, namespace, selector))):
        try:
            sample[key] = fn()
        except Exception as exc:  # noqa: BLE001 - metrics-server briefly unavailable, etc.
            sample[key] = None
            sample["errors"][key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return sample
