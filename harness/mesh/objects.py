"""The seed's Istio objects (k8s/istio/gateway.yml) read into what the translation needs, with the
findings the translation makes on the way.

Two readings, both labeled:

* **seed as written** (``what_if=False``): the objects verbatim, moved into the conductor's namespace
  exactly as ``k8s/overlays/kind-istio`` moves them (its ``mesh/kustomization.yaml`` sets
  ``namespace:`` to the workload's; the namespace mismatch is reported by the scenario through
  ``seed_findings``). ``trafficPolicy.circuitBreaker`` is treated as Istio's DestinationRule CRD
  treats an unknown field. The CRD's schema is structural (istio/istio
  manifests/charts/base/files/crd-all.gen.yaml, generated from the API protos: ``spec`` and
  ``trafficPolicy`` declare their properties, only ``status`` preserves unknown fields), so the API
  server's strict field validation (kubectl's default) refuses the rule with ``unknown field
  "spec.trafficPolicy.circuitBreaker"`` and a lenient apply prunes the field. The translation takes
  the lenient reading (the rest of the rule applies), so Envoy gets no ``outlier_detection``; the
  finding ``circuit_breaker_field`` of :func:`harness.oracles.outlier.map_destination_rule` says so.
* **what-if** (``what_if=True``): additionally the JSON patches of
  ``k8s/overlays/kind-istio-intended/kustomization.yaml``, applied here in Python from that file
  (so the docker and kind what-ifs are one reading): ``circuitBreaker`` moved to
  ``outlierDetection`` and the AuthorizationPolicy's first principal set to the ingress gateway's
  identity. Never the system's configuration.

Pure: the documents come in read (:func:`harness.mesh.load.load_mesh` reads them from the manifests).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.errors import UsageError
from harness.manifest_facts import ISTIO
from harness.mesh.certs import TRUST_DOMAIN, spiffe_id
from harness.oracles.outlier import DestinationRuleMapping, Finding, map_destination_rule

__all__ = ["Endpoint", "TlsBundle", "Mesh", "mesh_from_documents", "SERVICES", "GATEWAY_NAMESPACE", "GATEWAY_SERVICE_ACCOUNT",
           "WHAT_IF_OVERLAY", "MESH_KINDS", "fqdn", "region_of", "apply_json_patch", "replace_object",
           "not_translated_findings", "mesh_default_findings", "mesh_default_policy_of",
           "CONDUCTOR_SERVICE_PORT"]

GATEWAY_NAMESPACE = "istio-system"
#: The ingress gateway's ServiceAccount as the harness installs it on kind (Istio's Helm ``gateway``
#: chart names it after the release, ``istio-ingressgateway``; harness/kube/istio.py
#: GATEWAY_PRINCIPAL). istioctl's default profile would name it
#: ``istio-ingressgateway-service-account``; the kind path and its what-if overlay use the Helm
#: name, so the docker mesh does too and both what-ifs admit the same identity.
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway"
WHAT_IF_OVERLAY = "overlays/kind-istio-intended/kustomization.yaml"
MESH_KINDS = ("Gateway", "VirtualService", "DestinationRule", "PeerAuthentication", "AuthorizationPolicy")
SERVICES = "staging/conductor-service.yml"
#: The conductor Service's port: the port the DestinationRule's portLevelSettings are resolved for
#: (harness.mesh.bootstrap.CONDUCTOR_PORT; bootstrap imports this module, not the other way round).
CONDUCTOR_SERVICE_PORT = 8080


def region_of(zone: str) -> str:
    """A cloud zone's region: the zone name without its trailing letter (``us-east-1a`` -> ``us-east-1``);
    a name not built that way is its own region."""
    return zone[:-1] if len(zone) > 1 and zone[-1].isalpha() and zone[-2].isdigit() else zone


def fqdn(host: str, namespace: str) -> str:
    """istiod's ``ResolveShortnameToFQDN``: a short name resolves in the config's own namespace."""
    if "." in host or host == "*":
        return host
    return f"{host}.{namespace}.svc.{TRUST_DOMAIN}"


@dataclass(frozen=True)
class Endpoint:
    """One upstream endpoint the caller knows (no Kubernetes DNS on docker): a STATIC cluster member.

    ``zone`` becomes the Envoy locality's ``zone``; its ``region`` is the zone name without its
    trailing letter (``us-east-1a`` -> ``us-east-1``), as cloud zone names are built
    (``topology.kubernetes.io/region`` / ``zone``, which istiod copies into the locality).
    """

    name: str
    address: str
    port: int
    zone: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.address:
            raise UsageError(f"endpoint {self!r} needs a name and an address", "pass both")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise UsageError(f"endpoint {self.name}: port {self.port!r} is not 1..65535", "pass a TCP port")

    @property
    def region(self) -> str:
        return region_of(self.zone)


@dataclass(frozen=True)
class TlsBundle:
    """The TLS material one Envoy uses. Each value is either PEM text (inlined into the bootstrap:
    then the bootstrap holds a private key and must not be copied into reports) or a file path as
    the Envoy process sees it (the caller writes the PEMs from :mod:`harness.mesh.certs`).

    ``ca``: the run's root; ``cert``/``key``: the workload's SPIFFE certificate;
    ``server_cert``/``server_key``: the Gateway's ``credentialName`` certificate (gateway only).
    """

    ca: str
    cert: str
    key: str
    server_cert: str | None = None
    server_key: str | None = None

    def __repr__(self) -> str:
        return "TlsBundle(<redacted>)"


@dataclass
class Mesh:
    """The seed's mesh objects as the translation reads them, and what the harness found in them.

    ``seed``: k8s/istio/gateway.yml as written (what ``seed_findings`` takes as ``seed_docs``);
    ``objects``: the documents the translation uses (moved to ``workload_namespace``; in the what-if
    also patched); ``destination_rule``: :func:`~harness.oracles.outlier.map_destination_rule` of
    the translated DestinationRule (``seed_findings``' ``mapping``); ``findings``: the mapping's
    findings plus what the translation decided (each a :class:`~harness.oracles.outlier.Finding`).
    """

    what_if: bool
    seed: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    workload_namespace: str
    conductor_service_account: str
    workload_labels: dict[str, str]
    services: list[str]
    destination_rule: DestinationRuleMapping
    findings: list[Finding] = field(default_factory=list)
    what_if_changes: list[str] = field(default_factory=list)
    #: istiod's EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY (pilot/pkg/features): true by default since
    #: Istio 1.24 (so in the release the kind path installs, harness.kube.istio.ISTIO_VERSION), so the
    #: default retry policy has no retriable 503; False reproduces Istio <= 1.23 (retriable_status_codes [503]).
    exclude_503_from_default_retries: bool = True
    #: A mesh-wide default DestinationRule's traffic policy (in meshConfig.rootNamespace, host
    #: ``*.local``): None, as in a default install. istiod takes the most specific rule for a host
    #: whole (pilot/pkg/model/push_context.go ``destinationRule``: the client's namespace, the
    #: service's, then the root namespace) and merges nothing into it since Istio 1.20 removed
    #: PILOT_ENABLE_DESTINATION_RULE_INHERITANCE, so it applies only to hosts without a rule.
    mesh_default_policy: dict[str, Any] | None = None

    def object(self, kind: str) -> dict[str, Any] | None:
        """The first object of ``kind`` (the seed has one of each)."""
        return next((d for d in self.objects if d.get("kind") == kind), None)

    @property
    def gateway_hosts(self) -> list[str]:
        """The Gateway's hosts over all servers (the server certificate's DNS names, SNI match)."""
        gw = self.object("Gateway") or {}
        return list(dict.fromkeys(h for s in (gw.get("spec") or {}).get("servers", []) for h in s.get("hosts", [])))

    @property
    def gateway_identity(self) -> str:
        """The ingress gateway's SPIFFE ID."""
        return spiffe_id(GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT)

    @property
    def conductor_identity(self) -> str:
        """The conductor's SPIFFE ID (its Deployment's serviceAccountName in its namespace)."""
        return spiffe_id(self.workload_namespace, self.conductor_service_account)

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """Report-friendly summary (no secrets here: the mesh holds none)."""
        return {"what_if": self.what_if, "workload_namespace": self.workload_namespace,
                "gateway_identity": self.gateway_identity, "conductor_identity": self.conductor_identity,
                "what_if_changes": self.what_if_changes, "findings": [f.to_dict() for f in self.findings]}


