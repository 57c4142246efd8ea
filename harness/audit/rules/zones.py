"""Zone spread and disruption budgets against the runbook's zone claim, and probe timings as parts of
the RTO: how long until a failed replica stops getting traffic, is restarted, or is replaced."""
from __future__ import annotations

from typing import Any

from harness.audit.findings import Finding
from harness.audit.rules.base import dr_targets, fmt_seconds, make_finding
from harness.audit.sources import RUNBOOK, Doc, SeedSource

__all__ = ["zone_spread", "disruption_budgets", "probe_budgets", "zone_loss_replacement_s",
           "NODE_MONITOR_GRACE_S", "NOT_READY_TOLERATION_S"]

ZONE_KEY = "topology.kubernetes.io/zone"
# Kubernetes defaults that decide how long pods on a lost zone's nodes linger (the seed changes none):
# kube-controller-manager --node-monitor-grace-period (40 s up to 1.31), and the DefaultTolerationSeconds
# admission plugin's not-ready/unreachable tolerations (300 s) before taint-based eviction.
NODE_MONITOR_GRACE_S = 40.0
NOT_READY_TOLERATION_S = 300.0


def _probe(doc: Doc, name: str) -> dict[str, Any]:
    containers = doc.get("spec", "template", "spec", "containers", default=[]) or []
    return (containers[0].get(name) or {}) if containers else {}


def _readiness_s(probe: dict[str, Any]) -> float:
    """First time a started replica can be Ready: initial delay, then one successful probe."""
    return float(probe.get("initialDelaySeconds", 0)) + float(probe.get("periodSeconds", 10)) * \
        (int(probe.get("successThreshold", 1)) - 1)


def _detection_s(probe: dict[str, Any]) -> float:
    """Worst time from a replica going bad to its probe giving up: failureThreshold periods, the last
    one waiting out the timeout."""
    return float(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3)) + \
        float(probe.get("timeoutSeconds", 1))


def zone_loss_replacement_s(doc: Doc) -> dict[str, float]:
    """The parts of "a zone's replicas are gone until replacements serve", seed values and defaults."""
    ready = _probe(doc, "readinessProbe")
    return {"node declared unreachable (node-monitor-grace-period)": NODE_MONITOR_GRACE_S,
            "pods evicted (not-ready/unreachable tolerationSeconds)": NOT_READY_TOLERATION_S,
            "replacement Ready (readiness initialDelaySeconds + successThreshold periods)": _readiness_s(ready)}


