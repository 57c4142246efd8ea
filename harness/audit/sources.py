"""The seed as the audit reads it: every file the project keeps from the deployment guide (``k8s/``,
``scripts/``, ``seed/``), each YAML document with the line of every key, and each line mapped back to
the guide. Reading only; the rules that judge it are pure functions of a ``SeedSource``."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.audit.findings import SeedRef
from harness.audit.terraform import TerraformFile, parse_terraform
from harness.errors import UsageError
from harness.seed import GUIDE_COPY

if TYPE_CHECKING:
    from harness.mesh.objects import Mesh

__all__ = ["SeedSource", "Doc", "SEED_DIRS", "RUNBOOK"]

# Where the project keeps the seed's files (see harness.seed): deployed ones and the rest.
SEED_DIRS = ("k8s", "scripts", "seed")
# Harness-made overlays and add-ons are not the seed's: they are the harness's own way to run it.
_NOT_SEED = ("k8s/overlays/", "k8s/addons/")
RUNBOOK = "seed/blocks/disaster-recovery-plan.yml"
_GUIDE_WINDOW = 60  # how far ahead a file line is looked for in the guide (blank lines, separators)


@dataclass
class Doc:
    """One YAML document: its data and the line of each key path (``("spec", "replicas")``)."""
    path: str
    index: int
    data: dict[str, Any]
    lines: dict[tuple, int] = field(repr=False)
    first_line: int = 1

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.data.get("metadata") or {}).get("namespace", ""))

    @property
    def label(self) -> str:
        """``Kind/namespace/name`` as findings name objects."""
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)

    def get(self, *keys: Any, default: Any = None) -> Any:
        node: Any = self.data
        for k in keys:
            if isinstance(node, dict) and k in node:
                node = node[k]
            elif isinstance(node, list) and isinstance(k, int) and -len(node) <= k < len(node):
                node = node[k]
            else:
                return default
        return node

    def line(self, *keys: Any) -> int:
        """Line of the deepest existing key on the path (the document's first line if none)."""
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.lines:
                return self.lines[keys[:n]]
        return self.first_line


def _line_map(node: yaml.Node, prefix: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            out[path] = key.start_mark.line + 1
            _line_map(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (i,)] = item.start_mark.line + 1
            _line_map(item, prefix + (i,), out)


class SeedSource:
    """The seed under ``root`` (the project by default; tests pass mutated copies)."""

    def __init__(self, root: Path, today: dt.date | None = None) -> None:
        self.root = Path(root)
        # The date rules judge support windows by: the caller's clock, so the rules read none.
        self.today = today or dt.date.today()
        missing = [d for d in ("k8s", "scripts") if not (self.root / d).is_dir()]
        if missing:
            raise UsageError(f"{self.root} has no {' or '.join(d + '/' for d in missing)}: not a checkout of the harness",
                             "run the audit from the project, or pass --root to a copy of it")

    @cached_property
    def paths(self) -> list[str]:
        found = []
        for d in SEED_DIRS:
            base = self.root / d
            if base.is_dir():
                found += [p.relative_to(self.root).as_posix() for p in sorted(base.rglob("*")) if p.is_file()]
        return [p for p in found if not p.startswith(_NOT_SEED) and p != GUIDE_COPY and not p.endswith("README.md")]

    def has(self, path: str) -> bool:
        """The file ``path`` (relative to the root) is there."""
        return (self.root / path).is_file()

    def has_path(self, path: str) -> bool:
        """A file or folder ``path`` (relative to the root) is there."""
        return (self.root / path).exists()

    def folders(self, path: str) -> list[str]:
        """The names of the folders inside ``path`` (relative to the root), sorted."""
        return sorted(p.name for p in (self.root / path).iterdir() if p.is_dir())

    def mesh(self, what_if: bool = False) -> Mesh:
        """The seed's mesh as the docker mesh translates it (:func:`harness.mesh.load.load_mesh`)."""
        from harness.mesh.load import load_mesh

        return load_mesh(self.root / "k8s", what_if=what_if)

    def text(self, path: str) -> str:
        return (self.root / path).read_text()

    def lines(self, path: str) -> list[str]:
        return self.text(path).splitlines()

    @cached_property
    def guide_lines(self) -> list[str]:
        guide = self.root / GUIDE_COPY
        return guide.read_text().splitlines() if guide.is_file() else []

    @cached_property
    def _guide_maps(self) -> dict[str, dict[int, int]]:
        return {}

    def guide_line(self, path: str, line: int) -> int | None:
        """The guide's line for ``path``'s ``line``: file lines are matched to the guide in order,
        from the file's first line; a line that was changed (a mutated copy) maps to None."""
        if path not in self._guide_maps:
            self._guide_maps[path] = self._align(self.lines(path)) if self.has(path) else {}
        return self._guide_maps[path].get(line)

    def _align(self, file_lines: list[str]) -> dict[int, int]:
        guide = self.guide_lines
        if not file_lines or not guide:
            return {}
        first = next((i for i, g in enumerate(guide) if g == file_lines[0] and g.strip()), None)
        if first is None:
            return {}
        out, pos = {}, first
        for n, text in enumerate(file_lines, 1):
            for j in range(pos, min(pos + _GUIDE_WINDOW, len(guide))):
                if guide[j] == text:
                    out[n] = j + 1
                    pos = j + 1
                    break
        return out

    def ref(self, path: str, line: int) -> SeedRef:
        return SeedRef(path, line, self.guide_line(path, line))

    def find_line(self, path: str, needle: str, start: int = 1) -> int:
        """First line at or after ``start`` containing ``needle`` (0 if none)."""
        for n, text in enumerate(self.lines(path), 1):
            if n >= start and needle in text:
                return n
        return 0

    def docs(self, path: str) -> list[Doc]:
        text = self.text(path)
        try:
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
            datas = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})",
                             "the seed's files are kept as written; restore it from the guide") from exc
        out = []
        for i, (node, data) in enumerate(zip(nodes, datas)):
            if not isinstance(data, dict):
                continue
            lines: dict[tuple, int] = {}
            _line_map(node, (), lines)
            out.append(Doc(path, i, data, lines, node.start_mark.line + 1))
        return out

    @cached_property
    def manifests(self) -> list[Doc]:
        """Every Kubernetes object the seed deploys (``k8s/``, the harness's overlays aside)."""
        return [d for p in self.paths if p.startswith("k8s/") and p.endswith((".yml", ".yaml"))
                for d in self.docs(p) if "kind" in d.data and "apiVersion" in d.data]

    def objects(self, kind: str) -> list[Doc]:
        return [d for d in self.manifests if d.kind == kind]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Doc | None:
        return next((d for d in self.objects(kind) if d.name == name and
                     (namespace is None or d.namespace == namespace)), None)

    @cached_property
    def terraform(self) -> list[TerraformFile]:
        """Each environment's ``seed/infrastructure/<env>/main.tf``."""
        return [parse_terraform(p, self.text(p)) for p in self.paths
                if p.startswith("seed/infrastructure/") and p.endswith(".tf")]

    def terraform_for(self, environment: str) -> TerraformFile | None:
        return next((t for t in self.terraform if t.environment == environment), None)

    @cached_property
    def runbook(self) -> dict[str, Any]:
        """The guide's disaster-recovery runbook block (``disaster_recovery``), {} if absent."""
        path = RUNBOOK
        if not self.has(path):
            return {}
        docs = self.docs(path)
        return (docs[0].data.get("disaster_recovery") or {}) if docs else {}

    @cached_property
    def workflows(self) -> list[Doc]:
        return [d for p in self.paths if p.startswith("seed/.github/workflows/") for d in self.docs(p)]
