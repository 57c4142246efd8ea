"""Zone loss on Kubernetes (kind or a cluster named explicitly).

Two ways to lose a zone, both reversible:

* ``drain_zone``: chaostoolkit-kubernetes' ``drain_nodes`` on the nodes labeled
  ``topology.kubernetes.io/zone=<zone>`` (cordon + evict); rollback ``uncordon_zone``.
* ``pause_zone_nodes``: freeze the zone's kind node containers (docker pause): the nodes stop
  answering as a lost zone's machines would; rollback ``unpause_zone_nodes``. Only for the
  harness's own kind cluster, whose node containers carry kind's cluster label.

Every function checks the kube context (``safety.check_kube_context``) and that the kubeconfig
names it, before any Kubernetes client is created: a context the harness did not create and the
user did not name is refused without a single call to it.
"""

import logging
from typing import Any

from harness.errors import UnsafeTarget, UsageError
from harness.faults import safety
from harness.labels import kind_cluster_name

__all__ = ["drain_zone", "uncordon_zone", "pause_zone_nodes", "unpause_zone_nodes"]

log = logging.getLogger(__name__)
ZONE_LABEL = "topology.kubernetes.io/zone"


def _safe_context(run_id: str, context: str) -> str:
    """The checked context, also present in the kubeconfig (read locally; no cluster is contacted).

    chaosk8s falls back to ``KUBERNETES_HOST`` or in-cluster credentials when the kubeconfig is
    missing, which would bypass the context check: refuse that case too.
    """
    ctx = safety.check_kube_context(run_id, context)
    from harness.kube.client import kubeconfig_contexts, read_kubeconfig

    read_kubeconfig()  # one validating reader: a missing or malformed file is one line, not a traceback
    if ctx not in kubeconfig_contexts():
        raise UnsafeTarget(f"kube context {ctx!r} is not in the kubeconfig",
                           "the harness acts only through a context the kubeconfig names")
    return ctx


def _selector(zone: str) -> str:
    if not zone or any(ch in zone for ch in ",=! "):
        raise UsageError(f"zone {zone!r} is not a single zone name", "use e.g. us-east-1a")
    return f"{ZONE_LABEL}={zone}"


def zone_nodes(run_id: str, zone: str, context: str = "") -> list[str]:
    """Names of the nodes labeled with ``zone``."""
    selector = _selector(zone)
    ctx = _safe_context(run_id, context)
    from kubernetes import client, config

    api = config.new_client_from_config(context=ctx)
    return [n.metadata.name for n in client.CoreV1Api(api).list_node(label_selector=selector).items]


def drain_zone(run_id: str, zone: str, context: str = "", timeout: int = 120) -> list:
    """Cordon and drain every node of ``zone`` (chaosk8s ``drain_nodes``). Rollback: ``uncordon_zone``."""
    selector = _selector(zone)
    ctx = _safe_context(run_id, context)
    from chaosk8s.node.actions import drain_nodes

    safety.record_injected(run_id, "zone-drained", zone, rollback="harness.faults.zones.uncordon_zone",
                           arguments={"run_id": run_id, "zone": zone, "context": context})
    return drain_nodes(label_selector=selector, timeout=timeout, secrets={"KUBERNETES_CONTEXT": ctx})


def uncordon_zone(run_id: str, zone: str, context: str = "") -> list:
    """Make the zone's nodes schedulable again (chaosk8s ``uncordon_node``). Idempotent."""
    selector = _selector(zone)
    ctx = _safe_context(run_id, context)
    from chaosk8s.node.actions import uncordon_node

    done = uncordon_node(label_selector=selector, secrets={"KUBERNETES_CONTEXT": ctx})
    safety.record_rolled_back(run_id, "zone-drained", zone)
    return done


def _kind_node_containers(run_id: str, names: list[str] | None = None, *, all: bool = False) -> list[Any]:
    client = safety._docker()
    cluster = kind_cluster_name(run_id)
    found = client.containers.list(all=all, filters={"label": [f"{safety.KIND_CLUSTER_LABEL}={cluster}"]})
    return [c for c in found if safety.ensure_labeled(c, run_id) and (names is None or c.name in names)]


def pause_zone_nodes(run_id: str, zone: str, context: str = "") -> dict:
    """Pause the kind node containers of ``zone``: the zone's machines stop. Rollback: ``unpause_zone_nodes``."""
    if (context or "").strip() and context.strip() != f"kind-{kind_cluster_name(run_id)}":
        raise UsageError("pausing node containers works only on the harness's own kind cluster",
                         "use drain_zone on a cluster named with --context")
    nodes = zone_nodes(run_id, zone, context)
    targets = [c for c in _kind_node_containers(run_id, nodes) if c.status == "running"]
    if not targets:
        raise UsageError(f"no running kind node of run {run_id} in zone {zone!r}",
                         "label the kind nodes with topology.kubernetes.io/zone (k8s/overlays/kind)")
    if any(c.name.endswith("control-plane") for c in targets):
        raise UsageError(f"zone {zone!r} holds the control plane; pausing it stops the whole cluster",
                         "choose a zone with worker nodes only")
    safety.record_injected(run_id, "zone-nodes-paused", zone, rollback="harness.faults.zones.unpause_zone_nodes",
                           arguments={"run_id": run_id, "zone": zone}, details={"nodes": [c.name for c in targets]})
    for c in targets:
        c.pause()
    return {"zone": zone, "paused": [c.name for c in targets]}


def unpause_zone_nodes(run_id: str, zone: str) -> dict:
    """Unpause every paused kind node container of the run (needs no API: the API may be what is down)."""
    resumed = []
    for c in _kind_node_containers(run_id, all=True):
        if c.status == "paused":
            c.unpause()
            resumed.append(c.name)
    safety.record_rolled_back(run_id, "zone-nodes-paused", zone)
    return {"zone": zone, "unpaused": resumed}
