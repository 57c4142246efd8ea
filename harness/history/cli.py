"""``harness history``: list the runs, show a metric, compare a run with a baseline, check a run, acknowledge
a regression, ingest a summary written elsewhere. Exit codes: 0; 15 from ``check --fail-on-regression``
when a regression is confirmed; 12 for a bad argument (one line)."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

from harness.errors import EXIT_REGRESSION, UsageError
from harness.files import read_json
from harness.history.check import CheckParams
from harness.history.metrics import spec_for
from harness.history.recorder import check_run, history_path, host_facts, ingest_summary, regressions_block
from harness.history.store import HistoryStore

__all__ = ["add_history_parser", "run_history"]


def add_history_parser(sub: Any, setting_flags: Any) -> None:
    h = sub.add_parser("history", help="the run history: list, show METRIC, compare RUN, check, ack, ingest")
    hs = h.add_subparsers(dest="history_command", required=True)
    for name, text in (("list", "every recorded run, newest last"),
                       ("show", "one metric over the runs (with its stable range and change points)"),
                       ("compare", "a run's figures against a baseline: the last good run, a tag or a run id"),
                       ("check", "a run (default: the newest) against its comparable runs"),
                       ("ack", "acknowledge a regression: accept the metric's level from RUN on, with a reason"),
                       ("ingest", "add a run's summary.json to the history (runs add themselves)")):
        p = hs.add_parser(name, help=text)
        p.add_argument("--history-dir", dest="history_dir", default=None, help="the history directory "
                       "(env HARNESS_HISTORY_DIR; default <report dir>/history)")
        p.add_argument("--report-dir", dest="report_dir", default=None, help="the report directory (env HARNESS_REPORT_DIR)")
        if name in ("show", "ack"):
            p.add_argument("metric", help="the metric, as `harness history list --metrics` shows it (e.g. rto_s)")
            p.add_argument("--scenario", default=None, help="the scenario (needed when several record the metric)")
        if name in ("compare", "check", "ack"):
            p.add_argument("--run", dest="run", default=None, help="the run id (default: the newest run)")
        if name == "list":
            p.add_argument("--metrics", action="store_true", help="list the tracked scenario/metric pairs instead")
        if name == "compare":
            p.add_argument("--with", dest="baseline", default="last-good",
                           help="last-good (default), tag:NAME (the median of the runs with that tag) or a run id")
        if name == "check":
            p.add_argument("--fail-on-regression", dest="fail_on_regression", action="store_true", default=None,
                           help="exit 15 when a regression is confirmed (env HARNESS_FAIL_ON_REGRESSION)")
            p.add_argument("--any-fingerprint", action="store_true",
                           help="compare with every run, whatever its environment (default: same fingerprint only)")
            p.add_argument("--json", action="store_true", help="print the regressions block as JSON")
        if name == "ack":
            p.add_argument("--reason", required=True, help="why the new level is accepted (kept with the ack)")
        if name == "ingest":
            p.add_argument("summaries", nargs="+", help="summary.json files (or run directories)")
            p.add_argument("--tag", action="append", default=[], help="tag the runs (repeatable)")


def _settings(args: argparse.Namespace) -> Any:
    from harness.config import load_settings

    overrides = {k: getattr(args, k, None) for k in ("history_dir", "report_dir", "fail_on_regression")}
    return load_settings(overrides)


def _store(settings: Any) -> HistoryStore:
    return HistoryStore(history_path(settings))


def _run_id(store: HistoryStore, wanted: str | None) -> str:
    """``wanted``, checked; else the newest suite run (a benchmark only when the history has no run)."""
    records = store.records()
    records = [r for r in records if r.get("kind") == "run"] or records
    if not records:
        raise UsageError(f"the history {store.root} has no runs", "run a suite (runs add themselves) or "
                         "`harness history ingest reports/<run-id>/summary.json`")
    if wanted is None:
        return records[-1]["run_id"]
    if not any(r["run_id"] == wanted for r in store.records()):
        raise UsageError(f"run {wanted!r} is not in the history {store.root}", "see `harness history list`")
    return wanted


def _fmt(v: Any, unit: str = "") -> str:
    return "-" if v is None else f"{v:.4g}{(' ' + unit) if unit else ''}"


def _list(store: HistoryStore, args: argparse.Namespace) -> int:
    records = store.records()
    if args.metrics:
        pairs = sorted({(m["scenario"], m["metric"], m.get("unit", "")) for r in records for m in r["measurements"]})
        for scenario, metric, unit in pairs:
            print(f"{scenario:<48} {metric:<36} {unit}")
        return 0
    print(f"{'run id':<36} {'started':<21} {'kind':<6} {'verdict':<13} {'fingerprint':<13} metrics  host load  tags")
    for r in records:
        load = (r.get("context") or {}).get("loadavg") or []
        print(f"{r['run_id']:<36} {str(r.get('started')):<21} {r.get('kind', ''):<6} {str(r.get('verdict')):<13} "
              f"{r.get('fingerprint_id', ''):<13} {len(r.get('measurements') or []):>7}  "
              f"{(f'{load[0]:.1f}' if load else '-'):>9}  {','.join(r.get('tags') or [])}")
    print(f"{len(records)} runs in {store.runs_path}", file=sys.stderr)
    return 0


def _pick_scenario(store: HistoryStore, metric: str, scenario: str | None) -> str:
    scenarios = sorted({m["scenario"] for r in store.records() for m in r["measurements"] if m["metric"] == metric})
    if scenario:
        if scenario not in scenarios:
            raise UsageError(f"no run recorded {metric!r} for scenario {scenario!r}",
                             "see `harness history list --metrics`")
        return scenario
    if not scenarios:
        raise UsageError(f"no run recorded the metric {metric!r}", "see `harness history list --metrics`")
    if len(scenarios) > 1:
        raise UsageError(f"several scenarios record {metric!r}: {', '.join(scenarios)}", "name one with --scenario")
    return scenarios[0]


def _show(store: HistoryStore, args: argparse.Namespace, settings: Any) -> int:
    scenario = _pick_scenario(store, args.metric, args.scenario)
    newest = next(r for r in reversed(store.records())
                  if any(m["metric"] == args.metric and m["scenario"] == scenario for m in r["measurements"]))
    item = next(i for i in check_run(store, newest["run_id"], CheckParams(min_runs=settings.history_min_runs))
                if i["metric"] == args.metric and i["scenario"] == scenario)
    print(f"{scenario} / {args.metric} ({item['unit']}, {item['direction']} is better), fingerprint "
          f"{newest['fingerprint_id']}")
    changes = {c["run_id"]: c for c in item["change_points"]}
    for p in item["series"]:
        mark = f"  <- change point: {_fmt(changes[p['run_id']]['before'])} -> {_fmt(changes[p['run_id']]['after'])}" \
            if p["run_id"] in changes else ""
        print(f"  {p['run_id']:<36} {_fmt(p['value'], item['unit']):>12}  {'valid' if p['valid'] else 'NOT VALID'}  "
              f"{p['flag']}{mark}")
    band = item.get("band")
    if band:
        print(f"stable range {_fmt(band['low'])} to {_fmt(band['high'])} {item['unit']} (median {_fmt(band['median'])}, "
              f"{band['runs']} runs)")
    print(f"latest: {item['status']}: {item['explanation']}")
    return 0


def _baseline_runs(store: HistoryStore, run: dict[str, Any], wanted: str) -> tuple[str, list[dict[str, Any]]]:
    before = [r for r in store.records() if r["run_id"] != run["run_id"]]
    if wanted == "last-good":
        good = [r for r in before if r.get("fingerprint_id") == run.get("fingerprint_id") and r.get("verdict") == "pass"
                and (r.get("started") or "") <= (run.get("started") or "")]
        if not good:
            raise UsageError(f"no passing run with the fingerprint of {run['run_id']} before it",
                             "compare --with RUN_ID or --with tag:NAME")
        return f"last good run {good[-1]['run_id']}", [good[-1]]
    if wanted.startswith("tag:"):
        tag = wanted[4:]
        tagged = [r for r in before if tag in (r.get("tags") or [])]
        if not tagged:
            raise UsageError(f"no run is tagged {tag!r}", "tag runs with HARNESS_HISTORY_TAG or `ingest --tag`")
        return f"{len(tagged)} runs tagged {tag}", tagged
    other = store.run(wanted)
    if other is None:
        raise UsageError(f"baseline run {wanted!r} is not in the history", "see `harness history list`")
    return f"run {wanted}", [other]


def _compare(store: HistoryStore, args: argparse.Namespace) -> int:
    run = store.run(_run_id(store, args.run))
    assert run is not None
    what, base = _baseline_runs(store, run, args.baseline)
    if any(b.get("fingerprint_id") != run.get("fingerprint_id") for b in base):
        print(f"harness: note: the baseline includes runs of another fingerprint than {run['fingerprint_id']} "
              "(named by you, so compared anyway)", file=sys.stderr)
    print(f"run {run['run_id']} against {what}")
    print(f"{'scenario':<44} {'metric':<32} {'run':>12} {'baseline':>12} {'change':>8}  verdict")
    for m in run["measurements"]:
        vals = [b["value"] for r in base for b in r["measurements"] if b["scenario"] == m["scenario"]
                and b["metric"] == m["metric"] and b.get("valid") and b.get("value") is not None]
        ref = median(vals) if vals else None
        spec = spec_for(m["metric"], m.get("unit", ""), m.get("direction", ""))
        if ref is None or m.get("value") is None or not m.get("valid"):
            verdict, change = "not compared", "-"
        else:
            worse = spec.worse(m["value"], ref)
            change = f"{100 * (m['value'] - ref) / abs(ref):+.0f}%" if ref else "-"
            verdict = ("worse" if worse >= spec.min_effect(ref) and worse > 0 else
                       "better" if -worse >= spec.min_effect(ref) and worse < 0 else "same")
        print(f"{m['scenario'][:44]:<44} {m['metric'][:32]:<32} {_fmt(m.get('value')):>12} {_fmt(ref):>12} "
              f"{change:>8}  {verdict}")
    return 0


def _check(store: HistoryStore, args: argparse.Namespace, settings: Any) -> int:
    run_id = _run_id(store, args.run)
    record = store.run(run_id)
    assert record is not None
    items = check_run(store, run_id, CheckParams(min_runs=settings.history_min_runs),
                      None if args.any_fingerprint else "same")
    comparable = sum(1 for r in store.records() if r.get("fingerprint_id") == record["fingerprint_id"])
    block = regressions_block(items, history=store.root, record=record, comparable=comparable,
                              fail_on_regression=bool(settings.fail_on_regression))
    if args.json:
        print(json.dumps(block, indent=2, default=str))
    else:
        print(f"run {run_id} (fingerprint {record['fingerprint_id']}, {comparable} comparable runs)")
        for i in items:
            print(f"  {i['status']:<13} {i['scenario'][:44]:<44} {i['metric']:<32} {i['explanation']}")
        print("history check: " + (", ".join(f"{n} {s}" for s, n in sorted(block["counts"].items())) or "nothing tracked"))
    if block["regressions"]:
        print(f"harness: regression confirmed in {', '.join(block['regressions'])}"
              + ("" if settings.fail_on_regression else " (not failing: pass --fail-on-regression to exit 15)"),
              file=sys.stderr)
        if settings.fail_on_regression:
            return EXIT_REGRESSION
    return 0


def _ack(store: HistoryStore, args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise UsageError("an acknowledgement needs a reason", "pass --reason 'why the new level is accepted'")
    scenario = _pick_scenario(store, args.metric, args.scenario)
    run_id = _run_id(store, args.run)
    run = store.run(run_id)
    assert run is not None
    if not any(m["metric"] == args.metric and m["scenario"] == scenario for m in run["measurements"]):
        raise UsageError(f"run {run_id} did not record {scenario}/{args.metric}",
                         "name the first run of the new level with --run")
    store.add_ack({"fingerprint_id": run["fingerprint_id"], "scenario": scenario, "metric": args.metric,
                   "run_id": run_id, "reason": args.reason.strip(),
                   "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    print(f"harness: acknowledged {scenario}/{args.metric} from run {run_id}: {args.reason.strip()} "
          f"({store.acks_path})")
    return 0


def _ingest(store: HistoryStore, args: argparse.Namespace, settings: Any) -> int:
    facts = host_facts(settings)
    for raw in args.summaries:
        path = Path(raw)
        path = path / "summary.json" if path.is_dir() else path
        summary = read_json(path, what="run summary", missing_fix="pass a run's summary.json",
                            fix="pass a run's summary.json")
        if "run_id" not in summary:
            raise UsageError(f"{path} has no run_id: not a harness summary", "pass reports/<run-id>/summary.json")
        record = ingest_summary(store, summary, facts, args.tag)  # no host load: not measured at that run
        print(f"harness: {record['run_id']}: {len(record['measurements'])} measurements, fingerprint "
              f"{record['fingerprint_id']}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store(settings)
    command = args.history_command
    if command == "list":
        return _list(store, args)
    if command == "show":
        return _show(store, args, settings)
    if command == "compare":
        return _compare(store, args)
    if command == "check":
        return _check(store, args, settings)
    if command == "ack":
        return _ack(store, args)
    return _ingest(store, args, settings)
