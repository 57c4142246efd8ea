"""The harness's Locust runner against the plain `locust` CLI, same trivial endpoint, same users.

Prints requests/s of each (median of alternating rounds) and the harness's share of the plain
CLI's figure. The target: the harness keeps at least 90%. Figures only; nothing is asserted.

Then Locust's distributed mode: the harness with ``--workers`` local workers (a master and worker
processes, harness.load.workers.LocalWorkers) next to plain ``locust --processes N`` (Locust's own
fork of a master and N workers), same users, same target (goal: >= 90 %), and the harness's scaling
from 1 to N workers.

    python benchmarks/bench_load_generator.py [--users 20] [--seconds 15] [--rounds 2] [--workers 2]
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness.load.runner import run_locust  # noqa: E402
from harness.load.workers import LocalWorkers  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_cli(url: str, users: int, seconds: int, out: Path, processes: int = 0) -> float:
    prefix = out / "plain"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "plain_locustfile.py"), "--headless",
                    "-H", url, "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix),
                    "--only-summary", "--loglevel", "WARNING", "--skip-log-setup"]
                   + (["--processes", str(processes)] if processes else []),
                   check=True, capture_output=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return float(row["Requests/s"])


def harness_runner(url: str, users: int, seconds: int, out: Path, workers: int = 0) -> float:
    result = run_locust([url], out, name="harness", users=users, spawn_rate=users, duration_s=seconds,
                        user_rps=0, progress=lambda _m: None, workers=LocalWorkers(workers) if workers else None)
    return result.rps


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children (each Locust run's master and workers)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measured(run: Callable[[], float], seconds: int) -> tuple[float, float]:
    """(req/s, requests per CPU-second of the Locust processes) of one run. The second figure is what
    the generator costs; on a machine shared with other work it moves far less than req/s does."""
    cpu0 = children_cpu_s()
    rps = run()
    cpu = children_cpu_s() - cpu0
    return rps, rps * seconds / cpu if cpu > 0 else 0.0


def distributed(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, dict]:
    n, s = args.workers, args.seconds
    plain, ours, one = [], [], []
    for i in range(args.rounds):  # alternate, and rotate the order, so drift affects all alike
        runs = [(plain, lambda: plain_cli(url, args.users, s, tmp, processes=n)),
                (ours, lambda: harness_runner(url, args.users, s, tmp, workers=n)),
                (one, lambda: harness_runner(url, args.users, s, tmp, workers=1))]
        for box, run in runs[i % 3:] + runs[:i % 3]:
            box.append(measured(run, s))
        print(f"round {i + 1}: plain locust --processes {n} {plain[-1][0]:.0f} req/s, harness {n} workers "
              f"{ours[-1][0]:.0f} req/s, harness 1 worker {one[-1][0]:.0f} req/s")

    def med(box: list[tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in box)

    p, h, h1 = med(plain, 0), med(ours, 0), med(one, 0)
    pe, he = med(plain, 1), med(ours, 1)
    print(f"plain locust --processes {n} : {p:8.0f} req/s, {pe:6.0f} req per CPU-s (median of {args.rounds})")
    print(f"harness, {n} local workers   : {h:8.0f} req/s, {he:6.0f} req per CPU-s (median of {args.rounds})")
    print(f"harness keeps               : {100 * h / p:8.1f} % of plain --processes {n} in req/s, "
          f"{100 * he / pe:.1f} % in req per CPU-s (goal >= 90 %)")
    print(f"harness, 1 local worker     : {h1:8.0f} req/s; 1 -> {n} workers: x{h / h1:.2f} "
          f"on {os.cpu_count()} cores (the target server and any other load share them)")
    return {f"plain_processes{n}_rps": {"value": p, "unit": "rps", "direction": "higher"},
            f"harness_workers{n}_rps": {"value": h, "unit": "rps", "direction": "higher"},
            f"harness_workers{n}_req_per_cpu_s": {"value": he, "unit": "req/CPU-s", "direction": "higher"},
            "harness_workers1_rps": {"value": h1, "unit": "rps", "direction": "higher"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "trivial_server.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        time.sleep(1.0)
        plain, ours = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.rounds):  # alternate so drift affects both alike
                plain.append(plain_cli(url, args.users, args.seconds, Path(tmp)))
                ours.append(harness_runner(url, args.users, args.seconds, Path(tmp)))
                print(f"round {i + 1}: plain locust {plain[-1]:.0f} req/s, harness runner {ours[-1]:.0f} req/s")
            p, h = statistics.median(plain), statistics.median(ours)
            print(f"plain locust CLI : {p:8.0f} req/s (median of {args.rounds})")
            print(f"harness runner   : {h:8.0f} req/s (median of {args.rounds})")
            print(f"harness keeps    : {100 * h / p:8.1f} % of the plain CLI (target >= 90 %)")
            figures = {"plain_rps": {"value": p, "unit": "rps", "direction": "higher", "samples": plain},
                       "harness_rps": {"value": h, "unit": "rps", "direction": "higher", "samples": ours},
                       "harness_share_pct": {"value": 100 * h / p, "unit": "%", "direction": "higher"}}
            if args.workers:
                figures.update(distributed(url, args, Path(tmp)))
        from harness.history.recorder import bench_history_lines

        for line in bench_history_lines("bench_load_generator", figures):
            print(line)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
