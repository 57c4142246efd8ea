"""Field-level checks of the seed's custom resources against their upstream CRD schemas.

The API server validates a custom resource against the CRD's structural ``openAPIV3Schema``: a field not in
``properties`` (and not under ``x-kubernetes-preserve-unknown-fields``) is silently *pruned*; a wrong type, an
enum or pattern violation or a missing required field makes the apply fail. None of this shows in the YAML.
The schemas are vendored in ``crd_schemas/`` (``SOURCES.md`` says from which upstream file and commit, and how
they were trimmed), so this check needs no cluster and no network.

``crd_field_findings(source)`` returns one ``Finding`` per problem (``source="crd-schema"``) and the
``ToolRun`` that says what was checked against which schema versions.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


from harness.audit.findings import Finding, ToolRun
from harness.audit.sources import Doc, SeedSource
from harness.files import read_yaml

__all__ = ["crd_field_findings", "load_schemas", "validate_object", "Violation", "CrdSchema", "SCHEMA_DIR",
           "TOOL_NAME"]

SCHEMA_DIR = Path(__file__).resolve().parent / "crd_schemas"
TOOL_NAME = "crd-schema"
TRIMMED = "x-harness-trimmed"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
# Always kept by the API server whatever the CRD's schema lists at the root.
_ROOT_KEYS = frozenset({"apiVersion", "kind", "metadata"})
_DURATION_RULE = "duration(self) >= duration('1ms')"
_FORMAT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
# API groups served by Kubernetes itself: their objects are not custom resources.
_BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "coordination.k8s.io",
    "discovery.k8s.io", "scheduling.k8s.io", "node.k8s.io", "certificates.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "resource.k8s.io", "storagemigration.k8s.io", "internal.apiserver.k8s.io"})

# What each kind's problems threaten (findings.TARGETS).
_TARGET = {
    "DestinationRule": "availability", "VirtualService": "availability", "Gateway": "availability",
    "PeerAuthentication": "security", "AuthorizationPolicy": "security",
    "SecretStore": "security", "ExternalSecret": "security",
    "Schedule": "RPO", "BackupStorageLocation": "RPO", "VolumeSnapshotLocation": "RPO",
    "Application": "delivery", "AppProject": "delivery",
    "VerticalPodAutoscaler": "scaling",
}
# Subtrees whose fields configure a resilience (or protection) feature: a pruned field there silently turns
# the feature off (high); a pruned field elsewhere is lost configuration (medium).
_RESILIENCE = {
    "DestinationRule": (("spec", "trafficPolicy"), ("spec", "subsets")),
    "VirtualService": (("spec", "http"), ("spec", "tcp"), ("spec", "tls")),
    "Schedule": (("spec",),), "BackupStorageLocation": (("spec",),), "VolumeSnapshotLocation": (("spec",),),
    "Application": (("spec", "syncPolicy"),),
    "VerticalPodAutoscaler": (("spec", "updatePolicy"), ("spec", "resourcePolicy")),
    "PeerAuthentication": (("spec",),), "AuthorizationPolicy": (("spec", "rules"),),
}
# Fields people write from memory of another API, and what the CRD calls the feature.
_KNOWN_RENAMES = {
    ("DestinationRule", "circuitBreaker"): (
        "outlierDetection",
        "Istio's DestinationRule has no circuitBreaker: ejection of failing hosts is "
        "trafficPolicy.outlierDetection (connection limits are connectionPool), so no outlier detection "
        "is configured and a failing endpoint keeps receiving traffic"),
}


@dataclass(frozen=True)
class CrdSchema:
    """One vendored schema: the object's apiVersion and kind, where it came from, and the schema itself."""
    file: str
    api_version: str
    kind: str
    source: dict[str, str]
    schema: dict[str, Any]

    @property
    def cite(self) -> str:
        s = self.source
        return f"{s['repo']} {s['path']} @ {s['commit'][:12]} ({s['version']})"


@dataclass(frozen=True)
class Violation:
    """One place where an object does not fit its schema. ``path`` is the key path of the offending field
    (for a missing required field, the path it should have)."""
    rule: str  # unknown-field, type, enum, required, pattern, range, length, items, properties, one-of, duration
    path: tuple
    message: str
    schema_note: str


