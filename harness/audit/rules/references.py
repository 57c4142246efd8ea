"""References between objects, and between the manifests and the rest of the seed: secrets and their
keys, service accounts, Services behind hosts, subsets, TLS credentials, principals, scale targets, and
the namespaces each reference resolves in. A reference that resolves to nothing is an outage that no
single-object validator can see."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from harness.audit.findings import Finding
from harness.audit.rules.base import make_finding
from harness.audit.sources import Doc, SeedSource
from harness.mesh.objects import GATEWAY_NAMESPACE

__all__ = ["missing_workload_targets", "secret_references", "external_secret_properties",
           "service_accounts", "mesh_hosts", "gateway_credentials", "authorization_principals",
           "sidecar_injection", "metrics_port"]

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
# Namespaces the platform itself provides (Istio, Argo CD, Velero, Kubernetes).
_PLATFORM_NAMESPACES = ("kube-system", "istio-system", "argocd", "velero")


def _pod_spec(doc: Doc) -> dict[str, Any]:
    return doc.get("spec", "template", "spec", default={}) or {}


def _service_host(host: str, namespace: str) -> tuple[str, str]:
    """(name, namespace) of a mesh host: a short name resolves in the referring object's namespace
    (istiod's host resolution for VirtualService and DestinationRule)."""
    parts = host.split(".")
    if len(parts) >= 2 and (len(parts) == 2 or parts[2] == "svc"):
        return parts[0], parts[1]
    return parts[0], namespace


def missing_workload_targets(src: SeedSource) -> list[Finding]:
    """Services and Deployments that other objects point at but the seed never creates in that namespace."""
    wanted: dict[tuple[str, str, str], list[tuple[Doc, tuple[Any, ...]]]] = defaultdict(list)
    for hpa in src.objects("HorizontalPodAutoscaler") + src.objects("VerticalPodAutoscaler"):
        key = "scaleTargetRef" if hpa.kind == "HorizontalPodAutoscaler" else "targetRef"
        ref = hpa.get("spec", key, default={}) or {}
        if ref.get("kind") in _WORKLOADS:
            wanted[(ref["kind"], ref.get("name", ""), hpa.namespace)].append((hpa, ("spec", key, "name")))
    for vs in src.objects("VirtualService"):
        for i, route in enumerate(vs.get("spec", "http", default=[]) or []):
            for j, dest in enumerate(route.get("route", []) or []):
                host = (dest.get("destination") or {}).get("host", "")
                if host and ("." not in host or host.endswith(".svc.cluster.local")):
                    name, ns = _service_host(host, vs.namespace)
                    wanted[("Service", name, ns)].append((vs, ("spec", "http", i, "route", j, "destination", "host")))
    for dr in src.objects("DestinationRule"):
        host = str(dr.get("spec", "host", default=""))
        if host and ("." not in host or host.endswith(".svc.cluster.local")):
            name, ns = _service_host(host, dr.namespace)
            wanted[("Service", name, ns)].append((dr, ("spec", "host")))
    for ap in src.objects("AuthorizationPolicy"):
        labels = ap.get("spec", "selector", "matchLabels", default=None)
        if labels and not any(d.namespace == ap.namespace and
                              labels.items() <= (d.get("spec", "template", "metadata", "labels", default={}) or {}).items()
                              for k in _WORKLOADS for d in src.objects(k)):
            wanted[("pods", ",".join(f"{k}={v}" for k, v in labels.items()), ap.namespace)].append(
                (ap, ("spec", "selector", "matchLabels")))
    out = []
    for (kind, name, ns), refs in sorted(wanted.items()):
        if kind != "pods" and src.find(kind, name, ns) is not None:
            continue
        if kind == "pods":
            elsewhere = [d.namespace for k in _WORKLOADS for d in src.objects(k)
                         if name in ",".join(f"{a}={b}" for a, b in
                                             (d.get("spec", "template", "metadata", "labels", default={}) or {}).items())]
        else:
            elsewhere = [d.namespace for d in src.objects(kind) if d.name == name]
        where = f" (the seed has it only in {', '.join(sorted(set(elsewhere)))})" if elsewhere else ""
        what = f"pods labeled {name} in {ns}" if kind == "pods" else f"{kind} {ns}/{name}"
        users = sorted({d.label for d, _ in refs})
        target = "scaling" if kind in _WORKLOADS else "availability"
        consequence = {
            "Service": "the mesh has no endpoints for this host: Envoy answers 503 (no cluster / no healthy "
                       "upstream) for every request routed there",
            "pods": "the policy selects nothing, so it protects nothing it was written for",
        }.get(kind, "the autoscaler reports FailedGetScale and never scales anything")
        out.append(make_finding(
            src, f"ref.missing.{kind}.{ns}.{name}", target,
            f"{what} {'are selected but never deployed' if kind == 'pods' else 'is referenced but not defined'}{where}",
            f"referenced by {', '.join(users)}; {consequence}",
            f"deploy {what} in namespace {ns} (the seed ships only staging manifests for the conductor), or "
            "point the references at the namespace where it runs",
            users, [(d.path, d.line(*path)) for d, path in refs]))
    return out


def _produced_secrets(src: SeedSource) -> dict[tuple[str, str], tuple[Doc, set[str] | None]]:
    """(namespace, name) → (object that makes it, its keys or None when unknown)."""
    out: dict[tuple[str, str], tuple[Doc, set[str] | None]] = {}
    for s in src.objects("Secret"):
        keys = set((s.get("data", default={}) or {}).keys()) | set((s.get("stringData", default={}) or {}).keys())
        out[(s.namespace, s.name)] = (s, keys)
    for es in src.objects("ExternalSecret"):
        name = es.get("spec", "target", "name", default=None) or es.name
        keys = {d.get("secretKey") for d in es.get("spec", "data", default=[]) or []}
        out[(es.namespace, name)] = (es, None if es.get("spec", "dataFrom") else keys)
    return out


def secret_references(src: SeedSource) -> list[Finding]:
    """Every secretKeyRef, envFrom and secret volume of a pod template: the Secret and key must exist
    in the pod's namespace (a missing one keeps the container in CreateContainerConfigError)."""
    produced = _produced_secrets(src)
    missing: dict[tuple[str, str], list[tuple[Doc, tuple[Any, ...], str]]] = defaultdict(list)
    for kind in _WORKLOADS:
        for doc in src.objects(kind):
            spec = _pod_spec(doc)
            for ci, c in enumerate(spec.get("containers", []) or []):
                for ei, env in enumerate(c.get("env", []) or []):
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        path = ("spec", "template", "spec", "containers", ci, "env", ei, "valueFrom", "secretKeyRef", "name")
                        missing[(doc.namespace, ref.get("name", ""))].append((doc, path, ref.get("key", "")))
    out = []
    for (ns, name), uses in sorted(missing.items()):
        made = produced.get((ns, name))
        users = sorted({d.label for d, _, _ in uses})
        at = [(d.path, d.line(*p)) for d, p, _ in uses]
        if made is None:
            elsewhere = sorted(n for (n, s) in produced if s == name)
            where = f"; an ExternalSecret makes it only in {', '.join(elsewhere)}" if elsewhere else \
                "; nothing in the seed creates it (no Secret, no ExternalSecret)"
            out.append(make_finding(
                src, f"ref.secret-missing.{ns}.{name}", "availability",
                f"Secret {ns}/{name} is used by the pods but never created",
                f"{', '.join(users)} read keys {', '.join(sorted({k for _, _, k in uses}))} of it{where}. "
                "Kubernetes keeps such containers in CreateContainerConfigError: no replica starts",
                f"add an ExternalSecret in {ns} that creates {name} with those keys", users, at))
            continue
        maker, keys = made
        absent = sorted({k for _, _, k in uses if keys is not None and k not in keys})
        if absent:
            out.append(make_finding(
                src, f"ref.secret-key-missing.{ns}.{name}", "availability",
                f"Secret {ns}/{name} has no key {', '.join(absent)}",
                f"{maker.label} writes keys {', '.join(sorted(k for k in keys or () if k))}",
                "add the key to the ExternalSecret's data", users + [maker.label],
                at + [(maker.path, maker.line("spec", "data"))]))
    return out


def _secret_shapes(src: SeedSource) -> dict[str, tuple[str, int, set[str]]]:
    """Secrets Manager keys → (file, line, fields) from the application's own TypeScript: a method that
    returns ``Promise<Iface>`` from ``getSecret('key')``, and ``interface Iface { field: type; }``."""
    shapes: dict[str, tuple[str, int, set[str]]] = {}
    for path in src.paths:
        if not path.endswith(".ts"):
            continue
        text = src.text(path)
        ifaces = {m.group(1): set(re.findall(r"^\s*(\w+)\??\s*:", m.group(2), re.M))
                  for m in re.finditer(r"interface\s+(\w+)\s*\{(.*?)\n\}", text, re.S)}
        for m in re.finditer(r"Promise<(\w+)>\s*\{\s*return await this\.getSecret\('([^']+)'\)", text):
            if m.group(1) in ifaces:
                shapes[m.group(2)] = (path, src.find_line(path, f"interface {m.group(1)}"), ifaces[m.group(1)])
    return shapes


def external_secret_properties(src: SeedSource) -> list[Finding]:
    """ExternalSecret ``remoteRef.property`` against the secret's shape the application code declares."""
    shapes = _secret_shapes(src)
    out = []
    for es in src.objects("ExternalSecret"):
        for i, item in enumerate(es.get("spec", "data", default=[]) or []):
            ref = item.get("remoteRef") or {}
            shape = shapes.get(ref.get("key", ""))
            prop = ref.get("property")
            if shape and prop and prop not in shape[2]:
                path, line, fields = shape
                out.append(make_finding(
                    src, f"ref.secret-property-missing.{es.name}.{prop}", "availability",
                    f"ExternalSecret {es.name} reads property {prop!r} that secret {ref['key']} does not have",
                    f"the application's own type for {ref['key']} ({path}) has fields "
                    f"{', '.join(sorted(fields))}; external-secrets fails the whole sync when a property is "
                    f"missing, so Secret {es.get('spec', 'target', 'name', default=es.name)} is never written "
                    f"(its key {item.get('secretKey')} feeds the conductor)",
                    f"store {prop} in {ref['key']}, or build it with a template from the fields that exist",
                    [es.label], [(es.path, es.line("spec", "data", i, "remoteRef", "property")), (path, line)]))
    return out


def service_accounts(src: SeedSource) -> list[Finding]:
    """Pod ``serviceAccountName`` and SecretStore service account references."""
    defined = {(d.namespace, d.name) for d in src.objects("ServiceAccount")}
    out = []
    for kind in _WORKLOADS:
        for doc in src.objects(kind):
            sa = _pod_spec(doc).get("serviceAccountName")
            if sa and sa != "default" and (doc.namespace, sa) not in defined:
                out.append(make_finding(
                    src, f"ref.serviceaccount-missing.{doc.namespace}.{sa}", "availability",
                    f"ServiceAccount {doc.namespace}/{sa} is used by {doc.label} but not defined",
                    "the ReplicaSet controller cannot create pods for a missing service account "
                    "(error looking up service account): the workload never gets a replica"
                    + ("; the cluster autoscaler also needs its RBAC and IAM role, none in the seed"
                       if "autoscaler" in doc.name else ""),
                    f"add ServiceAccount {sa} in {doc.namespace} (with its IRSA role annotation where it calls AWS)",
                    [doc.label], [(doc.path, doc.line("spec", "template", "spec", "serviceAccountName"))]))
    for store in src.objects("SecretStore"):
        ref = store.get("spec", "provider", "aws", "auth", "jwt", "serviceAccountRef", "name", default=None)
        if ref and (store.namespace, ref) not in defined:
            out.append(make_finding(
                src, f"ref.serviceaccount-missing.{store.namespace}.{ref}", "availability",
                f"ServiceAccount {store.namespace}/{ref} that SecretStore {store.name} authenticates with is "
                "not defined",
                "with no service account (and no IRSA role annotation on it) the store cannot get a token: "
                "every ExternalSecret using it stays SecretSyncedError and no credentials reach the pods",
                f"add ServiceAccount {ref} in {store.namespace} annotated with an IAM role allowed to read "
                "the i2s/* secrets", [store.label],
                [(store.path, store.line("spec", "provider", "aws", "auth", "jwt", "serviceAccountRef", "name"))]))
    return out


def mesh_hosts(src: SeedSource) -> list[Finding]:
    """Gateway hosts served by no VirtualService, and DestinationRule subsets no route uses."""
    out = []
    bound = defaultdict(set)
    for vs in src.objects("VirtualService"):
        for gw in vs.get("spec", "gateways", default=[]) or []:
            for host in vs.get("spec", "hosts", default=[]) or []:
                bound[gw.split("/")[-1]].add(host)
    for gw in src.objects("Gateway"):
        for si, server in enumerate(gw.get("spec", "servers", default=[]) or []):
            for hi, host in enumerate(server.get("hosts", []) or []):
                if host not in bound[gw.name] and "*" not in host:
                    out.append(make_finding(
                        src, f"ref.gateway-host-unrouted.{gw.name}.{host}", "availability",
                        f"Gateway {gw.name} accepts {host} but no VirtualService routes it",
                        f"requests for {host} reach the ingress gateway and get 404 NR (no route): the "
                        "frontend host is published but not served",
                        f"add a VirtualService for {host} bound to {gw.name}, or drop the host",
                        [gw.label], [(gw.path, gw.line("spec", "servers", si, "hosts", hi))]))
    used = {((r.get("destination") or {}).get("host"), (r.get("destination") or {}).get("subset"))
            for vs in src.objects("VirtualService") for h in vs.get("spec", "http", default=[]) or []
            for r in h.get("route", []) or []}
    for dr in src.objects("DestinationRule"):
        for si, subset in enumerate(dr.get("spec", "subsets", default=[]) or []):
            if (dr.get("spec", "host"), subset.get("name")) not in used:
                out.append(make_finding(
                    src, f"ref.subset-unrouted.{dr.name}.{subset.get('name')}", "availability",
                    f"subset {subset.get('name')} of {dr.name} is never routed to",
                    "no VirtualService route names the subset, so its traffic policy (ROUND_ROBIN on 8080) "
                    "never applies; the host-level LEAST_CONN policy is what runs",
                    "route to the subset, or remove it", [dr.label],
                    [(dr.path, dr.line("spec", "subsets", si, "name"))]))
    return out


def gateway_credentials(src: SeedSource) -> list[Finding]:
    """A Gateway's TLS ``credentialName`` must name a Secret in the ingress gateway's namespace."""
    out = []
    produced = _produced_secrets(src)
    for gw in src.objects("Gateway"):
        for si, server in enumerate(gw.get("spec", "servers", default=[]) or []):
            cred = (server.get("tls") or {}).get("credentialName")
            if cred and not any(name == cred for (_, name) in produced) and not any(
                    d.name == cred for d in src.objects("Certificate")):
                out.append(make_finding(
                    src, f"ref.tls-credential-missing.{gw.name}.{cred}", "availability",
                    f"TLS secret {cred} of Gateway {gw.name} is created by nothing",
                    "istiod looks for credentialName in the ingress gateway's namespace (istio-system by "
                    "default); no Secret, ExternalSecret or cert-manager Certificate in the seed makes it, so "
                    "the HTTPS listener has no certificate and every client handshake fails",
                    f"create {cred} in the gateway's namespace (cert-manager Certificate or an ExternalSecret)",
                    [gw.label], [(gw.path, gw.line("spec", "servers", si, "tls", "credentialName"))]))
    return out


def _gateway_allowed_on_api(rules: list[dict[str, Any]]) -> bool:
    """Whether some rule lets the ingress gateway's identity (any service account in its namespace, as
    istioctl and the Helm gateway chart name it differently) call an /api path."""
    prefix = f"cluster.local/ns/{GATEWAY_NAMESPACE}/"
    for rule in rules:
        paths = [p for op in rule.get("to", []) or [] for p in (op.get("operation") or {}).get("paths", []) or []]
        if paths and not any(p.startswith("/api") or p in ("*", "/*") for p in paths):
            continue
        for frm in rule.get("from", []) or []:
            source = frm.get("source") or {}
            if any(str(p).startswith(prefix) or p == "*" for p in source.get("principals", []) or []) or \
                    GATEWAY_NAMESPACE in (source.get("namespaces") or []):
                return True
    return False


def authorization_principals(src: SeedSource) -> list[Finding]:
    """ALLOW policies against who actually calls: the principals must exist, and the ingress gateway
    (which forwards every external request) must be allowed on the paths the VirtualServices route."""
    out = []
    sas = {(d.namespace, d.name) for d in src.objects("ServiceAccount")}
    routed_via_gateway = any(vs.get("spec", "gateways") for vs in src.objects("VirtualService"))
    for ap in src.objects("AuthorizationPolicy"):
        if ap.get("spec", "action", default="ALLOW") != "ALLOW":
            continue
        rules = ap.get("spec", "rules", default=[]) or []
        principals = []
        for ri, rule in enumerate(rules):
            for fi, frm in enumerate(rule.get("from", []) or []):
                for pi, p in enumerate((frm.get("source") or {}).get("principals", []) or []):
                    principals.append((p, ("spec", "rules", ri, "from", fi, "source", "principals", pi)))
        for p, path in principals:
            m = re.fullmatch(r"cluster\.local/ns/([^/]+)/sa/([^/]+)", p)
            if m and (m.group(1), m.group(2)) not in sas and m.group(1) not in _PLATFORM_NAMESPACES:
                out.append(make_finding(
                    src, f"ref.principal-missing.{ap.name}.{m.group(2)}", "security",
                    f"AuthorizationPolicy {ap.name} allows {p}, which no workload runs as",
                    f"no ServiceAccount {m.group(1)}/{m.group(2)} and no workload using it exists in the seed",
                    "name the service account of the real caller", [ap.label], [(ap.path, ap.line(*path))]))
        if routed_via_gateway and rules and not _gateway_allowed_on_api(rules):
            allowed = [p for p, _ in principals]
            out.append(make_finding(
                src, f"availability.gateway-denied.{ap.name}", "availability",
                f"AuthorizationPolicy {ap.name} denies the ingress gateway: every API request gets 403",
                "the VirtualService sends external traffic through the ingress gateway, whose identity is a "
                f"service account in {GATEWAY_NAMESPACE} (istio-ingressgateway-service-account with istioctl, the "
                f"release name with the Helm gateway chart); the policy allows /api/* only from "
                f"{', '.join(allowed) or 'nobody'}. With an ALLOW policy present, anything not matched is denied "
                "(403 RBAC: access denied; the harness measured 1,061 of 1,061 requests refused on real Envoy)",
                f"allow the gateway's principal (cluster.local/ns/{GATEWAY_NAMESPACE}/sa/<its service account>) "
                "on /api/*", [ap.label], [(ap.path, ap.line("spec", "rules"))]))
    return out


def sidecar_injection(src: SeedSource) -> list[Finding]:
    """Istio traffic and security policy only acts where pods have sidecars."""
    mesh_ns = sorted({d.namespace for d in src.manifests
                      if d.api_version.startswith(("networking.istio.io", "security.istio.io")) and d.namespace})
    if not mesh_ns:
        return []
    labeled = {d.name for d in src.objects("Namespace")
               if (d.get("metadata", "labels", default={}) or {}).get("istio-injection") == "enabled"
               or "istio.io/rev" in (d.get("metadata", "labels", default={}) or {})}
    injected_pods = [d for k in _WORKLOADS for d in src.objects(k)
                     if str((d.get("spec", "template", "metadata", "labels", default={}) or {})
                            .get("sidecar.istio.io/inject", "")).lower() == "true"]
    if labeled or injected_pods:
        return []
    nss = src.objects("Namespace")
    return [make_finding(
        src, "availability.no-sidecar-injection", "availability",
        "no namespace or pod enables Istio sidecar injection",
        f"Istio objects live in {', '.join(mesh_ns)}, but no Namespace carries istio-injection=enabled (or "
        "istio.io/rev) and no pod template sets sidecar.istio.io/inject: the conductor pods get no sidecar, "
        "so the DestinationRule's limits, mTLS STRICT and the AuthorizationPolicy are not enforced at the pods "
        "(and STRICT peers cannot reach them)",
        "label the namespaces istio-injection=enabled (Namespace objects in Git, not CreateNamespace)",
        [d.label for d in nss] or mesh_ns, [(d.path, d.line("metadata", "labels")) for d in nss])]


def metrics_port(src: SeedSource) -> list[Finding]:
    """``prometheus.io/port`` against the container's port named ``metrics``."""
    out = []
    for kind in _WORKLOADS:
        for doc in src.objects(kind):
            ann = doc.get("spec", "template", "metadata", "annotations", default={}) or {}
            port = str(ann.get("prometheus.io/port", ""))
            metrics_ports = [str(p.get("containerPort")) for c in _pod_spec(doc).get("containers", []) or []
                             for p in c.get("ports", []) or [] if p.get("name") == "metrics"]
            if port and metrics_ports and port not in metrics_ports:
                out.append(make_finding(
                    src, f"scaling.metrics-port-mismatch.{doc.namespace}.{doc.name}", "scaling",
                    f"{doc.label} is scraped on port {port} but names port {metrics_ports[0]} 'metrics'",
                    f"prometheus.io/port says {port} while the container's port named metrics is "
                    f"{metrics_ports[0]}: either the scrape misses the metrics the custom HPA needs "
                    "(active_pipeline_executions) or the metrics port is dead",
                    "make the annotation and the named port agree",
                    [doc.label], [(doc.path, doc.line("spec", "template", "metadata", "annotations", "prometheus.io/port"))]))
    return out
