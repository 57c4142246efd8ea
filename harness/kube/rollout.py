"""Wait for a Deployment to roll out; on timeout, say which pods are not ready and why."""
from __future__ import annotations

import time
from typing import Any, Callable

from harness.errors import ReadinessTimeout
from harness.kube.client import Apis

__all__ = ["rollout_status", "wait_rollout", "diagnose_pods", "label_selector"]


def label_selector(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def rollout_status(apis: Apis, namespace: str, name: str) -> tuple[bool, str]:
    """(done, one-line state) as ``kubectl rollout status`` judges a Deployment."""
    d = apis.apps.read_namespaced_deployment_status(name, namespace)
    spec_replicas = d.spec.replicas if d.spec.replicas is not None else 1
    st = d.status
    updated, ready, available = st.updated_replicas or 0, st.ready_replicas or 0, st.available_replicas or 0
    total = st.replicas or 0
    state = f"{ready}/{spec_replicas} ready, {updated} updated, {available} available"
    for c in st.conditions or []:
        if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded":
            return False, f"{state}; progress deadline exceeded: {c.message}"
    if (d.metadata.generation or 0) > (st.observed_generation or 0):
        return False, f"{state}; waiting for the controller to observe generation {d.metadata.generation}"
    done = updated >= spec_replicas and total <= updated and available >= spec_replicas and ready >= spec_replicas
    return done, state


def diagnose_pods(apis: Apis, namespace: str, selector: str, limit: int = 4) -> str:
    """Pods matching ``selector`` that are not Ready, each with its blocking condition and last event."""
    pods = apis.core.list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        return f"no pods match {selector} in {namespace} (check the ReplicaSet's events: quota, ServiceAccount, admission)"
    lines = []
    for p in pods:
        conds = {c.type: c for c in (p.status.conditions or [])}
        if conds.get("Ready") is not None and conds["Ready"].status == "True":
            continue
        why = [p.status.phase or "Unknown"]
        sched = conds.get("PodScheduled")
        if sched is not None and sched.status != "True":
            why.append(f"unschedulable: {(sched.message or sched.reason or '').strip()[:160]}")
        for cs in (p.status.container_statuses or []) + (p.status.init_container_statuses or []):
            st = cs.state
            if st is not None and st.waiting is not None and st.waiting.reason:
                why.append(f"{cs.name} {st.waiting.reason}: {(st.waiting.message or '').strip()[:120]}".rstrip(": "))
            elif st is not None and st.terminated is not None:
                why.append(f"{cs.name} terminated {st.terminated.reason} (exit {st.terminated.exit_code})")
            elif not cs.ready:
                why.append(f"{cs.name} running, not ready (restarts {cs.restart_count})")
        event = _last_event(apis, namespace, p.metadata.name)
        if event:
            why.append(f"last event: {event}")
        lines.append(f"{p.metadata.name} " + "; ".join(why))
    if not lines:
        return "all matching pods are Ready (the Deployment status lags)"
    more = f" (+{len(lines) - limit} more)" if len(lines) > limit else ""
    return " | ".join(lines[:limit]) + more


def _last_event(apis: Apis, namespace: str, pod: str) -> str:
    try:
        events = apis.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
    except Exception:  # noqa: BLE001 - events are a hint, not a requirement
        return ""
    if not events:
        return ""

    def when(e: Any) -> float:
        t = e.last_timestamp or e.event_time or e.first_timestamp
        return t.timestamp() if t is not None else 0.0

    e = max(events, key=when)
    return f"{e.reason}: {(e.message or '').strip()[:160]}"


def wait_rollout(apis: Apis, namespace: str, name: str, *, timeout: float, interval: float = 2.0,
                 hint: str = "", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll until the Deployment is rolled out; returns its final one-line state.

    On timeout raises ``ReadinessTimeout`` naming the pods that are not ready with their
    waiting reason (ImagePullBackOff, CrashLoopBackOff, ...), scheduling condition and last event.
    """
    deadline = clock() + timeout
    state = "not read yet"
    selector = ""
    while True:
        try:
            done, state = rollout_status(apis, namespace, name)
            if done:
                return state
            if not selector:
                d = apis.apps.read_namespaced_deployment(name, namespace)
                selector = label_selector(d.spec.selector.match_labels or {})
        except Exception as exc:  # noqa: BLE001 - e.g. 404 before the apply lands: keep polling
            state = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if clock() >= deadline:
            try:
                pods = diagnose_pods(apis, namespace, selector) if selector else "no pod information"
            except Exception as exc:  # noqa: BLE001
                pods = f"could not list pods ({type(exc).__name__})"
            raise ReadinessTimeout(
                f"deployment {namespace}/{name} not rolled out after {timeout:.0f}s ({state}); {pods}",
                hint or "see the pod logs and events in the report's logs directory")
        sleep(interval)
