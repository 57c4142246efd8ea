"""Zone loss on Kubernetes (kind or a cluster named explicitly): drain a zone, and undo it.

* ``drain_zone``: chaostoolkit-kubernetes' ``drain_nodes`` on the nodes labeled
  ``topology.kubernetes.io/zone=<zone>`` (cordon + evict). Rollback: ``uncordon_zone``.
* ``uncordon_zone``: the nodes made schedulable again (``spec.unschedulable: false``, what
  ``kubectl uncordon`` does) through the harness's own client for the configuration's kubeconfig
  *file* and context. chaosk8s' ``uncordon_node`` cannot be used for it: its client reads the
  kubeconfig from ``KUBECONFIG`` of the process (``chaosk8s.get_config_path``, then
  ``kubernetes.config.load_kube_config`` with that module's default path), which in the harness's
  process — where ``undo_all`` replays the rollback after Ctrl-C or a crash — is the user's
  default kubeconfig, not the kind cluster's.

On a cluster the harness did not create (a context named explicitly), the drain also needs
``drain`` in ``HARNESS_CONTEXT_ALLOW`` (``safety.check_allowed``); the uncordon that reverses it does not.

The harness control checks the context (the run's own kind cluster or the one named explicitly,
defined in the kubeconfig file) before either runs (``safety.check_target`` with ``kube=True``)
and records the drain with that kubeconfig path and context, so ``undo_all`` uncordons the same
cluster from any process.
"""

import logging
import os
from typing import Dict, List

from harness.errors import UnsafeTarget, UsageError
from harness.faults import safety
from harness.labels import ZONE_LABEL

__all__ = ["drain_zone", "uncordon_zone"]

log = logging.getLogger(__name__)


def _selector(configuration: Dict) -> str:
    zone = str((configuration or {}).get("zone") or "")
    if not zone or any(ch in zone for ch in ",=! "):
        raise UsageError(f"zone {zone!r} is not a single zone name", "use e.g. us-east-1a (HARNESS_ZONE)")
    return f"{ZONE_LABEL}={zone}"


@safety.fault("zone-drained", target="{zone}", rollback="harness.faults.zones.uncordon_zone", kube=True)
def drain_zone(timeout: int = 120, configuration: Dict = None) -> List[str]:
    """Cordon and drain every node of the configuration's ``zone`` (chaosk8s ``drain_nodes``).
    Rollback: ``uncordon_zone``."""
    selector = _selector(configuration)
    kube = safety.kube_target(configuration, kube=True)
    safety.check_allowed(configuration, kube["kube_context"], "drain")
    from chaosk8s import get_config_path
    from chaosk8s.node.actions import drain_nodes

    # chaosk8s reads the kubeconfig from this process's KUBECONFIG: it must be the file checked.
    if os.path.realpath(get_config_path()) != os.path.realpath(kube["kubeconfig"]):
        raise UnsafeTarget(f"chaostoolkit-kubernetes would read kubeconfig {get_config_path()}, not the checked "
                           f"{kube['kubeconfig']}", "export KUBECONFIG=<the cluster's kubeconfig file> (one file)")
    return drain_nodes(label_selector=selector, timeout=int(timeout),
                       secrets={"KUBERNETES_CONTEXT": kube["kube_context"]})


@safety.fault(reverses=("zone-drained",), kube=True)
def uncordon_zone(configuration: Dict = None) -> List[str]:
    """Make the zone's nodes schedulable again (``kubectl uncordon``), in the configuration's
    kubeconfig file and context. Idempotent: a schedulable node is left alone."""
    selector = _selector(configuration)
    kube = safety.kube_target(configuration, kube=True)
    from harness.kube import client as kc

    apis = kc.Apis(kc.api_client(kc.KubeTarget(kube["kube_context"], kube["kubeconfig"])))
    done = []
    try:
        for node in apis.core.list_node(label_selector=selector).items:
            if node.spec and node.spec.unschedulable:
                apis.core.patch_node(node.metadata.name, {"spec": {"unschedulable": False}})
                done.append(node.metadata.name)
    finally:
        apis.close()
    return done
