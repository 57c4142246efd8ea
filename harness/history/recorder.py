"""Glue between a run and its history: ingest a run summary (or a benchmark's figures), check it
against the comparable runs, and build the ``regressions`` block of summary.json. The judging is
``harness.history.check``'s; this module only reads the store and the host.
"""
from __future__ import annotations

import hashlib
import os
import platform as _platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.history.check import CheckParams, MetricCheck, Point, check_series
from harness.history.metrics import Measurement, extract_measurements, fingerprint, fingerprint_id, spec_for
from harness.history.store import HistoryStore

__all__ = ["history_path", "host_facts", "run_record", "ingest_summary", "check_run", "regressions_block",
           "record_and_check", "record_bench", "host_context", "host_load_note", "bench_fingerprint", "bench_history_lines", "SERIES_SHOWN"]

SERIES_SHOWN = 30   # points of each metric kept in the summary for the Trends section


def history_path(settings: Any) -> Path:
    """The history directory: the setting, or ``<report dir>/history``."""
    from harness.config import PROJECT_ROOT

    raw = getattr(settings, "history_dir", "") or str(Path(settings.report_dir) / "history")
    p = Path(raw)
    return p if p.is_absolute() else PROJECT_ROOT / p


def _harness_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("i2s-harness")
    except PackageNotFoundError:
        return "unknown"


def _tree_hash(root: Path) -> str:
    """sha256 of every file under ``root`` (relative path and content), 12 hex digits."""
    h = hashlib.sha256()
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def _image_ids(refs: Iterable[str]) -> dict[str, str]:
    """The local image id of each reference the Docker engine knows (none when no engine answers)."""
    try:
        from harness.docker_env import docker_client

        client = docker_client()
    except Exception:  # noqa: BLE001 - no engine: the fingerprint goes without digests
        return {}
    out: dict[str, str] = {}
    for ref in refs:
        try:
            out[ref] = client.images.get(ref).id
        except Exception:  # noqa: BLE001 - not local (built per run, or never pulled)
            continue
    return out


def host_facts(settings: Any, digests: bool = True) -> dict[str, Any]:
    """What the host adds to a run's fingerprint: CPU count, harness version, the seed's manifests'
    hash, and the image ids behind the settings' image references."""
    facts: dict[str, Any] = {"cpu_count": os.cpu_count(), "harness_version": _harness_version(),
                             "seed_hash": _tree_hash(Path(settings.manifests_path))}
    if digests:
        refs = [getattr(settings, k, "") for k in ("postgres_image", "redis_image", "rabbitmq_image", "python_image",
                                                   "conductor_image", "envoy_image")]
        facts["image_ids"] = _image_ids(r for r in refs if r)
    return facts


def run_record(summary: Mapping[str, Any], facts: Mapping[str, Any], tags: Iterable[str] = ()) -> dict[str, Any]:
    """The history record of a run summary."""
    fp = fingerprint(summary, facts)
    return {"run_id": summary["run_id"], "kind": "run", "started": summary.get("started"), "platform": summary.get("platform"), "verdict": summary.get("verdict"),
            "fingerprint": fp, "fingerprint_id": fingerprint_id(fp), "tags": sorted(set(tags)),
            "measurements": [m.to_dict() for m in extract_measurements(summary)]}


def host_context() -> dict[str, Any]:
    """What the host was going through when the run was recorded (the 1/5/15-minute load averages): a
    measured value, so never part of the fingerprint, but what explains a regression on a shared runner."""
    try:
        return {"loadavg": [round(v, 2) for v in os.getloadavg()]}
    except OSError:
        return {}


