"""tools/kube_only_lines.py counts what only a Kubernetes platform executes, and nothing else: a
small tree with one of each kind of kube-only code, and shared code beside it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.config import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("kube_only_lines", PROJECT_ROOT / "tools" / "kube_only_lines.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)  # type: ignore[union-attr]

FILES = {
    "harness/__init__.py": "",
    "harness/platforms/__init__.py": "",
    "harness/platforms/kind.py": "from harness import kubeonly\nfrom harness.shared import helper\nx = 1\n",
    "harness/kubeonly.py": "def f():\n    return 1\n",                       # imported by kind only: 2
    "harness/shared.py": ("def helper():\n    return 2\n\n\ndef used_by_both():\n    return 3\n"),
    "harness/cli.py": "from harness.shared import used_by_both\n",
    "scenarios/__init__.py": "",
    "scenarios/test_a.py": ("import pytest\nfrom harness.shared import used_by_both\n\n\n"
                            "def test_x(settings):\n    if settings.platform == 'kind':\n        a = 1\n        b = 2\n"
                            "    if settings.platform == 'docker':\n        pass\n    else:\n        c = 3\n\n\n"
                            "@pytest.mark.kind\ndef test_k():\n    pass\n"),
}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_each_rule_counts_its_kube_only_statements(tmp_path):
    result = tool.analyse(_tree(tmp_path, FILES))
    units = {u["unit"]: (u["rule"], u["statements"]) for u in result["units"]}
    assert units["harness.platforms.kind"] == ("module", 3)
    assert units["harness.kubeonly"] == ("module", 2)
    assert units["harness.shared:helper"] == ("definition", 2)        # only kind uses it
    assert "harness.shared:used_by_both" not in units and "harness.shared" not in units
    assert units["scenarios.test_a:6"] == ("if-body", 2) and units["scenarios.test_a:9"] == ("if-orelse", 1)
    assert units["scenarios.test_a:test_k"] == ("kind test", 2)
    assert result["kube_only_statements"] == 3 + 2 + 2 + 2 + 1 + 2


def test_a_shared_importer_makes_a_module_shared(tmp_path):
    files = dict(FILES, **{"harness/cli.py": "from harness import kubeonly\nfrom harness.shared import used_by_both\n"})
    units = {u["unit"] for u in tool.analyse(_tree(tmp_path, files))["units"]}
    assert "harness.kubeonly" not in units and "harness.platforms.kind" in units
