"""What each audit rule breaks, where and when (its ``Impact``, from which the rubric derives the
severity), the scenario that can confirm it live, and which per-object findings are one root cause.
Pure data; ``harness.audit.root_causes`` applies it. A finding id matches the longest prefix below; an id
that matches none is a harness bug (``unrated`` lists them; a test fails on any).

Judgements that differ from a first reading carry their evidence in ``note`` (also in docs/audit.md)."""
from __future__ import annotations

from dataclasses import dataclass

from harness.audit.rubric import Impact

__all__ = ["RuleSpec", "RootCause", "RULE_SPECS", "ROOT_CAUSES", "spec_for", "SEED_MESH", "WHAT_IF_MESH", "ONE_ZONE_LOSS",
           "BACKUP_SCRIPT_RUN", "TEMPLATE_NOTE"]

# Scenarios that can confirm findings live (pytest names; parameters matched by prefix).
SEED_MESH = "test_seed_mesh_as_written_on_envoy"
WHAT_IF_MESH = "test_what_if_outlier_detection_on_envoy"
ONE_ZONE_LOSS = "test_zone_loss[one-zone-"
# Not a run's scenario: `make test` runs the unchanged backup script (tests/integration).
BACKUP_SCRIPT_RUN = ("make test: tests/integration/test_dr_backup.py::test_seed_script_findings_verified_by_running_it "
                     "(not part of a run)")
# The seed's only conductor Deployment is staging's; production's lives in k8s-manifests. Properties of
# the pod template (spread, budgets, probes, ports) are judged for production, assuming it is the same.
TEMPLATE_NOTE = ("judged for production: the seed's only conductor Deployment (staging) is taken as the "
                 "template of production's, which lives in k8s-manifests")


@dataclass(frozen=True)
class RuleSpec:
    """``by_namespace``: the tool reports on any object, so "where" follows the objects' namespace (all in
    i2s-staging: staging) rather than the declared default."""
    prefix: str
    impact: Impact
    confirmed_by: str = ""
    by_namespace: bool = False


@dataclass(frozen=True)
class RootCause:
    """Findings whose ids start with one of ``members`` are one problem: reported once, as ``id``."""
    id: str
    members: tuple[str, ...]
    title: str
    summary: str
    fix: str
    target: str
    impact: Impact
    confirmed_by: str = ""


def _i(what: str, where: str, when: str, note: str = "", checked: bool = True) -> Impact:
    return Impact(what, where, when, checked, note)


