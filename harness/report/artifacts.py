"""Raw data files kept beside the report (samples, responses) for a person to re-check a verdict."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["write_json"]


def write_json(path: Path, data: Any) -> Path:
    """``data`` as JSON at ``path`` (dataclasses through their ``to_dict`` or ``asdict``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else asdict(o)))
    return path
