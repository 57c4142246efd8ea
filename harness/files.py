"""Read a YAML or JSON file, or fail in one line: the file, what is wrong with it, and the fix.

One helper for every file a user hands the harness or the harness reads back (manifests, configs,
baselines, a run's samples). A missing, unreadable, non-text or malformed file raises ``error``
(a :class:`harness.errors.UsageError` by default, or a subclass such as the capacity's) before anything
starts; no traceback reaches the user."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UsageError

__all__ = ["read_text", "read_yaml", "read_yaml_documents", "read_json", "read_json_lines"]


def read_text(path: str | Path, *, what: str = "file", missing_fix: str = "check the path",
              error: type[UsageError] = UsageError) -> str:
    """The file's text. ``what`` names it in messages ("kind config", "baseline")."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {p} is a directory, not a file", "name the file")
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {p} not found", missing_fix) from None
    except PermissionError:
        raise error(f"{what} {p} cannot be read (permission denied)", f"make it readable (chmod u+r {p})") from None
    except UnicodeDecodeError:
        raise error(f"{what} {p} is not text", "fix the file") from None
    except OSError as exc:
        raise error(f"{what} {p} cannot be read ({exc.strerror or exc})", "fix the file") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return (f"line {mark.line + 1}: " if mark is not None else "") + (
        getattr(exc, "problem", None) or str(exc).splitlines()[0])


def read_yaml(path: str | Path, *, what: str = "file", missing_fix: str = "check the path",
              fix: str = "fix the file", error: type[UsageError] = UsageError) -> Any:
    """The file's one YAML document (None when empty)."""
    text = read_text(path, what=what, missing_fix=missing_fix, error=error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML ({_yaml_problem(exc)})", fix) from None


def read_yaml_documents(path: str | Path, *, what: str = "file", missing_fix: str = "check the path",
                        fix: str = "fix the file", error: type[UsageError] = UsageError) -> list[Any]:
    """Every non-empty YAML document of the file, in order."""
    text = read_text(path, what=what, missing_fix=missing_fix, error=error)
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML ({_yaml_problem(exc)})", fix) from None


def read_json(path: str | Path, *, what: str = "file", missing_fix: str = "check the path",
              fix: str = "fix the file", error: type[UsageError] = UsageError) -> Any:
    """The file's JSON value."""
    text = read_text(path, what=what, missing_fix=missing_fix, error=error)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise error(f"{what} {path} is not JSON ({exc})", fix) from None


def read_json_lines(path: str | Path, *, what: str = "file", missing_fix: str = "check the path",
                    fix: str = "fix the file", error: type[UsageError] = UsageError) -> list[Any]:
    """One JSON value per non-blank line (a JSON-lines file)."""
    out = []
    for i, line in enumerate(read_text(path, what=what, missing_fix=missing_fix, error=error).splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise error(f"{what} {path} line {i} is not JSON ({exc})", fix) from None
    return out
