"""The system's real manifests and scripts, as the deployment guide (the seed) gives them.

The seed is a Markdown guide whose fenced blocks start with a path comment
(``# k8s/staging/conductor-hpa.yml``). This module extracts those blocks so the
committed copies in ``k8s/`` and ``scripts/`` can be checked against the seed:
the harness tests the system as written, it never fixes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["extract_files", "extract_blocks", "SeedBlock", "SEED_FILE_PREFIXES", "CONTEXT_DIR", "GUIDE_COPY"]

# Only these belong to the system under test; other blocks (terraform, typescript, CI) are context.
SEED_FILE_PREFIXES = ("k8s/", "scripts/")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# The rest of the seed (terraform, the development stack, the deploy workflow, the runbook, ...) is kept
# unaltered under seed/ so the audit can read it; a path the guide names keeps that path below seed/
# (seed/.github/workflows/... so that it never becomes a workflow of this repository).
CONTEXT_DIR = "seed"
GUIDE_COPY = "seed/deployment-guide.md"
_ANY_PATH_COMMENT = re.compile(r"^(?:#|//)\s*([\w.-]*[\w-]/[\w./-]+\.\w+)\s*$")
_HEADING = re.compile(r"^#{2,4}\s+(.*?)\s*$", re.M)
_EXTENSIONS = {"yaml": "yml", "bash": "sh", "typescript": "ts", "hcl": "tf", "mermaid": "mmd"}


@dataclass(frozen=True)
class SeedBlock:
    """One fenced block of the guide: where the project keeps it, and the guide line of its first line."""
    path: str
    lang: str
    text: str
    guide_line: int
    heading: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"[^\x00-\x7f]", "", text).lower()).strip("-")


def extract_blocks(seed_markdown: str) -> list[SeedBlock]:
    """Every fenced block that is not one of the system's deployed files (``extract_files``), with the
    path the project keeps it at: ``seed/<the path its first line names>``, or, for a block that names no
    path, ``seed/blocks/<its section heading>.<ext>``. The text is the block's, unaltered."""
    blocks = []
    for match in _FENCE.finditer(seed_markdown):
        lang, body = match.group(1), match.group(2)
        lines = body.splitlines()
        if lang == "bash" and len(lines) > 1 and _PATH_COMMENT.match(lines[1]):
            continue  # a deployed script: extract_files
        if lang == "yaml" and lines and _PATH_COMMENT.match(lines[0]):
            continue  # deployed manifests: extract_files
        headings = _HEADING.findall(seed_markdown[:match.start()])
        heading = headings[-1] if headings else "seed"
        named = _ANY_PATH_COMMENT.match(lines[0]) if lines else None
        path = (f"{CONTEXT_DIR}/{named.group(1)}" if named else
                f"{CONTEXT_DIR}/blocks/{_slug(heading)}.{_EXTENSIONS.get(lang, lang or 'txt')}")
        first_line = seed_markdown[:match.start(2)].count("\n") + 1
        blocks.append(SeedBlock(path, lang, body, first_line, heading))
    return blocks


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
