"""The tool versions the kind platform needs, and the one-line checks that enforce them.

Every pin here was checked against the tool's own published source (the ``search`` corpora):

- Node image: ``kindest/node:v1.34.0@sha256:7416a61b...`` is listed under "Images pre-built for this
  release" in the kind v0.30.0 release notes (github.com/kubernetes-sigs/kind/releases/tag/v0.30.0,
  as quoted in the release-note copies of renovate PRs cloudnative-pg/postgres-trunk-containers#97
  and timebertt/kubernetes-controller-sharding#652). kind supports a node image "with the kind
  version they were released with (and best effort with other releases)"
  (kind.sigs.k8s.io/docs/design/node-image), so kind >= v0.30.0 is required; newer kinds are
  accepted (best effort upstream) and kinds older than the image's release are refused.
- Istio (harness.kube.istio.ISTIO_VERSION): 1.31 (and 1.30) "is officially supported on
  Kubernetes versions 1.32 to 1.36" (istio/istio.io news/releases announcing-1.31 and -1.30), so the
  pinned node's Kubernetes 1.34 is inside its matrix. (1.28: 1.30-1.34, 1.29: 1.31-1.35, per the
  supported-releases table as tracked by endoflife-date products/istio.md.)
- Helm: 3.18.5 and later validate the gateway chart's values.schema.json strictly, which broke
  Istio < 1.26.4 (istio/istio#57354, helm/helm#31160); the pinned Istio's schema passes them. Helm's
  version-skew policy (helm.sh/docs/topics/version_skew) lists 3.19.x for Kubernetes 1.34-1.31,
  3.20.x for 1.35-1.32, and Helm 4 (built against 1.34) for n-3: so Helm >= 3.19 (3.x or 4.x).
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from harness.errors import PlatformUnavailable
from harness.kube.runner import CommandRunner

__all__ = ["NODE_IMAGE", "NODE_KUBERNETES", "KIND_RELEASE_OF_IMAGE", "MIN_KIND", "MIN_HELM", "MAX_HELM_EXCL",
           "KUBECTL_RANGE", "kubectl_client_version", "check_kubectl",
           "ISTIO_KUBERNETES_SUPPORT", "parse_version", "check_kind", "check_helm", "version_text"]

NODE_KUBERNETES = (1, 34, 0)
NODE_IMAGE = "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
KIND_RELEASE_OF_IMAGE = (0, 30, 0)   # the kind release whose notes publish NODE_IMAGE
MIN_KIND = KIND_RELEASE_OF_IMAGE
MIN_HELM, MAX_HELM_EXCL = (3, 19, 0), (5, 0, 0)
# Istio minor -> (oldest, newest) supported Kubernetes minor (istio.io supported releases).
ISTIO_KUBERNETES_SUPPORT = {"1.28": ((1, 30), (1, 34)), "1.29": ((1, 31), (1, 35)), "1.30": ((1, 32), (1, 36)),
                            "1.31": ((1, 32), (1, 36))}

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str, after: str = "") -> tuple[int, int, int] | None:
    """The first ``vX.Y[.Z]`` in ``text`` (after the word ``after`` when given).

    ``kind version`` prints ``kind v0.30.0 go1.24.6 linux/amd64``; ``helm version --short`` prints
    ``v3.19.0+g3d8990f``; the Go version that follows must not be mistaken for the tool's.
    """
    if after:
        idx = text.find(after)
        if idx < 0:
            return None
        text = text[idx + len(after):]
    m = _VERSION.search(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_text(v: Sequence[int]) -> str:
    return "v" + ".".join(str(x) for x in v)


def check_kind(runner: CommandRunner, fix_other: str) -> tuple[int, int, int]:
    """Refuse, in one line, a kind that cannot run the pinned node image."""
    out = runner.run(["kind", "version"], timeout=30, check=False)
    version = parse_version(out.stdout, after="kind") or parse_version(out.stdout)
    if not out.ok or version is None:
        raise PlatformUnavailable(f"`kind version` failed ({(out.stderr or out.stdout).strip()[:120]})", fix_other)
    if version < MIN_KIND:
        raise PlatformUnavailable(
            f"kind {version_text(version)} is older than {version_text(MIN_KIND)}, the release that publishes the "
            f"pinned node image {NODE_IMAGE.split('@')[0]}",
            f"install kind {version_text(MIN_KIND)} or newer (https://kind.sigs.k8s.io/docs/user/quick-start/), "
            f"or {fix_other}")
    return version


def check_helm(runner: CommandRunner, which: Callable[[str], str | None], why: str, skip_hint: str) -> tuple[int, int, int]:
    """Refuse, in one line, a missing Helm or one outside the supported range."""
    supported = f"Helm {version_text(MIN_HELM)[1:]} or newer (3.x or 4.x)"
    if which("helm") is None:
        raise PlatformUnavailable(f"{why} needs helm on PATH (not found)",
                                  f"install {supported} (https://helm.sh/docs/intro/install/), or {skip_hint}")
    out = runner.run(["helm", "version", "--short"], timeout=30, check=False)
    version = parse_version(out.stdout)
    if not out.ok or version is None:
        raise PlatformUnavailable(f"`helm version --short` failed ({(out.stderr or out.stdout).strip()[:120]!r})",
                                  f"reinstall {supported}, or {skip_hint}")
    if not MIN_HELM <= version < MAX_HELM_EXCL:
        raise PlatformUnavailable(
            f"helm {version_text(version)} is not supported ({why} needs {supported}: older Helm does not support "
            f"Kubernetes {'.'.join(map(str, NODE_KUBERNETES[:2]))})", f"install {supported}, or {skip_hint}")
    return version


# kubectl's version-skew policy: a client is supported within one minor version (older or newer) of
# kube-apiserver (kubernetes.io/releases/version-skew-policy, "kubectl"). The pinned node runs 1.34.
KUBECTL_RANGE = ((NODE_KUBERNETES[0], NODE_KUBERNETES[1] - 1), (NODE_KUBERNETES[0], NODE_KUBERNETES[1] + 1))


def kubectl_client_version(stdout: str) -> tuple[int, int, int] | None:
    """The client version in ``kubectl version --client -o json`` (``clientVersion.gitVersion``, e.g.
    ``v1.34.1``; Docker Desktop's bundled kubectl prints the same JSON)."""
    import json

    try:
        git = json.loads(stdout or "{}").get("clientVersion", {}).get("gitVersion", "")
    except (ValueError, AttributeError):
        git = ""
    if not git:  # the text form, "Client Version: v1.34.1"
        return parse_version(stdout or "", after="Client Version:")
    return parse_version(git)


def check_kubectl(runner: CommandRunner, fix_other: str) -> tuple[int, int, int]:
    """Refuse, in one line, a kubectl outside the skew policy for the pinned node's Kubernetes."""
    lo, hi = KUBECTL_RANGE
    wanted = f"kubectl {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]} (one minor of the nodes' Kubernetes " \
             f"{'.'.join(map(str, NODE_KUBERNETES[:2]))})"
    out = runner.run(["kubectl", "version", "--client", "-o", "json"], timeout=30, check=False)
    version = kubectl_client_version(out.stdout)
    if not out.ok or version is None:
        raise PlatformUnavailable(f"`kubectl version --client` failed ({(out.stderr or out.stdout).strip()[:120]!r})",
                                  f"install {wanted}, or {fix_other}")
    if not lo <= version[:2] <= hi:
        raise PlatformUnavailable(
            f"kubectl {version_text(version)} is outside the version-skew policy: {wanted}",
            f"install kubectl v{NODE_KUBERNETES[0]}.{NODE_KUBERNETES[1]} (https://kubernetes.io/docs/tasks/tools/) "
            f"ahead of others on PATH (Docker Desktop bundles its own), or {fix_other}")
    return version
