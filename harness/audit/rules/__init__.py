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
* ``delivery`` -- the deploy workflow and Argo CD, the promotion gate, terraform pinning and undeclared
  references, the local development steps, EKS support, exposure and credentials.
"""
from harness.audit.rules import delivery, recovery, references, scaling, traffic, zones

# Every rule, in the order findings are gathered (the engine sorts them afterwards).
RULES = (
    recovery.backup_schedules, recovery.backup_locations, recovery.region_failover,
    recovery.unprovisioned_backing_services,
    references.missing_workload_targets, references.secret_references, references.external_secret_properties,
    references.service_accounts, references.mesh_hosts, references.gateway_credentials,
    references.authorization_principals, references.sidecar_injection, references.metrics_port,
    scaling.fighting_controllers, scaling.unserved_metrics, scaling.cluster_autoscaler_version,
    scaling.node_group_scheduling, scaling.node_group_settings,
    traffic.retry_budgets, traffic.retries_skip_503, traffic.pool_caps_scaling, traffic.production_fault_injection,
    zones.zone_spread, zones.disruption_budgets, zones.probe_budgets,
    delivery.workflow_paths, delivery.workflow_argocd, delivery.argocd_project, delivery.terraform_pinning,
    delivery.terraform_references, delivery.development_setup,
    delivery.eks_support, delivery.cluster_exposure, delivery.static_cloud_keys,
)

__all__ = ["RULES"]
