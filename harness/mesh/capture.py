"""Inbound traffic capture in a pod's network namespace, as istio-init programs it (pure: the rules
as a shell script; :func:`harness.mesh.containers.run_pod_init` runs it with NET_ADMIN).

What Istio does (tools/istio-iptables/pkg/capture/run.go, ``IptablesConfigurator.Run`` and
``handleInboundPortsInclude``, REDIRECT mode, ``includeInboundPorts: "*"``): in the nat table,
``PREROUTING -p tcp -j ISTIO_INBOUND``; ``ISTIO_INBOUND`` returns the excluded ports (the injector's
``-d 15090,15021,15020``, and 15008 for HBONE) and sends every other TCP connection to
``ISTIO_IN_REDIRECT``, which is ``REDIRECT --to-ports 15006`` (the sidecar's ``virtualInbound``).
So a client on another pod that connects to the app's port reaches the sidecar, not the app: STRICT
mTLS and the AuthorizationPolicy apply to every inbound connection, whichever port it named.

One addition, stated: the docker host reaches a pod's published ports through docker-proxy, which
connects from the network's gateway address. That path stands for ``kubectl port-forward`` (the
harness's fault endpoint, its direct readiness read), which on a cluster enters the pod's namespace
on loopback and is not captured either; so the rules return that one source address before the
redirect. Every other container on the network (the gateway, the entry point, any client pod) is
captured.

Outbound capture (``ISTIO_OUTPUT`` to 15001) is not programmed: the conductor's own outbound calls
(Postgres, Redis, RabbitMQ) go to the stack's services, which are outside the mesh here.
"""
from __future__ import annotations

import ipaddress
from typing import Sequence

from harness.errors import UsageError

__all__ = ["INBOUND_CAPTURE_PORT", "EXCLUDED_INBOUND_PORTS", "inbound_capture_script", "CAPTURE_CHAINS"]

INBOUND_CAPTURE_PORT = 15006
# istio-init's -d (injection template: excludeInboundPorts 15090 Prometheus, 15021 health, 15020
# agent/probe rewrite) and 15008 (HBONE tunnel, always returned by istio-iptables).
EXCLUDED_INBOUND_PORTS = (15008, 15090, 15021, 15020)
CAPTURE_CHAINS = ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT")


def _port(value: int) -> int:
    if not 0 < int(value) < 65536:
        raise UsageError(f"port {value} is outside 1-65535", "pass a TCP port")
    return int(value)


def inbound_capture_script(*, capture_port: int = INBOUND_CAPTURE_PORT,
                           exclude_ports: Sequence[int] = EXCLUDED_INBOUND_PORTS,
                           exclude_sources: Sequence[str] = ()) -> str:
    """A ``sh`` script that (re)installs the inbound capture, idempotently: Istio's chains removed
    first (as ``istio-iptables`` cleans up before it programs), then created; Docker's own nat rules
    in the namespace (its embedded DNS) are left alone. ``exclude_sources``: addresses (the host's
    port-forward path) whose connections go to the app's port as addressed."""
    capture_port = _port(capture_port)
    excluded = sorted({_port(p) for p in exclude_ports})
    sources = [str(ipaddress.ip_address(s)) for s in exclude_sources]
    lines = ["set -e",
             # cleanup, tolerant of a namespace that never had the chains
             "iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND 2>/dev/null || true"]
    for chain in CAPTURE_CHAINS:
        lines += [f"iptables -t nat -F {chain} 2>/dev/null || true", f"iptables -t nat -X {chain} 2>/dev/null || true"]
    lines += [f"iptables -t nat -N {chain}" for chain in CAPTURE_CHAINS]
    lines.append(f"iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {capture_port}")
    lines += [f"iptables -t nat -A ISTIO_INBOUND -p tcp --dport {p} -j RETURN" for p in excluded]
    lines += [f"iptables -t nat -A ISTIO_INBOUND -p tcp -s {s}/32 -j RETURN" for s in sources]
    lines += ["iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
              "iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND",
              "iptables -t nat -S"]
    return "\n".join(lines) + "\n"
