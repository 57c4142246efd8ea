"""Scaling: controllers that fight over the same replicas or requests, metrics an HPA needs that nothing
serves, the cluster autoscaler against the cluster, and node groups' labels and taints against the
pods' scheduling rules."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterator

from harness.audit.findings import Finding
from harness.audit.rules.base import make_finding
from harness.audit.sources import Doc, SeedSource
from harness.oracles.hpa.controller import combine_metric_proposals

if TYPE_CHECKING:
    from harness.audit.terraform import TerraformFile

__all__ = ["fighting_controllers", "unserved_metrics", "cluster_autoscaler_version", "node_group_scheduling",
           "node_group_settings"]

# EKS managed node groups accept only these (aws_eks_node_group.capacity_type).
EKS_CAPACITY_TYPES = ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK")
_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def _target(doc: Doc) -> tuple[str, str, str]:
    ref = doc.get("spec", "scaleTargetRef" if doc.kind == "HorizontalPodAutoscaler" else "targetRef", default={}) or {}
    return ref.get("kind", ""), ref.get("name", ""), doc.namespace


def fighting_controllers(src: SeedSource) -> list[Finding]:
    """Two HPAs on one target; a VPA in Auto mode on CPU/memory beside an HPA on CPU/memory; Argo CD
    self-heal re-applying ``replicas`` that an HPA changes."""
    out: list[Finding] = []
    hpas = src.objects("HorizontalPodAutoscaler")
    by_target: dict[tuple[str, ...], list[Doc]] = defaultdict(list)
    for h in hpas:
        by_target[_target(h)].append(h)
    for (kind, name, ns), group in sorted(by_target.items()):
        if len(group) > 1:
            out.append(make_finding(
                src, f"scaling.hpas-share-target.{ns}.{name}", "scaling",
                f"{len(group)} HPAs scale {kind} {ns}/{name}",
                f"{', '.join(h.name for h in group)} each set the replica count; the controller flips between "
                "their answers every sync (AmbiguousSelector in newer releases)",
                "keep one HPA per target and merge the metrics into it", [h.label for h in group],
                [(h.path, h.line("spec", "scaleTargetRef", "name")) for h in group]))
    for vpa in src.objects("VerticalPodAutoscaler"):
        mode = vpa.get("spec", "updatePolicy", "updateMode", default="Auto")
        controlled = set()
        for p in vpa.get("spec", "resourcePolicy", "containerPolicies", default=[]) or []:
            controlled |= set(p.get("controlledResources") or ["cpu", "memory"])
        rivals = [h for h in hpas if _target(h) == _target(vpa) and
                  {m.get("resource", {}).get("name") for m in h.get("spec", "metrics", default=[]) or []
                   if m.get("type") == "Resource"} & controlled]
        if mode in ("Auto", "Recreate", "InPlaceOrRecreate") and rivals:
            out.append(make_finding(
                src, f"scaling.vpa-fights-hpa.{vpa.namespace}.{vpa.name}", "scaling",
                f"VPA {vpa.name} ({mode}) and HPA {rivals[0].name} both act on {'/'.join(sorted(controlled))}",
                "the VPA raises the pods' requests when usage is high, which lowers the utilization the HPA "
                "divides by, so the HPA scales in while the VPA evicts pods to resize them: the two loops undo "
                "each other (the VPA project's documented limitation), with evictions during peaks",
                "set the VPA to updateMode Off (recommendations only), or scale the HPA on custom metrics only",
                [vpa.label] + [h.label for h in rivals],
                [(vpa.path, vpa.line("spec", "updatePolicy", "updateMode"))] +
                [(h.path, h.line("spec", "metrics")) for h in rivals]))
    for app in src.objects("Application"):
        automated = app.get("spec", "syncPolicy", "automated", default=None) or {}
        ignores = str(app.get("spec", "ignoreDifferences", default=""))
        ns = app.get("spec", "destination", "namespace", default="")
        deployments = [d for d in src.objects("Deployment") if d.get("spec", "replicas") is not None and
                       any(_target(h)[1] == d.name for h in hpas)]
        if automated.get("selfHeal") and "/spec/replicas" not in ignores and deployments:
            fixed = ", ".join(f"{d.name}: {d.get('spec', 'replicas')}" for d in deployments)
            out.append(make_finding(
                src, f"scaling.argocd-reverts-hpa.{app.name}", "scaling",
                f"Argo CD {app.name} self-heals replicas that the HPA sets",
                f"automated selfHeal with no ignoreDifferences on /spec/replicas, while the Deployment template "
                f"fixes replicas ({fixed}) "
                f"and HPAs scale it in {ns or 'the destination'}: each HPA scale-up makes the app OutOfSync and "
                "self-heal sets the count back, so scaling oscillates under load",
                "drop spec.replicas from HPA-managed Deployments, or add ignoreDifferences for /spec/replicas",
                [app.label] + [d.label for d in deployments],
                [(app.path, app.line("spec", "syncPolicy", "automated", "selfHeal"))] +
                [(d.path, d.line("spec", "replicas")) for d in deployments]))
    return out


def unserved_metrics(src: SeedSource) -> list[Finding]:
    """Object/External metrics need an adapter serving custom.metrics.k8s.io / external.metrics.k8s.io;
    Resource metrics need metrics.k8s.io (metrics-server). The seed registers no APIService for them."""
    services = {str(d.get("spec", "group", default="")) for d in src.objects("APIService")}
    has_adapter = bool(services & {"custom.metrics.k8s.io", "external.metrics.k8s.io"}) or any(
        re.search(r"prometheus-adapter|keda", d.name) for d in src.objects("Deployment"))
    has_metrics_server = "metrics.k8s.io" in services or any(d.name == "metrics-server" for d in src.objects("Deployment"))
    out = []
    for h in src.objects("HorizontalPodAutoscaler"):
        metrics = h.get("spec", "metrics", default=[]) or []
        custom = [(i, m) for i, m in enumerate(metrics) if m.get("type") in ("Object", "External", "Pods")]
        if custom and not has_adapter:
            names = [m.get(m["type"].lower(), {}).get("metric", {}).get("name", "?") for _, m in custom]
            # What the HPA controller does with these metrics unavailable, from the oracle that mirrors it:
            # valid proposals below the current count are refused, so the HPA never scales in.
            current = int(h.get("spec", "maxReplicas", default=1))
            proposals = [1 if m.get("type") == "Resource" else None for m in metrics]
            replicas, invalid, _ = combine_metric_proposals(current, proposals)
            out.append(make_finding(
                src, f"scaling.metrics-not-served.{h.namespace}.{h.name}", "scaling",
                f"HPA {h.name} needs metrics nothing serves: {', '.join(names)}",
                f"{len(custom)} of {len(metrics)} metrics are {'/'.join(sorted({m['type'] for _, m in custom}))} "
                "metrics, served only by an adapter (prometheus-adapter, KEDA) registered as "
                "custom.metrics.k8s.io / external.metrics.k8s.io; the seed has none. The HPA controller marks "
                "them invalid and refuses to scale in while any metric is invalid (the harness's HPA oracle, at "
                f"{current} replicas with CPU/memory asking for 1 and {invalid} metrics invalid: "
                f"{'no change' if replicas == -1 else replicas}): "
                "after a peak the conductor stays at its peak size",
                "deploy and register a metrics adapter exposing these metrics, or drop them",
                [h.label], [(h.path, h.line("spec", "metrics", i)) for i, _ in custom]))
        resource = [i for i, m in enumerate(metrics) if m.get("type") == "Resource"]
        if resource and not has_metrics_server:
            out.append(make_finding(
                src, f"scaling.metrics-server-missing.{h.namespace}.{h.name}", "scaling",
                f"HPA {h.name} scales on CPU/memory but the seed installs no metrics-server",
                "Resource metrics come from metrics.k8s.io, which EKS does not serve until metrics-server is "
                "installed (an add-on); without it the HPA reports FailedGetResourceMetric and never scales "
                "(the harness adds k8s/addons/metrics-server.yaml on kind for this reason)",
                "install metrics-server (EKS add-on or manifest) with the platform",
                [h.label], [(h.path, h.line("spec", "metrics", resource[0]))]))
    return out


def cluster_autoscaler_version(src: SeedSource) -> list[Finding]:
    """The cluster autoscaler's minor version must match the cluster's (its own compatibility rule)."""
    out = []
    versions = {tf.environment: str(tf.module("eks").get("cluster_version", "")) for tf in src.terraform}
    for d in src.objects("Deployment"):
        for ci, c in enumerate(_containers(d)):
            m = re.search(r"cluster-autoscaler:v(\d+)\.(\d+)", str(c.get("image", "")))
            if not m:
                continue
            ca = f"{m.group(1)}.{m.group(2)}"
            cluster = next((v for env, v in versions.items() if env in " ".join(map(str, c.get("command", []))) and v),
                           versions.get("production", ""))
            problems = []
            if cluster and cluster != ca:
                problems.append(f"cluster-autoscaler {ca} on a Kubernetes {cluster} cluster (the project supports "
                                "only the matching minor; older releases miss newer scheduling APIs and predicates)")
            if str(c.get("image", "")).startswith("k8s.gcr.io/"):
                problems.append("the image comes from k8s.gcr.io, the frozen registry replaced by registry.k8s.io")
            if problems:
                out.append(make_finding(
                    src, f"scaling.cluster-autoscaler-version.{d.name}", "scaling",
                    f"cluster autoscaler {ca} does not match the cluster ({cluster or 'unknown'})",
                    "; ".join(problems) + ": node groups may not scale out when pods are pending",
                    f"use registry.k8s.io/autoscaling/cluster-autoscaler:v{cluster}.x",
                    [d.label], [(d.path, d.line("spec", "template", "spec", "containers", ci, "image"))]
                    + [(tf.path, src.find_line(tf.path, "cluster_version")) for tf in src.terraform]))
    return out


def _containers(d: Doc) -> list[dict[str, Any]]:
    return d.get("spec", "template", "spec", "containers", default=[]) or []


def _node_groups(src: SeedSource) -> Iterator[tuple[TerraformFile, str, dict[str, Any]]]:
    for tf in src.terraform:
        for name, g in (tf.module("eks").get("eks_managed_node_groups") or {}).items():
            yield tf, name, g


def node_group_settings(src: SeedSource) -> list[Finding]:
    """Node group attributes the EKS module or the EKS API does not take."""
    out = []
    ignored: dict[TerraformFile, list[tuple[str, dict[str, Any], int]]] = {}
    for tf, name, g in _node_groups(src):
        line = src.find_line(tf.path, f"{name} = {{")
        ctype = g.get("capacity_type")
        if ctype and ctype not in EKS_CAPACITY_TYPES:
            out.append(make_finding(
                src, f"delivery.node-group-capacity-type.{tf.environment}.{name}", "delivery",
                f"node group {name} asks for capacity_type {ctype!r}, which EKS does not have",
                f"aws_eks_node_group.capacity_type takes {', '.join(EKS_CAPACITY_TYPES)}; {ctype!r} fails "
                "the plan, so the environment cannot be created or changed (one node group can be On-Demand "
                "or Spot, not both)",
                "split it into an ON_DEMAND and a SPOT node group",
                [f"terraform {tf.path} node group {name}"],
                [(tf.path, src.find_line(tf.path, "capacity_type", line))]))
        if "k8s_labels" in g and "labels" not in g:
            ignored.setdefault(tf, []).append((name, g, src.find_line(tf.path, "k8s_labels", line)))
    for tf, groups in ignored.items():
        out.append(make_finding(
            src, f"scaling.node-group-labels-ignored.{tf.environment}", "scaling",
            f"{tf.environment} node groups set k8s_labels, which the EKS module's managed node groups ignore",
            "terraform-aws-modules/eks (v18 and later, the version an unpinned source resolves to) reads "
            "`labels` for eks_managed_node_groups (node_groups.tf: labels = try(each.value.labels, ...)); "
            "`k8s_labels` was the v17 node_groups attribute, so "
            + "; ".join(f"{n} gets none of {', '.join(f'{k}={v}' for k, v in g['k8s_labels'].items())}"
                        for n, g, _ in groups),
            "rename k8s_labels to labels and pin the module version",
            [f"terraform {tf.path} node group {n}" for n, _, _ in groups], [(tf.path, ln) for _, _, ln in groups]))
    return out


def node_group_scheduling(src: SeedSource) -> list[Finding]:
    """Each workload's required node labels and tolerations against the node groups' labels and taints."""
    out: list[Finding] = []
    groups = list(_node_groups(src))
    if not groups:
        return out
    for d in src.objects("Deployment"):
        spec = d.get("spec", "template", "spec", default={}) or {}
        terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        required = [(e.get("key"), e.get("operator"), e.get("values") or [])
                    for t in terms for e in t.get("matchExpressions", []) or []]
        required += [(k, "In", [v]) for k, v in (spec.get("nodeSelector") or {}).items()]
        tolerations = spec.get("tolerations") or []
        if not required:
            continue
        fits = []
        for tf, name, g in groups:
            labels = g.get("labels") or g.get("k8s_labels") or {}
            ok_labels = all((op == "In" and labels.get(k) in vals) or (op == "Exists" and k in labels)
                            for k, op, vals in required)
            taints = g.get("taints") or []
            taints = taints.values() if isinstance(taints, dict) else taints
            ok_taints = all(any(t.get("key") == tol.get("key") and
                                (tol.get("operator") == "Exists" or t.get("value") == tol.get("value"))
                                for tol in tolerations)
                            for t in taints if _TAINT_EFFECTS.get(t.get("effect"), t.get("effect")) != "PreferNoSchedule")
            if ok_labels and ok_taints:
                fits.append(f"{tf.environment}/{name}")
        if not fits:
            req = ", ".join(f"{k} {op} {vals}" for k, op, vals in required)
            seen = "; ".join(f"{tf.environment}/{name}: labels "
                             f"{', '.join(f'{k}={v}' for k, v in (g.get('labels') or g.get('k8s_labels') or {}).items()) or 'none'}"
                             for tf, name, g in groups)
            out.append(make_finding(
                src, f"availability.unschedulable.{d.namespace}.{d.name}", "availability",
                f"{d.label} requires node labels no node group has: it can never be scheduled",
                f"required: {req}; node groups: {seen}. Every replica stays Pending (and the cluster "
                "autoscaler cannot help: no group would fit it)",
                "label the agents node group i2s.studio/node-type=agents (with `labels`), or require a label "
                "the groups have", [d.label] + [f"terraform node group {n}" for _, n, _ in groups],
                [(d.path, d.line("spec", "template", "spec", "affinity"))] +
                [(tf.path, src.find_line(tf.path, f"{n} = {{")) for tf, n, _ in groups]))
    # Tainted groups that no workload tolerates: capacity that runs nothing of the system's.
    all_tolerations = [tol for d in src.objects("Deployment")
                       for tol in (d.get("spec", "template", "spec", "tolerations", default=[]) or [])]
    for tf, name, g in groups:
        taints = g.get("taints") or []
        for t in taints.values() if isinstance(taints, dict) else taints:
            if not any(tol.get("key") == t.get("key") for tol in all_tolerations):
                out.append(make_finding(
                    src, f"scaling.taint-tolerated-by-nothing.{tf.environment}.{name}", "scaling",
                    f"node group {name} is tainted {t.get('key')}={t.get('value')} and nothing tolerates it",
                    f"min_size {g.get('min_size')} to max_size {g.get('max_size')} {g.get('instance_types')} nodes "
                    "that no seed workload can use: paid capacity the conductor's HPA cannot scale onto",
                    "give the workload meant for these nodes a matching toleration and node affinity",
                    [f"terraform {tf.path} node group {name}"],
                    [(tf.path, src.find_line(tf.path, "taints", src.find_line(tf.path, f"{name} = {{")))]))
    return out