@lru_cache(maxsize=None)
def _load(directory: str) -> dict[tuple[str, str], CrdSchema]:
    out: dict[tuple[str, str], CrdSchema] = {}
    for p in sorted(Path(directory).glob("*.yaml")):
        data = read_yaml(p, what="vendored CRD schema", fix="restore the file from git")
        key = (data["apiVersion"], data["kind"])
        if key in out:
            raise ValueError(f"{p.name}: a second schema for {key} (first: {out[key].file})")
        out[key] = CrdSchema(p.name, data["apiVersion"], data["kind"], dict(data["source"]),
                             data["openAPIV3Schema"])
    return out


def load_schemas(directory: Path = SCHEMA_DIR) -> dict[tuple[str, str], CrdSchema]:
    """Every vendored schema, keyed by (apiVersion, kind)."""
    return _load(str(directory))


# --- the walker -------------------------------------------------------------------------------------------

def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    return actual == expected or (expected == "number" and actual == "integer")


_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go ``time.Duration`` string (``"1h30m"``, ``"100ms"``), or None if it is not one."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.match(text):
        return None
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return -total if text.startswith("-") else total


def _satisfies(value: Any, s: dict) -> bool:
    """Whether ``value`` meets the presence-only constraints Istio writes in oneOf/anyOf/not branches."""
    if "required" in s and not (isinstance(value, dict) and all(k in value for k in s["required"])):
        return False
    if "not" in s and _satisfies(value, s["not"]):
        return False
    if "anyOf" in s and not any(_satisfies(value, b) for b in s["anyOf"]):
        return False
    if "oneOf" in s and sum(_satisfies(value, b) for b in s["oneOf"]) != 1:
        return False
    return all(_satisfies(value, b) for b in s.get("allOf", ()))


def _branch_names(branches: list) -> list[str]:
    return sorted({k for b in branches for k in b.get("required", ())})


def validate_object(data: dict, schema: dict) -> list[Violation]:
    """Every violation of ``schema`` (a CRD's structural openAPIV3Schema) by the object ``data``."""
    out: list[Violation] = []
    _walk(data, schema, (), out)
    return out


def _walk(value: Any, s: dict, path: tuple, out: list[Violation]) -> None:
    if value is None:
        # nullable: null is kept; otherwise the API server prunes the null before validating.
        return
    if s.get(INT_OR_STRING):
        if _type_of(value) not in ("integer", "string"):
            out.append(Violation("type", path, f"is {_type_of(value)} {value!r}; the schema wants an integer "
                                 "or a string", "x-kubernetes-int-or-string: true"))
        elif isinstance(value, str) and "pattern" in s and not re.search(s["pattern"], value):
            out.append(Violation("pattern", path, f"{value!r} does not match the pattern",
                                 f"pattern: {s['pattern']}"))
        return
    expected = s.get("type")
    if expected and not _type_ok(value, expected):
        out.append(Violation("type", path, f"is {_type_of(value)} {value!r}; the schema wants {expected}",
                             f"type: {expected}" + (f", format: {s['format']}" if "format" in s else "")))
        return
    if s.get(TRIMMED):
        return
    _scalar_checks(value, s, path, out)
    if isinstance(value, dict):
        _object_checks(value, s, path, out)
    elif isinstance(value, list):
        _array_checks(value, s, path, out)


