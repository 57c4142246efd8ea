"""The Docker engine: a client with a one-line error when unreachable, image builds, and the sweep
of everything labeled by the harness."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Mapping

from harness.errors import DockerUnavailable, HarnessError
from harness.labels import MANAGED_LABEL, OWNER_LABEL, RUN_ID_LABEL, owner_alive

__all__ = ["docker_client", "docker_endpoint", "ensure_image", "context_digest", "sweep", "export_container_logs"]

log = logging.getLogger(__name__)


def docker_endpoint(env: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[str, str]:
    """(endpoint, where it came from) the way the docker CLI picks it; ("", ...) for the SDK default.

    The Docker SDK for Python reads only DOCKER_HOST; the docker CLI also honours ``docker context``
    (Colima, OrbStack, rootless Docker and Docker Desktop set one). Order as in docker/cli: DOCKER_HOST,
    then the context named by DOCKER_CONTEXT or config.json's ``currentContext`` (config dir
    ``$DOCKER_CONFIG`` or ``~/.docker``), whose endpoint is ``Endpoints.docker.Host`` in
    ``contexts/meta/<sha256 of the name>/meta.json`` (docker/cli context store; docker-py's
    docker/context/config.py ``get_context_id`` uses the same digest). ``default`` means the SDK default.
    """
    env = os.environ if env is None else env
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], "DOCKER_HOST"
    cfg_dir = Path(env.get("DOCKER_CONFIG") or (home or Path.home()) / ".docker")
    name, source = env.get("DOCKER_CONTEXT", ""), "DOCKER_CONTEXT"
    if not name:
        try:
            name = json.loads((cfg_dir / "config.json").read_text()).get("currentContext") or ""
        except (OSError, ValueError):
            name = ""
        source = f"currentContext in {cfg_dir / 'config.json'}"
    if not name or name == "default":
        return "", "DOCKER_HOST unset, no docker context"
    meta = cfg_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DockerUnavailable(f"docker context {name!r} ({source}) has no readable endpoint in {meta}",
                                "run `docker context ls` and `docker context use` an existing one, or set DOCKER_HOST") from None
    return host, f"docker context {name!r} ({source})"


@functools.lru_cache(maxsize=1)
def docker_client():
    """A pinged client for the engine the docker CLI would use (DOCKER_HOST, else the current context)."""
    import docker  # local: importing the harness must not need a Docker engine

    base_url, source = docker_endpoint()
    try:
        if base_url and source != "DOCKER_HOST":
            client = docker.DockerClient(base_url=base_url, timeout=120)
        else:
            client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - whatever the cause, the fix is the same
        raise DockerUnavailable(
            f"Docker is not reachable at {base_url or 'the default socket'} (from {source}; {type(exc).__name__})",
            "start the Docker engine (on a machine without a registry: ../shared/offline-images/build.sh), "
            "or point DOCKER_HOST or `docker context use` at it (Colima, OrbStack, rootless)",
        ) from None
    if base_url and source != "DOCKER_HOST":
        # testcontainers and the Docker SDK elsewhere read DOCKER_HOST only: hand them the same engine.
        os.environ["DOCKER_HOST"] = base_url
        log.info("using the Docker engine of %s: %s", source, base_url)
    return client


def context_digest(context_dir: Path) -> str:
    """A short hash of a build context's files, so an edited context gets a new image tag."""
    h = hashlib.sha256()
    for path in sorted(p for p in context_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(context_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def ensure_image(repository: str, context_dir: Path, labels: dict[str, str] | None = None,
                 buildargs: dict[str, str] | None = None, rebuild: bool = False,
                 floating_tag: str = "dev") -> str:
    """Build ``context_dir`` as ``repository:<context digest>`` unless it exists; returns that tag.

    The image is also tagged ``repository:<floating_tag>`` (what the kind overlay names).
    """
    client = docker_client()
    import docker.errors

    if ":" in repository.rsplit("/", 1)[-1]:  # "repo:tag" given: the tag becomes the floating one
        repository, floating_tag = repository.rsplit(":", 1)
    tag = f"{repository}:ctx-{context_digest(context_dir)}"
    try:
        if rebuild:
            raise docker.errors.ImageNotFound(tag)
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        log.info("building image %s from %s", tag, context_dir)
        try:
            image, _ = client.images.build(path=str(context_dir), tag=tag, rm=True, labels=labels or {},
                                           buildargs=buildargs or {}, pull=False)
        except docker.errors.BuildError as exc:
            tail = " | ".join(str(c.get("stream", c.get("error", ""))).strip() for c in list(exc.build_log)[-5:])
            raise HarnessError(f"building image {tag} from {context_dir} failed: {tail[:400]}",
                               "fix the Dockerfile or its base image (see ../shared/offline-images)") from None
    if floating_tag:
        image.tag(repository, floating_tag)
    return tag


def sweep(run_id: str | None = None) -> dict[str, list[str]]:
    """Remove containers, then networks and volumes, labeled by the harness.

    ``run_id=None`` removes every run's leftovers (``make clean``) but spares runs still in progress:
    resources whose owner label names a live process on this host (``harness.labels.owner_alive``);
    their run ids are listed under ``in_progress``. With a run id, that run's resources go regardless
    (its own end-of-run sweep).
    """
    import docker.errors

    client = docker_client()
    selector = [f"{RUN_ID_LABEL}={run_id}"] if run_id else [f"{MANAGED_LABEL}=true"]
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [], "in_progress": []}

    def spared(labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        if run_id is None and owner_alive(labels.get(OWNER_LABEL, "")):
            if labels.get(RUN_ID_LABEL, "?") not in removed["in_progress"]:
                removed["in_progress"].append(labels.get(RUN_ID_LABEL, "?"))
            return True
        return False

    # sparse: the list endpoint's own data, no inspect per container, so a container that another run
    # removes between the listing and its inspect (a run ending beside `make clean`) cannot fail the sweep
    for c in client.containers.list(all=True, sparse=True, filters={"label": selector}):
        name = (c.attrs.get("Names") or [c.id])[0].lstrip("/")
        if spared(c.attrs.get("Labels")):
            continue
        try:
            c.remove(force=True, v=True)
            removed["containers"].append(name)
        except docker.errors.NotFound:
            continue  # gone already: its own run removed it
        except Exception as exc:  # noqa: BLE001 - keep sweeping; report what stayed
            log.warning("could not remove container %s: %s", name, exc)
    for n in client.networks.list(filters={"label": selector}):
        if spared(n.attrs.get("Labels")):
            continue
        try:
            n.reload()
            for attached in n.containers:  # e.g. a kind node we attached; detach, don't delete
                n.disconnect(attached, force=True)
            n.remove()
            removed["networks"].append(n.name)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not remove network %s: %s", n.name, exc)
    for v in client.volumes.list(filters={"label": selector}):
        if spared(v.attrs.get("Labels")):
            continue
        try:
            v.remove(force=True)
            removed["volumes"].append(v.name)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not remove volume %s: %s", v.name, exc)
    return removed


def export_container_logs(run_id: str, dest: Path, tail: int = 2000) -> list[Path]:
    """Write each of the run's containers' logs to ``dest/<name>.log`` (before anything is removed)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for c in docker_client().containers.list(all=True, filters={"label": [f"{RUN_ID_LABEL}={run_id}"]}):
        path = dest / f"{c.name}.log"
        try:
            path.write_bytes(c.logs(tail=tail, timestamps=True))
            written.append(path)
        except Exception as exc:  # noqa: BLE001 - a vanished container has no logs to keep
            log.debug("no logs for %s: %s", c.name, exc)
    return written
