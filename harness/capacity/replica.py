"""The replica under test: one conductor, limited as its manifest says, that load goes to and usage is
read from -- a container on the docker platform (``DockerReplica``), the Deployment pinned to one pod on
kind (``KubeReplica``). ``replica_under_test`` picks the one the platform allows; an existing cluster
(``context``) is refused, because pinning its HPA would change a real environment."""
from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable

from harness.capacity.run_delay import RunDelayReading, reader_for
from harness.capacity.usage import UsageReading, docker_reading
from harness.config import Settings
from harness.errors import HarnessError, UnsafeTarget
from harness.manifests import ConductorSpec
from harness.conductor import Fault, Replica
from harness.platforms.base import Platform
from harness.wait import wait_for
from harness.platforms.docker import DockerPlatform  # no Docker SDK import until a client is made

if TYPE_CHECKING:  # the Kubernetes client is imported only where a cluster is used
    from harness.kube.client import Apis
    from harness.platforms.kind import KindPlatform

__all__ = ["ReplicaUnderTest", "DockerReplica", "DockerReplicaSet", "KubeReplica", "SingleReplicaDockerPlatform",
           "ReplicasDockerPlatform", "replica_under_test", "sum_readings"]


class ReplicaUnderTest(ABC):
    """One conductor replica, limited as its manifest says, that load goes to and usage is read from."""

    name: str
    endpoint: str
    cpu_limit_cores: float
    memory_limit_bytes: float

    @property
    def host_cores(self) -> float | None:
        """The cores of the one host every measured replica shares (docker), or ``None`` where each
        replica gets a node of its own (a cluster)."""
        return None

    @abstractmethod
    def read_usage(self) -> UsageReading:
        """One reading of the replica's CPU and memory."""

    def __init__(self, platform: Platform):
        self.platform = platform

    @property
    def endpoints(self) -> list[str]:
        """Where load goes: the one replica's endpoint (a set of replicas has one each)."""
        return [self.endpoint]

    def _replica(self) -> Replica:
        return next(r for r in self.platform.replicas() if r.name == self.name)

    def run_delay_reader(self) -> Callable[[], list[RunDelayReading]] | None:
        """Reads how long the replica's threads waited for a CPU (harness.capacity.run_delay); ``None``
        where this machine's /proc does not show it (a pod on kind, a remote engine)."""
        return None

    def set_cpu_cost(self, ms: float) -> None:
        """The conductor's CPU work per request, at runtime (its fault endpoint)."""
        self.platform.set_fault(self._replica(), Fault(cpu_cost_ms=ms))

    def clear_faults(self) -> None:
        self.platform.clear_fault(self._replica())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform.name,
                "cpu_limit_cores": self.cpu_limit_cores, "memory_limit_bytes": self.memory_limit_bytes}


class DockerReplica(ReplicaUnderTest):
    """A conductor container; its limits are the container's (``nano_cpus``/``mem_limit``)."""

    def __init__(self, platform: DockerPlatform, replica: str | None = None):
        super().__init__(platform)
        self.platform: DockerPlatform = platform
        names = [r.name for r in platform.replicas()]
        if not names:
            raise HarnessError("the docker platform runs no conductor", "bring the platform up first")
        self.name = replica or names[0]
        self.container = platform.container(self.name)
        host = self.container.attrs.get("HostConfig", {})
        nano = host.get("NanoCpus") or 0
        if not nano:
            raise HarnessError(f"container {self.container.name} has no CPU limit, so its capacity would be the "
                               "host's", "give the Deployment a CPU limit (resources.limits.cpu)")
        self.cpu_limit_cores = nano / 1e9
        self.memory_limit_bytes = float(host.get("Memory") or 0)
        self.endpoint = platform.endpoints()[names.index(self.name)]

    def read_usage(self) -> UsageReading:
        return docker_reading(self.container.stats(stream=False), time.time())

    def run_delay_reader(self) -> Callable[[], list[RunDelayReading]] | None:
        return reader_for({self.name: self.container})


