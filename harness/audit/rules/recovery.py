"""Disaster recovery against the runbook's own targets: every backup and snapshot schedule against the
RPO, where backups live against the DR region, and whether the region failover the runbook promises
has anything to fail over to within the RTO."""
from __future__ import annotations

import re

from harness.audit.findings import Finding
from harness.audit.rules.base import dr_targets, fmt_seconds, make_finding
from harness.audit.sources import RUNBOOK, SeedSource

__all__ = ["backup_schedules", "backup_locations", "region_failover", "unprovisioned_backing_services"]

SCRIPT = "scripts/backup-database.sh"
# What schedules the backup script, in a file that names it: a CronJob, a crontab line, a workflow's
# `schedule: - cron:` (merely mentioning the script schedules nothing).
_SCHEDULER = re.compile(r"^kind:\s*CronJob\b|^\s*(?:\S+\s+){5}\S*backup-database\.sh|^\s*-\s*cron:", re.M)


def _cron_interval_s(expr: str) -> float | None:
    """Interval of a 5-field cron expression with fixed minute and hour fields (None when it is finer
    than hourly or not understood): "0 3 * * *" is daily, "0 * * * *" hourly, "0 */6 * * *" 6 h."""
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if not re.fullmatch(r"\d+", minute):
        return None
    if hour == "*":
        return 3600.0
    if m := re.fullmatch(r"\*/(\d+)", hour):
        return 3600.0 * int(m.group(1))
    if re.fullmatch(r"\d+", hour):
        if dow != "*" and dom == "*":
            return 7 * 86400.0
        return 86400.0 if dom == "*" else 30 * 86400.0
    if re.fullmatch(r"\d+(,\d+)+", hour):
        hours = sorted(int(h) for h in hour.split(","))
        gaps = [b - a for a, b in zip(hours, hours[1:])] + [24 - hours[-1] + hours[0]]
        return 3600.0 * max(gaps)
    return None


def backup_schedules(src: SeedSource) -> list[Finding]:
    """Every backup mechanism the seed defines, with its schedule, against the RPO."""
    dr = dr_targets(src)
    rpo_ref = (RUNBOOK, dr.rpo_line)
    out: list[Finding] = []
    # 1. The database backup script: is anything scheduling it?
    if src.has(SCRIPT):
        schedulers = [p for p in src.paths if p != SCRIPT and not p.endswith(".md")
                      and "backup-database" in src.text(p) and _SCHEDULER.search(src.text(p))]
        if not schedulers:
            out.append(make_finding(
                src, "rpo.db-backup-script-unscheduled", "RPO",
                "the database backup script runs on no schedule",
                f"{SCRIPT} is the only database backup that leaves RDS (to s3://i2s-backups), but no CronJob, "
                f"cron entry or workflow in the seed runs it: its RPO is unbounded against the runbook's "
                f"{dr.rpo_text}. (The harness used to call this cadence hourly; the seed sets none.)",
                f"run it from a CronJob at most every {dr.rpo_text} (e.g. schedule \"0 * * * *\") with "
                "the credentials it needs, and alert when a run fails",
                [f"script {SCRIPT}"], [(SCRIPT, 1), rpo_ref]))
    # 2. Velero schedules.
    for sched in src.objects("Schedule"):
        expr = str(sched.get("spec", "schedule", default=""))
        interval = _cron_interval_s(expr)
        if interval is not None and interval > dr.rpo_s:
            out.append(make_finding(
                src, f"rpo.velero-interval.{sched.name}", "RPO",
                f"Velero schedule {sched.name} runs every {fmt_seconds(interval)}, RPO is {dr.rpo_text}",
                f"schedule \"{expr}\" backs up the namespaces' objects and volume snapshots every "
                f"{fmt_seconds(interval)}: anything kept on volumes can lose up to {fmt_seconds(interval)} "
                f"of data (the objects themselves are in Git through Argo CD)",
                f"schedule at least every {dr.rpo_text} (\"0 * * * *\"), or state that no state lives on "
                "volumes", [sched.label], [(sched.path, sched.line("spec", "schedule")), rpo_ref]))
    # 3. RDS automated backups: a daily snapshot plus transaction logs give point-in-time recovery
    #    within the region; retention 0 disables them.
    for tf in src.terraform:
        rds = tf.module("rds")
        if rds and int(rds.get("backup_retention_period", 0) or 0) == 0:
            out.append(make_finding(
                src, f"rpo.rds-no-automated-backups.{tf.environment}", "RPO",
                f"{tf.environment} RDS keeps no automated backups",
                "backup_retention_period is 0 or unset: no snapshots and no point-in-time recovery",
                "set backup_retention_period >= 7", [f"terraform {tf.path} module.rds"],
                [(tf.path, src.find_line(tf.path, 'module "rds"'))]))
        cache = tf.module("elasticache")
        if cache and tf.environment == "production" and not int(cache.get("snapshot_retention_limit", 0) or 0):
            out.append(make_finding(
                src, f"rpo.elasticache-no-snapshots.{tf.environment}", "RPO",
                f"{tf.environment} ElastiCache takes no snapshots",
                "module elasticache sets no snapshot_retention_limit (AWS default 0: automatic backups "
                "off). Replication and Multi-AZ protect against a node or zone loss, not against a "
                "region loss or a bad write: whatever the conductor keeps in Redis is not recoverable",
                "set snapshot_retention_limit and snapshot_window, or document that Redis holds only "
                "data that can be rebuilt", [f"terraform {tf.path} module.elasticache"],
                [(tf.path, src.find_line(tf.path, 'module "elasticache"')), rpo_ref]))
    return out


