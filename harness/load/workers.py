"""Where Locust's workers run when the load outgrows one process (Locust's own master/worker mode).

The master is always the harness's own Locust process (``harness.load.runner``): it runs the shape,
splits users and spawn rate over the workers as Locust does, aggregates their stats (the CSV, HTML
and percentiles come from it) and receives their per-second lines and heartbeats. A ``WorkerPool``
starts the workers that connect to it and removes them again, whatever happens:

* ``LocalWorkers``: worker processes on this machine, forked by one ``locust --worker --processes N``
  in its own session (its process group is stopped as a whole);
* ``DockerWorkers``: worker containers on the run's Docker network, labeled with the run id (swept
  with the run), sending load to the replicas' in-network addresses; the master listens on the
  network's gateway address, which only that network's containers reach;
* ``harness.load.kube_workers.KubeWorkers``: worker pods in a harness namespace, as the Locust Helm
  chart deploys them (kind, an existing cluster);
* ``ExternalWorkers``: nothing is started; workers on other machines connect to the master's port
  (``locust -f loadtests/locustfile.py --worker --master-host <this machine>``), and the master waits
  for the expected number (``load_workers_wait_s``), then gives up with one line.

``worker_pool(settings, platform)`` picks the pool the settings ask for (None: one process).
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from harness.config import PROJECT_ROOT
from harness.errors import HarnessError, UsageError
from harness.process_watch import stop_process

__all__ = ["WorkerPool", "LocalWorkers", "DockerWorkers", "ExternalWorkers", "worker_pool", "free_port",
           "worker_command", "WORKER_IMAGE", "PLACEMENTS", "LOCUSTFILE_ENV", "locustfile_env", "in_network_url",
           "locust_worker_image"]

log = logging.getLogger(__name__)
PLACEMENTS = ("auto", "local", "docker", "kube", "external")
# What a worker's locustfile reads (loadtests/locustfile.py); nothing else of the harness's environment
# goes into a container or pod.
LOCUSTFILE_ENV = ("HARNESS_TARGETS", "HARNESS_USER_RPS", "HARNESS_TLS_SNI", "HARNESS_TLS_CA_FILE")


def locustfile_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: env[k] for k in LOCUSTFILE_ENV if env.get(k)}
WORKER_IMAGE = "i2s-harness/locust-worker"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def worker_command(locustfile: str, master_host: str, master_port: int, python: str = sys.executable) -> list[str]:
    """A Locust worker of ``locustfile`` connecting to the master at ``master_host:master_port``."""
    return [python, "-m", "locust", "-f", locustfile, "--worker", "--master-host", master_host,
            "--master-port", str(master_port), "--loglevel", "INFO", "--skip-log-setup"]


class WorkerPool(ABC):
    """``count`` Locust workers for one Locust run; ``start`` after choosing the master's address,
    ``stop`` always (idempotent; leaves nothing running)."""

    placement: str = ""

    def __init__(self, count: int, wait_s: float = 60.0):
        if count < 1:
            raise UsageError(f"{count} Locust workers", "set HARNESS_LOAD_WORKERS to 1 or more (0: one process)")
        self.count = count
        self.wait_s = wait_s
        self.master_port = 0

    @abstractmethod
    def master_bind_host(self) -> str:
        """The address the master listens on (for the workers only)."""

    @abstractmethod
    def master_host_for_workers(self) -> str:
        """The address the workers reach the master at."""

    def worker_targets(self, targets: list[str]) -> list[str]:
        """The URLs the workers send load to (the same as the master's unless they run elsewhere)."""
        return list(targets)

    @abstractmethod
    def start(self, env: Mapping[str, str], out_dir: Path, name: str, locustfile: Path) -> None:
        """Start the workers with ``env`` (HARNESS_TARGETS already the workers' targets)."""

    @abstractmethod
    def stop(self) -> None:
        """Remove every worker (a no-op when none runs)."""

    def alive(self) -> int:
        """Workers still running (for tests and messages)."""
        return 0

    def logs_hint(self, out_dir: Path, name: str) -> str:
        return f"see {out_dir / (name + '_locust.log')}"

    def choose_port(self) -> int:
        self.master_port = self.master_port or free_port(self.master_bind_host())
        return self.master_port

    def describe(self) -> dict[str, Any]:
        return {"placement": self.placement, "workers": self.count, "master_port": self.master_port}


class LocalWorkers(WorkerPool):
    """Worker processes on this machine, started as Locust starts them for ``--processes``: one
    ``locust --worker --processes N`` that imports the locustfile once and forks N workers. It runs in
    its own session (a terminal's Ctrl-C reaches only the harness), so ``stop`` ends the whole process
    group, forked workers included: SIGTERM, then SIGKILL."""

    placement = "local"

    def __init__(self, count: int, wait_s: float = 60.0):
        super().__init__(count, wait_s)
        self.procs: list[subprocess.Popen] = []
        self._logs: list[Any] = []

    def master_bind_host(self) -> str:
        return "127.0.0.1"

    def master_host_for_workers(self) -> str:
        return "127.0.0.1"

    def start(self, env: Mapping[str, str], out_dir: Path, name: str, locustfile: Path) -> None:
        cmd = worker_command(str(locustfile), self.master_host_for_workers(), self.choose_port())
        if self.count > 1:
            cmd += ["--processes", str(self.count)]
        try:
            fh = (out_dir / f"{name}_workers.log").open("wb")
            self._logs.append(fh)
            self.procs.append(subprocess.Popen(cmd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT,
                                               cwd=PROJECT_ROOT, start_new_session=True))
        except BaseException:
            self.stop()
            raise

    def worker_pids(self) -> list[int]:
        """The processes that are workers (the forked children; the one process when count is 1)."""
        import psutil

        out: list[int] = []
        for proc in self.procs:
            if proc.poll() is not None:
                continue
            try:
                kids = psutil.Process(proc.pid).children()
            except psutil.NoSuchProcess:
                continue
            out += [k.pid for k in kids if k.status() != psutil.STATUS_ZOMBIE] if self.count > 1 else [proc.pid]
        return out

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace_s=10.0, term_grace_s=5.0, group=True)
        for fh in self._logs:
            fh.close()
        self.procs, self._logs = [], []

    def alive(self) -> int:
        return len(self.worker_pids())

    def logs_hint(self, out_dir: Path, name: str) -> str:
        return f"see {out_dir / (name + '_locust.log')} and {out_dir / (name + '_workers.log')}"


