"""The seed's terraform read into plain data (``python-hcl2``), quotes and parser bookkeeping removed,
so rules can ask "what does module rds set" without knowing HCL. Parsing only; no provider, no state."""
from __future__ import annotations

from typing import Any

import hcl2

__all__ = ["parse_terraform", "TerraformFile"]


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class TerraformFile:
    """One ``main.tf``: ``modules`` by name, ``backend`` settings, ``locals``."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        data = _clean(hcl2.loads(text))
        self.modules: dict[str, dict[str, Any]] = {}
        for block in data.get("module", []):
            self.modules.update(block)
        self.backend: dict[str, Any] = {}
        for block in data.get("terraform", []):
            for backend in block.get("backend", []):
                for kind, settings in backend.items():
                    self.backend = {"type": kind, **settings}
        self.locals: dict[str, Any] = {}
        for block in data.get("locals", []):
            self.locals.update(block)
        self.resources = data.get("resource", [])

    def module(self, name: str) -> dict[str, Any]:
        return self.modules.get(name, {})

    @property
    def environment(self) -> str:
        return str(self.locals.get("common_tags", {}).get("Environment", self.path.split("/")[-2]))


def parse_terraform(path: str, text: str) -> TerraformFile:
    return TerraformFile(path, text)