def backup_locations(src: SeedSource) -> list[Finding]:
    """Where the backups live, against the runbook's secondary region."""
    dr = dr_targets(src)
    region = dr.secondary_region
    out: list[Finding] = []
    if not region:
        return out
    region_line = src.find_line(RUNBOOK, region)
    primary = {str(r) for tf in src.terraform if (r := tf.backend.get("region")) is not None}
    # RDS automated backups are regional; a copy in another region needs its own resource.
    copies = any(re.search(r"automated_backups_replication|aws_db_snapshot_copy|replicate_source_db|"
                           r"cross_region", src.text(tf.path)) for tf in src.terraform)
    prod = src.terraform_for("production")
    if prod and prod.module("rds") and not copies:
        line = src.find_line(prod.path, "backup_retention_period")
        out.append(make_finding(
            src, "rpo.db-backups-not-in-dr-region", "RPO",
            f"no database backup reaches the DR region {region}",
            f"RDS automated backups and snapshots stay in {', '.join(sorted(primary)) or 'the primary region'}; "
            f"the seed defines no cross-region backup replication, snapshot copy or read replica in {region}, "
            f"and the backup script's bucket s3://i2s-backups has no replication. The runbook's region "
            f"failover step 2 \"Restore database from latest backup\" has nothing to restore in {region}",
            f"add aws_db_instance_automated_backups_replication (or a cross-region read replica) to {region}, "
            "and S3 replication of the backup bucket", ["terraform module.rds", "scripts/backup-database.sh"],
            [(prod.path, line), (RUNBOOK, region_line)]))
    for loc in src.objects("BackupStorageLocation") + src.objects("VolumeSnapshotLocation"):
        loc_region = str(loc.get("spec", "config", "region", default=""))
        if loc_region and loc_region != region:
            out.append(make_finding(
                src, f"rpo.velero-location-in-primary-region.{loc.kind}.{loc.name}", "RTO",
                f"Velero {loc.kind} {loc.name} is in {loc_region}, not reachable for a {region} restore",
                f"region {loc_region} is the primary region; the runbook recovers \"EKS Cluster Failure\" and "
                f"\"Region-wide Outage\" in {region}. EBS snapshots are regional and the bucket has no "
                "replication, so the cluster state and volumes cannot be restored there",
                f"add a second BackupStorageLocation/VolumeSnapshotLocation in {region} (or replicate the "
                "bucket and copy snapshots) and restore-test from it",
                [loc.label], [(loc.path, loc.line("spec", "config", "region")), (RUNBOOK, region_line)]))
    return out


