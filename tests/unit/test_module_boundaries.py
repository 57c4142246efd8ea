"""Cross-module helpers are public: no module reaches into another's private names of the shared
toolkits (harness.containers, harness.sampling, harness.dr.*, harness.oracles.hpa.*,
harness.faults.*, harness.mesh.*, harness.oracles.outlier.*, harness.capacity.project and its parts). A moved helper
whose callers were not updated shows up here, not as an AttributeError in a Docker scenario."""
from __future__ import annotations

import re
from pathlib import Path

from harness.config import PROJECT_ROOT

TOOLKITS = ("containers", "sampling", "replication", "backup", "backup_schedule", "jobs", "secret_store", "aws",
            "pg_container", "hpa",
            # harness.oracles.outlier and its modules
            "outlier", "detector", "limits", "simulation", "destination_rule", "units", "errors",
            # harness.capacity.project and the modules it was split into
            "project", "models", "node_groups", "pod_spec", "hpa_replicas")
# harness.faults.* and harness.mesh.*: checked in the harness and the scenarios (a unit test may test
# the private parts of the module it tests).
PACKAGES = ("safety", "postgres", "backups", "probes", "zones", "zone_docker", "zone_loss", "control",
            "binary", "bootstrap", "certs", "local", "objects", "outlier_rig", "pods", "service")
ROOTS = ("harness", "scenarios", "tests", "benchmarks")
# "from harness.dr.replication import _x" / "from harness.dr import replication; replication._x(...)"
FROM_PRIVATE = re.compile(r"from harness\.[\w.]*\b(" + "|".join(TOOLKITS) + r") import [^\n]*\b_[A-Za-z]\w*")
ATTR_PRIVATE = re.compile(r"\b(" + "|".join(TOOLKITS) + r")\._[A-Za-z]\w*")
PKG_FROM_PRIVATE = re.compile(r"from harness\.(faults|mesh)\.(" + "|".join(PACKAGES) + r") import [^\n]*\b_[a-z]\w*")
PKG_ATTR_PRIVATE = re.compile(r"\b(" + "|".join(PACKAGES) + r")\._[a-z]\w*")


def _sources() -> list[Path]:
    return [p for r in ROOTS for p in (PROJECT_ROOT / r).rglob("*.py") if ".venv" not in p.parts]


def test_no_private_toolkit_name_is_used_from_another_module() -> None:
    hits = []
    for path in _sources():
        if path.name == "test_module_boundaries.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            in_code = path.relative_to(PROJECT_ROOT).parts[0] in ("harness", "scenarios")
            if FROM_PRIVATE.search(line) or ATTR_PRIVATE.search(line) or in_code and (
                    PKG_FROM_PRIVATE.search(line) or PKG_ATTR_PRIVATE.search(line)):
                if "monkeypatch" in line:  # a test may stub a private seam of the module it tests
                    continue
                hits.append(f"{path.relative_to(PROJECT_ROOT)}:{i}: {line.strip()}")
    assert not hits, "private names used across modules:\n" + "\n".join(hits)


def test_the_check_sees_a_private_access() -> None:
    assert ATTR_PRIVATE.search("c = replication._get(name, run_id)")
    assert FROM_PRIVATE.search("from harness.dr.replication import _mask")
    assert not ATTR_PRIVATE.search("c = replication.run_container(name, run_id)")
    assert PKG_FROM_PRIVATE.search("from harness.faults.postgres import _as_bool")
    assert PKG_ATTR_PRIVATE.search("creds = backups._db_credentials(s3)")
    assert not PKG_FROM_PRIVATE.search("from harness.faults.postgres import public")
    assert FROM_PRIVATE.search("from harness.oracles.outlier.units import _normalise_input")
    assert FROM_PRIVATE.search("from harness.oracles.outlier import simulate, _check_rule")
    assert FROM_PRIVATE.search("from harness.oracles.outlier.units import _DURATION_PART")  # private constants too
    assert ATTR_PRIVATE.search("detector._ALL_STATS")