class ExternalWorkers(WorkerPool):
    """Workers on other machines: nothing is started here; the master listens on ``bind_host:port``
    and waits for ``count`` of them (``wait_s``)."""

    placement = "external"

    def __init__(self, count: int, wait_s: float = 60.0, bind_host: str = "0.0.0.0", port: int = 5557):
        super().__init__(count, wait_s)
        self.bind_host, self.master_port = bind_host, port

    def master_bind_host(self) -> str:
        return self.bind_host

    def master_host_for_workers(self) -> str:
        return socket.gethostname()

    def start(self, env: Mapping[str, str], out_dir: Path, name: str, locustfile: Path) -> None:
        log.warning("waiting up to %.0fs for %d external Locust workers on port %d "
                    "(locust -f loadtests/locustfile.py --worker --master-host %s --master-port %d)",
                    self.wait_s, self.count, self.master_port, self.master_host_for_workers(), self.master_port)

    def stop(self) -> None:
        """External workers quit when the master tells them (Locust's ``quit`` message)."""

    def logs_hint(self, out_dir: Path, name: str) -> str:
        return (f"start them on the load machines: locust -f loadtests/locustfile.py --worker --master-host "
                f"{self.master_host_for_workers()} --master-port {self.master_port}; see {out_dir / (name + '_locust.log')}")


