"""A structural diff of Kubernetes objects, for checking that an overlay changes only what it says.

Lists of objects carrying a ``name`` (containers, env, ports, volumes) are matched by name, the way
strategic merge treats them, so a path reads ``spec.template.spec.containers[conductor].image``.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["diff_objects", "diff_renderings"]


def _is_named_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(i, dict) and "name" in i for i in v)


def diff_objects(a: Any, b: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, "added" | "removed" | "changed") for every leaf where ``b`` differs from ``a``."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a:
                out.append((p, "added"))
            elif k not in b:
                out.append((p, "removed"))
            else:
                out += diff_objects(a[k], b[k], p)
        return out
    if _is_named_list(a) and _is_named_list(b):
        da, db = {i["name"]: i for i in a}, {i["name"]: i for i in b}
        out = []
        for k in list(da) + [k for k in db if k not in da]:
            p = f"{path}[{k}]"
            if k not in da:
                out.append((p, "added"))
            elif k not in db:
                out.append((p, "removed"))
            else:
                out += diff_objects(da[k], db[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_objects(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [(path, "changed")]


def diff_renderings(base: Iterable[dict[str, Any]], rendered: Iterable[dict[str, Any]]) -> dict[str, list]:
    """Objects added/removed between two renderings, and per shared object its changed paths.

    Objects are keyed ``Kind/name``; the result maps ``"added"``/``"removed"`` to object keys and
    ``"changed"`` to ``(object key, path, op)`` triples.
    """
    def key(d: dict[str, Any]) -> str:
        return f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"

    a = {key(d): d for d in base}
    b = {key(d): d for d in rendered}
    changed = [(k, p, op) for k in sorted(set(a) & set(b)) for p, op in diff_objects(a[k], b[k])]
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)), "changed": changed}
