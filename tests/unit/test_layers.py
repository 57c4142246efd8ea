"""The layer order ARCHITECTURE.md states, checked on the code's own imports."""
from __future__ import annotations

import json
import subprocess
import sys

from harness.config import PROJECT_ROOT


def test_the_locust_process_loads_no_oracle_and_no_analysis() -> None:
    """The locustfile runs in every Locust worker: it loads the light record types of harness.load,
    never the outlier oracle or the scenario analyses (nor Docker, Kubernetes or matplotlib)."""
    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('locustfile', sys.argv[1])\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(PROJECT_ROOT / "loadtests" / "locustfile.py")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    loaded = json.loads(out.splitlines()[-1])
    assert "harness.load.responses" in loaded  # the locustfile still classifies responses
    heavy = [m for m in loaded if m.startswith(("harness.oracles", "harness.analysis", "harness.platforms",
                                                "docker", "kubernetes", "matplotlib"))]
    assert not heavy, f"the locustfile loads {heavy}"
