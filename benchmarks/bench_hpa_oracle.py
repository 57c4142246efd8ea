"""Benchmark the HPA oracle: 24 h of a 15 s sync loop for the seed's two HPAs.

Run: ``python benchmarks/bench_hpa_oracle.py``. Prints wall time and sync steps per second for
the staging HPA (cpu + memory) and the production custom-metrics HPA (cpu, memory, an Object
and an External metric) under a deterministic synthetic load: a diurnal wave, noise, and a
few bursts. Figures only; nothing is asserted.
"""
from __future__ import annotations

import math
import pathlib
import random
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from harness.oracles import hpa  # noqa: E402

DAY = 24 * 3600
SYNC = 15.0
MIB = 2**20

STAGING_YAML = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: conductor-hpa, namespace: i2s-staging}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: conductor}
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 60
      policies: [{type: Percent, value: 100, periodSeconds: 60}]
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{type: Percent, value: 50, periodSeconds: 60}]
"""


def manifest(relative: str, fallback: str | None = None) -> dict:
    path = ROOT / relative
    if path.exists():
        return yaml.safe_load(path.read_text())
    if fallback is None:
        raise SystemExit(f"{path} is missing; run from a checkout that has the seed's k8s/ manifests")
    return yaml.safe_load(fallback)


def synthetic_load(peak_cores: float, base_cores: float, seed: int, custom: bool) -> list:
    """One point a minute: diurnal CPU demand with noise and three 20-minute bursts."""
    rng = random.Random(seed)
    bursts = [(9 * 3600, 3.0), (14 * 3600, 2.0), (20 * 3600, 2.5)]
    points = []
    for t in range(0, DAY + 1, 60):
        wave = 0.5 - 0.5 * math.cos(2 * math.pi * t / DAY)
        cpu = base_cores + (peak_cores - base_cores) * wave
        for start, factor in bursts:
            if start <= t < start + 1200:
                cpu *= factor
        cpu *= 1 + rng.uniform(-0.1, 0.1)
        values = {"cpu": cpu, "memory": (260 + 120 * wave) * MIB}
        if custom:
            values["active_pipeline_executions"] = 40 + 400 * wave * rng.uniform(0.8, 1.2)
            values["rabbitmq_queue_messages"] = max(0.0, 600 * wave + rng.gauss(0, 40))
        points.append(hpa.LoadPoint(float(t), values))
    return points


def bench(name: str, doc: dict, load: list, initial: int) -> float:
    spec = hpa.parse_hpa_manifest(doc)
    workload = hpa.WorkloadModel(requests={"cpu": "250m", "memory": "512Mi"}, pod_startup_seconds=30.0)
    start = time.perf_counter()
    steps = list(hpa.simulate(spec, initial, load, end=float(DAY), workload=workload, sync_period=SYNC))
    wall = time.perf_counter() - start
    rescales = sum(1 for s in steps if s.desired != s.current)
    replicas = [s.desired for s in steps]
    print(f"{name:<28} {len(steps):>6} steps  {wall * 1000:8.1f} ms  {len(steps) / wall:>10,.0f} steps/s  "
          f"replicas {min(replicas)}..{max(replicas)}  {rescales} rescales")
    return wall * 1000


def main() -> None:
    print(f"HPA oracle: 24 h of a {SYNC:g} s sync loop (python {sys.version.split()[0]})")
    staging = bench("staging conductor-hpa", manifest("k8s/staging/conductor-hpa.yml", STAGING_YAML),
                    synthetic_load(peak_cores=1.2, base_cores=0.2, seed=1, custom=False), initial=2)
    production = bench("production conductor-custom", manifest("k8s/autoscaling/custom-metrics-hpa.yml"),
                       synthetic_load(peak_cores=4.0, base_cores=0.5, seed=2, custom=True), initial=3)
    # Into the run history (docs/history.md), under this machine's own fingerprint: a 2x slower
    # simulation is a regression once a second round confirms it.
    from harness.history.recorder import bench_history_lines

    for line in bench_history_lines("bench_hpa_oracle", {
            "staging_24h_ms": {"value": staging, "unit": "ms", "direction": "lower"},
            "production_24h_ms": {"value": production, "unit": "ms", "direction": "lower"}}):
        print(line)


if __name__ == "__main__":
    main()
