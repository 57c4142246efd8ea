"""The audit's own rules on copies of the seed: each rule fires on a broken copy and stays quiet on a
fixed one (``CASES``: fix, then break), and the seed as written yields exactly the findings listed
here, so any change to a rule or to the seed shows up in review."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from harness.audit.findings import SEVERITIES, TARGETS
from harness.audit.rules import RULES
from harness.audit.rules.base import parse_duration
from harness.audit.rules.delivery import eks_support
from harness.audit.rules.recovery import _cron_interval_s
from harness.audit.sources import SeedSource
from harness.config import PROJECT_ROOT

TODAY = dt.date(2026, 11, 26)


def rule_findings(root: Path) -> dict:
    src = SeedSource(root, TODAY)
    out = {}
    for rule in RULES:
        for f in rule(src):
            out[f.id] = f
    return out


def edit(root: Path, path: str, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` (which must be there, ``count`` times) in a copied seed file."""
    p = root / path
    text = p.read_text()
    assert text.count(old) == count, f"{path}: expected {count} of {old!r}, found {text.count(old)}: the seed changed"
    p.write_text(text.replace(old, new))


def add(root: Path, path: str, text: str) -> None:
    p = root / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


DEPLOY = "k8s/staging/conductor-deployment.yml"
ISTIO = "k8s/istio/gateway.yml"
PROD_TF = "seed/infrastructure/production/main.tf"
STAGING_TF = "seed/infrastructure/staging/main.tf"
WORKFLOW = "seed/.github/workflows/deploy-production.yml"
VELERO = "k8s/backup/velero-schedule.yml"
TS = "seed/lib/secrets-manager.ts"


class Case(NamedTuple):
    rule: str                       # the rule (function name) the case exercises
    finding: str                    # the finding id it must produce on the broken copy
    fix: Callable[[Path], None]     # turns the copy into one where the rule is quiet
    brk: Callable[[Path], None]     # then breaks it again (or breaks the seed as written)


def _noop(root: Path) -> None:
    pass