def _scalar_checks(value: Any, s: dict, path: tuple, out: list[Violation]) -> None:
    if "enum" in s and value not in s["enum"]:
        near = difflib.get_close_matches(str(value), [str(e) for e in s["enum"]], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        out.append(Violation("enum", path, f"{value!r} is not one of {s['enum']}{hint}", f"enum: {s['enum']}"))
    if isinstance(value, str):
        if "pattern" in s and not re.search(s["pattern"], value):
            out.append(Violation("pattern", path, f"{value!r} does not match the pattern",
                                 f"pattern: {s['pattern']}"))
        if len(value) < s.get("minLength", 0) or len(value) > s.get("maxLength", float("inf")):
            out.append(Violation("length", path, f"{value!r} has {len(value)} characters",
                                 f"minLength: {s.get('minLength', 0)}, maxLength: {s.get('maxLength', '-')}"))
        for rule in s.get("x-kubernetes-validations", ()):
            if rule.get("rule") == _DURATION_RULE:
                secs = go_duration_seconds(value)
                if secs is None or secs < 1e-3:
                    out.append(Violation("duration", path, f"{value!r}: {rule['message']}",
                                         f"x-kubernetes-validations: {_DURATION_RULE}"))
    if _type_of(value) in ("integer", "number"):
        lo, hi = _FORMAT_RANGES.get(s.get("format", ""), (None, None))
        lo = s.get("minimum", lo)
        hi = s.get("maximum", hi)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            out.append(Violation("range", path, f"{value} is outside [{lo}, {hi}]",
                                 ", ".join(f"{k}: {s[k]}" for k in ("format", "minimum", "maximum") if k in s)))


def _object_checks(value: dict, s: dict, path: tuple, out: list[Violation]) -> None:
    for key in s.get("required", ()):
        if key not in value:
            out.append(Violation("required", path + (key,), f"required field {key!r} is missing",
                                 f"required: {s['required']}"))
    n = len(value)
    if n < s.get("minProperties", 0) or n > s.get("maxProperties", float("inf")):
        out.append(Violation("properties", path, f"has {n} fields",
                             f"minProperties: {s.get('minProperties', 0)}, "
                             f"maxProperties: {s.get('maxProperties', '-')}"))
    if "oneOf" in s and sum(_satisfies(value, b) for b in s["oneOf"]) != 1:
        names = _branch_names(s["oneOf"])
        out.append(Violation("one-of", path, f"sets more than one of {names}",
                             f"oneOf: at most one of {names}"))
    props = s.get("properties")
    extra = s.get("additionalProperties")
    for key, item in value.items():
        sub = path + (key,)
        if not path and key in _ROOT_KEYS:
            continue  # the API server validates metadata itself; apiVersion and kind are the object's type
        if props is not None and key in props:
            _walk(item, props[key], sub, out)
        elif isinstance(extra, dict):
            _walk(item, extra, sub, out)
        elif s.get(PRESERVE) or extra is True:
            continue
        else:
            known = sorted(props or ())
            out.append(Violation("unknown-field", sub, f"{key!r} is not a field here",
                                 f"properties: [{', '.join(known)}]; no {PRESERVE}"))


def _array_checks(value: list, s: dict, path: tuple, out: list[Violation]) -> None:
    if len(value) < s.get("minItems", 0) or len(value) > s.get("maxItems", float("inf")):
        out.append(Violation("items", path, f"has {len(value)} items",
                             f"minItems: {s.get('minItems', 0)}, maxItems: {s.get('maxItems', '-')}"))
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _walk(item, items, path + (i,), out)


# --- findings ---------------------------------------------------------------------------------------------

def _api_group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _is_custom(doc: Doc) -> bool:
    return _api_group(doc.api_version) not in _BUILTIN_GROUPS


def _under(path: tuple, prefixes: tuple) -> bool:
    keys = tuple(p for p in path if not isinstance(p, int))
    return any(keys[:len(p)] == p for p in prefixes)


def _finding(doc: Doc, crd: CrdSchema, v: Violation, source: SeedSource) -> Finding:
    kind, name, where = doc.kind, doc.name, _dotted(v.path)
    line = doc.line(*v.path)
    ref = source.ref(doc.path, line)
    target = _TARGET.get(kind, "availability")
    schema_quote = (f"{kind} {doc.api_version} schema ({crd.cite}), at "
                    f"{_dotted(v.path[:-1]) or '<root>'}: {v.schema_note}")
    if v.rule == "unknown-field":
        key = v.path[-1]
        rename = _KNOWN_RENAMES.get((kind, key))
        high = _under(v.path, _RESILIENCE.get(kind, ())) or rename is not None
        severity = "high" if high else "medium"
        better: str | None
        if rename:
            better, why = rename
            consequence = why
        else:
            parent = _parent_schema(crd.schema, v.path)
            near = difflib.get_close_matches(str(key), sorted((parent or {}).get("properties", {})), n=1)
            better = near[0] if near else None
            consequence = ("the setting never reaches the controller, so the behaviour it asks for is not "
                           "configured" if high else "the setting is silently lost")
        title = (f"{kind} {name}: `{where}` is not a field of the {kind} CRD and is pruned by the API "
                 f"server (kubectl apply --validate=strict rejects it)")
        evidence = (f"{schema_quote}. The seed sets `{where}` at {ref}; a structural schema drops unknown "
                    f"fields without an error: {consequence}.")
        if rename and kind == "DestinationRule":
            fix = (f"replace `{where}` with `{_dotted(v.path[:-1] + (better,))}`; "
                   "consecutiveGatewayErrors (or consecutive5xxErrors), interval, baseEjectionTime and "
                   "maxEjectionPercent are fields of outlierDetection and carry over unchanged")
        elif better:
            fix = f"rename `{key}` to `{better}` (a field the CRD has) at {ref}, or remove it"
        else:
            fix = f"remove `{where}` or move the setting to the field the CRD defines for it"
    else:
        severity = "high"
        verb = {"required": "misses a required field", "type": "has a field of the wrong type",
                "enum": "has a value outside the allowed set", "pattern": "has a value of the wrong form",
                "duration": "has an invalid duration", "one-of": "sets mutually exclusive fields"}
        title = (f"{kind} {name}: `{where}` {verb.get(v.rule, 'violates the schema')}: the API server "
                 f"rejects the object, so none of it is applied")
        evidence = f"{schema_quote}. The seed: `{where}` {v.message} ({ref})."
        fix = {"required": f"add `{where}`",
               "type": f"give `{where}` a value of the schema's type ({v.schema_note})",
               "enum": f"set `{where}` to one of the allowed values ({v.schema_note})"}.get(
                   v.rule, f"make `{where}` satisfy {v.schema_note}")
    return Finding(id=f"crd.{v.rule}.{kind}.{name}.{where}", severity=severity, target=target, title=title,
                   evidence=evidence, fix=fix, objects=(doc.label,), refs=(ref,), source=TOOL_NAME)


def _parent_schema(schema: dict, path: tuple) -> dict | None:
    node: Any = schema
    for key in path[:-1]:
        if not isinstance(node, dict):
            return None
        if isinstance(key, int):
            node = node.get("items")
        else:
            node = (node.get("properties") or {}).get(key) or (
                node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict)
                else None)
    return node if isinstance(node, dict) else None


