"""Test doubles for the kind/context platforms: a recording command runner and a fake Kubernetes API.

The Kubernetes API cannot exist on this machine (kind cannot create a cluster here), so the API is
faked at the HTTP level: a real ``kubernetes.client.ApiClient`` whose urllib3 pool manager is
replaced by an in-memory server. Requests go through the real client code (URL building,
serialization, deserialization), and every request is recorded in order.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from harness.doctor import Host
from harness.kube.client import Apis
from harness.kube.runner import CommandFailed, CommandResult
from harness.labels import kind_cluster_name


# -- commands -------------------------------------------------------------------------------------------
@dataclass
class Call:
    argv: tuple[str, ...]
    input: str | None = None


class FakeProcess:
    def __init__(self, lines: Sequence[str], exit_code: int | None = None):
        self.stdout = io.StringIO("".join(lines))
        self.returncode: int | None = exit_code
        self.terminated = False

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode if self.returncode is not None else 0


class RecordingRunner:
    """Records every command; answers from ``responses`` (first matching argv prefix wins).

    ``kubectl kustomize`` runs for real (kubectl is installed here), so overlays are rendered for real.
    """

    def __init__(self, responses: Sequence[tuple[Sequence[str], Any]] = (), real_prefixes=(("kubectl", "kustomize"),),
                 forward_port: int = 40001, start_responses: Sequence[tuple[Sequence[str], Any]] = ()):
        self.calls: list[Call] = []
        self.started: list[tuple[tuple[str, ...], FakeProcess]] = []
        self.responses = [(tuple(p), r) for p, r in responses]
        self.real_prefixes = [tuple(p) for p in real_prefixes]
        self.forward_port = forward_port
        # argv prefix -> a FakeProcess-like object, or a callable(argv) returning one (e.g. `docker pull`)
        self.start_responses = [(tuple(p), r) for p, r in start_responses]

    def run(self, argv, *, input=None, timeout=None, check=True, fix=None) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(Call(argv, input))
        if any(argv[:len(p)] == p for p in self.real_prefixes):
            proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
            result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)
        else:
            result = CommandResult(argv, 0, "", "")
            for prefix, resp in self.responses:
                if argv[:len(prefix)] == prefix:
                    resp = resp(argv, input) if callable(resp) else resp
                    if isinstance(resp, tuple):
                        result = CommandResult(argv, resp[0], resp[1], resp[2] if len(resp) > 2 else "")
                    else:
                        result = CommandResult(argv, 0, resp, "")
                    break
        if check and result.returncode != 0:
            raise CommandFailed(result, fix)
        return result

    def start(self, argv) -> FakeProcess:
        for prefix, resp in self.start_responses:
            if tuple(argv)[:len(prefix)] == prefix:
                proc = resp(tuple(argv)) if callable(resp) else resp
                self.started.append((tuple(argv), proc))
                return proc
        proc = FakeProcess([f"Forwarding from 127.0.0.1:{self.forward_port} -> 8080\n"])
        self.started.append((tuple(argv), proc))
        return proc

    def argvs(self) -> list[tuple[str, ...]]:
        return [c.argv for c in self.calls]


# -- Kubernetes API -------------------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class _Resp:
    def __init__(self, status: int, payload: Any, content_type: str = "application/json"):
        self.status = status
        self.reason = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict"}.get(status, "Error")
        self.data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.headers = {"Content-Type": content_type}

    def getheaders(self):
        return self.headers

    def getheader(self, name, default=None):
        return self.headers.get(name, default)

    def release_conn(self):
        pass


_COLLECTIONS = {"pods", "events", "nodes", "secrets", "services", "endpointslices", "deployments",
                "horizontalpodautoscalers"}


def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


@dataclass
class FakeKube:
    """An in-memory API server: objects by URL path, collections by prefix, scripted GET handlers."""

    objects: dict[str, Any] = field(default_factory=dict)        # full object path -> object
    handlers: list[tuple[re.Pattern, Callable[[Request], Any]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def on(self, pattern: str, handler: Callable[[Request], Any]) -> None:
        self.handlers.insert(0, (re.compile(pattern), handler))

    def fail(self, pattern: str, status: int, reason: str = "ServiceUnavailable") -> None:
        """GETs matching ``pattern`` answer ``status`` (e.g. metrics.k8s.io before metrics-server is up)."""
        self.on(pattern, lambda req: _Resp(status, _status(status, reason, f"{req.path}: {reason}")))

    # urllib3.PoolManager interface
    def request(self, method, url, body=None, **_kw):
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        req = Request(method, parts.path, query, json.loads(body) if body else None)
        self.requests.append(req)
        for pattern, handler in self.handlers:
            if pattern.fullmatch(req.path) and method == "GET":
                out = handler(req)
                if isinstance(out, _Resp):
                    return out
                if isinstance(out, str):
                    return _Resp(200, out, "text/plain")
                return _Resp(200, out)
        if method == "POST":
            path = f"{req.path}/{req.body['metadata']['name']}"
            if path in self.objects:
                return _Resp(409, _status(409, "AlreadyExists", f"{path} already exists"))
            self.objects[path] = req.body
            return _Resp(201, req.body)
        if method == "PUT":
            self.objects[req.path] = req.body
            return _Resp(200, req.body)
        if method == "GET" and req.path in self.objects:
            return _Resp(200, self.objects[req.path])
        if method == "GET" and req.path.endswith("/status") and req.path[:-7] in self.objects:
            return _Resp(200, self.objects[req.path[:-7]])
        if method == "GET" and req.path.rsplit("/", 1)[-1] in _COLLECTIONS:
            items = [v for k, v in self.objects.items() if k.rsplit("/", 1)[0] == req.path]
            return _Resp(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
        return _Resp(404, _status(404, "NotFound", f"{req.path} not found"))

    def clear(self):
        pass

    def apis(self) -> Apis:
        from kubernetes import client

        api = client.ApiClient(client.Configuration(host="https://fake-apiserver.invalid"))
        api.rest_client.pool_manager = self
        return Apis(api)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


# -- canned objects -------------------------------------------------------------------------------------
def deployment(name: str, ns: str, replicas: int = 2, ready: int = 2, generation: int = 1,
               match_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": match_labels or {"app": name}},
                     "template": {"metadata": {"labels": match_labels or {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": "x"}]}}},
            "status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": ready,
                       "readyReplicas": ready, "availableReplicas": ready}}


def pod(name: str, ns: str, node: str, ready: bool = True, waiting: tuple[str, str] | None = None,
        labels: dict[str, str] | None = None, restarts: int = 0) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "conductor", "ready": ready, "restartCount": restarts, "image": "x", "imageID": "",
                          "state": {"running": {}}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "conductor"}},
            "spec": {"nodeName": node, "containers": [{"name": "conductor", "image": "x"}]},
            "status": {"phase": "Running" if ready or not waiting else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"},
                                      {"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [cs]}}


def node(name: str, zone: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}}}


def event(pod_name: str, reason: str, message: str, ts: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod_name}.1"},
            "involvedObject": {"kind": "Pod", "name": pod_name}, "reason": reason, "message": message,
            "type": "Warning", "count": 3, "lastTimestamp": ts}


def hpa_object(name: str, ns: str, desired: int, current: int, cpu: int | None, memory: int | None,
               active: bool = True) -> dict[str, Any]:
    metrics = []
    if cpu is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu,
                                                                                    "averageValue": "212m"}}})
    if memory is not None:
        metrics.append({"type": "Resource", "resource": {"name": "memory", "current": {"averageUtilization": memory,
                                                                                       "averageValue": "100Mi"}}})
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "conductor"},
                     "minReplicas": 2, "maxReplicas": 6},
            "status": {"currentReplicas": current, "desiredReplicas": desired, "currentMetrics": metrics,
                       "conditions": [{"type": "ScalingActive", "status": "True" if active else "False",
                                       "reason": "ValidMetricFound" if active else "FailedGetResourceMetric",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


# -- a kind cluster's nodes for the zone faults (tests/unit/conftest.py's `kube` fixture) ----------------
RUN = "20260101-000000-abcd"
OWN_CONTEXT = f"kind-{kind_cluster_name(RUN)}"
ZONE_SELECTOR = "topology.kubernetes.io/zone=us-east-1a"


def write_kubeconfig(path: Path, contexts=(OWN_CONTEXT, "prod-eks", "staging-explicit")) -> Path:
    """A kubeconfig file whose *current* context is a foreign one (it must never be used)."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-eks" if "prod-eks" in contexts else contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": c, "context": {"cluster": "c", "user": "u"}} for c in contexts]}))
    return path


