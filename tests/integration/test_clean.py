"""`harness clean` (what `make clean` runs) removes what killed runs left, and nothing else."""
from __future__ import annotations

import subprocess
import sys

from harness.config import PROJECT_ROOT
from harness.docker_env import docker_client
from harness.labels import labels_for


def test_clean_removes_labeled_leftovers_only():
    client = docker_client()
    leftover_net = client.networks.create("i2s-t-clean-leftover", labels=labels_for("t-clean-old"))
    leftover = client.containers.create("python:3.11-slim", ["sleep", "600"], name="i2s-t-clean-leftover",
                                        labels=labels_for("t-clean-old"), network=leftover_net.name)
    leftover.start()
    bystander = client.containers.create("python:3.11-slim", ["sleep", "600"], name="t-clean-bystander",
                                         labels={"owner": "someone-else"})
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "clean"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "removed" in proc.stdout
        names = {c.name for c in client.containers.list(all=True)}
        assert "i2s-t-clean-leftover" not in names
        assert "t-clean-bystander" in names  # not labeled by the harness: untouched
        assert "i2s-t-clean-leftover" not in {n.name for n in client.networks.list()}
    finally:
        bystander.remove(force=True)
        for c in client.containers.list(all=True, filters={"name": "i2s-t-clean-leftover"}):
            c.remove(force=True)
        for n in client.networks.list(names=["i2s-t-clean-leftover"]):
            n.remove()