def ingest_summary(store: HistoryStore, summary: Mapping[str, Any], facts: Mapping[str, Any],
                   tags: Iterable[str] = (), context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append the run to the history (once) and return its record as stored."""
    record = {**run_record(summary, facts, tags), "context": dict(context or {})}
    if not store.append(record):
        return store.run(record["run_id"]) or record
    return record


def _acks_for(store: HistoryStore, fp_id: str | None, scenario: str, metric: str) -> dict[str, str]:
    return {a["run_id"]: a.get("reason", "") for a in store.acks()
            if a.get("scenario") == scenario and a.get("metric") == metric
            and (fp_id is None or a.get("fingerprint_id") in (fp_id, None, ""))}


def check_run(store: HistoryStore, run_id: str, params: CheckParams = CheckParams(),
              fingerprint_id_: str | None = "same") -> list[dict[str, Any]]:
    """Every metric of ``run_id`` against the runs before it with the same fingerprint (or those of
    ``fingerprint_id_``; None: every fingerprint, when the user asks for it)."""
    record = store.run(run_id)
    if record is None:
        return []
    fp = record["fingerprint_id"] if fingerprint_id_ == "same" else fingerprint_id_
    by_id = {r["run_id"]: r for r in store.records()}
    out = []
    for m in record.get("measurements") or []:
        rows = store.series(fp, m["scenario"], m["metric"])
        upto = next((i for i, r in enumerate(rows) if r["run_id"] == run_id), len(rows) - 1)
        rows = rows[:upto + 1]
        spec = spec_for(m["metric"], m.get("unit", ""), m.get("direction", ""))
        acks = _acks_for(store, fp, m["scenario"], m["metric"])
        result = check_series([Point(r["run_id"], r["value"], r["valid"]) for r in rows], spec,
                              acknowledged=list(acks), ack_reasons=acks, params=params)
        item = _item(m, rows, result)
        if result.status in ("regression", "suspect"):
            note = host_load_note(by_id, result.bad_runs or [run_id], result.baseline_runs)
            item["explanation"] += f"; {note}" if note else ""
            item["host_load_note"] = note
        out.append(item)
    return out


def host_load_note(records: Mapping[str, Mapping[str, Any]], bad_runs: list[str], baseline_runs: list[str]) -> str:
    """A warning when the host was much busier at the bad runs than at the baseline's (load average per
    CPU at least twice as high, and above 1): on a shared runner the host may be what changed. The
    status stays what the figures say; this only names the likelier cause."""
    def per_cpu(run_ids: list[str]) -> list[float]:
        out = []
        for rid in run_ids:
            rec = records.get(rid) or {}
            load = (rec.get("context") or {}).get("loadavg") or []
            cpus = (rec.get("fingerprint") or {}).get("cpu_count") or 1
            if load:
                out.append(load[0] / cpus)
        return out

    bad, base = per_cpu(bad_runs), per_cpu(baseline_runs)
    if not bad or not base:
        return ""
    from statistics import median as _median

    b, ref = _median(bad), _median(base)
    if b >= 1.0 and b >= 2 * ref:
        return (f"host load per CPU {b:.1f} at the bad runs against {ref:.1f} at the baseline: the shared host, "
                "not the system, may be what changed (rerun on a quiet host)")
    return ""


def _item(m: Mapping[str, Any], rows: list[dict[str, Any]], result: MetricCheck) -> dict[str, Any]:
    shown = rows[-SERIES_SHOWN:]
    return {"scenario": m["scenario"], "metric": m["metric"], "unit": m.get("unit", ""),
            "direction": m.get("direction", ""), "value": m.get("value"), "status": result.status,
            "explanation": result.explanation, "band": result.band.to_dict() if result.band else None,
            "bad_runs": result.bad_runs, "baseline_runs": len(result.baseline_runs),
            "change_points": [{"run_id": r, "before": c.before, "after": c.after, "p_value": round(c.p_value, 5),
                               "worse": c.worse} for c, r in zip(result.change_points, result.change_runs)],
            "series": [{"run_id": r["run_id"], "value": r["value"], "valid": r["valid"],
                        "flag": result.flags.get(r["run_id"], "-")} for r in shown]}


def regressions_block(items: list[dict[str, Any]], *, history: Path, record: Mapping[str, Any],
                      comparable: int, fail_on_regression: bool) -> dict[str, Any]:
    """summary.json's ``regressions``: counts per status, the regressions by name, every metric's check."""
    counts = Counter(i["status"] for i in items)
    return {"history": str(history), "fingerprint_id": record.get("fingerprint_id"), "comparable_runs": comparable,
            "fail_on_regression": fail_on_regression, "counts": dict(counts),
            "regressions": [f"{i['scenario']}/{i['metric']}" for i in items if i["status"] == "regression"],
            "suspects": [f"{i['scenario']}/{i['metric']}" for i in items if i["status"] == "suspect"],
            "metrics": items}


def record_and_check(summary: Mapping[str, Any], settings: Any, tags: Iterable[str] = ()) -> dict[str, Any]:
    """At the end of a run: ingest its summary, check it, return the ``regressions`` block. The
    history is the harness's own bookkeeping: if it breaks, the block says so and the run goes on."""
    root = history_path(settings)
    try:
        store = HistoryStore(root)
        record = ingest_summary(store, summary, host_facts(settings), tags or _tags(settings), host_context())
        items = check_run(store, record["run_id"], CheckParams(min_runs=settings.history_min_runs))
        comparable = sum(1 for r in store.records() if r.get("fingerprint_id") == record["fingerprint_id"])
        return regressions_block(items, history=root, record=record, comparable=comparable,
                                 fail_on_regression=bool(settings.fail_on_regression))
    except Exception as exc:  # noqa: BLE001 - reported in the summary, never a reason to lose the run's report
        return {"history": str(root), "error": f"the run history failed: {exc!r}", "counts": {}, "regressions": [],
                "suspects": [], "metrics": [], "fail_on_regression": bool(settings.fail_on_regression)}


