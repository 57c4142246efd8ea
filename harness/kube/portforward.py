"""``kubectl port-forward`` on 127.0.0.1, started and stopped by the harness.

Used where a single pod must be reached (the conductor's per-replica admin endpoint) and, on an
existing cluster, for the Service itself. kubectl prints ``Forwarding from 127.0.0.1:PORT -> N``
once the local port is bound; that line is the readiness signal and gives the chosen port.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable

from harness.errors import HarnessError
from harness.kube.client import KubeTarget
from harness.kube.runner import CommandRunner, Process, format_argv

__all__ = ["PortForward", "PortForwards"]

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


class PortForward:
    def __init__(self, runner: CommandRunner, target: KubeTarget, namespace: str, resource: str, remote_port: int,
                 *, timeout: float = 20.0, clock: Callable[[], float] = time.monotonic):
        self.argv = target.kubectl("-n", namespace, "port-forward", "--address", "127.0.0.1", resource,
                                   f":{remote_port}")
        self.resource = resource
        self.proc: Process = runner.start(self.argv)
        self.local_port = self._await_port(timeout, clock)

    def _await_port(self, timeout: float, clock: Callable[[], float]) -> int:
        out = self.proc.stdout
        seen: list[str] = []
        found: list[int] = []

        def read() -> None:  # readline blocks; read on a thread so the deadline holds
            if out is None:
                return
            for line in iter(out.readline, ""):
                seen.append(line.strip())
                m = _FORWARDING.search(line)
                if m:
                    found.append(int(m.group(1)))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if found:
            # keep draining stdout so kubectl never blocks on a full pipe
            if out is not None:
                threading.Thread(target=lambda: [None for _ in iter(out.readline, "")], daemon=True).start()
            return found[0]
        self.stop()
        raise HarnessError(f"`{format_argv(self.argv[-6:])}` did not forward within {timeout:.0f}s"
                           f" ({(seen[-1] if seen else 'no output')[:200]})",
                           f"check that {self.resource} exists and is running")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - TimeoutExpired: make sure it is gone
                self.proc.kill()
                self.proc.wait(timeout=5)


class PortForwards:
    """Forwards keyed by resource, restarted when kubectl exits (a pod it pointed at went away)."""

    def __init__(self, runner: CommandRunner, target: KubeTarget, namespace: str):
        self.runner, self.target, self.namespace = runner, target, namespace
        self._by_resource: dict[str, PortForward] = {}
        self._lock = threading.Lock()

    def url(self, resource: str, remote_port: int) -> str:
        with self._lock:
            pf = self._by_resource.get(resource)
            if pf is None or not pf.alive():
                pf = PortForward(self.runner, self.target, self.namespace, resource, remote_port)
                self._by_resource[resource] = pf
            return pf.url

    def stop_all(self) -> None:
        with self._lock:
            for pf in self._by_resource.values():
                pf.stop()
            self._by_resource.clear()
