"""`harness clean` (what `make clean` runs) removes what killed runs left, and nothing else: not what
another program made, and not a run still in progress (its owner process is alive)."""
from __future__ import annotations

import subprocess
import sys

from harness.config import PROJECT_ROOT
from harness.docker_env import docker_client
from harness.labels import OWNER_LABEL, labels_for


def test_clean_removes_labeled_leftovers_only():
    client = docker_client()
    # The owner of a killed run: a process that has exited. A run in progress: this (live) test process.
    dead = subprocess.run([sys.executable, "-c", "import os, socket; print(f'{socket.gethostname()}:{os.getpid()}')"],
                          capture_output=True, text=True, check=True).stdout.strip()
    leftover_net = client.networks.create("i2s-t-clean-leftover", labels={**labels_for("t-clean-old"), OWNER_LABEL: dead})
    leftover = client.containers.create("python:3.11-slim", ["sleep", "600"], name="i2s-t-clean-leftover",
                                        labels={**labels_for("t-clean-old"), OWNER_LABEL: dead}, network=leftover_net.name)
    leftover.start()
    bystander = client.containers.create("python:3.11-slim", ["sleep", "600"], name="t-clean-bystander",
                                         labels={"owner": "someone-else"})
    live = client.containers.create("python:3.11-slim", ["sleep", "600"], name="i2s-t-clean-live",
                                    labels=labels_for("t-clean-live"))   # owner: this process
    client.containers.create("python:3.11-slim", ["sleep", "600"], name="i2s-t-clean-orphan",
                             labels={**labels_for("t-clean-orphan"), OWNER_LABEL: dead})
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "clean"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "removed" in proc.stdout
        names = {c.name for c in client.containers.list(all=True)}
        assert "i2s-t-clean-leftover" not in names
        assert "t-clean-bystander" in names  # not labeled by the harness: untouched
        assert "i2s-t-clean-live" in names and "t-clean-live" in proc.stdout  # a run in progress: spared
        assert "i2s-t-clean-orphan" not in names  # its owner process has exited: a leftover
        assert "i2s-t-clean-leftover" not in {n.name for n in client.networks.list()}
    finally:
        bystander.remove(force=True)
        live.remove(force=True)
        for c in client.containers.list(all=True, filters={"name": "i2s-t-clean-orphan"}):
            c.remove(force=True)
        for c in client.containers.list(all=True, filters={"name": "i2s-t-clean-leftover"}):
            c.remove(force=True)
        for n in client.networks.list(names=["i2s-t-clean-leftover"]):
            n.remove()
