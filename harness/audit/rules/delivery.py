"""Delivery and security: the deploy workflow against the repository and Argo CD it drives, GitOps
settings, the environments' promotion gate, terraform pinning, cluster support windows, and the
credentials and network exposure the seed configures."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Iterator

from harness.audit.findings import Finding
from harness.audit.rules.base import make_finding
from harness.audit.sources import Doc, SeedSource

__all__ = ["workflow_paths", "workflow_argocd", "argocd_project", "terraform_pinning", "terraform_references",
           "development_setup", "eks_support", "cluster_exposure", "static_cloud_keys", "EKS_EXTENDED_SUPPORT_END"]

DEV_SETUP = "seed/blocks/local-development-stack.sh"
DEV_STACK = "seed/docker/dev-stack.yml"
_TF_REFERENCE = re.compile(r"\b((?:aws|random|tls|kubernetes|helm)_[a-z0-9_]+)\.([a-z0-9_-]+)\.[a-z_]")
_TF_LOCAL = re.compile(r"\blocal\.([a-z0-9_]+)")

# End of extended support per EKS minor (AWS "Amazon EKS Kubernetes release calendar"); after it AWS
# upgrades the control plane itself.
EKS_EXTENDED_SUPPORT_END = {"1.26": dt.date(2025, 6, 11), "1.27": dt.date(2025, 7, 24),
                            "1.28": dt.date(2025, 11, 26), "1.29": dt.date(2026, 3, 23),
                            "1.30": dt.date(2026, 7, 23)}


def _steps(src: SeedSource) -> Iterator[tuple[Doc, str, int, dict[str, Any]]]:
    for wf in src.workflows:
        for job_name, job in (wf.get("jobs", default={}) or {}).items():
            for i, step in enumerate(job.get("steps", []) or []):
                yield wf, job_name, i, step


def workflow_paths(src: SeedSource) -> list[Finding]:
    """Directories and files the workflow's commands read that the seed does not have."""
    out = []
    for wf, job, i, step in _steps(src):
        for m in re.finditer(r"-f\s+(k8s/[\w./-]+)", str(step.get("run", ""))):
            path = m.group(1)
            if not src.has_path(path):
                present = [name for name in src.folders("k8s") if name != "overlays"]
                out.append(make_finding(
                    src, f"delivery.workflow-missing-path.{path}", "delivery",
                    f"the deploy workflow validates {path}, which the seed does not have",
                    f"step {step.get('name')!r} runs kubectl against {path}; the seed's k8s/ has "
                    f"{', '.join(present)}: kubectl fails (\"the path does not exist\") and the deploy job stops "
                    "before Argo CD is asked to sync, on every push",
                    f"create {path} with the production manifests, or validate the directories that exist",
                    [f"workflow {wf.path} step {step.get('name')}"], [(wf.path, wf.line("jobs", job, "steps", i, "run"))]))
    return out


def workflow_argocd(src: SeedSource) -> list[Finding]:
    """The workflow's Argo CD calls against the Application they drive."""
    out = []
    apps = {a.name: a for a in src.objects("Application")}
    for wf, job, i, step in _steps(src):
        run = str(step.get("run", ""))
        at = [(wf.path, wf.line("jobs", job, "steps", i, "run"))]
        for m in re.finditer(r"kubectl wait --for=condition=(\w+) application/([\w-]+)", run):
            out.append(make_finding(
                src, f"delivery.argocd-wait-condition.{m.group(2)}.{m.group(1)}", "delivery",
                f"the workflow waits for condition {m.group(1)} on an Argo CD Application, which never has it",
                f"Argo CD reports sync and health in status.sync.status and status.health.status; "
                "status.conditions holds only errors and warnings (ComparisonError, SyncError, ...), so "
                f"`kubectl wait --for=condition={m.group(1)}` waits out its --timeout and fails the deploy even "
                "when the sync worked",
                f"wait with --for=jsonpath='{{.status.{'sync' if m.group(1) == 'Synced' else 'health'}.status}}'="
                f"{m.group(1)} (kubectl >= 1.23) or use `argocd app wait`",
                [f"workflow {wf.path} step {step.get('name')}"] + ([apps[m.group(2)].label] if m.group(2) in apps else []),
                at))
        if "github.sha" in run and '"revision"' in run:
            for name in re.findall(r"patch application ([\w-]+)", run):
                app = apps.get(name)
                repo = str(app.get("spec", "source", "repoURL", default="")) if app else ""
                if app and repo and not repo.rstrip("/").endswith(("/i2s", "/i2s-studio")):
                    out.append(make_finding(
                        src, f"delivery.argocd-sync-foreign-revision.{name}", "delivery",
                        f"the workflow asks Argo CD to sync {name} to this repository's commit, but the app "
                        f"tracks {repo}",
                        f"the sync operation sets revision ${{{{ github.sha }}}} (a commit of the repository the "
                        f"workflow runs in, whose k8s/** changed) while {app.label} deploys {repo} path "
                        f"{app.get('spec', 'source', 'path')}: that commit does not exist there, the operation "
                        "fails, and a change to this repository's manifests is never what gets deployed",
                        "point the Application at this repository, or have the workflow push to the manifests "
                        "repository and let Argo CD sync its own revision", [app.label],
                        at + [(app.path, app.line("spec", "source", "repoURL"))]))
    return out


