"""Run Locust headless in its own process and read what it wrote.

Locust runs under gevent; keeping it in a child process keeps the harness's threads and Docker
calls out of its event loop and keeps its CPU use measurable. The harness reads Locust's own stats
CSVs (totals and percentiles) and the locustfile's per-second attribution lines.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.load.shapes import stages_from_spec, total_duration
from harness.process_watch import watch_process

__all__ = ["LoadResult", "run_locust", "LOCUSTFILE"]

log = logging.getLogger(__name__)
LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"


@dataclass
class LoadResult:
    name: str
    out_dir: Path
    seconds: list[dict[str, Any]] = field(default_factory=list)   # per-second attribution lines
    totals: dict[str, Any] = field(default_factory=dict)          # Locust's "Aggregated" stats row
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # Locust's per-endpoint rows
    failures: list[dict[str, Any]] = field(default_factory=list)
    html: Path | None = None
    exit_code: int = 0
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return int(self.totals.get("Request Count", 0))

    @property
    def failures_count(self) -> int:
        return int(self.totals.get("Failure Count", 0))

    @property
    def rps(self) -> float:
        return float(self.totals.get("Requests/s", 0.0))

    def percentile_ms(self, pct: str = "95%") -> float | None:
        v = self.totals.get(pct)
        return None if v in (None, "", "N/A") else float(v)

    def per_replica(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for s in self.seconds:
            for rep, c in s.get("replicas", {}).items():
                agg = out.setdefault(rep, {"ok": 0, "fail": 0})
                agg["ok"] += c["ok"]
                agg["fail"] += c["fail"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "failures": self.failures_count,
                "rps": round(self.rps, 2), "p50_ms": self.percentile_ms("50%"),
                "p95_ms": self.percentile_ms("95%"), "p99_ms": self.percentile_ms("99%"),
                "per_replica": self.per_replica(), "html": str(self.html) if self.html else None,
                "failures_by_kind": [{"name": f.get("Name"), "error": f.get("Error"),
                                      "occurrences": f.get("Occurrences")} for f in self.failures]}


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
) -> LoadResult:
    """Run Locust against ``targets`` (127.0.0.1 URLs) and return what it measured.

    With ``shape`` the shape drives users over time; otherwise ``users``/``spawn_rate``/``duration_s``.
    ``tls_sni``/``tls_ca_file``: for an https gateway on 127.0.0.1 that routes by name, the name sent
    as SNI and Host and the CA (public PEM) its certificate is verified against.
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
    # Stopped with SIGTERM (Locust writes its stats on it), then killed: the watcher's default.
    watched = watch_process(cmd, stderr_path, name=f"Locust run {name!r}", env=env, cwd=PROJECT_ROOT,
                            timeout_s=deadline, progress=say, progress_every_s=progress_every_s,
                            status=lambda elapsed: _progress_line(name, elapsed, planned, attribution))
    result = LoadResult(name=name, out_dir=out_dir, exit_code=watched.returncode, wall_s=watched.elapsed_s,
                        html=html if html.exists() else None)
    rows = [_num(r) for r in _read_csv(Path(f"{prefix}_stats.csv"))]
    result.totals = next((r for r in rows if r.get("Name") == "Aggregated"), {})
    result.endpoints = [r for r in rows if r.get("Name") != "Aggregated"]
    result.failures = _read_csv(Path(f"{prefix}_failures.csv"))
    result.seconds = _read_lines(attribution)
    if watched.returncode not in (0, None) and not result.totals:
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise HarnessError(f"Locust run {name!r} failed (exit {watched.returncode}): {' | '.join(tail)[:300]}",
                           f"see {stderr_path}")
    return result


def _progress_line(name: str, elapsed: float, planned: float, attribution: Path) -> str:
    lines = _read_lines(attribution)[-5:] if attribution.exists() else []
    if not lines:
        return f"[load {name}] {elapsed:4.0f}s/{planned:.0f}s starting"
    last = lines[-1]
    rps = sum(s["ok"] + s["fail"] for s in lines) / len(lines)
    fails = sum(s["fail"] for s in lines) / len(lines)
    return (f"[load {name}] {elapsed:4.0f}s/{planned:.0f}s users={last.get('users')} rps={rps:.1f} "
            f"fail/s={fails:.1f} p95={last.get('p95_ms') or 0:.0f}ms replicas={len(last.get('replicas', {}))}")
