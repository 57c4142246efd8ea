"""The audit's own rules: cross-object checks no generic tool makes, reasoned against the seed's DR
targets. Each is a pure function ``rule(SeedSource) -> list[Finding]``; ``RULES`` runs them in order.

* ``recovery`` -- backup and snapshot schedules vs the RPO, backup locations vs the DR region, the
  region failover vs the RTO, backing services nobody provisions.
* ``references`` -- secrets and keys, service accounts, hosts, subsets, TLS credentials, principals,
  scale targets, sidecar injection, metrics ports.
* ``scaling`` -- controllers that fight, metrics nobody serves, the cluster autoscaler's version,
  node-group labels and taints vs scheduling rules.
* ``traffic`` -- retry and timeout budgets, connection-pool caps vs the HPA, faults left in production.
* ``zones`` -- zone spread and disruption budgets vs the runbook's zone claim; probes as parts of the RTO.
* ``delivery`` -- the deploy workflow and Argo CD, the promotion gate, terraform pinning, EKS support,
  exposure and credentials.
"""
from harness.audit.rules import delivery, recovery, references, scaling, traffic, zones

RULES = tuple(getattr(module, name) for module in (recovery, references, scaling, traffic, zones, delivery)
              for name in module.__all__ if callable(getattr(module, name)) and not name.isupper()
              and name not in ("zone_loss_replacement_s",))

__all__ = ["RULES"]