class DockerWorkers(WorkerPool):
    """Worker containers on the run's network, labeled with the run id (removed by ``stop`` and by the
    run's sweep). The master listens on the network's gateway: the host's address on that network,
    which only its containers reach. Load goes to the replicas' in-network addresses, found from the
    run's containers that publish the 127.0.0.1 ports the harness was given."""

    placement = "docker"

    def __init__(self, count: int, run_id: str, network: str, base_image: str, wait_s: float = 60.0,
                 cpu_limit: float = 1.0):
        super().__init__(count, wait_s)
        self.run_id, self.network, self.base_image, self.cpu_limit = run_id, network, base_image, cpu_limit
        self.containers: list[Any] = []

    def _network(self) -> Any:
        from harness.containers import run_network

        return run_network(self.network, self.run_id)

    def master_bind_host(self) -> str:
        cfg = (self._network().attrs.get("IPAM") or {}).get("Config") or []
        gateway = next((c.get("Gateway") for c in cfg if c.get("Gateway")), None)
        if not gateway:
            raise HarnessError(f"network {self.network} has no gateway address for the Locust master",
                               "use HARNESS_LOAD_WORKER_PLACEMENT=local")
        return gateway

    def master_host_for_workers(self) -> str:
        return self.master_bind_host()

    def worker_targets(self, targets: list[str]) -> list[str]:
        from harness.containers import run_containers

        published: dict[int, str] = {}
        for c in run_containers(self.run_id, all=False):
            for port, binds in ((c.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
                for b in binds or []:
                    if b.get("HostIp") in ("127.0.0.1", "") and b.get("HostPort"):
                        published[int(b["HostPort"])] = f"{c.name}:{port.split('/')[0]}"
        return [in_network_url(t, published) for t in targets]

    def image(self) -> str:
        return locust_worker_image(self.base_image)

    def start(self, env: Mapping[str, str], out_dir: Path, name: str, locustfile: Path) -> None:
        from harness.docker_env import docker_client
        from harness.labels import labels_for

        image = self.image()
        client = docker_client()
        keep = locustfile_env(env)
        ca = keep.get("HARNESS_TLS_CA_FILE")  # the run CA's public PEM, at the same path inside
        cmd = worker_command("/harness/loadtests/locustfile.py", self.master_host_for_workers(), self.choose_port(),
                             python="python")
        try:
            for i in range(self.count):
                self.containers.append(client.containers.run(
                    image, cmd, name=f"i2s-harness-{self.run_id}-{name}-worker{i}".replace("_", "-"), detach=True,
                    environment=keep, network=self.network, working_dir="/harness",
                    labels=labels_for(self.run_id, role="locust-worker"), nano_cpus=int(self.cpu_limit * 1e9),
                    volumes={ca: {"bind": ca, "mode": "ro"}} if ca else None))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        from harness.containers import remove_quietly

        for c in self.containers:
            remove_quietly(c)
        self.containers = []

    def alive(self) -> int:
        from harness.containers import is_running

        return sum(1 for c in self.containers if is_running(c))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "network": self.network, "cpu_limit": self.cpu_limit}


def in_network_url(url: str, published: Mapping[int, str]) -> str:
    """``http://127.0.0.1:<published port>/...`` as the container behind that port is reached on
    the network (``http://<container>:<its port>/...``). A port no run container publishes is refused."""
    parts = urlsplit(url)
    where = published.get(parts.port or (443 if parts.scheme == "https" else 80))
    if where is None:
        raise HarnessError(f"no container of the run publishes {url}, so docker workers cannot reach it",
                           "use HARNESS_LOAD_WORKER_PLACEMENT=local for targets outside the run's containers")
    return urlunsplit((parts.scheme, where, parts.path, parts.query, parts.fragment))


_WORKER_DOCKERFILE = """\
# A Locust worker: the pinned Locust and the harness's locustfile with the modules it imports.
FROM {base}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/harness
RUN pip install --no-cache-dir "locust=={locust}" "psutil" "pyyaml"
COPY harness /harness/harness
COPY loadtests /harness/loadtests
STOPSIGNAL SIGTERM
"""


def locust_worker_image(base_image: str) -> str:
    """The worker image: ``base_image`` with this harness's Locust version, the locustfile and the
    harness package (the locustfile imports the shapes and the attribution helpers). Returns the tag."""
    import shutil
    import tempfile
    from importlib.metadata import version

    from harness.docker_env import ensure_image

    with tempfile.TemporaryDirectory(prefix="i2s-locust-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(_WORKER_DOCKERFILE.format(base=base_image, locust=version("locust")))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(PROJECT_ROOT / "harness", ctx / "harness", ignore=ignore)
        shutil.copytree(PROJECT_ROOT / "loadtests", ctx / "loadtests", ignore=ignore)
        return ensure_image(WORKER_IMAGE, ctx)


def worker_pool(settings: Any, platform: Any = None, *, network: str | None = None) -> WorkerPool | None:
    """The pool ``settings.load_workers`` and ``load_worker_placement`` ask for; None for one process.
    ``auto`` follows the platform: docker containers on docker, pods on kind/context, else local."""
    n = int(getattr(settings, "load_workers", 0) or 0)
    if n == 0:
        return None
    placement = settings.load_worker_placement
    wait = float(settings.load_workers_wait_s)
    if placement == "auto":
        placement = {"docker": "docker", "kind": "kube", "context": "kube"}.get(getattr(platform, "name", ""), "local")
    if placement == "local":
        return LocalWorkers(n, wait)
    if placement == "external":
        return ExternalWorkers(n, wait, port=int(settings.load_master_port))
    if placement == "docker":
        net = network or getattr(getattr(getattr(platform, "stack", None), "network", None), "name", None)
        if not net:
            raise UsageError("docker workers need the run's Docker network",
                             "run on --platform docker, or set HARNESS_LOAD_WORKER_PLACEMENT=local")
        return DockerWorkers(n, settings.run_id, net, settings.python_image, wait)
    if placement == "kube":
        from harness.load.kube_workers import KubeWorkers

        return KubeWorkers.for_platform(n, settings, platform, wait)
    raise UsageError(f"unknown worker placement {placement!r}", f"use one of {', '.join(PLACEMENTS)}")
