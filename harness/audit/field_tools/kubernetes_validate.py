"""kubernetes-validate over the seed: built-in kinds checked strictly against the seed's Kubernetes
version, its errors turned into findings."""
from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.audit.findings import Finding, ToolRun, sort_findings
from harness.audit.sources import Doc, SeedSource
from harness.audit.field_tools import tools

__all__ = ["kubernetes_validate_findings", "kubernetes_version", "DEFAULT_KUBERNETES_VERSION"]

DEFAULT_KUBERNETES_VERSION = "1.28"


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


def kubernetes_validate_findings(source: SeedSource) -> tools.Result:
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
            problems.append(f"{doc.label}: {type(exc).__name__}: {tools.tail(str(message), 200)}")
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
    return sort_findings(tools.dedupe(findings)), run
