"""The system's real manifests and scripts, as the deployment guide (the seed) gives them.

The seed is a Markdown guide whose fenced blocks start with a path comment
(``# k8s/staging/conductor-hpa.yml``). This module extracts those blocks so the
committed copies in ``k8s/`` and ``scripts/`` can be checked against the seed:
the harness tests the system as written, it never fixes it.
"""
from __future__ import annotations

import re

__all__ = ["extract_files", "SEED_FILE_PREFIXES"]

# Only these belong to the system under test; other blocks (terraform, typescript, CI) are context.
SEED_FILE_PREFIXES = ("k8s/", "scripts/")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_PATH_COMMENT = re.compile(r"^#\s*((?:k8s|scripts)/[\w./-]+)\s*$")


def extract_files(seed_markdown: str) -> dict[str, str]:
    """Return ``{relative path: file text}`` for every seed block naming a path under k8s/ or scripts/.

    A YAML block holds documents separated by ``---``; a document whose first line is a
    path comment starts a new file, the others belong to the file named before them.
    """
    files: dict[str, list[str]] = {}
    for match in _FENCE.finditer(seed_markdown):
        lang, body = match.group(1), match.group(2)
        if lang == "bash":
            lines = body.splitlines()
            # A script names its path on the line after the shebang.
            if len(lines) > 1 and (m := _PATH_COMMENT.match(lines[1])):
                files[m.group(1)] = [body]
            continue
        if lang != "yaml":
            continue
        current: str | None = None
        for doc in re.split(r"^---\s*$\n?", body, flags=re.M):
            first = doc.lstrip("\n").split("\n", 1)[0]
            if m := _PATH_COMMENT.match(first):
                current = m.group(1)
            if current is None:
                break  # a block with no path (a runbook, a config sketch) is not a file
            if doc.strip():
                files.setdefault(current, []).append(doc.strip("\n") + "\n")
    return {path: "---\n".join(docs) if not path.endswith(".sh") else docs[0]
            for path, docs in files.items()}