def region_failover(src: SeedSource) -> list[Finding]:
    """The runbook's "Deploy to secondary region" against the infrastructure the seed defines."""
    dr = dr_targets(src)
    region = dr.secondary_region
    if not region or not src.terraform:
        return []
    out: list[Finding] = []
    regions_defined = set()
    for tf in src.terraform:
        regions_defined.add(tf.backend.get("region"))
        for az in tf.module("vpc").get("azs", []) or []:
            regions_defined.add(str(az)[:-1])
    region_line = src.find_line(RUNBOOK, region)
    if region not in regions_defined:
        prod = src.terraform_for("production")
        out.append(make_finding(
            src, "rto.no-secondary-region-infrastructure", "RTO",
            f"nothing exists in the DR region {region}: a region failover cannot finish within "
            f"{dr.rto_text}",
            f"the terraform defines VPCs, EKS, RDS and ElastiCache only in {', '.join(sorted(r for r in regions_defined if r))}. "
            f"Step 1 \"Activate secondary region infrastructure\" means creating all of it during the "
            f"incident: an EKS control plane alone takes about 10-15 min to create, node groups and a "
            f"database restore (allocated_storage 500 GB) come after, then DNS. The RTO is {dr.rto_text}",
            f"keep a warm standby in {region} (EKS with minimum node groups, a cross-region RDS read replica, "
            "ElastiCache global datastore) and rehearse the failover against the RTO",
            ["runbook scenario Region-wide Outage", "runbook scenario EKS Cluster Failure"],
            [(RUNBOOK, region_line), (RUNBOOK, dr.rto_line)] + ([(prod.path, 1)] if prod else [])))
    for tf in src.terraform:
        backend_region = tf.backend.get("region")
        if backend_region and backend_region != region and tf.environment == "production":
            out.append(make_finding(
                src, "rto.terraform-state-in-primary-region", "RTO",
                f"terraform state lives only in {backend_region}, the region the DR plan must survive",
                f"backend s3 bucket {tf.backend.get('bucket')} in {backend_region} with no replication and no "
                f"lock table: in a {backend_region} outage the state is unreachable, so the infrastructure "
                f"for {region} cannot be planned or applied from it",
                f"replicate the state bucket to {region} (S3 CRR) or keep the DR stack in its own backend "
                f"in {region}", [f"terraform {tf.path} backend"],
                [(tf.path, src.find_line(tf.path, "backend")), (RUNBOOK, region_line)]))
    return out


def unprovisioned_backing_services(src: SeedSource) -> list[Finding]:
    """Backing services the workloads need but no environment provisions (RabbitMQ)."""
    needs_mq = [d for d in src.objects("Deployment") if "RABBITMQ_URL" in str(d.data)]
    hpa_mq = [d for d in src.objects("HorizontalPodAutoscaler") if "rabbitmq" in str(d.data)]
    if not (needs_mq or hpa_mq) or not src.terraform:
        return []
    provisioned = any(re.search(r"aws_mq_broker|rabbitmq|amazonmq", src.text(tf.path), re.I) for tf in src.terraform)
    if provisioned:
        return []
    objs = needs_mq + hpa_mq
    return [make_finding(
        src, "availability.rabbitmq-not-provisioned", "availability",
        "RabbitMQ is required but no environment provisions it",
        "the conductor reads RABBITMQ_URL and conductor-custom-hpa scales on rabbitmq_queue_messages, but "
        "the staging and production terraform create VPC, EKS, RDS and ElastiCache only: no Amazon MQ broker, "
        "no RabbitMQ deployment, no backups or DR for the queue",
        "provision the broker (aws_mq_broker with a standby in another AZ, or a RabbitMQ cluster operator "
        "deployment) and include it in the DR plan", [d.label for d in objs],
        [(d.path, d.line("spec")) for d in objs])]