def argocd_project(src: SeedSource) -> list[Finding]:
    """An Application outside the AppProject written for it, and an automated sync that bypasses the
    promotion gate the guide's environment hierarchy promises."""
    out = []
    projects = {p.name: p for p in src.objects("AppProject")}
    for app in src.objects("Application"):
        project = app.get("spec", "project", default="default")
        ns = str(app.get("spec", "destination", "namespace", default=""))
        meant = [p for p in projects.values() if project != p.name and any(
            re.fullmatch(str(d.get("namespace", "")).replace("*", ".*"), ns)
            for d in p.get("spec", "destinations", default=[]) or [])]
        if project == "default" and meant:
            out.append(make_finding(
                src, f"security.argocd-default-project.{app.name}", "security",
                f"Application {app.name} runs in the unrestricted default project, not {meant[0].name}",
                f"AppProject {meant[0].name} limits sources, destinations and kinds for i2s-* namespaces, but the "
                "Application names project default, which allows any repository, any cluster and every kind: "
                "the restrictions never apply",
                f"set spec.project: {meant[0].name} (and whitelist the kinds it deploys: networking.istio.io, "
                "security.istio.io, external-secrets.io, autoscaling.k8s.io)",
                [app.label, meant[0].label], [(app.path, app.line("spec", "project")),
                                              (meant[0].path, meant[0].line("metadata", "name"))]))
        automated = app.get("spec", "syncPolicy", "automated", default=None)
        if automated and "production" in ns and src.has("seed/blocks/environment-hierarchy.mmd") and \
                "Manual Gate" in src.text("seed/blocks/environment-hierarchy.mmd"):
            out.append(make_finding(
                src, f"delivery.production-auto-sync.{app.name}", "delivery",
                f"production Application {app.name} syncs automatically: the staging-to-production manual gate "
                "is not enforced",
                f"the guide's environment hierarchy promotes STG to PROD through a \"Manual Gate\", but "
                f"{app.label} syncs {app.get('spec', 'source', 'targetRevision')} of its repository on every "
                "commit (automated, prune, selfHeal): whatever reaches that branch is in production within "
                "minutes, with nothing in the seed gating it",
                "sync production manually (or from a release branch/tag that only the gate can move)",
                [app.label], [(app.path, app.line("spec", "syncPolicy", "automated")),
                              ("seed/blocks/environment-hierarchy.mmd",
                               src.find_line("seed/blocks/environment-hierarchy.mmd", "Manual Gate"))]))
    return out


def terraform_pinning(src: SeedSource) -> list[Finding]:
    """Registry modules without a version constraint resolve to the newest major on every init."""
    out = []
    for tf in src.terraform:
        unpinned = sorted(n for n, m in tf.modules.items()
                          if str(m.get("source", "")).count("/") == 2 and "version" not in m)
        if unpinned:
            out.append(make_finding(
                src, f"delivery.terraform-modules-unpinned.{tf.environment}", "delivery",
                f"{tf.environment} terraform uses registry modules with no version: {', '.join(unpinned)}",
                "without `version` each `terraform init -upgrade` (and every fresh CI checkout) takes the newest "
                "major release; these modules renamed and removed inputs between majors (eks v18 replaced "
                "node_groups/k8s_labels, v20 the auth settings), so a plan can silently drop or replace the "
                "cluster's node groups",
                "pin each module (version = \"~> X.Y\") and the AWS provider; commit the lock file",
                [f"terraform {tf.path} module.{n}" for n in unpinned],
                [(tf.path, src.find_line(tf.path, f'module "{n}"')) for n in unpinned]))
    return out