RULE_SPECS: tuple[RuleSpec, ...] = (
    # --- recovery -----------------------------------------------------------------------------------------
    RuleSpec("rpo.db-backup-script-unscheduled", _i(
        "data-loss", "dr", "fault", "RDS keeps 30 days of automated backups with point-in-time recovery in "
        "us-east-1; the script is the only copy outside RDS, needed when RDS or the account is lost")),
    RuleSpec("rpo.velero-interval.", _i(
        "data-loss", "production", "fault", "the seed keeps no state on volumes (the database is RDS): what "
        "the 24 h interval loses depends on volumes the seed does not show", checked=False)),
    RuleSpec("rpo.rds-no-automated-backups.", _i("data-loss", "production", "fault")),
    RuleSpec("rpo.elasticache-no-snapshots.", _i(
        "data-loss", "production", "fault", "whether Redis holds data that cannot be rebuilt is not in the "
        "seed", checked=False)),
    RuleSpec("rpo.db-backups-not-in-dr-region", _i("data-loss", "dr", "fault")),
    RuleSpec("rpo.velero-location-in-primary-region.", _i(
        "outage", "dr", "fault", "S3 is readable from us-west-2, so a restore there works unless us-east-1 "
        "itself is down (EBS snapshots are regional)")),
    RuleSpec("rto.no-secondary-region-infrastructure", _i("outage", "dr", "fault")),
    RuleSpec("rto.terraform-state-in-primary-region", _i("outage", "dr", "fault")),
    RuleSpec("availability.rabbitmq-not-provisioned", _i(
        "outage", "production", "always", "the broker may come from a stack the seed does not include",
        checked=False)),
    # --- the backup script (harness.audit.backup_script) -----------------------------------------------------
    RuleSpec("rpo.backup-script.credentials-not-mapped", _i("data-loss", "dr", "fault", checked=False),
             BACKUP_SCRIPT_RUN),
    RuleSpec("rpo.backup-script.pg_dump-password-prompt", _i("data-loss", "dr", "fault", checked=False),
             BACKUP_SCRIPT_RUN),
    RuleSpec("rpo.backup-script.unset-variables-not-caught", _i("hygiene", "dr", "always")),
    RuleSpec("rpo.backup-script.gpg-passphrase-prompt", _i("data-loss", "dr", "fault"), BACKUP_SCRIPT_RUN),
    RuleSpec("rpo.backup-script.no-passphrase-source", _i("data-loss", "dr", "fault"), BACKUP_SCRIPT_RUN),
    RuleSpec("rpo.backup-script.verify-is-existence-only", _i(
        "data-loss", "dr", "fault", "a corrupt or truncated upload would go unnoticed; none is shown",
        checked=False)),
    RuleSpec("rpo.backup-script.double-local-disk", _i(
        "data-loss", "dr", "fault", "two copies of a dump of a 500 GB database in /tmp: the run fails when "
        "the disk fills; the pod's disk is not in the seed", checked=False)),
    RuleSpec("rpo.backup-script.plaintext-dump-left-on-failure", _i("degraded", "dr", "fault")),
    RuleSpec("rpo.backup-script.set-e-without-pipefail", _i("hygiene", "dr", "always")),
    RuleSpec("rpo.backup-script.clean-ignored-in-archive", _i("hygiene", "dr", "always")),
    RuleSpec("rpo.backup-script.sql-name-for-custom-format", _i("hygiene", "dr", "always")),
    RuleSpec("rpo.backup-script.retention-parses-prefix-lines", _i("hygiene", "dr", "always")),
    RuleSpec("shellcheck.", _i("hygiene", "dr", "always")),
    # --- references -----------------------------------------------------------------------------------------
    RuleSpec("ref.missing.", _i(
        "outage", "production", "always", "production's workloads live in k8s-manifests", checked=False), SEED_MESH),
    RuleSpec("ref.missing.Service.i2s-staging.", _i("outage", "staging", "always")),
    RuleSpec("ref.missing.Deployment.i2s-staging.", _i("degraded", "staging", "always")),
    RuleSpec("ref.missing.pods.i2s-staging.", _i("degraded", "staging", "always")),
    RuleSpec("ref.secret-missing.i2s-staging.", _i("outage", "staging", "always")),
    RuleSpec("ref.secret-missing.", _i("outage", "production", "always")),
    RuleSpec("ref.secret-key-missing.", _i("outage", "production", "always")),
    RuleSpec("ref.secret-property-missing.", _i(
        "outage", "production", "always", "the seed never writes down the secret's contents: the property is "
        "missing only from the application's TypeScript interface, which may not list every field",
        checked=False)),
    RuleSpec("ref.serviceaccount-missing.kube-system.cluster-autoscaler", _i(
        "degraded", "production", "always", "no cluster autoscaler means no new nodes under load, not an "
        "outage: the node groups keep their desired size")),
    RuleSpec("ref.serviceaccount-missing.i2s-staging.", _i("outage", "staging", "always")),
    RuleSpec("ref.serviceaccount-missing.i2s-production.", _i(
        "outage", "production", "always", "the service account may come with the production manifests in "
        "k8s-manifests", checked=False)),
    RuleSpec("ref.serviceaccount-missing.", _i("outage", "production", "always")),
    RuleSpec("ref.tls-credential-missing.", _i(
        "outage", "production", "always", "nothing in the seed makes the certificate; a platform certificate "
        "pipeline outside the seed may", checked=False)),
    RuleSpec("ref.gateway-host-unrouted.", _i(
        "outage", "production", "always", "the frontend may be routed by a VirtualService in k8s-manifests",
        checked=False)),
    RuleSpec("ref.subset-unrouted.", _i("hygiene", "production", "always")),
    RuleSpec("ref.principal-missing.", _i("outage", "production", "always"), SEED_MESH),
    RuleSpec("availability.gateway-denied.", _i("outage", "production", "always"), SEED_MESH),
    RuleSpec("availability.no-sidecar-injection", _i(
        "degraded", "production", "always", "without sidecars the policies are not enforced (no mTLS, no "
        "limits, no RBAC), but requests still flow")),
    RuleSpec("scaling.metrics-port-mismatch.", _i("degraded", "production", "always", TEMPLATE_NOTE)),
    # --- scaling ---------------------------------------------------------------------------------------------
    RuleSpec("scaling.hpas-share-target.", _i("degraded", "production", "always")),
    RuleSpec("scaling.vpa-fights-hpa.", _i("degraded", "production", "always")),
    RuleSpec("scaling.argocd-reverts-hpa.", _i("degraded", "production", "always", checked=False)),
    RuleSpec("scaling.metrics-not-served.", _i(
        "degraded", "production", "always", "scale-out on CPU still works; the HPA never scales in (cost)")),
    RuleSpec("scaling.metrics-server-missing.", _i("degraded", "production", "always")),
    RuleSpec("scaling.cluster-autoscaler-version.", _i("degraded", "production", "always")),
    RuleSpec("availability.unschedulable.i2s-staging.", _i("outage", "staging", "always")),
    RuleSpec("availability.unschedulable.", _i("outage", "production", "always")),
    RuleSpec("scaling.taint-tolerated-by-nothing.", _i(
        "degraded", "production", "always", "production workloads in k8s-manifests may tolerate it",
        checked=False)),
    RuleSpec("scaling.node-group-labels-ignored.", _i(
        "outage", "production", "always", "no manifest in the seed selects these labels; production's in "
        "k8s-manifests may", checked=False)),
    RuleSpec("delivery.node-group-capacity-type.", _i("outage", "production", "rebuild")),
    # --- traffic -------------------------------------------------------------------------------------------
    RuleSpec("availability.retry-budget.", _i("degraded", "production", "fault")),
    RuleSpec("availability.retries-skip-503.", _i(
        "degraded", "production", "fault", "the route is POST /api/v1/pipeline: retrying a 503 there risks a "
        "duplicate pipeline, so the remedy is ejection, not retries")),
    RuleSpec("scaling.pool-cap-fixed.", _i("degraded", "production", "always"), WHAT_IF_MESH),
    RuleSpec("availability.fault-injection.", _i(
        "hygiene", "production", "always", "100 ms added to 0.1 % of requests")),
    # --- zones and probes ----------------------------------------------------------------------------------
    RuleSpec("availability.no-zone-spread.", _i("outage", "production", "fault", TEMPLATE_NOTE), ONE_ZONE_LOSS),
    RuleSpec("availability.no-pdb.", _i(
        "outage", "production", "fault", "a drain takes every replica only when they share a node, which is "
        "chance", checked=False)),
    RuleSpec("rto.no-readiness-probe.", _i("outage", "production", "fault")),
    RuleSpec("rto.liveness-before-readiness.", _i("degraded", "production", "fault")),
    RuleSpec("rto.probe-recovery-exceeds-rto.", _i("outage", "production", "fault")),
    # --- delivery and security -------------------------------------------------------------------------------
    RuleSpec("delivery.workflow-missing-path.", _i(
        "degraded", "production", "always", "the deploy job fails on every push; what runs keeps running")),
    RuleSpec("delivery.argocd-wait-condition.", _i("degraded", "production", "always")),
    RuleSpec("delivery.argocd-sync-foreign-revision.", _i("degraded", "production", "always")),
    RuleSpec("delivery.production-auto-sync.", _i("degraded", "production", "always")),
    RuleSpec("delivery.terraform-modules-unpinned.", _i("outage", "production", "rebuild")),
    RuleSpec("delivery.terraform-undeclared.", _i("outage", "production", "rebuild")),
    RuleSpec("delivery.development-setup-missing-files", _i("degraded", "staging", "always")),
    RuleSpec("delivery.eks-version-unsupported.", _i(
        "degraded", "production", "always", "AWS upgrades the control plane itself after extended support; "
        "nothing stops serving")),
    RuleSpec("security.argocd-default-project.", _i("degraded", "production", "always")),
    RuleSpec("security.eks-endpoint-public.", _i("degraded", "production", "always")),
    RuleSpec("security.static-aws-keys.", _i("degraded", "production", "always")),
    # --- field tools ---------------------------------------------------------------------------------------
    RuleSpec("actionlint.action.", _i(
        "hygiene", "production", "always", "GitHub runs node16 actions on a newer Node with a deprecation "
        "warning; the workflow still runs")),
    RuleSpec("actionlint.", _i("degraded", "production", "always")),
    RuleSpec("crd.unknown-field.DestinationRule.", _i(
        "outage", "production", "fault", "with no ejection a failing replica keeps its share of requests: 1 of "
        "N requests fail until a person acts"), SEED_MESH, by_namespace=True),
    RuleSpec("crd.", _i("degraded", "production", "always"), by_namespace=True),
    RuleSpec("kubernetes-validate.", _i("outage", "production", "always"), by_namespace=True),
    RuleSpec("checkov.", _i("hygiene", "production", "always")),
    # --- versioned things (harness.audit.versions) ---------------------------------------------------------
    RuleSpec("versions.api-not-served.", _i("outage", "production", "rebuild")),
    RuleSpec("versions.api-deprecated.", _i("hygiene", "production", "always")),
    RuleSpec("versions.engine-not-offered.", _i(
        "outage", "dr", "rebuild", "inferred from AWS's deprecation of later minors", checked=False)),
    RuleSpec("versions.module-inputs.", _i("outage", "production", "rebuild")),
    RuleSpec("versions.image-unpinned.", _i("hygiene", "staging", "always")),
    RuleSpec("versions.image-registry.", _i("degraded", "production", "rebuild")),
)

