"""k8s/overlays/kind-istio and kind-istio-intended, rendered for real with `kubectl kustomize`.

The differences are computed (harness.kube.diff) against what they are built from — the kind
overlay plus k8s/istio/gateway.yml as written, and kind-istio for the what-if — and must equal the
rows of each overlay's README table, so an undocumented change, or a listed one that no longer
happens, fails here.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from harness.kube.diff import diff_renderings
from harness.kube.istio import GATEWAY_HOSTS, GATEWAY_LABELS, GATEWAY_PRINCIPAL, TLS_SECRET, mesh_objects
from harness.kube.kustomize import find_object, render
from harness.manifests import conductor_spec
from harness.oracles.outlier import map_destination_rule

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "k8s" / "overlays"
SEED_ISTIO = ROOT / "k8s" / "istio" / "gateway.yml"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


@pytest.fixture(scope="module")
def kind() -> list[dict]:
    return render(OVERLAYS / "kind")


@pytest.fixture(scope="module")
def seed() -> list[dict]:
    return [d for d in yaml.safe_load_all(SEED_ISTIO.read_text()) if d]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render(OVERLAYS / "kind-istio")


@pytest.fixture(scope="module")
def intended() -> list[dict]:
    return render(OVERLAYS / "kind-istio-intended")


def readme_rows(overlay: str, marker: str) -> list[list[str]]:
    text = (OVERLAYS / overlay / "README.md").read_text()
    m = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert m, f"{overlay}/README.md lacks the {marker} table"
    rows = [[c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]
            for line in m.group(1).strip().splitlines()]
    return [r for r in rows[2:] if r and r[0]]


def listed(overlay: str) -> set[tuple[str, str, str]]:
    return {(r[0], r[1], r[2].split(":")[0]) for r in readme_rows(overlay, "overlay-changes")}


def test_the_only_differences_from_the_seed_are_the_listed_ones(kind, seed, rendered):
    diff = diff_renderings(kind + seed, rendered)
    assert diff["removed"] == [] and diff["added"] == []
    assert readme_rows("kind-istio", "overlay-added") == []
    assert set(diff["changed"]) == listed("kind-istio")
    assert len(diff["changed"]) == 5 == len(seed)  # one namespace move per seed object, nothing else


def test_kind_overlay_objects_are_untouched(kind, rendered):
    assert [d for d in rendered if d not in mesh_objects(rendered)] == kind


def test_mesh_objects_land_where_the_conductor_runs(rendered, seed):
    ns = conductor_spec(ROOT / "k8s").namespace
    assert ns == "i2s-staging"
    assert {d["metadata"]["namespace"] for d in seed} == {"i2s-production"}  # the seed's mismatch, as written
    assert {d["metadata"]["namespace"] for d in mesh_objects(rendered)} == {ns}


def test_gateway_keeps_the_seeds_https_server_and_selects_the_installed_gateway(rendered):
    gw = find_object(rendered, "Gateway", "i2s-gateway")
    (server,) = gw["spec"]["servers"]
    assert server["port"] == {"number": 443, "name": "https", "protocol": "HTTPS"}
    assert server["tls"] == {"mode": "SIMPLE", "credentialName": TLS_SECRET}
    assert tuple(server["hosts"]) == GATEWAY_HOSTS
    assert gw["spec"]["selector"] == GATEWAY_LABELS


def test_seed_settings_are_kept_as_written(rendered, seed):
    for kind, name in (("DestinationRule", "conductor-destination"), ("VirtualService", "i2s-api-routing"),
                       ("AuthorizationPolicy", "conductor-authz"), ("PeerAuthentication", "default")):
        assert find_object(rendered, kind, name)["spec"] == find_object(seed, kind, name)["spec"], kind
    dr = find_object(rendered, "DestinationRule", "conductor-destination")
    assert "circuitBreaker" in dr["spec"]["trafficPolicy"] and "outlierDetection" not in dr["spec"]["trafficPolicy"]
    vs = find_object(rendered, "VirtualService", "i2s-api-routing")
    assert [r["route"][0]["destination"]["host"] for r in vs["spec"]["http"]] == ["conductor", "health-service"]
    assert vs["spec"]["http"][0]["retries"]["attempts"] == 3
    authz = find_object(rendered, "AuthorizationPolicy", "conductor-authz")
    assert authz["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/i2s-production/sa/api-gateway"]
    assert GATEWAY_PRINCIPAL not in str(authz)  # so the gateway's traffic is rejected: a finding


def test_the_seed_destination_rule_configures_no_outlier_detection(rendered):
    m = map_destination_rule(find_object(rendered, "DestinationRule", "conductor-destination"))
    assert not m.has_effective_outlier_detection
    assert "circuit_breaker_field" in m.codes and "no_outlier_detection" in m.codes
    assert (m.circuit_breakers.max_connections, m.circuit_breakers.max_pending_requests,
            m.circuit_breakers.max_requests) == (100, 50, 100)


def test_no_service_named_health_service_exists(rendered):
    assert "health-service" not in {d["metadata"]["name"] for d in rendered if d["kind"] == "Service"}


def test_what_if_differs_from_the_seed_only_as_listed(rendered, intended):
    diff = diff_renderings(rendered, intended)
    assert diff["removed"] == [] and diff["added"] == []
    assert set(diff["changed"]) == listed("kind-istio-intended")
    assert {k for k, _, _ in diff["changed"]} == {"DestinationRule/conductor-destination",
                                                  "AuthorizationPolicy/conductor-authz"}


def test_what_if_objects_are_labeled_as_the_harnesss_assumption(intended):
    for kind, name in (("DestinationRule", "conductor-destination"), ("AuthorizationPolicy", "conductor-authz")):
        note = find_object(intended, kind, name)["metadata"]["annotations"]["i2s-harness/what-if"]
        assert "not the seed's config" in note


def test_what_if_outlier_detection_is_the_seeds_block_renamed(seed, intended):
    seed_dr = find_object(seed, "DestinationRule", "conductor-destination")
    dr = find_object(intended, "DestinationRule", "conductor-destination")
    assert dr["spec"]["trafficPolicy"]["outlierDetection"] == seed_dr["spec"]["trafficPolicy"]["circuitBreaker"]
    m = map_destination_rule(dr)
    assert m.has_effective_outlier_detection and "circuit_breaker_field" not in m.codes
    s = m.effective_outlier.settings
    assert (s.consecutive_gateway_failure, s.enforcing_consecutive_gateway_failure, s.interval_ms,
            s.base_ejection_time_ms, s.max_ejection_percent) == (5, 100, 30_000, 30_000, 50)
    assert s == map_destination_rule(seed_dr).intended_outlier.settings


def test_what_if_admits_the_installed_gateways_identity(intended):
    authz = find_object(intended, "AuthorizationPolicy", "conductor-authz")
    assert authz["spec"]["rules"][0]["from"][0]["source"]["principals"] == [GATEWAY_PRINCIPAL]
    assert authz["spec"]["rules"][1] == find_object(
        [d for d in yaml.safe_load_all(SEED_ISTIO.read_text()) if d], "AuthorizationPolicy",
        "conductor-authz")["spec"]["rules"][1]


def test_the_readme_check_would_catch_an_unlisted_change(kind, seed, rendered):
    """The comparison can fail: a changed Gateway port is a row the README does not have."""
    mutated = yaml.safe_load(yaml.safe_dump(rendered))
    find_object(mutated, "Gateway", "i2s-gateway")["spec"]["servers"][0]["port"]["number"] = 80
    diff = diff_renderings(kind + seed, mutated)
    assert set(diff["changed"]) - listed("kind-istio") == {
        ("Gateway/i2s-gateway", "spec.servers[0].port.number", "changed")}