# -- JSON patch (RFC 6902), the subset kustomize patches in the what-if overlay use --------------------------
def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise UsageError(f"JSON pointer {path!r} must start with '/'", "fix the overlay's patch")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for p in parts:
        try:
            doc = doc[int(p)] if isinstance(doc, list) else doc[p]
        except (KeyError, IndexError, ValueError, TypeError):
            raise UsageError(f"JSON patch path {path} does not exist in the object", "fix the overlay's patch") from None
    return doc


def _set(doc: Any, parts: list[str], value: Any, path: str, *, replace: bool) -> None:
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        if replace and key not in parent:
            raise UsageError(f"JSON patch replace: {path} does not exist", "fix the overlay's patch")
        parent[key] = value


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    try:
        return parent.pop(int(key)) if isinstance(parent, list) else parent.pop(key)
    except (KeyError, IndexError, ValueError):
        raise UsageError(f"JSON patch remove: {path} does not exist", "fix the overlay's patch") from None


def apply_json_patch(doc: dict[str, Any], ops: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply RFC 6902 operations (add, remove, replace, move, copy, test) to a copy of ``doc``."""
    out = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        parts = _pointer(path)
        if kind == "test":
            if _walk(out, parts, path) != op.get("value"):
                raise UsageError(f"JSON patch test failed at {path}: the seed no longer says {op.get('value')!r}",
                                 "update the what-if overlay to the seed")
        elif kind == "add":
            _set(out, parts, copy.deepcopy(op["value"]), path, replace=False)
        elif kind == "replace":
            _set(out, parts, copy.deepcopy(op["value"]), path, replace=True)
        elif kind == "remove":
            _remove(out, parts, path)
        elif kind in ("move", "copy"):
            src = op.get("from", "")
            value = _remove(out, _pointer(src), src) if kind == "move" else copy.deepcopy(_walk(out, _pointer(src), src))
            _set(out, parts, value, path, replace=False)
        else:
            raise UsageError(f"JSON patch op {kind!r} is not supported", "use add/remove/replace/move/copy/test")
    return out


def _what_if_patches(docs: list[dict[str, Any]]) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """The (target, operations) pairs of the kind-istio-intended overlay (its documents)."""
    import yaml  # local: only the what-if needs it (the patches are YAML text inside the overlay)

    out = []
    for patch in (docs[0] if docs else {}).get("patches", []):
        ops = yaml.safe_load(patch.get("patch", "")) or []
        if not isinstance(ops, list):
            raise UsageError(f"{WHAT_IF_OVERLAY}: a patch is not a JSON6902 list", "fix the overlay")
        out.append((patch.get("target") or {}, ops))
    if not out:
        raise UsageError(f"{WHAT_IF_OVERLAY} has no patches", "restore the what-if overlay")
    return out


def _target_matches(target: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    group = str(doc.get("apiVersion", "")).split("/")[0]
    return ((not target.get("kind") or target["kind"] == doc.get("kind"))
            and (not target.get("name") or target["name"] == (doc.get("metadata") or {}).get("name"))
            and (not target.get("group") or target["group"] == group))


def _translation_findings(mesh: Mesh) -> list[Finding]:
    """What the translation itself decides from the objects (istiod's behaviour for each)."""
    out: list[Finding] = []
    ns = mesh.workload_namespace
    vs = mesh.object("VirtualService") or {}
    known = {fqdn(s, ns) for s in mesh.services}
    for i, rule in enumerate((vs.get("spec") or {}).get("http", [])):
        for j, dest in enumerate(rule.get("route", [])):
            host = (dest.get("destination") or {}).get("host", "")
            if host and fqdn(host, ns) not in known:
                out.append(Finding(
                    "error", "unknown_destination_host", f"VirtualService.spec.http[{i}].route[{j}].destination.host",
                    f"`{host}` is no Service: istiod keeps the route and points it at "
                    f"{fqdn(host, ns)}'s cluster, which it never builds (route.go translateRoute: \"traffic to such "
                    "clusters will blackhole\"), so Envoy answers 503 with response flag NC (cluster not found)"))
    bound = {h for h in (vs.get("spec") or {}).get("hosts", [])}
    for host in mesh.gateway_hosts:
        if host not in bound:
            out.append(Finding("warning", "gateway_host_without_routes", "Gateway.spec.servers[].hosts",
                               f"{host} is served by the Gateway but no VirtualService binds it: Envoy answers 404 "
                               "(no route, flag NR)"))
    authz = mesh.object("AuthorizationPolicy") or {}
    identities = {mesh.gateway_identity, mesh.conductor_identity}
    for i, rule in enumerate((authz.get("spec") or {}).get("rules", [])):
        for source in (f.get("source") or {} for f in rule.get("from", [])):
            for p in source.get("principals", []):
                if f"spiffe://{p}" not in identities and "*" not in p:
                    out.append(Finding(
                        "error", "authz_principal_unknown", f"AuthorizationPolicy.spec.rules[{i}].from[].source.principals",
                        f"principal {p} is no workload of the mesh (gateway: {mesh.gateway_identity}, conductor: "
                        f"{mesh.conductor_identity}): the rule admits nobody; the gateway's requests it was meant for "
                        "get 403 'RBAC: access denied' from the conductor's sidecar"))
    for i, rule in enumerate((vs.get("spec") or {}).get("http", [])):
        retries = rule.get("retries")
        if mesh.exclude_503_from_default_retries and (retries is None or (retries.get("attempts", 0) > 0
                                                                          and not retries.get("retryOn"))):
            out.append(Finding(
                "info", "default_retry_excludes_503", f"VirtualService.spec.http[{i}].retries",
                f"retries use Istio's default retryOn ({'attempts ' + str(retries['attempts']) if retries else '2 retries'}"
                "): since Istio 1.24 (EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY) it lists no retriable status code, so "
                "a replica's 503 (or 502/504) answer is returned to the client, not retried; only connection "
                "failures and resets are retried"))
    pool = mesh.destination_rule.circuit_breakers
    if pool.max_requests_per_connection:
        out.append(Finding("info", "max_requests_per_connection", "DestinationRule.spec.trafficPolicy.connectionPool.http",
                           f"maxRequestsPerConnection={pool.max_requests_per_connection}: the gateway closes each "
                           "upstream connection after that many requests (not a circuit breaker)"))
    return out


#: Fields the docker translation does not program, with what istiod does with each on a cluster
#: (the findings' text). Paths are relative to the object's spec.
_POOL_NOT_TRANSLATED = {
    ("tcp", "tcpKeepalive"): "istiod sets the cluster's upstream_connection_options.tcp_keepalive "
                             "(applyConnectionPool); without it idle upstream connections are not probed and a "
                             "NAT or load balancer between the nodes may drop them silently",
    ("tcp", "maxConnectionDuration"): "istiod closes upstream connections after this duration "
                                      "(common_http_protocol_options.max_connection_duration)",
    ("tcp", "idleTimeout"): "istiod closes idle TCP upstream connections after it",
    ("http", "idleTimeout"): "istiod closes upstream connections idle for this long "
                             "(common_http_protocol_options.idle_timeout; Envoy's default is 1h)",
    ("http", "h2UpgradePolicy"): "istiod upgrades (or not) HTTP/1.1 upstream connections to HTTP/2",
    ("http", "useClientProtocol"): "istiod keeps the client's HTTP protocol upstream",
    ("http", "maxConcurrentStreams"): "istiod caps concurrent HTTP/2 streams per upstream connection",
}
_LB_NOT_TRANSLATED = {
    "consistentHash": "istiod programs RING_HASH or MAGLEV keyed on the given header, cookie or source IP, so a "
                      "client sticks to one replica; the docker mesh balances with LEAST_REQUEST, so sticky "
                      "sessions and their failure modes (a hot replica, a rehash when a pod goes) are not seen",
    "warmup": "istiod gives new endpoints slow-start (slow_start_config), so a new replica gets a growing share "
              "of traffic; the docker mesh sends it its full share at once",
    "warmupDurationSecs": "istiod gives new endpoints slow-start (slow_start_config) for this long; the docker "
                          "mesh sends a new replica its full share at once",
}


def _policies(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every TrafficPolicy (and port-level policy) of a DestinationRule spec, with its path."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for base, policy in [("DestinationRule.spec.trafficPolicy", spec.get("trafficPolicy") or {})] + [
            (f"DestinationRule.spec.subsets[{i}].trafficPolicy", sub.get("trafficPolicy") or {})
            for i, sub in enumerate(spec.get("subsets") or [])]:
        out.append((base, policy))
        out += [(f"{base}.portLevelSettings[{j}]", pls) for j, pls in enumerate(policy.get("portLevelSettings") or [])]
    return out


def not_translated_findings(mesh: Mesh) -> list[Finding]:
    """Fields of the mesh objects the docker translation does not program: each a finding naming the
    field and what istiod would do with it on a cluster, so a docker verdict never silently rests on
    a configuration the cluster would not have (istio/istio pilot/pkg/networking/core: route/route.go
    TranslateRouteMatch, cluster_traffic_policy.go applyConnectionPool/applyLoadBalancer, cluster_tls.go;
    pilot/pkg/security/authz/builder for AuthorizationPolicy ``when``)."""
    out: list[Finding] = []
    vs = mesh.object("VirtualService") or {}
    for i, rule in enumerate((vs.get("spec") or {}).get("http", [])):
        for j, match in enumerate(rule.get("match") or []):
            for key in sorted(set(match or {}) - {"uri", "ignoreUriCase", "name"}):
                only = not (match or {}).get("uri")
                out.append(Finding(
                    "warning", "not_translated", f"VirtualService.spec.http[{i}].match[{j}].{key}",
                    f"match on {key} is not translated: istiod requires it too (route.go TranslateRouteMatch), the "
                    "docker mesh matches the uri only, so requests the cluster would not send down this route are "
                    "sent down it here" + (" (with no uri, the match reads as a catch-all and hides every later "
                                           "route)" if only else "")))
    dr_spec = (mesh.object("DestinationRule") or {}).get("spec") or {}
    for path, policy in _policies(dr_spec):
        tls = policy.get("tls")
        if tls is not None and (tls or {}).get("mode") != "ISTIO_MUTUAL":
            out.append(Finding(
                "warning", "not_translated", f"{path}.tls",
                f"tls mode {(tls or {}).get('mode', 'unset')} is not translated: istiod programs that upstream TLS "
                "(cluster_tls.go buildUpstreamTLSSettings); the docker mesh always uses Istio mutual TLS to the "
                "sidecars (auto mTLS), so a DISABLE/SIMPLE/MUTUAL rule that would break or bypass mTLS on a cluster "
                "works here"))
        pool = policy.get("connectionPool") or {}
        for (part, key), effect in _POOL_NOT_TRANSLATED.items():
            if isinstance(pool.get(part), Mapping) and key in pool[part]:
                out.append(Finding("warning", "not_translated", f"{path}.connectionPool.{part}.{key}",
                                   f"{part}.{key} is not translated: {effect}"))
        lb = policy.get("loadBalancer") or {}
        for key, effect in _LB_NOT_TRANSLATED.items():
            if key in lb:
                out.append(Finding("warning", "not_translated", f"{path}.loadBalancer.{key}",
                                   f"{key} is not translated: {effect}"))
    for ap in (d for d in mesh.objects if d.get("kind") == "AuthorizationPolicy"):
        for i, rule in enumerate((ap.get("spec") or {}).get("rules") or []):
            if rule.get("when"):
                keys = ", ".join(sorted({str(c.get("key")) for c in rule["when"]}))
                out.append(Finding(
                    "warning", "not_translated", f"AuthorizationPolicy.spec.rules[{i}].when",
                    f"when conditions ({keys}) are not translated: on a cluster the rule admits a request only if "
                    "they hold too; the docker mesh's RBAC filter admits it without them, so it lets through "
                    "requests the cluster refuses (403)"))
    return out


def mesh_default_policy_of(outlier_detection_json: str) -> dict[str, Any] | None:
    """The ``mesh_default_outlier_detection`` setting (JSON, validated by ``Settings.validate``) as a
    traffic policy for :func:`load_mesh`; empty: None (a default install)."""
    return {"outlierDetection": json.loads(outlier_detection_json)} if outlier_detection_json.strip() else None


def mesh_default_findings(mesh: Mesh) -> list[Finding]:
    """What a mesh-wide default traffic policy would change (``Mesh.mesh_default_policy``)."""
    ns = mesh.workload_namespace
    dr = mesh.object("DestinationRule")
    ruled = {fqdn(((dr or {}).get("spec") or {}).get("host", ""), ns)} if dr else set()
    bare = [s for s in mesh.services if fqdn(s, ns) not in ruled]
    conductor_ruled = fqdn("conductor", ns) in ruled
    why = ("istiod uses the most specific DestinationRule for a host as a whole (pilot/pkg/model/push_context.go "
           "destinationRule: the client's namespace, then the service's, then the root namespace) and has merged "
           "nothing into it since Istio 1.20 removed PILOT_ENABLE_DESTINATION_RULE_INHERITANCE")
    default = mesh.mesh_default_policy
    if not default:
        return [Finding(
            "info", "mesh_default_policy", "meshConfig.rootNamespace DestinationRule",
            "no mesh-wide default traffic policy (a default install has none): a host whose rule sets no "
            "outlierDetection gets none. A mesh-wide default would "
            + ("NOT reach the conductor, whose own DestinationRule wins: " if conductor_ruled else
               "give the conductor (which has no rule of its own) its outlier detection: ")
            + why + (f"; it would reach {', '.join(bare)} (no rule of their own)" if bare else ""))]
    od = default.get("outlierDetection")
    reach = [s for s in bare]
    return [Finding(
        "info", "mesh_default_policy", "meshConfig.rootNamespace DestinationRule",
        f"mesh-wide default {json.dumps(default, sort_keys=True)}: "
        + ("it does not change the conductor, whose own DestinationRule wins" if conductor_ruled else
           "the conductor has no DestinationRule, so its clusters take this policy")
        + (" (so the seed's missing outlierDetection stays missing)" if conductor_ruled and od else "")
        + f"; {why}" + (f"; it applies to {', '.join(reach)}" if reach else ""))]


def _derive(mesh: Mesh) -> Mesh:
    dr = mesh.object("DestinationRule") or {"kind": "DestinationRule", "spec": {
        "host": "conductor", "trafficPolicy": dict(mesh.mesh_default_policy or {})}}
    mesh.destination_rule = map_destination_rule(dr, port=CONDUCTOR_SERVICE_PORT)
    mesh.findings = (list(mesh.destination_rule.findings) + _translation_findings(mesh) + not_translated_findings(mesh)
                     + mesh_default_findings(mesh))
    if mesh.what_if:
        mesh.findings.append(Finding("info", "what_if", WHAT_IF_OVERLAY,
                                     "WHAT-IF, not the system's configuration: " + "; ".join(mesh.what_if_changes)))
    return mesh


def replace_object(mesh: Mesh, doc: Mapping[str, Any], label: str) -> Mesh:
    """A copy of ``mesh`` with the object of ``doc``'s kind replaced by ``doc`` (moved to the workload
    namespace), labeled what-if with ``label``: for variants such as the oracle-vs-Envoy test's
    DestinationRules. The seed stays as written."""
    kind = doc.get("kind")
    if kind not in MESH_KINDS:
        raise UsageError(f"cannot replace a {kind!r}", f"pass one of {', '.join(MESH_KINDS)}")
    new = copy.deepcopy(dict(doc))
    new.setdefault("metadata", {})["namespace"] = mesh.workload_namespace
    objects = [new if d.get("kind") == kind else copy.deepcopy(d) for d in mesh.objects]
    return _derive(Mesh(what_if=True, seed=mesh.seed, objects=objects, workload_namespace=mesh.workload_namespace,
                        conductor_service_account=mesh.conductor_service_account,
                        workload_labels=dict(mesh.workload_labels), services=list(mesh.services),
                        destination_rule=mesh.destination_rule,
                        what_if_changes=mesh.what_if_changes + [f"{kind} replaced: {label}"],
                        exclude_503_from_default_retries=mesh.exclude_503_from_default_retries,
                        mesh_default_policy=mesh.mesh_default_policy))


def mesh_from_documents(istio: list[dict[str, Any]], deployment: Mapping[str, Any], service_docs: list[dict[str, Any]],
                        *, what_if_overlay: list[dict[str, Any]] | None = None,
                        mesh_default_policy: Mapping[str, Any] | None = None) -> Mesh:
    """The mesh of k8s/istio/gateway.yml's documents (``istio``), the conductor Deployment and the
    Services' documents; ``what_if_overlay``: the kind-istio-intended overlay's documents, whose
    patches are applied, labeled as such (see the module docstring). ``mesh_default_policy``: a
    mesh-wide default DestinationRule's traffic policy (``Mesh.mesh_default_policy``)."""
    what_if = what_if_overlay is not None
    seed = [d for d in istio if d.get("kind") in MESH_KINDS]
    missing = [k for k in MESH_KINDS if not any(d.get("kind") == k for d in seed)]
    if missing:
        raise UsageError(f"{ISTIO} has no {', '.join(missing)}", "restore the seed's Istio objects")
    dep = deployment
    namespace = (dep.get("metadata") or {}).get("namespace") or "default"
    pod = dep["spec"]["template"]
    service_account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    services = [(d.get("metadata") or {}).get("name", "") for d in service_docs if d.get("kind") == "Service"]
    # As k8s/overlays/kind-istio/mesh/kustomization.yaml: the objects move to the workload's namespace.
    objects = []
    for doc in seed:
        moved = copy.deepcopy(doc)
        moved.setdefault("metadata", {})["namespace"] = namespace
        objects.append(moved)
    changes: list[str] = []
    if what_if_overlay is not None:
        for target, ops in _what_if_patches(what_if_overlay):
            hits = [i for i, d in enumerate(objects) if _target_matches(target, d)]
            if not hits:
                raise UsageError(f"{WHAT_IF_OVERLAY}: patch target {dict(target)} matches no seed object",
                                 "update the overlay to the seed")
            for i in hits:
                objects[i] = apply_json_patch(objects[i], ops)
                changes += [f"{target.get('kind')}/{target.get('name')}: {op['op']} {op.get('path')}"
                            for op in ops if op.get("op") != "test" and not str(op.get("path")).startswith("/metadata")]
    dr = next(d for d in objects if d["kind"] == "DestinationRule")
    return _derive(Mesh(what_if=what_if, seed=seed, objects=objects, workload_namespace=namespace,
                        conductor_service_account=service_account,
                        workload_labels=dict((pod.get("metadata") or {}).get("labels") or {}), services=services,
                        destination_rule=map_destination_rule(dr, port=CONDUCTOR_SERVICE_PORT),
                        what_if_changes=changes,
                        mesh_default_policy=dict(mesh_default_policy) if mesh_default_policy else None))
