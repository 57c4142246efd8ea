"""Run Locust headless in its own process and read what it wrote.

Locust runs under gevent; keeping it in a child process keeps the harness's threads and Docker
calls out of its event loop and keeps its CPU use measurable. The harness reads Locust's own stats
CSVs (totals and percentiles) and the locustfile's per-second attribution lines.

With ``workers`` (a ``harness.load.workers.WorkerPool``) the process is a Locust master
(``--master --expect-workers N --expect-workers-max-wait S``) and the pool starts N workers that
connect to it. Locust splits users and spawn rate (and the shape's) over the workers; the CSVs, HTML
and percentiles are the master's aggregate; the per-second lines are the workers' own, merged by the
master (``harness.load.distributed``). Workers are removed whatever happens: the run's end, a
failure, Ctrl-C or SIGTERM (the watcher stops the master first, then the pool its workers).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.load.result import LoadResult
from harness.load.shapes import stages_from_spec, total_duration
from harness.process_watch import watch_process

if TYPE_CHECKING:
    from harness.load.workers import WorkerPool

# LoadResult is harness.load.result's, named here too for run_locust's callers.
__all__ = ["LoadResult", "run_locust", "LOCUSTFILE", "combine_seconds"]

log = logging.getLogger(__name__)
LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _num(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def run_locust(
    targets: list[str],
    out_dir: Path,
    *,
    name: str = "load",
    shape: dict[str, Any] | None = None,
    users: int = 10,
    spawn_rate: float = 5,
    duration_s: float = 30,
    user_rps: float = 2.0,
    locustfile: Path = LOCUSTFILE,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 5.0,
    extra_args: list[str] | None = None,
    tls_sni: str = "",
    tls_ca_file: Path | None = None,
    workers: "WorkerPool | None" = None,
) -> LoadResult:
    """Run Locust against ``targets`` (127.0.0.1 URLs) and return what it measured.

    With ``shape`` the shape drives users over time; otherwise ``users``/``spawn_rate``/``duration_s``.
    ``tls_sni``/``tls_ca_file``: for an https gateway on 127.0.0.1 that routes by name, the name sent
    as SNI and Host and the CA (public PEM) its certificate is verified against.
    ``workers``: run as a Locust master with that pool of workers (see the module doc).
    """
    if tls_sni and (tls_ca_file is None or not Path(tls_ca_file).is_file()):
        raise UsageError(f"TLS to {tls_sni} needs the CA file its certificate is verified against",
                         "pass tls_ca_file (the run CA's public PEM)")
    if not targets:
        raise UsageError("no load targets", "bring the platform up first; it has no ready endpoint")
    for t in targets:
        if not t.startswith(("http://127.", "http://localhost", "https://127.", "https://localhost")):
            raise UsageError(f"load target {t} is not on this machine's loopback",
                             "load goes only to 127.0.0.1 (published ports)")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / name
    attribution = out_dir / f"{name}_seconds.jsonl"
    attribution.unlink(missing_ok=True)
    html = out_dir / f"{name}_locust.html"
    env = dict(os.environ, HARNESS_TARGETS=",".join(targets), HARNESS_USER_RPS=str(user_rps),
               HARNESS_ATTRIBUTION_FILE=str(attribution), PYTHONUNBUFFERED="1",
               HARNESS_TLS_SNI=tls_sni, HARNESS_TLS_CA_FILE=str(tls_ca_file or ""))
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", targets[0],
           "--csv", str(prefix), "--csv-full-history", "--html", str(html), "--only-summary",
           "--stop-timeout", "5", "--exit-code-on-error", "0", "--loglevel", "WARNING",
           "--skip-log-setup"]
    if shape is not None:
        planned = total_duration(stages_from_spec(shape))  # validates before anything starts
        env["HARNESS_SHAPE"] = json.dumps(shape)
    else:
        planned = duration_s
        env.pop("HARNESS_SHAPE", None)
        cmd += ["-u", str(users), "-r", str(spawn_rate), "-t", f"{int(duration_s)}s"]
    cmd += extra_args or []
    deadline = planned + 60  # Locust stops itself; this bounds a hung process
    say = progress or (lambda msg: log.info("%s", msg))
    stderr_path = out_dir / f"{name}_locust.log"
    if workers is not None:
        deadline += workers.wait_s
        cmd = _master_command(cmd, workers)
        worker_env = dict(env, HARNESS_TARGETS=",".join(workers.worker_targets(targets)))
        for k in ("HARNESS_SHAPE", "HARNESS_ATTRIBUTION_FILE"):  # the master runs the shape and writes the lines
            worker_env.pop(k, None)
    try:
        if workers is not None:
            workers.start(worker_env, out_dir, name, locustfile)
            say(f"[load {name}] Locust master waiting for {workers.count} {workers.placement} workers "
                f"(up to {workers.wait_s:.0f}s)")
        # Stopped with SIGTERM (Locust writes its stats on it), then killed: the watcher's default.
        watched = watch_process(cmd, stderr_path, name=f"Locust run {name!r}", env=env, cwd=PROJECT_ROOT,
                                timeout_s=deadline, progress=say, progress_every_s=progress_every_s,
                                status=lambda elapsed: _progress_line(name, elapsed, planned, attribution))
    finally:
        if workers is not None:
            workers.stop()
    if workers is not None and watched.returncode not in (0, None):
        log_text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
        if "Gave up waiting for workers" in log_text:
            raise HarnessError(f"only {_connected(log_text)} of {workers.count} Locust workers ({workers.placement}) "
                               f"connected to the master within {workers.wait_s:.0f}s; nothing was measured",
                               workers.logs_hint(out_dir, name))
        if watched.returncode < 0:  # killed: its stats stop wherever it died
            raise HarnessError(f"the Locust master of run {name!r} died (signal {-watched.returncode}) before the "
                               "run ended; its workers were removed and nothing is claimed",
                               workers.logs_hint(out_dir, name))
    result = LoadResult(name=name, out_dir=out_dir, exit_code=watched.returncode, wall_s=watched.elapsed_s,
                        html=html if html.exists() else None)
    rows = [_num(r) for r in _read_csv(Path(f"{prefix}_stats.csv"))]
    result.totals = next((r for r in rows if r.get("Name") == "Aggregated"), {})
    result.endpoints = [r for r in rows if r.get("Name") != "Aggregated"]
    result.failures = _read_csv(Path(f"{prefix}_failures.csv"))
    result.seconds = combine_seconds(_read_lines(attribution)) if workers is not None else _read_lines(attribution)
    if watched.returncode not in (0, None) and not result.totals:
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise HarnessError(f"Locust run {name!r} failed (exit {watched.returncode}): {' | '.join(tail)[:300]}",
                           f"see {stderr_path}")
    return result


def _master_command(cmd: list[str], workers: "WorkerPool") -> list[str]:
    """The single-process command as a Locust master for ``workers`` (INFO logging: the master's log
    then says which worker connected, went missing or quit)."""
    out = [a for a in cmd if a != "--skip-log-setup"]
    out[out.index("--loglevel") + 1] = "INFO"
    return out + ["--master", "--expect-workers", str(workers.count),
                  "--expect-workers-max-wait", str(max(1, int(round(workers.wait_s)))),
                  "--master-bind-host", workers.master_bind_host(), "--master-bind-port", str(workers.choose_port())]


def _connected(log_text: str) -> str:
    """How many workers had connected when the master gave up (its last "N of M connected" line)."""
    import re

    counts = re.findall(r"(\d+) workers connected|ready, (\d+) of \d+ connected", log_text)
    last = next(((a or b) for a, b in reversed(counts)), None)
    return last if last is not None else "0"


def combine_seconds(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A second written twice by the master (a worker's report arrived after the second was written)
    as one line: counts added, the first line's percentiles and worker views kept."""
    by_t: dict[Any, dict[str, Any]] = {}
    for line in lines:
        seen = by_t.get(line.get("t"))
        if seen is None:
            by_t[line.get("t")] = line
            continue
        seen["ok"] = seen.get("ok", 0) + line.get("ok", 0)
        seen["fail"] = seen.get("fail", 0) + line.get("fail", 0)
        for rep, c in (line.get("replicas") or {}).items():
            agg = seen.setdefault("replicas", {}).setdefault(rep, {"ok": 0, "fail": 0})
            agg["ok"] += c.get("ok", 0)
            agg["fail"] += c.get("fail", 0)
        for code, n in (line.get("codes") or {}).items():
            seen.setdefault("codes", {})[code] = seen["codes"].get(code, 0) + n
        for wid, w in (line.get("workers") or {}).items():
            seen.setdefault("workers", {}).setdefault(wid, w)
    return sorted(by_t.values(), key=lambda x: x.get("t") or 0)


def _progress_line(name: str, elapsed: float, planned: float, attribution: Path) -> str:
    lines = _read_lines(attribution)[-5:] if attribution.exists() else []
    if not lines:
        return f"[load {name}] {elapsed:4.0f}s/{planned:.0f}s starting"
    last = lines[-1]
    rps = sum(s["ok"] + s["fail"] for s in lines) / len(lines)
    fails = sum(s["fail"] for s in lines) / len(lines)
    return (f"[load {name}] {elapsed:4.0f}s/{planned:.0f}s users={last.get('users')} rps={rps:.1f} "
            f"fail/s={fails:.1f} p95={last.get('p95_ms') or 0:.0f}ms replicas={len(last.get('replicas', {}))}")
