"""A run's Docker containers, for code that acts on them: find one (refusing anything not labeled
with the run), list them, copy in-memory files in, run a command, check state and network
attachment, remove one quietly, and keep secret values out of output that is shown.

The engine client, image builds, the sweep and log export are ``harness.docker_env``; this module is
what the DR code, the faults and the scenarios use on single containers of a run.
"""
from __future__ import annotations

import io
import logging
import tarfile
import time
from typing import Any, Iterable

from harness.docker_env import docker_client
from harness.errors import HarnessError, UnsafeTarget, UsageError
from harness.labels import RUN_ID_LABEL, validate_run_id

__all__ = ["run_container", "run_network", "run_containers", "container_env", "network_aliases", "is_connected",
           "is_running", "put_files", "exec_in", "remove_quietly", "mask_secrets"]

log = logging.getLogger(__name__)


def run_container(name: str, run_id: str, what: str = "container") -> Any:
    """The run's container ``name``; ``UsageError`` if it does not exist, ``UnsafeTarget`` if it is
    not labeled with ``run_id`` (the harness acts only on what it created for the run)."""
    import docker.errors

    try:
        c = docker_client().containers.get(name)
    except docker.errors.NotFound:
        raise UsageError(f"{what} {name} does not exist",
                         "start the stack first (Stack(settings)) or pass the right container name") from None
    if c.labels.get(RUN_ID_LABEL) != run_id:
        raise UnsafeTarget(f"container {name} is not labeled as part of run {run_id}",
                           "the harness acts only on containers it created for this run")
    return c


def run_network(name: str, run_id: str) -> Any:
    """The run's network ``name``, refused (``UnsafeTarget``) if it is not labeled with ``run_id``."""
    import docker.errors

    try:
        n = docker_client().networks.get(name)
    except docker.errors.NotFound:
        raise UsageError(f"network {name} does not exist", "start the stack first or pass network=") from None
    if n.attrs.get("Labels", {}).get(RUN_ID_LABEL) != run_id:
        raise UnsafeTarget(f"network {name} is not labeled as part of run {run_id}",
                           "the harness acts only on networks it created for this run")
    return n


def run_containers(run_id: str, labels: dict[str, str] | None = None, *, all: bool = True,
                   client: Any = None) -> list[Any]:
    """The containers labeled with ``run_id`` and every label in ``labels`` (``{"app": "conductor"}``),
    running or not (``all=False``: running only). Only the run's: a container the engine returned
    although it lacks the run's label is refused (``UnsafeTarget``), never acted on."""
    validate_run_id(run_id)
    selector = [f"{RUN_ID_LABEL}={run_id}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
    found = (client or docker_client()).containers.list(all=all, filters={"label": selector})
    # Belt and braces: the engine filtered, but a fault must never act on a filter mistake.
    for c in found:
        if (getattr(c, "labels", None) or {}).get(RUN_ID_LABEL) != run_id:
            raise UnsafeTarget(f"refusing to touch container {getattr(c, 'name', c)!r}: "
                               f"it is not labeled {RUN_ID_LABEL}={run_id}",
                               "the harness acts only on containers it created for this run")
    return found


def container_env(container: Any) -> dict[str, str]:
    """The container's configured environment (``Config.Env``) as a dict. May carry secrets."""
    out = {}
    for item in container.attrs["Config"].get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def network_aliases(container: Any, network: str) -> list[str]:
    """The names ``container`` answers to on ``network`` now (aliases and DNS names); ``[]`` if detached."""
    container.reload()
    ep = (container.attrs["NetworkSettings"]["Networks"] or {}).get(network)
    if ep is None:
        return []
    return list(ep.get("Aliases") or []) + list(ep.get("DNSNames") or [])


def is_connected(container: Any, network: str) -> bool:
    """``container`` is attached to ``network`` now."""
    container.reload()
    return network in (container.attrs["NetworkSettings"]["Networks"] or {})


def is_running(container: Any) -> bool:
    """``container`` is running now (its state is re-read from the engine)."""
    container.reload()
    return container.status == "running"


def put_files(container: Any, files: dict[str, tuple[bytes, int]], uid: int = 0, gid: int = 0) -> None:
    """Copy in-memory files (``{path: (data, mode)}``) into a created or running container, with their
    parent directories; secrets never touch the host disk."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({p.rsplit("/", 1)[0] for p in files})
        for d in dirs:
            parts = d.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:i]))
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 0, 0
                tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    if not container.put_archive("/", buf.getvalue()):
        raise HarnessError(f"could not copy files into container {container.name}", "check the Docker engine")


def mask_secrets(text: str, secret_values: Iterable[str]) -> str:
    """``text`` with every non-empty secret value replaced by ``***``."""
    for s in secret_values:
        if s:
            text = text.replace(s, "***")
    return text


def exec_in(container: Any, cmd: list[str], *, user: str, env: dict[str, str] | None = None,
            check: bool = True, secret_values: Iterable[str] = ()) -> tuple[int, str, str]:
    """Run ``cmd`` in ``container`` as ``user``: ``(exit code, stdout, stderr)``.

    With ``check`` a non-zero exit raises ``HarnessError`` naming the command and its last output line,
    with ``secret_values`` masked.
    """
    code, (out, err) = container.exec_run(cmd, user=user, demux=True, environment=env or {})
    out_s, err_s = (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")
    if check and code != 0:
        detail = mask_secrets((err_s or out_s).strip().splitlines()[-1] if (err_s or out_s).strip() else f"exit {code}",
                              secret_values)
        raise HarnessError(f"{' '.join(cmd[:2])} in {container.name} failed: {detail[:300]}",
                           "see the container's log")
    return code, out_s, err_s


def remove_quietly(container: Any) -> None:
    """Remove ``container`` and its anonymous volumes; a container already gone is fine."""
    try:
        container.remove(force=True, v=True)
    except Exception as exc:  # noqa: BLE001 - already gone is fine
        log.debug("remove %s: %s", getattr(container, "name", container), exc)