class DockerReplicaSet(ReplicaUnderTest):
    """N conductor containers measured together (the capacity at N replicas): load goes to every
    replica's endpoint (round-robin per request), usage is their sum, read at the same moment; the CPU
    limit is the sum of theirs."""

    @property
    def host_cores(self) -> float | None:
        import os

        return float(os.cpu_count() or 1)   # every replica on this one host

    def __init__(self, platform: DockerPlatform):
        super().__init__(platform)
        self.platform: DockerPlatform = platform
        self.members = [DockerReplica(platform, r.name) for r in platform.replicas()]
        if not self.members:
            raise HarnessError("the docker platform runs no conductor", "bring the platform up first")
        self.name = f"{len(self.members)} replicas"
        self.endpoint = self.members[0].endpoint
        self.cpu_limit_cores = sum(m.cpu_limit_cores for m in self.members)
        self.memory_limit_bytes = self.members[0].memory_limit_bytes

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def read_usage(self) -> UsageReading:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.members)) as pool:  # stats(stream=False) takes ~1 s each
            readings = list(pool.map(lambda m: m.read_usage(), self.members))
        return sum_readings(readings)

    def run_delay_reader(self) -> Callable[[], list[RunDelayReading]] | None:
        return reader_for({m.name: m.container for m in self.members})

    def set_cpu_cost(self, ms: float) -> None:
        for m in self.members:
            m.set_cpu_cost(ms)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "replicas": len(self.members),
                "cpu_limit_cores_each": self.members[0].cpu_limit_cores}


def sum_readings(readings: list[UsageReading]) -> UsageReading:
    """Several containers' readings as one: CPU time and CFS periods added, memory the largest
    (per replica); the host's counters are the same host's."""
    def total(name: str) -> float | None:
        vals = [getattr(r, name) for r in readings]
        return None if any(v is None for v in vals) else float(sum(vals))

    first = readings[0]
    mems = [r.memory_bytes for r in readings if r.memory_bytes is not None]
    return UsageReading(t=max(r.t for r in readings), memory_bytes=max(mems) if mems else None,
                        cpu_total_ns=total("cpu_total_ns"), system_ns=first.system_ns, online_cpus=first.online_cpus,
                        cpu_cores=total("cpu_cores"), periods=total("periods"),
                        throttled_periods=total("throttled_periods"))


