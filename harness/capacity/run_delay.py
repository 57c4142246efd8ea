"""How long each replica container's threads waited for a CPU: the reading behind "the host starved
the replicas" (the decision is ``harness.analysis.host_starvation``).

Per reading and container: every thread's cumulative CPU time and run delay (time runnable but not
running) from ``/proc/<pid>/task/<tid>/schedstat`` (fields 1 and 2, ns), over every process of the
container's cgroup (``cgroup.procs``; cgroup v1 ``cpu`` hierarchy or v2 unified), and the cgroup's
CFS throttled time (``cpu.stat``: v1 ``throttled_time`` ns, v2 ``throttled_usec``; the figure
docker stats reports as ``throttling_data.throttled_time``). A thread of a throttled cgroup stays
runnable, so its run delay includes the time its own CPU limit held it: the analysis subtracts it.

The reading needs the engine's processes in this machine's ``/proc`` (a local Docker engine).
Where they are not (a remote engine, kind's nodes, a pid namespace that hides them) ``reader_for``
returns ``None``: nothing is read and no verdict changes.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.sampling import Sampler

__all__ = ["RunDelayReading", "ContainerSched", "reader_for", "replica_containers", "RunDelaySampler",
           "read_tasks", "cgroup_dir"]

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class RunDelayReading:
    """One container at one moment: per thread id, (cumulative CPU ns, cumulative run delay ns)."""

    t: float
    replica: str
    tasks: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    throttled_ns: float | None = None      # CFS quota throttled time, cumulative (None: not readable)
    cpu_limit_cores: float | None = None   # the container's CPU limit (None: none)


def read_tasks(pids: list[int], proc: Path = PROC) -> dict[int, tuple[int, int]]:
    """{tid: (cpu ns, run delay ns)} for every thread of ``pids``; a process or thread gone between
    the listing and the read is skipped (a thread's counters leave with it)."""
    out: dict[int, tuple[int, int]] = {}
    for pid in pids:
        try:
            tids = os.listdir(proc / str(pid) / "task")
        except OSError:
            continue
        for tid in tids:
            try:
                fields = (proc / str(pid) / "task" / tid / "schedstat").read_text().split()
                out[int(tid)] = (int(fields[0]), int(fields[1]))
            except (OSError, ValueError, IndexError):
                continue
    return out


def cgroup_dir(container_id: str, pid: int, root: Path = CGROUP_ROOT, proc: Path = PROC) -> Path | None:
    """The container's cgroup directory holding ``cgroup.procs`` and ``cpu.stat``: the usual cgroupfs
    and systemd paths (v1 ``cpu`` hierarchy, v2 unified), else the path ``/proc/<pid>/cgroup`` names.
    Only a directory whose path carries the container id counts: another engine's pid is not it."""
    candidates = [root / "cpu" / "docker" / container_id, root / "cpu,cpuacct" / "docker" / container_id,
                  root / "cpu" / "system.slice" / f"docker-{container_id}.scope",
                  root / "system.slice" / f"docker-{container_id}.scope", root / "docker" / container_id]
    try:
        for line in (proc / str(pid) / "cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if container_id not in path:
                continue
            if "cpu" in controllers.split(","):
                candidates += [root / "cpu" / path.lstrip("/"), root / "cpu,cpuacct" / path.lstrip("/")]
            elif controllers == "":
                candidates.append(root / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return next((c for c in candidates if (c / "cgroup.procs").is_file()), None)


def _throttled_ns(cgroup: Path | None) -> float | None:
    if cgroup is None:
        return None
    try:
        stats = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return None
    if "throttled_time" in stats:
        return float(stats["throttled_time"])
    if "throttled_usec" in stats:
        return float(stats["throttled_usec"]) * 1000.0
    return None


@dataclass
class ContainerSched:
    """Reads one container (``read()``): its cgroup's processes' threads, else its main pid's."""

    replica: str
    container_id: str
    pid: int
    cgroup: Path | None
    cpu_limit_cores: float | None
    proc: Path = PROC

    def pids(self) -> list[int]:
        if self.cgroup is not None:
            try:
                return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pass
        return [self.pid]

    def read(self) -> RunDelayReading:
        return RunDelayReading(time.time(), self.replica, read_tasks(self.pids(), self.proc),
                               _throttled_ns(self.cgroup), self.cpu_limit_cores)


def _container_sched(replica: str, container: Any, root: Path, proc: Path) -> ContainerSched | None:
    try:
        container.reload()
        attrs = container.attrs
    except Exception as exc:  # noqa: BLE001 - a container gone: nothing to read
        log.debug("run delay: %s not inspectable: %s", replica, exc)
        return None
    pid = int((attrs.get("State") or {}).get("Pid") or 0)
    cid = str(attrs.get("Id") or getattr(container, "id", ""))
    if not pid or not cid:
        return None
    cgroup = cgroup_dir(cid, pid, root, proc)
    if cgroup is None:  # only the cgroup proves that this /proc/<pid> is the container's, not a namesake
        try:
            if cid not in (proc / str(pid) / "cgroup").read_text():
                return None
        except OSError:
            return None
    nano = (attrs.get("HostConfig") or {}).get("NanoCpus") or 0
    sched = ContainerSched(replica, cid, pid, cgroup, nano / 1e9 if nano else None, proc)
    return sched if sched.read().tasks else None


def reader_for(containers: Mapping[str, Any], *, root: Path = CGROUP_ROOT,
               proc: Path = PROC) -> Callable[[], list[RunDelayReading]] | None:
    """A function reading every container of ``{replica: docker container}`` at once, or ``None`` when
    any of them cannot be read here (then the run-delay reading is absent, see the module doc)."""
    scheds = [_container_sched(name, c, root, proc) for name, c in containers.items()]
    if not scheds or any(s is None for s in scheds):
        return None

    def read() -> list[RunDelayReading]:
        return [s.read() for s in scheds]  # type: ignore[union-attr]
    return read


def replica_containers(platform: Any) -> dict[str, Any]:
    """{replica: docker container} of a platform that runs its replicas as containers, else {}."""
    container = getattr(platform, "container", None)
    if container is None:
        return {}
    out = {}
    for r in platform.replicas():
        try:
            out[r.name] = container(r.name)
        except Exception:  # noqa: BLE001 - a replica without a container is not read
            continue
    return out


class RunDelaySampler:
    """``read()`` every ``interval_s`` on a :class:`harness.sampling.Sampler`; ``stop()`` returns every
    container's readings, flat. With ``read`` ``None`` (not readable here) it samples nothing."""

    def __init__(self, read: Callable[[], list[RunDelayReading]] | None, interval_s: float = 1.0):
        self.available = read is not None
        self._sampler: Sampler[list[RunDelayReading]] | None = (
            Sampler(read, interval_s, name="run-delay") if read is not None else None)

    def start(self) -> "RunDelaySampler":
        if self._sampler is not None:
            self._sampler.start()
        return self

    def wait_for_readings(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` rounds of readings were taken (or ``timeout_s``); whether they were."""
        return self._sampler is not None and self._sampler.wait_for(lambda rs: len(rs) >= count, timeout_s)

    def stop(self) -> list[RunDelayReading]:
        if self._sampler is None:
            return []
        return [r for batch in self._sampler.stop(15) for r in batch]

    def __enter__(self) -> "RunDelaySampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