def terraform_references(src: SeedSource) -> list[Finding]:
    """Resources and locals a configuration uses but never declares: ``terraform plan`` stops at the
    first ("Reference to undeclared resource" / "undeclared local value"), so nothing is created."""
    out = []
    for tf in src.terraform:
        text = src.text(tf.path)
        declared = {(kind, name) for block in tf.resources for kind, named in block.items() for name in named}
        missing: dict[str, list[int]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for kind, name in _TF_REFERENCE.findall(line):
                if (kind, name) not in declared:
                    missing.setdefault(f"{kind}.{name}", []).append(n)
            for name in _TF_LOCAL.findall(line):
                if name not in tf.locals:
                    missing.setdefault(f"local.{name}", []).append(n)
        if missing:
            out.append(make_finding(
                src, f"delivery.terraform-undeclared.{tf.environment}", "delivery",
                f"{tf.environment} terraform uses {len(missing)} resources and locals it never declares",
                f"{', '.join(sorted(missing))} are referenced in {tf.path} but declared nowhere in it (no "
                "resource or locals block, no other file in the seed): terraform plan fails before creating "
                "anything, so the environment this file describes cannot be built, a DR rebuild included",
                "declare them (security groups, subnet groups, the monitoring role, the Redis auth token, "
                "locals), or use the modules' own outputs (module.vpc.database_subnet_group)",
                [f"terraform {tf.path} {r}" for r in sorted(missing)],
                [(tf.path, lines[0]) for _, lines in sorted(missing.items())]))
    return out


def development_setup(src: SeedSource) -> list[Finding]:
    """Files the guide's local development steps and development stack need that the seed lacks."""
    if not src.has(DEV_SETUP):
        return []
    wanted: list[tuple[str, str, int]] = []
    for n, line in enumerate(src.lines(DEV_SETUP), 1):
        for path in re.findall(r"(?:-f|--config)\s+([\w./-]+)", line):
            wanted.append((path, DEV_SETUP, n))
    if src.has(DEV_STACK):
        base = Path(DEV_STACK.removeprefix("seed/")).parent
        for doc in src.docs(DEV_STACK):
            for name, svc in (doc.get("services", default={}) or {}).items():
                for vi, vol in enumerate(svc.get("volumes", []) or []):
                    host = str(vol).split(":", 1)[0]
                    if host.startswith("./"):
                        wanted.append(((base / host).as_posix(), DEV_STACK, doc.line("services", name, "volumes", vi)))
                build = svc.get("build") or {}
                if isinstance(build, dict) and build.get("dockerfile"):
                    path = (base / str(build.get("context", ".")) / build["dockerfile"]).as_posix()
                    wanted.append((path, DEV_STACK, doc.line("services", name, "build", "dockerfile")))
    absent = [(p, f, n) for p, f, n in wanted
              if not src.has_path(p) and not src.has_path(f"seed/{p}")]
    if not absent:
        return []
    return [make_finding(
        src, "delivery.development-setup-missing-files", "delivery",
        f"the local development steps need {len(absent)} files the seed does not provide",
        f"{', '.join(sorted({p for p, _, _ in absent}))}: the guide's own \"Local Development Stack\" fails "
        "at these steps, so no one can reproduce a failure locally from the guide",
        "add the files (kind config, dev manifests, the Prometheus config, Dockerfile.dev) or drop the steps",
        sorted({p for p, _, _ in absent}), [(f, n) for _, f, n in absent])]


def eks_support(src: SeedSource) -> list[Finding]:
    """The clusters' Kubernetes version against the EKS support calendar on ``src.today``."""
    today = src.today
    out = []
    for tf in src.terraform:
        version = str(tf.module("eks").get("cluster_version", ""))
        end = EKS_EXTENDED_SUPPORT_END.get(version)
        if end and today > end:
            out.append(make_finding(
                src, f"delivery.eks-version-unsupported.{tf.environment}", "delivery",
                f"{tf.environment} EKS {version} is past the end of extended support ({end.isoformat()})",
                f"AWS upgrades clusters past extended support on its own schedule: the control plane moves to a "
                f"newer minor than the one the seed's manifests, cluster autoscaler and node groups were written "
                f"for (checked on {today.isoformat()})",
                "upgrade deliberately, one minor at a time, with the cluster autoscaler version to match",
                [f"terraform {tf.path} module.eks"], [(tf.path, src.find_line(tf.path, "cluster_version"))]))
    return out


def cluster_exposure(src: SeedSource) -> list[Finding]:
    """A cluster API endpoint open to the whole internet."""
    out = []
    for tf in src.terraform:
        eks = tf.module("eks")
        cidrs = eks.get("cluster_endpoint_public_access_cidrs") or []
        if eks.get("cluster_endpoint_public_access") and "0.0.0.0/0" in cidrs:
            out.append(make_finding(
                src, f"security.eks-endpoint-public.{tf.environment}", "security",
                f"{tf.environment} cluster API is reachable from any address",
                "cluster_endpoint_public_access with cidrs 0.0.0.0/0: the Kubernetes API of the production "
                "cluster is exposed to the internet (authentication still applies)",
                "restrict the CIDRs to the CI runners' and operators' ranges, or use the private endpoint only",
                [f"terraform {tf.path} module.eks"],
                [(tf.path, src.find_line(tf.path, "cluster_endpoint_public_access_cidrs"))]))
    return out


def static_cloud_keys(src: SeedSource) -> list[Finding]:
    """Long-lived AWS access keys in CI instead of OIDC federation."""
    out = []
    for wf, job, i, step in _steps(src):
        with_ = step.get("with") or {}
        if "aws-access-key-id" in with_ and "role-to-assume" not in with_:
            out.append(make_finding(
                src, f"security.static-aws-keys.{wf.path.rsplit('/', 1)[-1]}", "security",
                "the production deploy uses long-lived AWS access keys",
                f"step {step.get('name')!r} passes aws-access-key-id/aws-secret-access-key from repository "
                "secrets: keys that never expire and that every workflow with access to the secrets can use",
                "use GitHub OIDC (permissions: id-token: write, role-to-assume) with a role scoped to the deploy",
                [f"workflow {wf.path}"], [(wf.path, wf.line("jobs", job, "steps", i, "with"))]))
    return out