def _spread(doc: Doc) -> bool:
    spec = doc.get("spec", "template", "spec", default={}) or {}
    if any(c.get("topologyKey") == ZONE_KEY and c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
           for c in spec.get("topologySpreadConstraints") or []):
        return True
    anti = ((spec.get("affinity") or {}).get("podAntiAffinity") or {})
    return any(t.get("topologyKey") == ZONE_KEY for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def zone_spread(src: SeedSource) -> list[Finding]:
    """A multi-replica Deployment with no hard zone spread, when the runbook promises that losing a zone
    only degrades performance."""
    dr = dr_targets(src)
    claim = dr.scenarios.get("Single AZ Failure") or {}
    out = []
    for doc in src.objects("Deployment"):
        replicas = int(doc.get("spec", "replicas", default=1) or 1)
        if replicas < 2 or _spread(doc) or "autoscaler" in doc.name:
            continue
        parts = zone_loss_replacement_s(doc)
        total = sum(parts.values())
        out.append(make_finding(
            src, f"availability.no-zone-spread.{doc.namespace}.{doc.name}", "availability",
            f"{doc.label} can have every replica in one zone; the runbook says a zone loss only degrades "
            "performance",
            f"no topologySpreadConstraints on {ZONE_KEY} with DoNotSchedule and no required pod anti-affinity: "
            "the scheduler's default spreading is a preference (ScheduleAnyway), so all "
            f"{replicas} replicas may share a zone (the harness's docker zone-loss test with that placement saw "
            "no request served while the zone was down). Replacements come only after "
            + " + ".join(f"{fmt_seconds(v)} {k}" for k, v in parts.items())
            + f" = {fmt_seconds(total)} at best, before any new node; the runbook promises "
            f"\"{claim.get('impact', 'degraded performance')}\" (RTO {dr.rto_text})",
            f"add topologySpreadConstraints (maxSkew 1, topologyKey {ZONE_KEY}, whenUnsatisfiable "
            "DoNotSchedule) and a PodDisruptionBudget",
            [doc.label, "runbook scenario Single AZ Failure"],
            [(doc.path, doc.line("spec", "template", "spec")),
             (RUNBOOK, src.find_line(RUNBOOK, "Single AZ Failure") if src.has(RUNBOOK) else 0)]))
    return out


def disruption_budgets(src: SeedSource) -> list[Finding]:
    """Voluntary disruptions (node drains, the cluster autoscaler's scale-down) need a PDB."""
    pdbs = src.objects("PodDisruptionBudget")
    scale_down = [d for d in src.objects("Deployment") if "cluster-autoscaler" in d.name and any(
        "--scale-down-enabled=true" in str(a) for c in d.get("spec", "template", "spec", "containers", default=[]) or []
        for a in c.get("command", []) or [])]
    out = []
    for doc in src.objects("Deployment"):
        labels = doc.get("spec", "selector", "matchLabels", default={}) or {}
        if "autoscaler" in doc.name or not labels:
            continue
        covered = any(p.namespace == doc.namespace and
                      (p.get("spec", "selector", "matchLabels", default={}) or {}).items() <= labels.items()
                      for p in pdbs)
        if covered:
            continue
        why = ("the cluster autoscaler scales down (--scale-down-enabled=true, --scale-down-unneeded-time=2m, "
               "--skip-nodes-with-system-pods=false) and may drain nodes holding several replicas at once"
               if scale_down else "a node drain may evict every replica at once")
        out.append(make_finding(
            src, f"availability.no-pdb.{doc.namespace}.{doc.name}", "availability",
            f"{doc.label} has no PodDisruptionBudget",
            f"{why}; with no budget nothing keeps a minimum of replicas serving during upgrades and scale-downs",
            "add a PodDisruptionBudget with minAvailable (or maxUnavailable 1) for the conductor",
            [doc.label] + [d.label for d in scale_down],
            [(doc.path, doc.line("metadata", "name"))] +
            [(d.path, d.line("spec", "template", "spec", "containers")) for d in scale_down]))
    return out


def probe_budgets(src: SeedSource) -> list[Finding]:
    """Probe timings as parts of the RTO: liveness must not give up before readiness (a restart with
    traffic still routed), and detection plus restart plus readiness must fit the RTO."""
    dr = dr_targets(src)
    out = []
    for doc in src.objects("Deployment"):
        live, ready = _probe(doc, "livenessProbe"), _probe(doc, "readinessProbe")
        if not live or not ready:
            if not ready and int(doc.get("spec", "replicas", default=1) or 1) > 1 and "autoscaler" not in doc.name:
                out.append(make_finding(
                    src, f"rto.no-readiness-probe.{doc.namespace}.{doc.name}", "RTO",
                    f"{doc.label} has no readiness probe",
                    "a replica that cannot serve keeps its endpoint: its share of requests fails until it "
                    "is restarted or replaced, with no bound",
                    "add a readinessProbe on a health endpoint", [doc.label],
                    [(doc.path, doc.line("spec", "template", "spec", "containers"))]))
            continue
        live_s, ready_s = _detection_s(live), _detection_s(ready)
        at = [(doc.path, doc.line("spec", "template", "spec", "containers", 0, "livenessProbe")),
              (doc.path, doc.line("spec", "template", "spec", "containers", 0, "readinessProbe"))]
        if live_s <= ready_s:
            out.append(make_finding(
                src, f"rto.liveness-before-readiness.{doc.namespace}.{doc.name}", "RTO",
                f"{doc.label} restarts a slow replica before taking it out of rotation",
                f"liveness gives up after {fmt_seconds(live_s)}, readiness after {fmt_seconds(ready_s)}: a replica "
                "that is only slow is killed while still receiving traffic, and its in-flight requests fail",
                "make liveness more tolerant than readiness (more periods or a longer period)", [doc.label], at))
        recover = live_s + float(live.get("initialDelaySeconds", 0)) + _readiness_s(ready)
        if recover > dr.rto_s:
            out.append(make_finding(
                src, f"rto.probe-recovery-exceeds-rto.{doc.namespace}.{doc.name}", "RTO",
                f"{doc.label} needs {fmt_seconds(recover)} to restart a hung replica, more than the RTO",
                f"liveness detection {fmt_seconds(live_s)} + liveness initialDelaySeconds "
                f"{live.get('initialDelaySeconds', 0)} s + readiness {fmt_seconds(_readiness_s(ready))} "
                f"= {fmt_seconds(recover)} > RTO {dr.rto_text}",
                "shorten the probe periods or thresholds", [doc.label], at))
    return out
