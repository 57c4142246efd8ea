"""Everything versioned in the seed against what its upstream serves or creates today: Kubernetes API
versions (built-in and custom resources) at the seed's Kubernetes version, terraform registry modules'
inputs against the major an unpinned source resolves to, managed engine versions, image registries and
unpinned image tags. The facts are vendored with their sources (``upstream/versions.yaml``,
``upstream/SOURCES.md``); no network. Pure but for reading that file."""
from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any


from harness.audit.field_tools import kubernetes_version
from harness.audit.findings import Finding, ToolRun
from harness.audit.rules.base import make_finding
from harness.audit.sources import SeedSource
from harness.files import read_yaml

__all__ = ["version_findings", "load_upstream", "UPSTREAM", "resolved_major"]

UPSTREAM = Path(__file__).parent / "upstream" / "versions.yaml"
DEV_STACK = "seed/docker/dev-stack.yml"


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Any]:
    return read_yaml(path, what="vendored upstream facts", fix="restore the file from git")


def load_upstream(path: Path = UPSTREAM) -> dict[str, Any]:
    return _load(str(path))


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def resolved_major(constraint: str | None, latest: int) -> int:
    """The major a module ``version`` constraint lets ``terraform init`` take today: the newest when there
    is no constraint or it is open above (">= 18"), else the constraint's own major ("~> 19.0", "19.21.0",
    "< 20" -> 19)."""
    if not constraint:
        return latest
    text = str(constraint).strip()
    if upper := re.search(r"<\s*(\d+)((?:\.\d+)*)", text):
        exclusive = "<=" not in text and set(upper.group(2).replace(".", "")) <= {"0"}
        return int(upper.group(1)) - (1 if exclusive else 0)
    m = re.search(r"\d+", text)
    if not m or text.startswith(">"):
        return latest
    return int(m.group())


def _api_findings(src: SeedSource, up: dict[str, Any], cluster: str, sources: dict[str, str]) -> list[Finding]:
    removed = {e["api"]: e for e in up.get("kubernetes_removed") or []}
    custom = {e["api"]: e for e in up.get("custom_apis") or []}
    users: dict[str, list] = defaultdict(list)
    for doc in src.manifests:
        users[doc.api_version].append(doc)
    out = []
    for api, docs in sorted(users.items()):
        entry, why = None, ""
        if api in removed and _minor(cluster) >= _minor(removed[api]["removed_in"]):
            entry = removed[api]
            why = (f"Kubernetes stopped serving {api} in {entry['removed_in']}; the seed's clusters run {cluster}, "
                   f"so the API server refuses these objects (no matches for kind)")
        elif api in custom and custom[api].get("served") is False:
            entry = custom[api]
            why = (f"{api} is no longer served {entry.get('since', '')}: a fresh install of the current "
                   "release refuses these objects, so nothing they configure exists")
        if entry is None:
            continue
        out.append(make_finding(
            src, f"versions.api-not-served.{api}", "delivery",
            f"{len(docs)} object{'s' if len(docs) > 1 else ''} use{'' if len(docs) > 1 else 's'} {api}, which upstream "
            "no longer serves",
            f"{why}. Objects: {', '.join(d.label for d in docs)}. Source: {sources.get(entry.get('source', ''), '')}",
            f"move them to {entry['replacement']}, and pin the controller release the manifests are written for",
            [d.label for d in docs], [(d.path, d.line("apiVersion")) for d in docs]))
    return out


def _module_findings(src: SeedSource, up: dict[str, Any], sources: dict[str, str]) -> tuple[list[Finding], list[str]]:
    modules = up.get("terraform_modules") or {}
    out, unchecked = [], []
    for tf in src.terraform:
        for name, module in sorted(tf.modules.items()):
            source = str(module.get("source", ""))
            data = modules.get(source)
            if not data or "latest_major" not in data:
                unchecked.append(f"{tf.environment} module.{name} ({source}: inputs not vendored)")
                continue
            major = resolved_major(module.get("version"), int(data["latest_major"]))
            if major < int(data["latest_major"]):
                unchecked.append(f"{tf.environment} module.{name} (pinned to major {major}; only {data['latest_major']} vendored)")
                continue
            inputs = set(module) - {"source", "version", "providers", "depends_on", "count", "for_each"}
            renamed = sorted(i for i in inputs if i in (data.get("renamed") or {}))
            removed = sorted(i for i in inputs if i in (data.get("removed") or []))
            missing = sorted(r for r in data.get("required") or [] if r not in inputs)
            if not (renamed or removed or missing):
                continue
            new_names = data.get("renamed") or {}
            problems = ([f"renamed: {', '.join(f'{i} -> {new_names[i]}' for i in renamed)}"] if renamed else []) + \
                ([f"removed: {', '.join(removed)}"] if removed else []) + \
                ([f"required but not set: {', '.join(missing)}"] if missing else [])
            pin = f"version {module['version']!r}" if module.get("version") else "no version"
            out.append(make_finding(
                src, f"versions.module-inputs.{tf.environment}.{name}", "delivery",
                f"{tf.environment} module.{name} ({pin}) resolves to {source} major {major}, which does not take "
                f"{len(renamed) + len(removed) + len(missing)} of its inputs",
                f"{'; '.join(problems)}. terraform plan stops with \"Unsupported argument\" for each (and "
                f"\"Missing required argument\" for a required one): the environment cannot be planned. "
                f"Source: {sources.get(data.get('source', ''), '')}",
                f"pin the module to the major these inputs belong to, or rename them for major {major}",
                [f"terraform {tf.path} module.{name}"],
                [(tf.path, src.find_line(tf.path, f"{i} ", src.find_line(tf.path, f'module "{name}"')))
                 for i in renamed + removed] or [(tf.path, src.find_line(tf.path, f'module "{name}"'))]))
    return out, unchecked