ROOT_CAUSES: tuple[RootCause, ...] = (
    RootCause(
        "rto.no-secondary-region-infrastructure",
        ("rto.no-secondary-region-infrastructure", "rpo.db-backups-not-in-dr-region",
         "rpo.velero-location-in-primary-region.", "rto.terraform-state-in-primary-region"),
        "the DR region us-west-2 is empty: no infrastructure, database backups, Velero locations or terraform "
        "state there",
        "the runbook recovers an EKS cluster failure and a region-wide outage in us-west-2, but everything the "
        "recovery needs lives in us-east-1 only. In a us-east-1 outage nothing can be restored or rebuilt "
        "within the RTO; outside one, S3 stays readable from us-west-2 and the cluster-failure path works",
        "keep a warm standby in us-west-2 (EKS, a cross-region RDS replica or automated-backup replication, "
        "S3 replication of the backup, Velero and state buckets) and rehearse the failover against the RTO",
        "RTO", _i("data-loss", "dr", "fault", "fails only when us-east-1 itself is down (S3 is readable "
                  "cross-region; EBS and RDS snapshots are regional)")),
    RootCause(
        "ref.production-manifests-elsewhere",
        ("ref.missing.Service.i2s-production.", "ref.missing.Deployment.i2s-production.",
         "ref.missing.pods.i2s-production."),
        "production's conductor manifests live in k8s-manifests, outside the seed: what the production Istio "
        "objects and autoscalers point at could not be checked",
        "Argo CD deploys i2s-production from https://github.com/i2s-studio/k8s-manifests; the seed has the "
        "conductor only in i2s-staging. Assumed: that repository defines Service conductor, Deployment "
        "conductor with pods labeled app=conductor, and health-service in i2s-production. Not checked: "
        "whether it does, and whether they match what the seed's objects expect. If it does not, every "
        "request routed there gets 503 and the autoscalers report FailedGetScale. The docker run checks what "
        "it can: with the seed's objects beside the staging conductor, health-service gets Envoy's own 503",
        "keep the production manifests in the audited repository (or audit k8s-manifests with the same rules)",
        "availability", _i("outage", "production", "always", "the premise is another repository's",
                            checked=False), SEED_MESH),
    RootCause(
        "availability.gateway-denied.conductor-authz",
        ("availability.gateway-denied.conductor-authz", "ref.principal-missing.conductor-authz."),
        "AuthorizationPolicy conductor-authz allows only sa/api-gateway, which no workload runs as: the "
        "ingress gateway, and so every API request, gets 403",
        "one wrong principal, two consequences: the allowed caller does not exist, and the real caller (the "
        "ingress gateway) is denied",
        "allow the ingress gateway's principal on /api/*", "availability",
        _i("outage", "production", "always", "measured: 1,061 of 1,061 requests 403 on real Envoy"), SEED_MESH),
    RootCause(
        "ref.secret-missing.i2s-staging",
        ("ref.secret-missing.i2s-staging.",),
        "staging has no source for its secrets: database, Redis and RabbitMQ credentials are never created in "
        "i2s-staging",
        "the ExternalSecrets exist only in i2s-production; the staging pods stay in CreateContainerConfigError",
        "add a SecretStore and ExternalSecrets for i2s-staging", "availability",
        _i("outage", "staging", "always")),
    RootCause(
        "rpo.backup-script.environment-contract",
        ("rpo.backup-script.credentials-not-mapped", "rpo.backup-script.pg_dump-password-prompt",
         "rpo.backup-script.unset-variables-not-caught"),
        "the backup script's environment contract is written nowhere: DB_HOST/DB_PORT/DB_NAME/DB_USER and the "
        "password (PGPASSWORD) must come from whoever runs it",
        "libpq reads PGPASSWORD from the same environment the script reads DB_* from, so the script works if "
        "its runner provides them; the seed has no runner (the script is unscheduled) and its secret's shape "
        "(url, username, password) provides none of these names. Unset, pg_dump prompts and the run hangs",
        "document the variables and map them from the secret in the job that runs the script; check them "
        "with ${VAR:?}", "RPO",
        _i("data-loss", "dr", "fault", "libpq reads PGPASSWORD from the environment the script already "
           "depends on: a contract to write down, not a proven break", checked=False), BACKUP_SCRIPT_RUN),
    RootCause(
        "rpo.backup-script.gpg-passphrase-prompt",
        ("rpo.backup-script.gpg-passphrase-prompt", "rpo.backup-script.no-passphrase-source"),
        "gpg --symmetric asks for a passphrase on a terminal and the seed gives it none: the backup never "
        "completes unattended",
        "without --batch --pinentry-mode loopback --passphrase-file, gpg asks pinentry; no secret in the "
        "guide holds a passphrase. Running the unchanged script confirms it",
        "give gpg --batch --pinentry-mode loopback --passphrase-file from a mounted secret", "RPO",
        _i("data-loss", "dr", "fault", "shown by running the unchanged script"), BACKUP_SCRIPT_RUN),
    RootCause(
        "scaling.node-group-labels-ignored",
        ("scaling.node-group-labels-ignored.",),
        "the node groups set k8s_labels, which the EKS module ignores (staging and production)",
        "k8s_labels was the EKS module's v17 attribute; from v18 on managed node groups read `labels`",
        "rename k8s_labels to labels (and pin the module)", "scaling",
        _i("outage", "production", "always", "no manifest in the seed selects these labels; production's in "
           "k8s-manifests may", checked=False)),
    RootCause(
        "delivery.argocd-wait-condition.i2s-production",
        ("delivery.argocd-wait-condition.",),
        "the deploy workflow waits for Argo CD conditions (Synced, Healthy) that an Application never has",
        "both `kubectl wait --for=condition=...` calls time out and fail the deploy even when the sync worked",
        "wait on .status.sync.status / .status.health.status with --for=jsonpath, or `argocd app wait`",
        "delivery", _i("degraded", "production", "always")),
    RootCause(
        "delivery.terraform-undeclared",
        ("delivery.terraform-undeclared.",),
        "the terraform uses resources and locals it never declares (staging and production): plan fails",
        "terraform plan stops at the first undeclared reference, so neither environment can be built, a DR "
        "rebuild included",
        "declare them or use the modules' own outputs", "delivery", _i("outage", "production", "rebuild")),
    RootCause(
        "scaling.metrics-server-missing",
        ("scaling.metrics-server-missing.",),
        "no metrics-server: neither HPA can read CPU/memory",
        "EKS serves metrics.k8s.io only with metrics-server installed; both HPAs report "
        "FailedGetResourceMetric and never scale on CPU/memory",
        "install metrics-server (EKS add-on) with the platform", "scaling", _i("degraded", "production", "always")),
    RootCause(
        "actionlint.action.seed/.github/workflows/deploy-production.yml",
        ("actionlint.action.seed/.github/workflows/deploy-production.yml",),
        "the deploy workflow uses node16 actions (actions/checkout@v3, configure-aws-credentials@v2)",
        "GitHub runs node16 actions on a newer Node and warns; nothing fails today",
        "move to actions/checkout@v4 and aws-actions/configure-aws-credentials@v4", "delivery",
        _i("hygiene", "production", "always", "GitHub runs them on a newer Node with warnings")),
    RootCause(
        "delivery.eks-version-unsupported",
        ("delivery.eks-version-unsupported.",),
        "both clusters run EKS 1.28, past the end of extended support",
        "AWS upgrades such clusters on its own schedule, to a minor the seed's manifests and cluster "
        "autoscaler were not written for",
        "upgrade deliberately, one minor at a time", "delivery",
        _i("degraded", "production", "always", "nothing stops serving; the upgrade happens outside the team's "
           "control")),
    RootCause(
        "delivery.terraform-modules-unpinned",
        ("delivery.terraform-modules-unpinned.", "versions.module-inputs."),
        "the terraform's registry modules carry no version: a plan today takes the newest majors, whose inputs "
        "the seed does not match",
        "without `version`, init resolves each module to its newest release. For the EKS module that is "
        "major 21, which renamed the cluster_* inputs the seed sets (cluster_name, cluster_version, "
        "cluster_endpoint_*): terraform rejects them as unsupported arguments and plans nothing",
        "pin each module to the major the seed was written for (eks ~> 19.0) and commit the lock file, or "
        "rename the inputs for the newest major", "delivery",
        _i("outage", "production", "rebuild", "the version a plan resolves today and what it rejects come from "
           "harness/audit/upstream (sources and dates in its SOURCES.md)")),
    RootCause(
        "scaling.cluster-autoscaler-version.cluster-autoscaler",
        ("scaling.cluster-autoscaler-version.", "versions.image-registry.Deployment/kube-system/cluster-autoscaler"),
        "the cluster autoscaler is 1.21 from k8s.gcr.io on a 1.28 cluster",
        "the autoscaler supports only the matching Kubernetes minor; k8s.gcr.io is frozen",
        "registry.k8s.io/autoscaling/cluster-autoscaler at the cluster's minor", "scaling",
        _i("degraded", "production", "always")),
)


def spec_for(finding_id: str) -> RuleSpec | None:
    """The longest-prefix rule spec for a finding id."""
    best = None
    for spec in RULE_SPECS:
        if finding_id.startswith(spec.prefix) and (best is None or len(spec.prefix) > len(best.prefix)):
            best = spec
    return best
