"""Keep what a cluster knew before it is deleted: ``kind export logs``, pod logs and events."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from harness.kube.client import Apis
from harness.kube.runner import CommandRunner

__all__ = ["kind_export_logs", "export_namespace_logs"]

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def kind_export_logs(cluster: str, dest: Path, runner: CommandRunner) -> list[Path]:
    """Node, kubelet, containerd and control-plane logs of a kind cluster into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    runner.run(["kind", "export", "logs", str(dest), "--name", cluster], timeout=300)
    return sorted(p for p in dest.rglob("*") if p.is_file())


def export_namespace_logs(apis: Apis, namespace: str, dest: Path, tail_lines: int = 5000) -> list[Path]:
    """``kubectl logs`` of every container of every pod in ``namespace`` (and the previous run of any
    restarted container), plus the namespace's events, into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for pod in apis.core.list_namespaced_pod(namespace).items:
        statuses = {s.name: s for s in (pod.status.container_statuses or [])}
        for c in pod.spec.containers:
            runs = [False] + ([True] if getattr(statuses.get(c.name), "restart_count", 0) else [])
            for previous in runs:
                name = f"{pod.metadata.name}_{c.name}{'_previous' if previous else ''}.log"
                path = dest / _SAFE.sub("_", name)
                try:
                    text = apis.core.read_namespaced_pod_log(pod.metadata.name, namespace, container=c.name,
                                                             timestamps=True, tail_lines=tail_lines,
                                                             previous=previous)
                except Exception as exc:  # noqa: BLE001 - a pod that never started has no log
                    text = f"(no log: {type(exc).__name__})\n"
                path.write_text(text if isinstance(text, str) else str(text))
                written.append(path)
    events = dest / f"{_SAFE.sub('_', namespace)}_events.txt"
    try:
        items = apis.core.list_namespaced_event(namespace).items
        lines = [_event_line(e) for e in sorted(items, key=_event_time)]
        events.write_text("\n".join(lines) + ("\n" if lines else ""))
        written.append(events)
    except Exception as exc:  # noqa: BLE001
        log.debug("no events for %s: %s", namespace, exc)
    return written


def _event_time(e: Any) -> float:
    t = e.last_timestamp or e.event_time or e.first_timestamp
    return t.timestamp() if t is not None else 0.0


def _event_line(e: Any) -> str:
    t = e.last_timestamp or e.event_time or e.first_timestamp
    obj = e.involved_object
    return (f"{t.isoformat() if t else '-'} {e.type} {e.reason} {obj.kind}/{obj.name} x{e.count or 1}: "
            f"{(e.message or '').strip()}")