def crd_field_findings(source: SeedSource, schemas: dict[tuple[str, str], CrdSchema] | None = None
                       ) -> tuple[list[Finding], ToolRun]:
    """Check every custom resource of the seed against its vendored CRD schema."""
    schemas = load_schemas() if schemas is None else schemas
    findings: list[Finding] = []
    checked: list[str] = []
    unchecked: list[str] = []
    for doc in source.manifests:
        crd = schemas.get((doc.api_version, doc.kind))
        if crd is None:
            if _is_custom(doc):
                unchecked.append(f"{doc.label} ({doc.api_version})")
            continue
        checked.append(doc.label)
        findings += [_finding(doc, crd, v, source) for v in validate_object(doc.data, crd.schema)]
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.id, f)
    reason_parts = []
    if unchecked:
        reason_parts.append("no vendored schema for: " + ", ".join(unchecked))
    reason_parts.append("CEL rules (x-kubernetes-validations) other than Istio's duration >= 1ms are not "
                        "evaluated; trimmed subtrees (x-harness-trimmed, see crd_schemas/SOURCES.md) are "
                        "checked for type only")
    used = sorted({(c.source["repo"], c.source["commit"][:12], c.source["version"]) for c in
                   (schemas.get((d.api_version, d.kind)) for d in source.manifests) if c is not None})
    version = "; ".join(f"{repo}@{commit} ({what})" for repo, commit, what in used)
    run = ToolRun(name=TOOL_NAME, status="ran", version=version, reason="; ".join(reason_parts),
                  checked=checked)
    return list(seen.values()), run