class Nodes(FakeKube):
    """FakeKube with nodes that honour the label selector and take the uncordon PATCH."""

    def __init__(self):
        super().__init__()
        for name, zone in ((f"{kind_cluster_name(RUN)}-worker", "us-east-1a"),
                           (f"{kind_cluster_name(RUN)}-worker2", "us-east-1b")):
            n = node(name, zone)
            n["spec"] = {"unschedulable": True}  # as drain_nodes left them
            self.objects[f"/api/v1/nodes/{name}"] = n

    def request(self, method, url, body=None, **kw):
        parts = urlsplit(url)
        if method == "GET" and parts.path == "/api/v1/nodes":
            self.requests.append(Request(method, parts.path, {}, None))
            key, _, value = parse_qs(parts.query).get("labelSelector", [""])[0].partition("=")
            items = [n for n in self.objects.values() if n["metadata"]["labels"].get(key) == value]
            return _Resp(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items})
        if method == "PATCH":
            self.requests.append(Request(method, parts.path, {}, json.loads(body)))
            obj = self.objects[parts.path]
            obj["spec"].update(json.loads(body)["spec"])
            return _Resp(200, obj)
        return super().request(method, url, body, **kw)


# -- the machine the doctor reads (harness.doctor.Host) --------------------------------------------------
DOCKER_INFO = {"ServerVersion": "28.2.2", "NCPU": 8, "MemTotal": 16 * 1024 ** 3, "OSType": "linux",
               "Architecture": "x86_64", "DockerRootDir": "/var/lib/docker", "Driver": "overlay2",
               "DriverStatus": [["Backing Filesystem", "extfs"]], "RegistryConfig": {"Mirrors": []}}
KUBECTL_CLIENT = json.dumps({"clientVersion": {"major": "1", "minor": "34", "gitVersion": "v1.34.1"},
                             "kustomizeVersion": "v5.7.1"})


class FakeHost(Host):
    """Fixed readings instead of /proc, the disk and ~/.docker/config.json (a kind-ready Linux laptop
    by default; tests change one reading at a time). Ports are probed for real."""

    def __init__(self, system: str = "Linux", sysctls: dict | None = None, disk_free: int | None = 100 * 1024 ** 3,
                 docker_config: dict | None = None):
        self._system = system
        self.sysctls = {"fs.inotify.max_user_instances": 8192, "fs.inotify.max_user_watches": 1048576,
                        **(sysctls or {})}
        self._disk_free, self._docker_config = disk_free, docker_config

    def system(self) -> str:
        return self._system

    def sysctl(self, name: str) -> int | None:
        return self.sysctls.get(name)

    def disk_free(self, path: str) -> int | None:
        return self._disk_free

    def docker_config(self) -> dict | None:
        return self._docker_config
