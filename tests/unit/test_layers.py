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


# -- the layer order ----------------------------------------------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

DOC = PROJECT_ROOT / "ARCHITECTURE.md"
LAYER_ROW = re.compile(r"^\| (\d+) [^|]*\| (.+) \|$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def module_name(path: Path) -> str:
    """``harness/a/b.py`` -> ``harness.a.b``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dotted(ref: str) -> str:
    """A cited path (``harness/kube/``, ``harness/errors.py``) as a dotted module name."""
    return ref.rstrip("/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def layer_table(text: str) -> dict[str, tuple[int, bool]]:
    """ARCHITECTURE.md's layer table: cited module or package -> (its layer, 1 = the ground; whether
    it is a folder, which takes in the modules below it)."""
    out: dict[str, tuple[int, bool]] = {}
    for line in text.splitlines():
        m = LAYER_ROW.match(line)
        if m:
            out.update({dotted(ref): (int(m.group(1)), ref.endswith("/")) for ref in CODE_SPAN.findall(m.group(2))})
    return out


def layer_of(module: str, table: dict[str, tuple[int, bool]]) -> int | None:
    """The layer of ``module``'s own entry, else of the longest folder entry above it."""
    if module in table:
        return table[module][0]
    parts = module.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        layer, folder = table.get(".".join(parts[:cut]), (0, False))
        if folder:
            return layer
    return None


def type_checking_imports(tree: ast.AST) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (types only: never run)."""
    return {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
            for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}


def imported_modules(path: Path, here: str, *, runtime_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every ``harness`` import in the file, relative ones resolved, at any depth
    (an import inside a function counts: it is a dependency all the same). ``from harness.x import y``
    names ``harness.x.y`` when y is a module, else ``harness.x``."""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    tree = ast.parse(path.read_text(), str(path))
    skip = type_checking_imports(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "harness"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "harness":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                is_module = (PROJECT_ROOT.joinpath(*sub.split(".")).with_suffix(".py").exists()
                             or PROJECT_ROOT.joinpath(*sub.split("."), "__init__.py").exists())
                out.append((node.lineno, sub if is_module else base))
    return out


def harness_modules() -> list[Path]:
    return sorted(p for p in (PROJECT_ROOT / "harness").rglob("*.py") if "upstream" not in p.parts)


def upward_imports(table: dict[str, tuple[int, bool]], modules: dict[str, Path] | None = None) -> list[str]:
    """``modules``: dotted name -> file (default: every harness module)."""
    found = []
    for name, path in (modules or {module_name(p): p for p in harness_modules()}).items():
        mine = layer_of(name, table)
        for line, target in imported_modules(path, name):
            theirs = layer_of(target, table)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{name}:{line}: layer {mine} imports {target} "
                             f"(layer {theirs})")
    return found


def test_every_harness_module_has_a_layer() -> None:
    table = layer_table(DOC.read_text())
    assert len({layer for layer, _ in table.values()}) >= 5, "ARCHITECTURE.md's layer table was not found"
    missing = [str(p.relative_to(PROJECT_ROOT)) for p in harness_modules() if layer_of(module_name(p), table) is None]
    assert not missing, f"modules in no layer of ARCHITECTURE.md's table: {missing}"


def test_no_module_imports_from_a_higher_layer() -> None:
    found = upward_imports(layer_table(DOC.read_text()))
    assert not found, "imports that point up a layer (ARCHITECTURE.md, 'Layers'):\n" + "\n".join(found)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """A planted import of a platform in an oracle is found, relative and absolute, in a function too."""
    table = layer_table(DOC.read_text())
    assert layer_of("harness.oracles.hpa.controller", table) < layer_of("harness.platforms.base", table)
    assert layer_of("harness.load.responses", table) < layer_of("harness.load.runner", table)  # its own entry wins
    assert layer_of("harness.unlisted", table) is None  # harness/__init__.py is the package's module, no folder
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from ...platforms import base\n    import harness.report.writer\n")
    found = upward_imports(table, {"harness.oracles.hpa.planted": planted})
    assert len(found) == 2 and "harness.platforms.base" in found[0] and "harness.report.writer" in found[1], found


# -- the pure list ----------------------------------------------------------------------------------------
# Libraries that reach Docker, Kubernetes, a network, a process, a thread or the clock.
IO_LIBRARIES = ("docker", "kubernetes", "testcontainers", "requests", "urllib.request", "http", "socket", "ssl",
                "subprocess", "multiprocessing", "threading", "asyncio", "time", "psycopg", "pika", "redis", "boto3",
                "botocore", "locust", "gevent", "shutil", "tempfile", "glob", "sqlite3")
# Calls that read or write files, the environment or the clock (``open``; ``path.read_text()``, ``datetime.now()``).
IO_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "exists", "is_file", "is_dir", "iterdir",
            "glob", "rglob", "mkdir", "unlink", "stat", "getenv", "getcwd", "listdir", "now", "utcnow", "today"}
