"""A client pod on the stack network: one container that connects to a pod's IP the way another
workload on the cluster would (plaintext, TLS without a client certificate, TLS with a given
certificate) and reports what it got: an HTTP status and Envoy's response flags, or how the
connection was refused. Used to prove that the mesh's STRICT mTLS and AuthorizationPolicy hold for
every inbound connection, not only those sent to the sidecar's port.

The container is python:3.11-slim (the local base image); its certificates and keys are put into
the created container with ``put_archive`` (keys 0600), never on the host, the command line or the
environment. It carries the run's labels and is removed whatever happens.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from harness.config import Settings
from harness.docker_env import docker_client
from harness.errors import HarnessError
from harness.labels import labels_for
from harness.mesh.certs import Pem
from harness.mesh.containers import MESH_ROLE_LABEL, EnvoyFile, config_archive

__all__ = ["Attempt", "AttemptResult", "run_client_pod", "CLIENT_IMAGE"]

log = logging.getLogger(__name__)
CLIENT_IMAGE = "python:3.11-slim"
_DIR = "/etc/i2s-client"

# Runs inside the client container: one JSON line per attempt.
_SCRIPT = r'''
import json, socket, ssl, sys
cfg = json.load(open("/etc/i2s-client/attempts.json"))
for a in cfg["attempts"]:
    out = {"name": a["name"]}
    try:
        raw = socket.create_connection((a["host"], a["port"]), timeout=5)
        if a["tls"]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if a.get("cert"):
                ctx.load_cert_chain(a["cert"], a["key"])
            conn = ctx.wrap_socket(raw)
            out["tls_handshake"] = "done"
        else:
            conn = raw
        conn.settimeout(5)
        conn.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (a["path"], a["host_header"])).encode())
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data:
            out["outcome"] = "closed"
        else:
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            out["outcome"] = "http"
            out["status"] = int(lines[0].split()[1])
            hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            out["served_by"] = hdr.get("x-served-by", "")
            out["body"] = body[:120].decode(errors="replace")
    except ssl.SSLError as exc:
        out["outcome"], out["error"] = "tls_refused", f"{exc.reason or exc}"
    except (ConnectionResetError, BrokenPipeError) as exc:
        out["outcome"], out["error"] = "reset", type(exc).__name__
    except OSError as exc:
        out["outcome"], out["error"] = "error", f"{type(exc).__name__}: {exc}"
    print(json.dumps(out), flush=True)
'''


@dataclass(frozen=True)
class Attempt:
    """One connection: to ``host:port`` (a pod IP), TLS or not, with ``identity`` (a certificate
    and key) or none, a GET of ``path``."""

    name: str
    host: str
    port: int
    tls: bool
    identity: Pem | None = field(default=None, repr=False)
    path: str = "/"
    host_header: str = "conductor"


@dataclass(frozen=True)
class AttemptResult:
    """What the client got: ``outcome`` http | closed | reset | tls_refused | error."""

    name: str
    outcome: str
    status: int | None = None
    served_by: str = ""
    body: str = ""
    error: str = ""
    tls_handshake: str = ""

    @property
    def refused(self) -> bool:
        """No answer from the app: the connection was closed, reset, or failed TLS."""
        return self.outcome in ("closed", "reset", "tls_refused")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_client_pod(settings: Settings, network: str, attempts: Sequence[Attempt], *, name: str = "client",
                   timeout: float = 120.0) -> dict[str, AttemptResult]:
    """Run ``attempts`` from one container on ``network``; ``{attempt name: result}``."""
    files: list[EnvoyFile] = [EnvoyFile(f"{_DIR}/client.py", _SCRIPT)]
    spec = []
    for i, a in enumerate(attempts):
        entry: dict[str, Any] = {"name": a.name, "host": a.host, "port": a.port, "tls": a.tls, "path": a.path,
                                 "host_header": a.host_header}
        if a.identity is not None:
            entry["cert"], entry["key"] = f"{_DIR}/{i}-cert.pem", f"{_DIR}/{i}-key.pem"
            files += [EnvoyFile(entry["cert"], a.identity.cert), EnvoyFile(entry["key"], a.identity.key, secret=True)]
        spec.append(entry)
    files.append(EnvoyFile(f"{_DIR}/attempts.json", json.dumps({"attempts": spec})))
    client = docker_client()
    container = client.containers.create(CLIENT_IMAGE, name=f"i2s-{settings.run_id}-{name}",
                                         command=["python3", f"{_DIR}/client.py"], network=network,
                                         labels=labels_for(settings.run_id, **{MESH_ROLE_LABEL: "client"}))
    try:
        # config_archive writes a bootstrap.json beside the files; harmless here
        container.put_archive("/", config_archive({}, tuple(files)))
        container.start()
        status = container.wait(timeout=timeout)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        if status.get("StatusCode") != 0:
            err = container.logs(stdout=False, stderr=True).decode(errors="replace").strip().splitlines()
            raise HarnessError(f"client pod {name} failed: {(err or ['no output'])[-1][:300]}",
                               "see the client script in harness/mesh/client_pod.py")
    finally:
        try:
            container.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - already gone is fine
            log.debug("remove client pod: %s", exc)
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            results[d["name"]] = AttemptResult(**d)
    return results
