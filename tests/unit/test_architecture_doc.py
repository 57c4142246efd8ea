"""ARCHITECTURE.md stays true: every repository path (``harness/...``, ``scenarios/...``, ``chaos/...``,
``tests/...``, ``.ci/...``) and every dotted ``harness.`` name it cites in backticks exists.

A module moved or renamed without the document following fails here, naming the stale reference."""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from harness.config import PROJECT_ROOT

DOC = PROJECT_ROOT / "ARCHITECTURE.md"
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"(?<![\w./-])((?:harness|scenarios|chaos|tests|\.ci)/[\w./*-]*)")
DOTTED = re.compile(r"(?<![\w./-])(harness(?:\.\w+)+)")


def cited(text: str) -> tuple[list[str], list[str]]:
    """The repository paths and dotted harness names inside the text's backtick spans."""
    paths, names = [], []
    for span in CODE_SPAN.findall(text):
        paths += [p.rstrip(".") for p in PATH.findall(span)]
        names += DOTTED.findall(span)
    return paths, names


def path_exists(ref: str, root: Path = PROJECT_ROOT) -> bool:
    """A cited path exists (a glob must match something)."""
    if any(c in ref for c in "*?["):
        return any(root.glob(ref))
    return (root / ref).exists()


@lru_cache(maxsize=None)
def _top_level(path: Path) -> dict[str, ast.AST]:
    """Names a module defines or re-exports at top level."""
    out: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out[a.asname or a.name] = node
    return out


def name_exists(dotted: str, root: Path = PROJECT_ROOT) -> bool:
    """``harness.a.b`` is a module or package, or ``harness.a.b.name[.attr]`` a top-level name of
    one (``attr`` a member of that class)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if not module.is_file():
            continue
        rest = parts[cut:]
        if not rest:
            return True
        node = _top_level(module).get(rest[0])
        if node is None or len(rest) > 2:
            return False
        if len(rest) == 1:
            return True
        return isinstance(node, ast.ClassDef) and any(
            getattr(n, "name", None) == rest[1] for n in node.body)
    return False


def test_every_cited_path_exists() -> None:
    paths, _ = cited(DOC.read_text())
    assert len(paths) >= 30, f"only {len(paths)} paths found in ARCHITECTURE.md: is the extraction broken?"
    missing = sorted({p for p in paths if not path_exists(p)})
    assert not missing, f"ARCHITECTURE.md cites paths that do not exist: {missing}"


def test_every_cited_harness_name_exists() -> None:
    _, names = cited(DOC.read_text())
    assert len(names) >= 10, f"only {len(names)} dotted names found in ARCHITECTURE.md"
    missing = sorted({n for n in names if not name_exists(n)})
    assert not missing, f"ARCHITECTURE.md cites harness names that do not exist: {missing}"


def test_the_checks_catch_a_stale_reference() -> None:
    """The checks can fail: a renamed module, a removed function and a wrong member are caught."""
    paths, names = cited("see `harness/kube/no_such_module.py` and `harness.sampling.NoSampler`, "
                         "`harness.sampling.Sampler.no_method`, `harness.sampling.Sampler.stop`, "
                         "`chaos/*.json`, `harness/audit/backup_script.py:script_findings` and `harness/`.")
    assert paths == ["harness/kube/no_such_module.py", "chaos/*.json", "harness/audit/backup_script.py", "harness/"]
    assert [path_exists(p) for p in paths] == [False, True, True, True]
    assert [name_exists(n) for n in names] == [False, False, True]


def test_the_readme_and_docs_cite_only_what_exists() -> None:
    """README.md and docs/*.md: every cited repository path, dotted harness name and relative link exists."""
    docs = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    missing = []
    for doc in docs:
        text = doc.read_text()
        paths, names = cited(text)
        missing += [f"{doc.name}: {p}" for p in paths if not path_exists(p)]
        missing += [f"{doc.name}: {n}" for n in names if not name_exists(n)]
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not link.startswith(("http://", "https://")) and not (doc.parent / link).exists():
                missing.append(f"{doc.name}: link {link}")
    assert len(docs) >= 5, docs
    assert not missing, f"stale references: {missing}"