def _engine_findings(src: SeedSource, up: dict[str, Any], sources: dict[str, str]) -> list[Finding]:
    engines = (up.get("engines") or {}).get("rds-postgres") or {}
    by_version: dict[str, list] = defaultdict(list)
    for tf in src.terraform:
        rds = tf.module("rds")
        if str(rds.get("engine", "")) == "postgres" and rds.get("engine_version"):
            by_version[str(rds["engine_version"])].append(tf)
    out = []
    for version, tfs in sorted(by_version.items()):
        entry = engines.get(version.split(".")[0])
        if not entry or _minor(version) >= _minor(entry["oldest_offered"]):
            continue
        out.append(make_finding(
            src, f"versions.engine-not-offered.rds-postgres-{version}", "RPO",
            f"RDS PostgreSQL {version} can no longer be created (oldest offered {entry['oldest_offered']})",
            f"{', '.join(t.environment for t in tfs)} set engine_version {version}. {entry.get('note', '')} (as of "
            f"{entry['as_of']}). A rebuild or a DR restore into a new instance asks RDS for {version} and is "
            f"refused; running instances are upgraded by AWS in a maintenance window. Source: "
            f"{sources.get(entry.get('source', ''), '')}",
            f"set engine_version to a supported minor (>= {entry['oldest_offered']}) or to the major only (\"15\")",
            [f"terraform {t.path} module.rds" for t in tfs],
            [(t.path, src.find_line(t.path, "engine_version")) for t in tfs]))
    return out


def _images(src: SeedSource) -> list[tuple[str, str, int, str]]:
    """(object, path, line, image) for every container image the seed names."""
    out = []
    for doc in src.manifests:
        for ci, c in enumerate(doc.get("spec", "template", "spec", "containers", default=[]) or []):
            out.append((doc.label, doc.path, doc.line("spec", "template", "spec", "containers", ci, "image"),
                        str(c.get("image", ""))))
    if src.has(DEV_STACK):
        for doc in src.docs(DEV_STACK):
            for name, svc in (doc.get("services", default={}) or {}).items():
                if svc.get("image"):
                    out.append((f"dev stack service {name}", DEV_STACK, doc.line("services", name, "image"),
                                str(svc["image"])))
    return out


def _image_findings(src: SeedSource, up: dict[str, Any], sources: dict[str, str]) -> list[Finding]:
    registries = up.get("registries") or {}
    out = []
    unpinned: dict[str, list] = defaultdict(list)
    for obj, path, line, image in _images(src):
        registry = image.split("/", 1)[0] if "/" in image and "." in image.split("/", 1)[0] else ""
        if registry in registries:
            r = registries[registry]
            out.append(make_finding(
                src, f"versions.image-registry.{obj}", "delivery",
                f"{obj} pulls {image} from {registry}, frozen since {r['frozen']}",
                f"{registry} receives no new images or security fixes since {r['frozen']} and redirects to "
                f"{r['replacement']}; pulls fail where egress allows only the old host. Source: "
                f"{sources.get(r.get('source', ''), '')}",
                f"pull from {r['replacement']}", [obj], [(path, line)]))
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in image and tag in ("", "latest"):
            unpinned[path].append((obj, line, image))
    for path, items in sorted(unpinned.items()):
        out.append(make_finding(
            src, f"versions.image-unpinned.{path}", "delivery",
            f"{len(items)} image{'s' if len(items) > 1 else ''} in {path} float on :latest",
            f"{', '.join(i for _, _, i in items)}: each pull may bring a new major, so two developers (or two "
            "days) run different stacks",
            "pin a tag (or a digest)", [o for o, _, _ in items], [(path, ln) for _, ln, _ in items]))
    return out


def version_findings(src: SeedSource, upstream: dict[str, Any] | None = None) -> tuple[list[Finding], ToolRun]:
    """Every versioned thing in the seed against the vendored upstream facts."""
    up = upstream if upstream is not None else load_upstream()
    sources = up.get("sources") or {}
    cluster = kubernetes_version(src)
    modules, unchecked = _module_findings(src, up, sources)
    findings = _api_findings(src, up, cluster, sources) + modules + _engine_findings(src, up, sources) + \
        _image_findings(src, up, sources)
    apis = sorted({d.api_version for d in src.manifests})
    known = {e["api"] for e in up.get("kubernetes_removed") or []} | {e["api"] for e in up.get("custom_apis") or []}
    builtin_ok = [a for a in apis if a not in known]
    checked = [f"apiVersions at Kubernetes {cluster}: {', '.join(apis)}"] + \
        [f"module inputs not checked: {u}" for u in unchecked]
    return findings, ToolRun("versions", "ran", version=f"upstream facts of {up.get('checked_on', '?')}",
                             checked=checked,
                             reason=f"built-in or served as written: {', '.join(builtin_ok)}" if builtin_ok else "")
