"""Count the statements only a Kubernetes platform (kind, or an existing cluster) executes.

kind cannot run on the machine the harness is developed on, so every such statement has run only
against fakes at its boundary. The count is static and reproducible (``python tools/kube_only_lines.py``
from the checkout's root; ``--list`` names every counted unit). Statements are Python's ``ast``
statements (what coverage.py counts as lines, give or take a docstring), in ``harness/`` and
``scenarios/``. A statement is kube-only when it lies in one of:

1. a **module** that is a root -- ``harness/platforms/kind.py``, ``context.py``, ``kind_mesh.py``,
   ``kube_tier.py``, ``kube_zones.py`` (where they exist), a scenario module whose ``pytestmark`` carries ``kind`` -- or whose importers are all kube-only
   (a greatest fixed point over the import graph, lazy imports inside functions included);
2. a **top-level function or class** of a shared module whose every user (another module importing
   it by name, or another top-level definition of its own module naming it) is kube-only;
3. a **scenario test** marked ``@pytest.mark.kind``;
4. an **if-branch** on the platform's kind: the body of ``if <x> == "kind"`` / ``"context"``,
   ``!= "docker"``, ``isinstance(<x>, KindPlatform | ContextPlatform)``, ``if <x>.needs_kubernetes``,
   and the ``else`` of ``== "docker"`` / ``not needs_kubernetes``.

What it cannot see: methods of shared classes reached by attribute (a Platform method only kind
overrides is counted through its module, rule 1), and conditional expressions (counted as sites,
``branch_expressions``, not statements).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("harness", "scenarios")
# The Kubernetes platforms' own modules: kind and context, and their capability adapters (kind_mesh,
# kube_tier, kube_zones), which only a Kubernetes platform constructs.
ROOT_MODULES = {"harness.platforms.kind", "harness.platforms.context", "harness.platforms.kind_mesh",
                "harness.platforms.kube_tier", "harness.platforms.kube_zones"}
# Loaded by name, not by an import: the CLI, the pytest plugin, the chaos activities and controls.
ENTRY_FILES = ("pyproject.toml", "Makefile", "conftest.py", ".ci/run", "chaos")
KUBE_PLATFORM_CLASSES = {"KindPlatform", "ContextPlatform"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def statements(node: ast.AST) -> int:
    return sum(1 for n in ast.walk(node) if isinstance(n, ast.stmt))


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _marked_kind(decorators: list[ast.expr]) -> bool:
    return any("kind" in ast.unparse(d).split(".")[-1:] or ast.unparse(d).endswith("mark.kind") for d in decorators)


def _is_kind_root_scenario(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return "mark.kind" in ast.unparse(node.value)
    return False


def _branch(test: ast.expr) -> str | None:
    """'body' when an if-test selects a Kubernetes platform, 'orelse' when it selects docker."""
    src = ast.unparse(test)
    if isinstance(test, ast.Call) and ast.unparse(test.func) == "isinstance":
        names = set(ast.unparse(test.args[1]).replace("(", " ").replace(")", " ").replace(",", " ").split())
        if names & KUBE_PLATFORM_CLASSES:
            return "body"
        if "DockerPlatform" in names:
            return "orelse"
        return None
    if isinstance(test, ast.Attribute) and test.attr == "needs_kubernetes":
        return "body"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and src.endswith("needs_kubernetes"):
        return "orelse"
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and "platform" in src:
        right = test.comparators[0]
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            op, value = test.ops[0], right.value
            if (isinstance(op, ast.Eq) and value in ("kind", "context")) or (isinstance(op, ast.NotEq)
                                                                              and value == "docker"):
                return "body"
            if (isinstance(op, ast.Eq) and value == "docker") or (isinstance(op, ast.NotEq) and value == "kind"):
                return "orelse"
    return None


def analyse(root: Path = ROOT) -> dict:
    files = {module_name(p, root): p for tree in TREES for p in sorted((root / tree).rglob("*.py"))}
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in files.items()}
    imports: dict[str, set[str]] = {m: set() for m in files}          # module -> modules it imports
    names_used: dict[tuple[str, str], set[str]] = {}                   # (module, top-level name) -> user units
    for m, tree in trees.items():
        is_pkg = files[m].name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports[m] |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(m, node, is_pkg)
                for a in node.names:
                    sub = f"{src}.{a.name}"
                    if sub in files:
                        imports[m].add(sub)
                    elif src in files:
                        imports[m].add(src)
                        names_used.setdefault((src, a.name), set()).add(m)
    # uses of a top-level definition inside its own module, by other top-level units
    for m, tree in trees.items():
        defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        for node in tree.body:
            unit = f"{m}:{node.name}" if node in defs.values() else m   # module-level code is the module's
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and sub.id in defs and defs[sub.id] is not node:
                    names_used.setdefault((m, sub.id), set()).add(unit)
    importers: dict[str, set[str]] = {m: set() for m in files}
    for m, deps in imports.items():
        for d in deps:
            importers[d].add(m)

    entries = {"harness.__main__", "harness.cli", "harness.pytest_plugin"}
    for name in ENTRY_FILES:
        for f in ([root / name] if (root / name).is_file() else sorted((root / name).rglob("*.json"))):
            entries |= {m for m in re.findall(r"harness(?:\.[a-z_0-9]+)+", f.read_text()) if m in files}
    roots = (set(ROOT_MODULES) & set(files)) | {m for m, t in trees.items() if m.startswith("scenarios.") and _is_kind_root_scenario(t)}
    # greatest fixed point: assume every imported module kube-only, drop those a shared module imports
    kube = roots | {m for m in files if importers[m] and m not in entries and m not in ("harness", "scenarios")}
    units: set[str] = set()
    for m, tree in trees.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and names_used.get((m, node.name)):
                units.add(f"{m}:{node.name}")
    kube_units = set(units)

    def is_kube(user: str) -> bool:
        return user in kube or user in kube_units or user.split(":")[0] in kube

    changed = True
    while changed:
        changed = False
        for m in sorted(kube - roots):
            if not all(is_kube(i) for i in importers[m]):
                kube.discard(m)
                changed = True
        for u in sorted(kube_units):
            m, name = u.split(":")
            if not all(is_kube(x) for x in names_used[(m, name)]):
                kube_units.discard(u)
                changed = True

    counted: list[dict] = []
    for m in sorted(kube):
        counted.append({"unit": m, "rule": "module", "statements": statements(trees[m])})
    branch_expressions = 0
    for m, tree in trees.items():
        if m in kube:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if f"{m}:{node.name}" in kube_units:
                    counted.append({"unit": f"{m}:{node.name}", "rule": "definition", "statements": statements(node)})
                    continue
                if m.startswith("scenarios.") and isinstance(node, ast.FunctionDef) and _marked_kind(node.decorator_list):
                    counted.append({"unit": f"{m}:{node.name}", "rule": "kind test", "statements": statements(node)})
                    continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.If):
                    side = _branch(sub.test)
                    if side:
                        n = sum(statements(s) for s in getattr(sub, side))
                        if n:
                            counted.append({"unit": f"{m}:{sub.lineno}", "rule": f"if-{side}", "statements": n})
                elif isinstance(sub, ast.IfExp) and _branch(sub.test):
                    branch_expressions += 1
    total = sum(c["statements"] for c in counted)
    everything = sum(statements(t) for t in trees.values())
    return {"kube_only_statements": total, "all_statements": everything, "branch_expressions": branch_expressions,
            "units": counted}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="name every counted unit")
    ap.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = ap.parse_args(argv)
    result = analyse()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    if args.list:
        for c in sorted(result["units"], key=lambda c: -c["statements"]):
            print(f"{c['statements']:6d}  {c['rule']:<10}  {c['unit']}")
    print(f"kube-only statements: {result['kube_only_statements']} of {result['all_statements']} in "
          f"{', '.join(TREES)} ({result['branch_expressions']} conditional expressions on the platform's kind)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
