"""Every command the README's Quick start and Troubleshooting tell a user to type exists and parses:
each `make` target is one the Makefile has (and `make -n` accepts the line), each `harness`
subcommand's `--help` works and lists every flag the line uses, and the whole line parses with the
harness's own parser. Nothing is run. A planted bad command shows the check can fail."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from harness.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
HARNESS = ".venv/bin/python -m harness"
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def commands(text: str) -> list[str]:
    """Commands in backtick spans and fenced blocks: lines whose first word (after VAR=value
    assignments and `export`) is make, docker or the harness."""
    candidates = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    candidates = [line for block in candidates for line in block.splitlines()]
    candidates += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    out = []
    for line in candidates:
        for part in re.split(r"\s*;\s*", line.strip()):
            words = part.split()
            while words and (ASSIGNMENT.match(words[0]) or words[0] == "export"):
                words = words[1:]
            rest = " ".join(words)
            if words and (words[0] in ("make", "docker") or rest.startswith(HARNESS)):
                out.append(rest)
    return out


def make_targets() -> set[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z0-9_-]+):", text, re.M))


def problems_of(command: str) -> list[str]:
    words = shlex.split(command.replace("$(", "").replace(")", ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")
           and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    if words[0] == "make":
        target = next((w for w in words[1:] if not ASSIGNMENT.match(w)), "help")
        if target not in make_targets():
            return [f"{command}: the Makefile has no target {target!r}"]
        proc = subprocess.run(["make", "-n", "--no-print-directory", *words[1:]], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        return [] if proc.returncode == 0 else [f"{command}: make -n failed: {proc.stderr.strip()[-200:]}"]
    if words[0] == "docker":
        if shutil.which("docker") is None:
            return []
        proc = subprocess.run(["docker", words[1], "--help"], capture_output=True, text=True, timeout=60)
        return [] if proc.returncode == 0 else [f"{command}: `docker {words[1]} --help` failed"]
    argv = words[3:]
    proc = subprocess.run([sys.executable, "-m", "harness", argv[0], "--help"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return [f"{command}: `harness {argv[0]} --help` exits {proc.returncode}"]
    missing = [w.split("=")[0] for w in argv if w.startswith("--") and w.split("=")[0] not in proc.stdout]
    if missing:
        return [f"{command}: `harness {argv[0]} --help` lists no {', '.join(missing)}"]
    from harness.cli import build_parser
    from harness.errors import HarnessError

    try:
        build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    except (HarnessError, SystemExit) as exc:
        return [f"{command}: does not parse ({exc})"]
    return []


def test_the_readme_names_commands_in_both_sections():
    text = README.read_text()
    quick, trouble = commands(section(text, "Quick start")), commands(section(text, "Troubleshooting"))
    assert any(c.startswith("make e2e") for c in quick) and any(c.startswith(HARNESS + " expect") for c in quick)
    assert len(trouble) >= 5, trouble


@pytest.mark.parametrize("title", ["Quick start", "Troubleshooting"])
def test_every_command_exists_and_parses(title):
    found = commands(section(README.read_text(), title))
    problems = [p for c in dict.fromkeys(found) for p in problems_of(c)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_command_that_does_not_exist():
    planted = commands("run `make e2ee PLATFORM=docker`, then `.venv/bin/python -m harness expect b.json --since 3`"
                       " and `HARNESS_USERS=5 .venv/bin/python -m harness e2e --platfrom docker`")
    assert len(planted) == 3
    found = [problems_of(c) for c in planted]
    assert "no target 'e2ee'" in found[0][0]
    assert "lists no --since" in found[1][0]
    assert "lists no --platfrom" in found[2][0]