CASES = {
    "backup script unscheduled": Case(
        "backup_schedules", "rpo.db-backup-script-unscheduled",
        lambda r: add(r, "k8s/backup/db-backup-cronjob.yml",
                      "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: db-backup\n  namespace: i2s-production\n"
                      "spec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
                      "          restartPolicy: OnFailure\n          containers:\n          - name: backup\n"
                      "            image: i2s/backup:v1\n            command: [\"/scripts/backup-database.sh\"]\n"),
        lambda r: (r / "k8s/backup/db-backup-cronjob.yml").unlink()),
    "velero schedule weaker than the RPO": Case(
        "backup_schedules", "rpo.velero-interval.i2s-daily-backup",
        lambda r: edit(r, VELERO, 'schedule: "0 3 * * *"', 'schedule: "0 * * * *"'),
        lambda r: edit(r, VELERO, 'schedule: "0 * * * *"', 'schedule: "0 3 * * 0"')),
    "rds automated backups off": Case(
        "backup_schedules", "rpo.rds-no-automated-backups.production", _noop,
        lambda r: edit(r, PROD_TF, "backup_retention_period = 30", "backup_retention_period = 0")),
    "elasticache without snapshots": Case(
        "backup_schedules", "rpo.elasticache-no-snapshots.production",
        lambda r: edit(r, PROD_TF, "  num_cache_clusters        = 3\n",
                       "  num_cache_clusters        = 3\n  snapshot_retention_limit  = 7\n"),
        lambda r: edit(r, PROD_TF, "  snapshot_retention_limit  = 7\n", "")),
    "velero location in the primary region": Case(
        "backup_locations", "rpo.velero-location-in-primary-region.BackupStorageLocation.aws-backup-location",
        lambda r: edit(r, VELERO, "region: us-east-1\n    s3ForcePathStyle", "region: us-west-2\n    s3ForcePathStyle"),
        lambda r: edit(r, VELERO, "region: us-west-2\n    s3ForcePathStyle", "region: us-east-1\n    s3ForcePathStyle")),
    "database backups only in the primary region": Case(
        "backup_locations", "rpo.db-backups-not-in-dr-region",
        lambda r: edit(r, PROD_TF, "# ElastiCache Redis Cluster",
                       "resource \"aws_db_instance_automated_backups_replication\" \"dr\" {\n"
                       "  source_db_instance_arn = module.rds.db_instance_arn\n}\n\n# ElastiCache Redis Cluster"),
        lambda r: edit(r, PROD_TF, "aws_db_instance_automated_backups_replication", "aws_db_instance_tag")),
    "no infrastructure in the DR region": Case(
        "region_failover", "rto.no-secondary-region-infrastructure",
        lambda r: edit(r, "seed/blocks/disaster-recovery-plan.yml", "(us-west-2)", "(us-east-1)"),
        lambda r: edit(r, "seed/blocks/disaster-recovery-plan.yml", "(us-east-1)", "(eu-west-1)")),
    "terraform state in the primary region": Case(
        "region_failover", "rto.terraform-state-in-primary-region",
        lambda r: edit(r, PROD_TF, 'key    = "production/terraform.tfstate"\n    region = "us-east-1"',
                       'key    = "production/terraform.tfstate"\n    region = "us-west-2"'),
        lambda r: edit(r, PROD_TF, 'key    = "production/terraform.tfstate"\n    region = "us-west-2"',
                       'key    = "production/terraform.tfstate"\n    region = "us-east-2"')),
    "rabbitmq provisioned by nobody": Case(
        "unprovisioned_backing_services", "availability.rabbitmq-not-provisioned",
        lambda r: edit(r, PROD_TF, "# ElastiCache Redis Cluster",
                       "resource \"aws_mq_broker\" \"rabbitmq\" {\n  engine_type = \"RabbitMQ\"\n}\n\n"
                       "# ElastiCache Redis Cluster"),
        lambda r: edit(r, PROD_TF, "resource \"aws_mq_broker\" \"rabbitmq\" {\n  engine_type = \"RabbitMQ\"\n}\n\n", "")),
    "renamed Service": Case(
        "missing_workload_targets", "ref.missing.Service.i2s-production.conductor",
        lambda r: edit(r, "k8s/staging/conductor-service.yml", "namespace: i2s-staging", "namespace: i2s-production"),
        lambda r: edit(r, "k8s/staging/conductor-service.yml", "  name: conductor\n", "  name: conductor-api\n")),
    "HPA target missing": Case(
        "missing_workload_targets", "ref.missing.Deployment.i2s-staging.conductor-v2", _noop,
        lambda r: edit(r, "k8s/staging/conductor-hpa.yml", "    name: conductor\n", "    name: conductor-v2\n")),
    "removed Secret": Case(
        "secret_references", "ref.secret-missing.i2s-staging.redis-credentials",
        lambda r: add(r, "k8s/staging/redis-secret.yml",
                      "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata:\n"
                      "  name: redis-credentials\n  namespace: i2s-staging\nspec:\n  secretStoreRef:\n"
                      "    name: aws-secrets-manager\n    kind: SecretStore\n  target:\n    name: redis-credentials\n"
                      "  data:\n  - secretKey: url\n    remoteRef:\n      key: i2s/redis\n      property: url\n"),
        lambda r: (r / "k8s/staging/redis-secret.yml").unlink()),
    "secret without the key the pod reads": Case(
        "secret_references", "ref.secret-key-missing.i2s-staging.redis-credentials",
        lambda r: add(r, "k8s/staging/redis-secret.yml",
                      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: redis-credentials\n  namespace: i2s-staging\n"
                      "stringData:\n  url: redis://redis:6379\n"),
        lambda r: edit(r, "k8s/staging/redis-secret.yml", "  url: redis", "  uri: redis")),
    "external secret property the secret lacks": Case(
        "external_secret_properties", "ref.secret-property-missing.database-credentials.connection_url",
        lambda r: edit(r, TS, "  database: string;\n}", "  database: string;\n  connection_url: string;\n}"),
        lambda r: edit(r, TS, "  connection_url: string;\n", "")),
    "removed ServiceAccount": Case(
        "service_accounts", "ref.serviceaccount-missing.i2s-staging.conductor",
        lambda r: add(r, "k8s/staging/serviceaccount.yml",
                      "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: conductor\n  namespace: i2s-staging\n"),
        lambda r: (r / "k8s/staging/serviceaccount.yml").unlink()),
    "gateway host nobody routes": Case(
        "mesh_hosts", "ref.gateway-host-unrouted.i2s-gateway.www.i2s.studio", _noop,
        lambda r: edit(r, ISTIO, "    - app.i2s.studio\n", "    - app.i2s.studio\n    - www.i2s.studio\n")),
    "subset nobody routes": Case(
        "mesh_hosts", "ref.subset-unrouted.conductor-destination.v2-1-0",
        lambda r: edit(r, ISTIO, "        host: conductor\n        port:\n          number: 8080\n    fault:",
                       "        host: conductor\n        subset: v2-1-0\n        port:\n          number: 8080\n    fault:"),
        lambda r: edit(r, ISTIO, "        subset: v2-1-0\n", "")),
    "TLS credential nobody creates": Case(
        "gateway_credentials", "ref.tls-credential-missing.i2s-gateway.i2s-tls-cert",
        lambda r: add(r, "k8s/istio/tls.yml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: i2s-tls-cert\n"
                                              "  namespace: istio-system\ntype: kubernetes.io/tls\n"),
        lambda r: (r / "k8s/istio/tls.yml").unlink()),
    "principal nobody runs as": Case(
        "authorization_principals", "ref.principal-missing.conductor-authz.ghost", _noop,
        lambda r: edit(r, ISTIO, 'principals: ["cluster.local/ns/i2s-production/sa/api-gateway"]',
                       'principals: ["cluster.local/ns/i2s-production/sa/api-gateway", '
                       '"cluster.local/ns/i2s-production/sa/ghost"]')),
    "ingress gateway denied": Case(
        "authorization_principals", "availability.gateway-denied.conductor-authz",
        lambda r: edit(r, ISTIO, 'principals: ["cluster.local/ns/i2s-production/sa/api-gateway"]',
                       'principals: ["cluster.local/ns/i2s-production/sa/api-gateway", '
                       '"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]'),
        lambda r: edit(r, ISTIO, ', "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"', "")),
    "no sidecar injection": Case(
        "sidecar_injection", "availability.no-sidecar-injection",
        lambda r: edit(r, "k8s/staging/namespace.yml", "    environment: staging\n",
                       "    environment: staging\n    istio-injection: enabled\n"),
        lambda r: edit(r, "k8s/staging/namespace.yml", "    istio-injection: enabled\n", "")),
    "metrics port mismatch": Case(
        "metrics_port", "scaling.metrics-port-mismatch.i2s-staging.conductor",
        lambda r: edit(r, DEPLOY, 'prometheus.io/port: "8080"', 'prometheus.io/port: "9090"'),
        lambda r: edit(r, DEPLOY, 'prometheus.io/port: "9090"', 'prometheus.io/port: "8080"')),
    "two HPAs on one target": Case(
        "fighting_controllers", "scaling.hpas-share-target.i2s-staging.conductor", _noop,
        lambda r: add(r, "k8s/staging/second-hpa.yml",
                      (PROJECT_ROOT / "k8s/staging/conductor-hpa.yml").read_text().replace("conductor-hpa", "conductor-hpa-2"))),
    "VPA in Auto beside the HPA": Case(
        "fighting_controllers", "scaling.vpa-fights-hpa.i2s-production.conductor-vpa",
        lambda r: edit(r, "k8s/autoscaling/cluster-autoscaler.yml", 'updateMode: "Auto"', 'updateMode: "Off"'),
        lambda r: edit(r, "k8s/autoscaling/cluster-autoscaler.yml", 'updateMode: "Off"', 'updateMode: "Auto"')),
    "Argo CD self-heal against the HPA": Case(
        "fighting_controllers", "scaling.argocd-reverts-hpa.i2s-production",
        lambda r: edit(r, "k8s/argocd/application.yml", "      selfHeal: true", "      selfHeal: false"),
        lambda r: edit(r, "k8s/argocd/application.yml", "      selfHeal: false", "      selfHeal: true")),
    "metrics nobody serves": Case(
        "unserved_metrics", "scaling.metrics-not-served.i2s-production.conductor-custom-hpa",
        lambda r: add(r, "k8s/autoscaling/adapter.yml",
                      "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1beta1.external.metrics.k8s.io\n"
                      "spec:\n  group: external.metrics.k8s.io\n  version: v1beta1\n"),
        lambda r: (r / "k8s/autoscaling/adapter.yml").unlink()),
    "no metrics-server": Case(
        "unserved_metrics", "scaling.metrics-server-missing.i2s-staging.conductor-hpa",
        lambda r: add(r, "k8s/autoscaling/metrics-server.yml",
                      "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1beta1.metrics.k8s.io\n"
                      "spec:\n  group: metrics.k8s.io\n  version: v1beta1\n"),
        lambda r: (r / "k8s/autoscaling/metrics-server.yml").unlink()),
    "cluster autoscaler version": Case(
        "cluster_autoscaler_version", "scaling.cluster-autoscaler-version.cluster-autoscaler",
        lambda r: edit(r, "k8s/autoscaling/cluster-autoscaler.yml", "k8s.gcr.io/autoscaling/cluster-autoscaler:v1.21.0",
                       "registry.k8s.io/autoscaling/cluster-autoscaler:v1.28.4"),
        lambda r: edit(r, "k8s/autoscaling/cluster-autoscaler.yml", "cluster-autoscaler:v1.28.4", "cluster-autoscaler:v1.27.0")),
    "pods require a label no node group has": Case(
        "node_group_scheduling", "availability.unschedulable.i2s-staging.conductor",
        lambda r: edit(r, STAGING_TF, '        NodeGroup   = "agents"\n',
                       '        NodeGroup   = "agents"\n        "i2s.studio/node-type" = "agents"\n'),
        lambda r: edit(r, STAGING_TF, '        "i2s.studio/node-type" = "agents"\n', "")),
    "taint nothing tolerates": Case(
        "node_group_scheduling", "scaling.taint-tolerated-by-nothing.staging.agents", _noop,
        lambda r: edit(r, DEPLOY, '      - key: "i2s.studio/node-type"\n        value: "agents"',
                       '      - key: "i2s.studio/pool"\n        value: "agents"')),
    "capacity type EKS does not have": Case(
        "node_group_settings", "delivery.node-group-capacity-type.production.standard_agents",
        lambda r: edit(r, PROD_TF, 'capacity_type  = "MIXED"', 'capacity_type  = "SPOT"'),
        lambda r: edit(r, PROD_TF, 'capacity_type  = "SPOT"', 'capacity_type  = "MIXED"')),
    "node-group labels the module ignores": Case(
        "node_group_settings", "scaling.node-group-labels-ignored.staging",
        lambda r: edit(r, STAGING_TF, "k8s_labels = {", "labels = {", count=2),
        lambda r: edit(r, STAGING_TF, "labels = {", "k8s_labels = {", count=2)),
    "retry budget past the load balancer": Case(
        "retry_budgets", "availability.retry-budget.i2s-api-routing.0",
        lambda r: edit(r, ISTIO, "perTryTimeout: 30s", "perTryTimeout: 10s"),
        lambda r: edit(r, ISTIO, "perTryTimeout: 10s", "perTryTimeout: 20s")),
    "retries that skip 503": Case(
        "retries_skip_503", "availability.retries-skip-503.i2s-api-routing.0",
        lambda r: edit(r, ISTIO, "      perTryTimeout: 30s\n", "      perTryTimeout: 30s\n      retryOn: 5xx,connect-failure\n"),
        lambda r: edit(r, ISTIO, "      retryOn: 5xx,connect-failure\n", "")),
    "pool cap fixed under an HPA": Case(
        "pool_caps_scaling", "scaling.pool-cap-fixed.conductor-destination",
        lambda r: edit(r, ISTIO, "        http2MaxRequests: 100\n", ""),
        lambda r: edit(r, ISTIO, "        maxRequestsPerConnection: 10\n",
                       "        maxRequestsPerConnection: 10\n        http2MaxRequests: 100\n")),
    "fault left in production": Case(
        "production_fault_injection", "availability.fault-injection.i2s-api-routing.0",
        lambda r: edit(r, ISTIO, "    fault:\n      delay:\n        percentage:\n          value: 0.1\n        fixedDelay: 100ms\n", ""),
        lambda r: edit(r, ISTIO, "    retries:\n      attempts: 3",
                       "    fault:\n      abort:\n        percentage:\n          value: 1\n        httpStatus: 500\n"
                       "    retries:\n      attempts: 3")),
    "no zone spread": Case(
        "zone_spread", "availability.no-zone-spread.i2s-staging.conductor",
        lambda r: edit(r, DEPLOY, "      serviceAccountName: conductor\n",
                       "      serviceAccountName: conductor\n      topologySpreadConstraints:\n      - maxSkew: 1\n"
                       "        topologyKey: topology.kubernetes.io/zone\n        whenUnsatisfiable: DoNotSchedule\n"
                       "        labelSelector:\n          matchLabels:\n            app: conductor\n"),
        lambda r: edit(r, DEPLOY, "        whenUnsatisfiable: DoNotSchedule\n", "        whenUnsatisfiable: ScheduleAnyway\n")),
    "no disruption budget": Case(
        "disruption_budgets", "availability.no-pdb.i2s-staging.conductor",
        lambda r: add(r, "k8s/staging/pdb.yml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n"
                                                "  name: conductor\n  namespace: i2s-staging\nspec:\n  minAvailable: 1\n"
                                                "  selector:\n    matchLabels:\n      app: conductor\n"),
        lambda r: (r / "k8s/staging/pdb.yml").unlink()),
    "liveness gives up before readiness": Case(
        "probe_budgets", "rto.liveness-before-readiness.i2s-staging.conductor", _noop,
        lambda r: edit(r, DEPLOY, "          initialDelaySeconds: 30\n          periodSeconds: 10\n",
                       "          initialDelaySeconds: 30\n          periodSeconds: 1\n")),
    "restart slower than the RTO": Case(
        "probe_budgets", "rto.probe-recovery-exceeds-rto.i2s-staging.conductor", _noop,
        lambda r: edit(r, DEPLOY, "          initialDelaySeconds: 30\n", "          initialDelaySeconds: 1200\n")),
    "no readiness probe": Case(
        "probe_budgets", "rto.no-readiness-probe.i2s-staging.conductor", _noop,
        lambda r: edit(r, DEPLOY, "        readinessProbe:\n", "        startupProbe:\n")),
    "workflow reads a directory the seed lacks": Case(
        "workflow_paths", "delivery.workflow-missing-path.k8s/production/",
        lambda r: (r / "k8s/production").mkdir(),
        lambda r: (r / "k8s/production").rmdir()),
    "workflow waits for a condition Argo CD never sets": Case(
        "workflow_argocd", "delivery.argocd-wait-condition.i2s-production.Synced",
        lambda r: edit(r, WORKFLOW, "--for=condition=Synced application/i2s-production",
                       "--for=jsonpath='{.status.sync.status}'=Synced application/i2s-production"),
        lambda r: edit(r, WORKFLOW, "--for=jsonpath='{.status.sync.status}'=Synced application/i2s-production",
                       "--for=condition=Synced application/i2s-production")),
    "workflow syncs a foreign revision": Case(
        "workflow_argocd", "delivery.argocd-sync-foreign-revision.i2s-production",
        lambda r: edit(r, "k8s/argocd/application.yml", "https://github.com/i2s-studio/k8s-manifests\n    targetRevision",
                       "https://github.com/i2s-studio/i2s\n    targetRevision"),
        lambda r: edit(r, "k8s/argocd/application.yml", "https://github.com/i2s-studio/i2s\n    targetRevision",
                       "https://github.com/i2s-studio/other\n    targetRevision")),
    "application in the default project": Case(
        "argocd_project", "security.argocd-default-project.i2s-production",
        lambda r: edit(r, "k8s/argocd/application.yml", "  project: default", "  project: i2s-platform"),
        lambda r: edit(r, "k8s/argocd/application.yml", "  project: i2s-platform", "  project: default")),
    "production syncs past the manual gate": Case(
        "argocd_project", "delivery.production-auto-sync.i2s-production",
        lambda r: edit(r, "k8s/argocd/application.yml", "    automated:\n      prune: true\n      selfHeal: true\n", ""),
        lambda r: edit(r, "k8s/argocd/application.yml", "  syncPolicy:\n",
                       "  syncPolicy:\n    automated:\n      prune: true\n")),
    "terraform modules unpinned": Case(
        "terraform_pinning", "delivery.terraform-modules-unpinned.staging",
        lambda r: [edit(r, STAGING_TF, f'source = "terraform-aws-modules/{m}/aws"',
                        f'source = "terraform-aws-modules/{m}/aws"\n  version = "~> 5.0"')
                   for m in ("vpc", "eks", "rds", "elasticache")],
        lambda r: edit(r, STAGING_TF, '\n  version = "~> 5.0"', "", count=4)),
    "terraform references nothing declares": Case(
        "terraform_references", "delivery.terraform-undeclared.staging",
        lambda r: (r / STAGING_TF).write_text((r / STAGING_TF).read_text() + "".join(
            f'\nresource "{k}" "{n}" {{}}\n' for k, n in (("aws_security_group", "rds"), ("aws_security_group", "elasticache"),
                                                      ("aws_db_subnet_group", "main"),
                                                      ("aws_elasticache_subnet_group", "main")))),
        lambda r: edit(r, STAGING_TF, 'resource "aws_security_group" "rds" {}', "")),
    "development steps need files the seed lacks": Case(
        "development_setup", "delivery.development-setup-missing-files",
        lambda r: [add(r, p, "x: 1\n") for p in ("k8s/dev-cluster-config.yml", "k8s/dev/namespace.yml",
                                                 "seed/docker/Dockerfile.dev", "seed/docker/monitoring/prometheus.yml")],
        lambda r: (r / "seed/docker/Dockerfile.dev").unlink()),
    "EKS past extended support": Case(
        "eks_support", "delivery.eks-version-unsupported.staging",
        lambda r: edit(r, STAGING_TF, 'cluster_version = "1.28"', 'cluster_version = "1.33"'),
        lambda r: edit(r, STAGING_TF, 'cluster_version = "1.33"', 'cluster_version = "1.26"')),
    "cluster API open to the internet": Case(
        "cluster_exposure", "security.eks-endpoint-public.production",
        lambda r: edit(r, PROD_TF, '["0.0.0.0/0"]', '["10.0.0.0/8"]'),
        lambda r: edit(r, PROD_TF, '["10.0.0.0/8"]', '["0.0.0.0/0"]')),
    "static AWS keys in CI": Case(
        "static_cloud_keys", "security.static-aws-keys.deploy-production.yml",
        lambda r: edit(r, WORKFLOW, "aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}",
                       "role-to-assume: arn:aws:iam::123456789012:role/deploy"),
        lambda r: edit(r, WORKFLOW, "role-to-assume: arn:aws:iam::123456789012:role/deploy",
                       "aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_quiet_when_fixed_and_fires_when_broken(seed_copy, name):
    case = CASES[name]
    case.fix(seed_copy)
    assert case.finding not in rule_findings(seed_copy), f"{name}: still reported after the fix"
    before = set(rule_findings(seed_copy))
    case.brk(seed_copy)
    after = rule_findings(seed_copy)
    assert case.finding in after, f"{name}: not reported on the broken copy; new: {sorted(set(after) - before)}"
    finding = after[case.finding]
    assert finding.refs and all(r.line > 0 for r in finding.refs), "a finding names the seed lines involved"
    assert finding.evidence and finding.fix and finding.severity in SEVERITIES and finding.target in TARGETS


def test_every_rule_has_a_case():
    covered = {c.rule for c in CASES.values()}
    assert {r.__name__ for r in RULES} <= covered, f"rules without a case: {sorted({r.__name__ for r in RULES} - covered)}"


# The seed as written: every rule finding (per object, before root causes are merged) with the severity
# its rule's declared impact gives it, exactly (a change to a rule, its impact or the seed shows here).
SEED_FINDINGS = {
    "availability.fault-injection.i2s-api-routing.0": "low",
    "availability.gateway-denied.conductor-authz": "critical",
    "availability.no-pdb.i2s-staging.conductor": "medium",
    "availability.no-sidecar-injection": "medium",
    "availability.no-zone-spread.i2s-staging.conductor": "high",
    "availability.rabbitmq-not-provisioned": "medium",
    "availability.retries-skip-503.i2s-api-routing.0": "low",
    "availability.retry-budget.i2s-api-routing.0": "low",
    "availability.unschedulable.i2s-staging.conductor": "medium",
    "delivery.argocd-sync-foreign-revision.i2s-production": "medium",
    "delivery.argocd-wait-condition.i2s-production.Healthy": "medium",
    "delivery.argocd-wait-condition.i2s-production.Synced": "medium",
    "delivery.development-setup-missing-files": "info",
    "delivery.eks-version-unsupported.production": "medium",
    "delivery.eks-version-unsupported.staging": "medium",
    "delivery.node-group-capacity-type.production.standard_agents": "high",
    "delivery.production-auto-sync.i2s-production": "medium",
    "delivery.terraform-modules-unpinned.production": "high",
    "delivery.terraform-modules-unpinned.staging": "high",
    "delivery.terraform-undeclared.production": "high",
    "delivery.terraform-undeclared.staging": "high",
    "delivery.workflow-missing-path.k8s/production/": "medium",
    "ref.gateway-host-unrouted.i2s-gateway.app.i2s.studio": "medium",
    "ref.missing.Deployment.i2s-production.conductor": "medium",
    "ref.missing.Service.i2s-production.conductor": "medium",
    "ref.missing.Service.i2s-production.health-service": "medium",
    "ref.missing.pods.i2s-production.app=conductor": "medium",
    "ref.principal-missing.conductor-authz.api-gateway": "critical",
    "ref.secret-missing.i2s-staging.database-credentials": "medium",
    "ref.secret-missing.i2s-staging.rabbitmq-credentials": "medium",
    "ref.secret-missing.i2s-staging.redis-credentials": "medium",
    "ref.secret-property-missing.database-credentials.connection_url": "medium",
    "ref.serviceaccount-missing.i2s-production.external-secrets-sa": "medium",
    "ref.serviceaccount-missing.i2s-staging.conductor": "medium",
    "ref.serviceaccount-missing.kube-system.cluster-autoscaler": "medium",
    "ref.subset-unrouted.conductor-destination.v2-1-0": "low",
    "ref.tls-credential-missing.i2s-gateway.i2s-tls-cert": "medium",
    "rpo.db-backup-script-unscheduled": "high",
    "rpo.db-backups-not-in-dr-region": "high",
    "rpo.elasticache-no-snapshots.production": "medium",
    "rpo.velero-interval.i2s-daily-backup": "medium",
    "rpo.velero-location-in-primary-region.BackupStorageLocation.aws-backup-location": "high",
    "rpo.velero-location-in-primary-region.VolumeSnapshotLocation.aws-snapshot-location": "high",
    "rto.no-secondary-region-infrastructure": "high",
    "rto.terraform-state-in-primary-region": "high",
    "scaling.argocd-reverts-hpa.i2s-production": "medium",
    "scaling.cluster-autoscaler-version.cluster-autoscaler": "medium",
    "scaling.metrics-not-served.i2s-production.conductor-custom-hpa": "medium",
    "scaling.metrics-port-mismatch.i2s-staging.conductor": "medium",
    "scaling.metrics-server-missing.i2s-production.conductor-custom-hpa": "medium",
    "scaling.metrics-server-missing.i2s-staging.conductor-hpa": "medium",
    "scaling.node-group-labels-ignored.production": "medium",
    "scaling.node-group-labels-ignored.staging": "medium",
    "scaling.pool-cap-fixed.conductor-destination": "medium",
    "scaling.taint-tolerated-by-nothing.production.critical_agents": "medium",
    "scaling.vpa-fights-hpa.i2s-production.conductor-vpa": "medium",
    "security.argocd-default-project.i2s-production": "medium",
    "security.eks-endpoint-public.production": "medium",
    "security.static-aws-keys.deploy-production.yml": "medium",
}


def test_seed_as_written_yields_exactly_these_rule_findings():
    found = {fid: f.severity for fid, f in rule_findings(PROJECT_ROOT).items()}
    assert found == SEED_FINDINGS


def test_findings_point_at_the_guide():
    """Every rule finding on the unaltered seed names at least one line that maps back to the guide."""
    for fid, f in rule_findings(PROJECT_ROOT).items():
        assert any(r.guide_line for r in f.refs), f"{fid}: no guide line"
        guide = (PROJECT_ROOT / "seed/deployment-guide.md").read_text().splitlines()
        for r in f.refs:
            if r.guide_line:
                assert guide[r.guide_line - 1] == (PROJECT_ROOT / r.path).read_text().splitlines()[r.line - 1]


def test_eks_support_depends_on_the_date(pristine_seed):
    assert eks_support(SeedSource(pristine_seed, dt.date(2025, 11, 1))) == []
    assert {f.id for f in eks_support(SeedSource(pristine_seed, dt.date(2025, 11, 27)))} == {
        "delivery.eks-version-unsupported.production", "delivery.eks-version-unsupported.staging"}


@pytest.mark.parametrize("expr,seconds", [("0 3 * * *", 86400), ("0 * * * *", 3600), ("15 */6 * * *", 21600),
                                          ("0 3 * * 0", 7 * 86400), ("0 1,13 * * *", 43200), ("*/5 * * * *", None),
                                          ("bad", None)])
def test_cron_interval(expr, seconds):
    assert _cron_interval_s(expr) == seconds


@pytest.mark.parametrize("text,seconds", [("15 minutes", 900), ("1 hour", 3600), ("720h", 2592000), ("30s", 30),
                                          ("100ms", 0.1), ("2m", 120), ("soon", None), ("5 fortnights", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,schedules", [
    ("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: backup\n", True),
    ("0 * * * * /scripts/backup-database.sh\n", True),
    ("on:\n  schedule:\n    - cron: \"0 * * * *\"\n", True),
    ("# run scripts/backup-database.sh by hand after a release\n", False),
])
def test_what_counts_as_scheduling_the_backup_script(text, schedules):
    from harness.audit.rules.recovery import _SCHEDULER
    assert bool(_SCHEDULER.search(text)) is schedules