class KubeReplica(ReplicaUnderTest):
    """The conductor Deployment pinned to one pod (its HPA held at 1..1), read through metrics.k8s.io;
    with ``replicas`` N, pinned to N pods measured together (load through the Service, usage summed).

    ``pin()`` records the HPA's bounds and sets min = max = N and the Deployment's scale to N;
    ``restore()`` puts the bounds back. The pod keeps the manifest's requests and limits.
    """

    def __init__(self, platform: KindPlatform, *, apis: Apis | None = None, namespace: str | None = None, hpa_name: str = "conductor-hpa",
                 deployment: str = "conductor", selector: str = "app=conductor", endpoint: str | None = None,
                 cpu_limit_cores: float | None = None, memory_limit_bytes: float | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 replicas: int = 1):
        super().__init__(platform)
        spec = platform.spec
        resolved = apis if apis is not None else platform.apis
        if resolved is None:  # the kind platform makes its clients in up()
            raise HarnessError("the cluster's API clients do not exist yet", "bring the kind platform up first")
        self.apis: Apis = resolved
        self.namespace = namespace or spec.namespace
        self.hpa_name, self.deployment, self.selector = hpa_name, deployment, selector
        self.endpoint = endpoint or platform.endpoints()[0]
        self.cpu_limit_cores = cpu_limit_cores if cpu_limit_cores is not None else spec.cpu_limit
        self.memory_limit_bytes = memory_limit_bytes if memory_limit_bytes is not None else spec.memory_limit
        self._clock, self._sleep = clock, sleep
        self._saved: tuple[int, int] | None = None
        self.name = ""
        self.replicas = replicas
        if replicas > 1:  # measured together: their limits add up, their usage is summed
            self.cpu_limit_cores *= replicas

    def pin(self, timeout: float = 180.0) -> None:
        h = self.apis.autoscaling.read_namespaced_horizontal_pod_autoscaler(self.hpa_name, self.namespace)
        self._saved = (h.spec.min_replicas, h.spec.max_replicas)
        self.apis.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            self.hpa_name, self.namespace, {"spec": {"minReplicas": self.replicas, "maxReplicas": self.replicas}})
        self.apis.apps.patch_namespaced_deployment_scale(self.deployment, self.namespace,
                                                         {"spec": {"replicas": self.replicas}})
        seen: list[Any] = []

        def settled() -> bool:
            st = self.apis.apps.read_namespaced_deployment_status(self.deployment, self.namespace).status
            seen[:] = [st]
            return (st.replicas or 0) == self.replicas and (st.ready_replicas or 0) == self.replicas

        def unsettled() -> HarnessError:
            st = seen[0]
            return HarnessError(f"Deployment {self.deployment} did not settle at {'one ready pod' if self.replicas == 1 else f'{self.replicas} ready pods'} within {timeout:.0f}s "
                                f"(replicas {st.replicas}, ready {st.ready_replicas})",
                                "see the pod events in the report's logs")

        # An API error is not "not yet": it ends the pinning at once, as before.
        wait_for(settled, timeout=timeout, interval=2.0, describe="one ready pod", clock=self._clock,
                 sleep=self._sleep, retry_on=(), on_timeout=unsettled)
        pods = self.apis.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        running = [p.metadata.name for p in pods if getattr(p.metadata, "deletion_timestamp", None) is None]
        self.name = running[0] if running else ""

    def restore(self) -> None:
        if self._saved is None:
            return
        lo, hi = self._saved
        self.apis.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            self.hpa_name, self.namespace, {"spec": {"minReplicas": lo, "maxReplicas": hi}})
        self._saved = None

    def read_usage(self) -> UsageReading:
        from harness.kube.hpa_status import pod_usage

        usage = pod_usage(self.apis, self.namespace, self.selector)
        if not usage:
            raise HarnessError("metrics.k8s.io reports no conductor pod", "is metrics-server Ready?")
        if self.replicas > 1:
            return UsageReading(t=self._clock(), memory_bytes=max(u["memory_bytes"] for u in usage.values()),
                                cpu_cores=sum(u["cpu_cores"] for u in usage.values()))
        u = usage.get(self.name) or next(iter(usage.values()))
        return UsageReading(t=self._clock(), memory_bytes=u["memory_bytes"], cpu_cores=u["cpu_cores"])


class SingleReplicaDockerPlatform(DockerPlatform):
    """The docker platform with one conductor, named ``capacity-0-0`` so it never collides with the
    session platform's ``conductor-<generation>-<i>`` containers of the same run."""

    def __init__(self, settings: Settings, stack: Any, spec: ConductorSpec | None = None):
        super().__init__(dataclasses.replace(settings, replicas=1), stack, spec, name_prefix="capacity")


class ReplicasDockerPlatform(DockerPlatform):
    """The docker platform with ``replicas`` conductors for the measurement at N replicas, named
    ``capacityn-0-<i>``: apart from the one-replica platform and the session's."""

    def __init__(self, settings: Settings, stack: Any, replicas: int, spec: ConductorSpec | None = None):
        super().__init__(dataclasses.replace(settings, replicas=replicas), stack, spec, name_prefix="capacityn")


def replica_under_test(platform: Platform, **kube_kwargs: Any) -> ReplicaUnderTest:
    """The platform's single replica: a container on docker, the pinned Deployment on kind.

    Refused on an existing cluster (``context``): pinning its HPA would change a real environment.
    """
    if platform.name == "context":
        raise UnsafeTarget("the capacity measurement pins the HPA and the Deployment to one pod, and the context "
                           "platform changes nothing on an existing cluster",
                           "measure on --platform kind or docker")
    if platform.needs_kubernetes:
        return KubeReplica(platform, **kube_kwargs)  # type: ignore[arg-type]  # kind: the one cluster it may pin
    if isinstance(platform, DockerPlatform):
        return DockerReplica(platform)
    raise HarnessError(f"the {platform.name} platform cannot run a single measured replica",
                       "use --platform docker or kind")
