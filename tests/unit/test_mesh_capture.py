"""The inbound capture rules (istio-init's, tools/istio-iptables/pkg/capture/run.go
``IptablesConfigurator.Run``) and the sidecar/gateway listeners that go with them (pure)."""
from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.mesh import Endpoint, TlsBundle, gateway_bootstrap, load_mesh, sidecar_bootstrap
from harness.mesh.bootstrap import AGENT_PORT, HEALTH_PATH, app_probe_path
from harness.mesh.capture import EXCLUDED_INBOUND_PORTS, inbound_capture_script

TLS = TlsBundle(ca="ca", cert="cert", key="key", server_cert="scert", server_key="skey")


def _rules(script: str) -> list[str]:
    return [ln for ln in script.splitlines() if " -A " in ln]


def test_capture_redirects_every_port_but_the_excluded_ones_to_15006():
    rules = _rules(inbound_capture_script(exclude_sources=("172.18.0.1",)))
    assert rules[0] == "iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"
    returns = [r for r in rules if r.endswith("-j RETURN")]
    assert [r.split("--dport ")[1].split()[0] for r in returns if "--dport" in r] == \
        [str(p) for p in sorted(EXCLUDED_INBOUND_PORTS)]
    assert "iptables -t nat -A ISTIO_INBOUND -p tcp -s 172.18.0.1/32 -j RETURN" in rules
    # the catch-all comes after every RETURN, and PREROUTING jumps in last (nothing half-installed)
    assert rules.index("iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT") > max(
        rules.index(r) for r in returns)
    assert rules[-1] == "iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND"
    assert 8080 not in EXCLUDED_INBOUND_PORTS and 15006 not in EXCLUDED_INBOUND_PORTS


def test_capture_script_cleans_up_first_and_leaves_dockers_rules():
    script = inbound_capture_script()
    lines = script.splitlines()
    first_add = next(i for i, ln in enumerate(lines) if " -N " in ln)
    assert any("-D PREROUTING -p tcp -j ISTIO_INBOUND" in ln for ln in lines[:first_add])
    assert "iptables -t nat -F\n" not in script and "iptables-restore" not in script   # Docker's DNS rules stay
    assert "-F ISTIO_INBOUND" in script and "-X ISTIO_IN_REDIRECT" in script


@pytest.mark.parametrize("kw", [{"capture_port": 0}, {"exclude_ports": (70000,)}, {"exclude_sources": ("nope",)}])
def test_capture_rejects_bad_input(kw):
    with pytest.raises((UsageError, ValueError)):
        inbound_capture_script(**kw)


def test_captured_sidecar_matches_the_original_port_and_serves_the_rewritten_probe():
    mesh = load_mesh("k8s", what_if=True)
    ep = Endpoint("c-0", "10.0.0.5", 15006, "us-east-1a")
    plain = sidecar_bootstrap(mesh, ep, TLS, admin_port=15000, inbound_port=15006, app_port=8080)
    boot = sidecar_bootstrap(mesh, ep, TLS, admin_port=15000, inbound_port=15006, app_port=8080,
                             captured=True, readiness_path="/ready")
    inbound = boot["static_resources"]["listeners"][0]
    assert [f["name"] for f in inbound["listener_filters"]] == ["envoy.filters.listener.original_dst",
                                                                "envoy.filters.listener.tls_inspector"]
    assert all(c["filter_chain_match"]["destination_port"] == 8080 for c in inbound["filter_chains"])
    # STRICT: the only chain wants TLS, so plaintext to the captured port matches nothing
    assert [c["filter_chain_match"]["transport_protocol"] for c in inbound["filter_chains"]] == ["tls"]
    assert "destination_port" not in plain["static_resources"]["listeners"][0]["filter_chains"][0]["filter_chain_match"]
    agent = boot["static_resources"]["listeners"][1]
    assert agent["address"]["socket_address"]["port_value"] == AGENT_PORT
    route = agent["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["match"] == {"path": app_probe_path()} and route["route"]["prefix_rewrite"] == "/ready"
    assert len(plain["static_resources"]["listeners"]) == 1


def test_gateway_health_listener_only_when_asked():
    mesh = load_mesh("k8s", what_if=True)
    eps = [Endpoint("c-0", "10.0.0.5", 8080, "us-east-1a")]
    boot = gateway_bootstrap(mesh, eps, TLS, admin_port=15000, listen_port=443, health_port=15021)
    health = boot["static_resources"]["listeners"][1]
    assert health["address"]["socket_address"]["port_value"] == 15021
    route = health["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route == {"match": {"path": HEALTH_PATH}, "direct_response": {"status": 200}}
    assert len(gateway_bootstrap(mesh, eps, TLS, admin_port=15000, listen_port=443)["static_resources"]["listeners"]) == 1