# Harness modules a pure one may import besides the pure ones: values and errors, no I/O at import or in use.
VALUE_MODULES = ("harness.errors", "harness.config", "harness.conductor", "harness.capacity",
                 # the audit rules' one reader of the seed, handed in by the caller (SeedSource)
                 "harness.audit.sources")


def pure_entries(text: str) -> list[str]:
    """The entries of ARCHITECTURE.md's pure list: paths and dotted names of its bullets, the
    parenthesised remarks (which name the I/O modules beside them) left out."""
    start = text.index("\nPure (")
    section = text[start:text.index("\nKeep them that way", start)]
    entries: list[str] = []
    for bullet in section.split("\n- ")[1:]:
        entries += CODE_SPAN.findall(re.sub(r"\([^)]*\)", "", bullet))
    return entries


def pure_targets(entries: list[str]) -> list[tuple[str, Path, str | None]]:
    """(dotted module, file, function or None) for every module an entry covers."""
    out: list[tuple[str, Path, str | None]] = []
    for ref in entries:
        if "/" in ref:
            path = PROJECT_ROOT / ref
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            out += [(module_name(f), f, None) for f in files]
        else:  # harness.pkg.module.function
            module, _, function = ref.rpartition(".")
            out.append((module, PROJECT_ROOT.joinpath(*module.split(".")).with_suffix(".py"), function))
    return out


def is_pure_module(target: str, pure: set[str]) -> bool:
    parts = target.split(".")
    return any(".".join(parts[:cut]) in pure for cut in range(len(parts), 1, -1))


def impurities(module: str, path: Path, function: str | None, pure: set[str]) -> list[str]:
    """What makes the module (or only that function of it) impure: an I/O library, a harness module
    that is neither pure nor a value module (one under ``if TYPE_CHECKING:`` is a type, never run), a
    file/environment/clock call."""
    tree: ast.AST = ast.parse(path.read_text(), str(path))
    if function is not None:
        tree = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    found = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [f"imports {n}" for n in names if any(n == lib or n.startswith(lib + ".") for lib in IO_LIBRARIES)]
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in IO_CALLS:
                found.append(f"line {node.lineno} calls {called}()")
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            found.append(f"line {node.lineno} reads the environment")
    if function is None:
        for line, target in sorted(set(imported_modules(path, module, runtime_only=True))):
            plotting = target == "harness.plotting" and "plot" in module.rpartition(".")[2]
            if not (is_pure_module(target, pure) or target in VALUE_MODULES or plotting):
                found.append(f"line {line} imports {target}, which is not pure")
    return [f"{module}{'.' + function if function else ''}: {f}" for f in found]


def pure_findings(text: str) -> list[str]:
    targets = pure_targets(pure_entries(text))
    pure = {m for m, _, fn in targets if fn is None}
    return [f for m, p, fn in targets for f in impurities(m, p, fn, pure)]


def test_the_pure_list_names_what_it_should() -> None:
    entries = pure_entries(DOC.read_text())
    for ref in ("harness/oracles/", "harness/capacity/calibrate.py", "harness/capacity/node_groups.py",
                "harness/mesh/objects.py", "harness/mesh/certs.py", "harness.report.baseline.compare_with_baseline"):
        assert ref in entries, ref
    assert "harness/capacity/inputs.py" not in entries and "harness/mesh/load.py" not in entries  # remarks


def test_the_modules_architecture_calls_pure_are_pure() -> None:
    found = pure_findings(DOC.read_text())
    assert not found, "ARCHITECTURE.md's pure list is not true:\n" + "\n".join(found)


def test_the_pure_check_sees_a_file_read_a_clock_and_an_io_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import datetime\nimport subprocess\nfrom harness.kube import client\n"
                       "def f(p):\n    return p.read_text(), datetime.datetime.now()\n")
    found = impurities("harness.oracles.planted", planted, None, {"harness.oracles"})
    assert [f.split(": ", 1)[1] for f in found] == ["imports subprocess", "line 5 calls read_text()",
                                                    "line 5 calls now()",
                                                    "line 3 imports harness.kube.client, which is not pure"], found


# -- the type checker is strict on the pure list ------------------------------------------------------------
def strict_modules(pyproject_text: str) -> list[str]:
    """The module patterns of pyproject.toml's mypy override that sets ``disallow_untyped_defs``."""
    import tomllib

    overrides = tomllib.loads(pyproject_text)["tool"]["mypy"]["overrides"]
    return [m for o in overrides if o.get("disallow_untyped_defs") for m in o["module"]]


def is_strict(module: str, patterns: list[str]) -> bool:
    return any(module == p or (p.endswith(".*") and (module == p[:-2] or module.startswith(p[:-1]))) for p in patterns)


def test_every_pure_module_is_type_checked_strictly() -> None:
    patterns = strict_modules((PROJECT_ROOT / "pyproject.toml").read_text())
    loose = sorted({m for m, _, fn in pure_targets(pure_entries(DOC.read_text()))
                    if fn is None and not is_strict(m, patterns)})
    assert patterns and not loose, f"pure modules mypy checks only at the basic level: {loose}"
    assert is_strict("harness.oracles.hpa.gomath", patterns) and not is_strict("harness.kube.diff", patterns)