def _tags(settings: Any) -> list[str]:
    return [t.strip() for t in str(getattr(settings, "history_tag", "") or "").split(",") if t.strip()]


# -- benchmarks ---------------------------------------------------------------------------------------
def bench_fingerprint(bench: str) -> dict[str, Any]:
    """A benchmark's own fingerprint: the machine and interpreter it ran on, never a run's settings."""
    return {"kind": "bench", "bench": bench, "cpu_count": os.cpu_count(), "machine": _platform.machine(),
            "python": ".".join(map(str, sys.version_info[:2])), "harness_version": _harness_version()}


def record_bench(bench: str, figures: Mapping[str, Mapping[str, Any]], *, root: Path | None = None,
                 run_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Put a benchmark's figures in the history (``{metric: {"value", "unit", "direction", "samples"}}``)
    under its own fingerprint, and check them; prints nothing, returns (record, checks)."""
    from harness.config import load_settings
    from harness.labels import new_run_id

    settings = load_settings({})
    store = HistoryStore(root or history_path(settings))
    fp = bench_fingerprint(bench)
    record: dict[str, Any] = {"run_id": run_id or f"bench-{new_run_id()}", "kind": "bench", "suite": "bench",
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": "host", "verdict": "pass",
              "fingerprint": fp, "fingerprint_id": fingerprint_id(fp), "tags": _tags(settings), "context": host_context(),
              "measurements": [Measurement(bench, name, float(f["value"]), f.get("unit", ""),
                                           f.get("direction", "lower"), True,
                                           [float(s) for s in f.get("samples") or []]).to_dict()
                               for name, f in figures.items()]}
    store.append(record)
    return record, check_run(store, record["run_id"], CheckParams(min_runs=settings.history_min_runs))


def bench_history_lines(bench: str, figures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Record a benchmark's figures and say, one line per figure, how they compare with the machine's
    earlier rounds (for ``make bench``); a history that cannot be written is said, not raised."""
    try:
        record, checks = record_bench(bench, figures)
    except Exception as exc:  # noqa: BLE001 - the figures are printed anyway; the history is a bonus
        return [f"history: not recorded ({exc})"]
    return [f"history: {c['metric']}: {c['status']}: {c['explanation']}" for c in checks] + \
        [f"history: recorded as {record['run_id']} (fingerprint {record['fingerprint_id']})"]
