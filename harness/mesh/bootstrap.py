"""Envoy v3 bootstrap configurations for the docker mesh, built from :class:`~harness.mesh.objects.Mesh`
the way istiod builds xDS for the ingress gateway and for a workload's sidecar, but as static
resources (no istiod, no xDS server; the caller gives the endpoints).

Every rule below names the istiod code it follows (istio/istio ``pilot/pkg/networking/core``;
checked against the upstream source):

* routes: ``route/route.go`` ``translateRoute`` / ``TranslateRouteMatch`` (prefix match,
  ``case_sensitive``), ``applyHTTPRouteDestination`` / ``processDestination`` (one destination ->
  ``cluster``; ``setTimeout``: no VirtualService timeout -> ``timeout: 0s`` and
  ``max_grpc_timeout: 0s``), ``TranslateFault`` (``percentage.value`` -> numerator ``value*10000``
  per MILLION; ``fixedDelay``), ``GetDestinationCluster`` (``outbound|<port>|<subset>|<fqdn>``).
  A destination host that is no Service keeps its route ("it's okay if the target cluster cannot be
  resolved. Traffic to such clusters will blackhole"): istiod builds clusters only for services, so
  Envoy answers 503 with flag NC. Static route configs default to ``validate_clusters: true``
  (RDS to false), so the translation sets it to false to keep istiod's behaviour.
* retries: ``route/retry/retry.go`` ``ConvertPolicy``: default ``retry_on``
  ``connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes``; ``retriable_status_codes
  [503]`` only with EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY off (``features``: on by default since
  Istio 1.24, so by default a 503 answer is *not* retried; ``Mesh.exclude_503_from_default_retries``),
  ``host_selection_retry_max_attempts 5`` and the
  ``envoy.retry_host_predicates.previous_hosts`` predicate; ``attempts`` -> ``num_retries``,
  ``perTryTimeout`` -> ``per_try_timeout``; a route without ``retries`` gets the default policy
  (2 retries); ``attempts: 0`` disables retries.
* clusters: ``cluster_traffic_policy.go`` ``applyConnectionPool`` (``getDefaultCircuitBreakerThresholds``:
  every threshold MaxUint32 and ``track_remaining`` unless set; ``maxRequestsPerConnection`` ->
  ``common_http_protocol_options.max_requests_per_connection``; mesh ``connectTimeout`` 10s),
  ``applyOutlierDetection`` and the panic threshold (through
  :func:`harness.oracles.outlier.map_destination_rule`, not re-implemented here),
  ``applyLoadBalancer`` (``LEAST_CONN``/``LEAST_REQUEST`` -> ``LEAST_REQUEST``, default
  ``LEAST_REQUEST``; ``ROUND_ROBIN``; ``RANDOM``), ``loadbalancer.ApplyLocalityLoadBalancer`` /
  ``applyLocalityFailover`` (mesh default ``localityLbSetting.enabled: true``; with outlier detection
  the endpoints get priorities by ``util.LbPriority`` against the client proxy's locality), subsets
  -> one cluster each with the subset's policy merged over the top-level one (port-level settings
  for the destination port win).
* gateway listener: ``gateway.go`` ``buildGatewayListeners`` / ``createGatewayHTTPFilterChainOpts``:
  an HTTPS server with ``tls.mode: SIMPLE`` is a filter chain matched on the server's hosts as SNI
  (``server_names``, with the TLS inspector), terminating TLS with the ``credentialName`` certificate
  (ALPN h2, http/1.1) and one virtual host per bound VirtualService host (domains ``host`` and
  ``host:*``); HTTP filters fault, router.
* mutual TLS: ``cluster_tls.go`` (ISTIO_MUTUAL upstream: workload certificate, root CA, SAN match on
  the destination's SPIFFE identities, SNI ``outbound_.<port>_.<subset>_.<fqdn>``, ALPN
  ``istio-peer-exchange, istio``) and ``authn`` (PeerAuthentication STRICT: the inbound listener only
  has a TLS filter chain requiring a client certificate; PERMISSIVE adds a plaintext chain).
* authorization: ``security/authz/model`` (``srcPrincipalGenerator``: principal -> exact
  ``spiffe://<principal>`` on the peer certificate's URI SAN (``authenticated.principal_name``);
  ``srcNamespaceGenerator``: namespace -> regex ``.*/ns/<ns>/.*``; ``pathGenerator``: ``/x/*`` ->
  prefix ``/x/``, else exact; ``methodGenerator``: ``:method`` exact), ALLOW policies in the RBAC
  HTTP filter of the inbound listener: no match -> 403 ``RBAC: access denied``.

Every function returns JSON-able dicts; ``envoy --mode validate`` accepts each bootstrap (tested).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.mesh.objects import (CONDUCTOR_SERVICE_PORT, GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, Endpoint, Mesh,
                                  TlsBundle, fqdn, region_of)
from harness.oracles.outlier import (map_istio_connection_pool, map_istio_outlier_detection, parse_duration_ms,
                                     policy_for_port, port_level_policy)

__all__ = ["gateway_bootstrap", "sidecar_bootstrap", "outbound_cluster_name", "outbound_clusters", "route_config",
           "rbac_filter", "CONDUCTOR_PORT", "MESH_CONNECT_TIMEOUT", "DEFAULT_RETRY_ON", "RBAC_FILTER",
           "FAULT_FILTER", "inbound_cluster_name", "inbound_cluster", "plain_proxy_bootstrap", "HEALTH_PORT",
           "AGENT_PORT", "HEALTH_PATH", "app_probe_path"]

CONDUCTOR_PORT = CONDUCTOR_SERVICE_PORT
MESH_CONNECT_TIMEOUT = "10s"   # meshConfig.connectTimeout default
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
FAULT_FILTER = "envoy.filters.http.fault"
HEALTH_PORT = 15021          # the proxy's readiness port (istio-ingressgateway's readinessProbe)
AGENT_PORT = 15020           # pilot-agent's port, where the injector rewrites the app's probes
HEALTH_PATH = "/healthz/ready"
RBAC_FILTER = "envoy.filters.http.rbac"
_TLS = "envoy.transport_sockets.tls"
_T = "type.googleapis.com/"
_LB = {"LEAST_CONN": "LEAST_REQUEST", "LEAST_REQUEST": "LEAST_REQUEST", "ROUND_ROBIN": "ROUND_ROBIN",
       "RANDOM": "RANDOM"}


# -- small helpers -----------------------------------------------------------------------------------------
def _duration(value: Any, what: str) -> str:
    """An Istio duration (``"100ms"``) as a protobuf JSON duration (``"0.1s"``)."""
    return f"{parse_duration_ms(value, what) / 1000:g}s"


def _data(value: str) -> dict[str, str]:
    """An Envoy DataSource: PEM text inline, anything else a file path."""
    return {"inline_string": value} if value.lstrip().startswith("-----BEGIN") else {"filename": value}


def _address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": int(port)}}


def _check_port(port: int, what: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise UsageError(f"{what} {port!r} is not a TCP port", "pass 1..65535")
    return port


def _locality(zone: str) -> dict[str, str]:
    """Envoy locality of a zone (istiod copies the node's topology region/zone labels)."""
    return {k: v for k, v in (("region", region_of(zone)), ("zone", zone)) if v}


def _access_log() -> list[dict[str, Any]]:
    # Envoy's default format includes %RESPONSE_FLAGS% (NC, NR, UO, UH, URX): kept in reports on failure.
    return [{"name": "envoy.access_loggers.stdout",
             "typed_config": {"@type": _T + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}]


def _admin(address: str, port: int) -> dict[str, Any]:
    return {"address": _address(address, _check_port(port, "admin_port"))}


def _tls_certificate(cert: str, key: str) -> dict[str, Any]:
    return {"certificate_chain": _data(cert), "private_key": _data(key)}


def outbound_cluster_name(host: str, namespace: str, port: int, subset: str = "") -> str:
    """istiod's ``model.BuildSubsetKey``: ``outbound|<port>|<subset>|<fqdn>``."""
    return f"outbound|{port}|{subset}|{fqdn(host, namespace)}"


def inbound_cluster_name(port: int) -> str:
    """istiod's inbound cluster name for a workload port: ``inbound|<port>||``."""
    return f"inbound|{port}||"


def _istio_sni(cluster_name: str) -> str:
    # model.BuildDNSSrvSubsetKey: outbound_.<port>_.<subset>_.<fqdn>
    direction, port, subset, host = cluster_name.split("|")
    return f"{direction}_.{port}_.{subset}_.{host}"


# -- routes (route.go, retry.go) ---------------------------------------------------------------------------
def _retry_policy(retries: Mapping[str, Any] | None, *, exclude_503: bool = True) -> dict[str, Any] | None:
    """``retry.ConvertPolicy`` (not consistent-hash): None when ``attempts`` <= 0. ``defaultPolicy``
    adds ``retriable_status_codes [503]`` only when EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY is off
    (it is on by default since Istio 1.24)."""
    policy: dict[str, Any] = {
        "retry_on": DEFAULT_RETRY_ON, "num_retries": 2,
        "host_selection_retry_max_attempts": 5,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
            "@type": _T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
    }
    if not exclude_503:
        policy["retriable_status_codes"] = [503]
    if retries is None:
        return policy
    attempts = int(retries.get("attempts", 0) or 0)
    if attempts <= 0:
        return None
    policy["num_retries"] = attempts
    if retries.get("retryOn"):
        parts = [p.strip() for p in str(retries["retryOn"]).split(",") if p.strip()]
        codes = [int(p) for p in parts if p.isdigit() and 100 <= int(p) <= 599]
        words = [p for p in parts if not (p.isdigit() and 100 <= int(p) <= 599)]
        policy["retry_on"] = ",".join(words)
        policy.pop("retriable_status_codes", None)
        if codes:
            policy["retriable_status_codes"] = codes
            if "retriable-status-codes" not in policy["retry_on"]:
                policy["retry_on"] += ",retriable-status-codes"
    if retries.get("perTryTimeout") is not None:
        policy["per_try_timeout"] = _duration(retries["perTryTimeout"], "retries.perTryTimeout")
    if retries.get("retryIgnorePreviousHosts") is False:
        # retry.ConvertPolicy: the previous_hosts predicate only while retryIgnorePreviousHosts is
        # unset or true (its default); false lets a retry land on the host that just failed.
        policy.pop("retry_host_predicate")
        policy.pop("host_selection_retry_max_attempts")
    if retries.get("retryRemoteLocalities") is True:
        policy["retry_priority"] = {"name": "envoy.retry_priorities.previous_priorities", "typed_config": {
            "@type": _T + "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
            "update_frequency": 2}}
    return policy


def _fault(fault: Mapping[str, Any]) -> dict[str, Any] | None:
    """``TranslateFault``: delay (fixed only) and abort; None when neither is usable."""
    out: dict[str, Any] = {"@type": _T + "envoy.extensions.filters.http.fault.v3.HTTPFault"}
    delay = fault.get("delay")
    if isinstance(delay, Mapping) and delay.get("fixedDelay") is not None:
        if isinstance(delay.get("percentage"), Mapping):
            pct = {"numerator": int(float(delay["percentage"].get("value", 0)) * 10000), "denominator": "MILLION"}
        else:
            pct = {"numerator": int(delay.get("percent", 0)), "denominator": "HUNDRED"}
        out["delay"] = {"fixed_delay": _duration(delay["fixedDelay"], "fault.delay.fixedDelay"), "percentage": pct}
    abort = fault.get("abort")
    if isinstance(abort, Mapping) and abort.get("httpStatus") is not None:
        out["abort"] = {"http_status": int(abort["httpStatus"])}
        if isinstance(abort.get("percentage"), Mapping):
            out["abort"]["percentage"] = {"numerator": int(float(abort["percentage"].get("value", 0)) * 10000),
                                          "denominator": "MILLION"}
    return out if ("delay" in out or "abort" in out) else None


def _route_match(match: Mapping[str, Any] | None) -> dict[str, Any]:
    """``TranslateRouteMatch`` for URI matches (VirtualService semantics: plain ``prefix``)."""
    out: dict[str, Any] = {"prefix": "/"}
    uri = (match or {}).get("uri") or {}
    if "exact" in uri:
        out = {"path": uri["exact"]}
    elif "prefix" in uri:
        out = {"prefix": uri["prefix"]}
    elif "regex" in uri:
        out = {"safe_regex": {"regex": uri["regex"]}}
    out["case_sensitive"] = not bool((match or {}).get("ignoreUriCase", False))
    return out


# Envoy's retry_on words that cover an upstream status code (router/retry_state_impl.cc).
_RETRY_ON_STATUS = {"5xx": range(500, 600), "gateway-error": (502, 503, 504)}


def retries_for_status(policy: Mapping[str, Any] | None, status: int) -> int:
    """How many retries Envoy makes for a request whose every attempt is answered ``status``, under
    the route's ``retry_policy`` (None: none). ``retriable-status-codes`` counts only with the codes
    listed in ``retriable_status_codes`` (Envoy's RetryStateImpl::wouldRetryFromHeaders)."""
    if not policy:
        return 0
    words = {w.strip() for w in str(policy.get("retry_on", "")).split(",")}
    if "retriable-status-codes" in words and status in policy.get("retriable_status_codes", ()):
        return int(policy.get("num_retries", 1))
    if any(status in _RETRY_ON_STATUS.get(w, ()) for w in words):
        return int(policy.get("num_retries", 1))
    return 0


def route_retry_policy(mesh: Mesh, path: str) -> dict[str, Any] | None:
    """The retry policy of the gateway route that ``path`` matches first (None: no retries), as
    ``gateway_bootstrap`` builds it from the mesh's VirtualService."""
    vs = mesh.object("VirtualService")
    for route in (_http_routes(mesh, vs) if vs else []):
        match = route["match"]
        if ("prefix" in match and path.startswith(match["prefix"])) or match.get("path") == path:
            policy: dict[str, Any] | None = route["route"].get("retry_policy")
            return policy
    return None


def _http_routes(mesh: Mesh, vs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``buildHTTPRoutesForVirtualService`` for one VirtualService (matches in order, catch-all stops)."""
    ns = (vs.get("metadata") or {}).get("namespace", mesh.workload_namespace)
    out: list[dict[str, Any]] = []
    for i, http in enumerate((vs.get("spec") or {}).get("http", [])):
        dests = http.get("route") or []
        if len(dests) != 1:
            raise UsageError(f"VirtualService http[{i}] has {len(dests)} destinations; the docker mesh translates "
                             "exactly one per route (the seed's shape)", "use one destination per route")
        dest = dests[0].get("destination") or {}
        port = int(((dest.get("port") or {}).get("number")) or CONDUCTOR_PORT)
        cluster = outbound_cluster_name(dest.get("host", ""), ns, port, dest.get("subset", ""))
        action: dict[str, Any] = {"cluster": cluster, "timeout": "0s", "max_grpc_timeout": "0s"}
        if http.get("timeout") is not None:
            action["timeout"] = _duration(http["timeout"], f"http[{i}].timeout")
            action["max_grpc_timeout"] = action["timeout"]
        retry = _retry_policy(http.get("retries"), exclude_503=mesh.exclude_503_from_default_retries)
        if retry is not None:
            action["retry_policy"] = retry
        for match in (http.get("match") or [None]):
            r: dict[str, Any] = {"match": _route_match(match), "route": dict(action),
                                 "decorator": {"operation": f"{cluster.split('|')[3]}:{port}{_route_match(match).get('prefix', '/')}*"}}
            if http.get("name"):
                r["name"] = http["name"]
            if http.get("fault"):
                fault = _fault(http["fault"])
                if fault is not None:
                    r["typed_per_filter_config"] = {FAULT_FILTER: fault}
            out.append(r)
            if r["match"].get("prefix") == "/" and len(r["match"]) == 2:  # IsCatchAllRoute
                return out
    return out


def route_config(mesh: Mesh, name: str, port: int) -> dict[str, Any]:
    """The gateway's route configuration: one virtual host per VirtualService host bound to the Gateway."""
    gw = mesh.object("Gateway") or {}
    gw_name = (gw.get("metadata") or {}).get("name", "")
    hosts = set(mesh.gateway_hosts)
    vhosts = []
    for vs in (d for d in mesh.objects if d.get("kind") == "VirtualService"):
        spec = vs.get("spec") or {}
        gateways = spec.get("gateways") or []
        if gw_name not in gateways and f"{(gw.get('metadata') or {}).get('namespace')}/{gw_name}" not in gateways:
            continue
        routes = _http_routes(mesh, vs)
        for host in spec.get("hosts", []):
            if host in hosts or "*" in hosts:
                vhosts.append({"name": f"{host}:{port}", "domains": [host, f"{host}:*"], "routes": routes,
                               "include_request_attempt_count": True})
    if not vhosts:
        # gateway.go: no virtual host -> a blackhole host answering 404.
        vhosts.append({"name": f"blackhole:{port}", "domains": ["*"],
                       "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}]})
    return {"name": name, "virtual_hosts": vhosts, "validate_clusters": False}


# -- clusters (cluster_traffic_policy.go, cluster_tls.go) --------------------------------------------------
def _thresholds(pool: Any) -> dict[str, Any]:
    return {"max_connections": pool.max_connections, "max_pending_requests": pool.max_pending_requests,
            "max_requests": pool.max_requests, "max_retries": pool.max_retries, "track_remaining": True}


def _merged_policy(top: Mapping[str, Any], subset: Mapping[str, Any] | None, port: int) -> dict[str, Any]:
    """The cluster's policy on ``port``: :func:`harness.oracles.outlier.policy_for_port` (istiod's
    ``MergeSubsetTrafficPolicy``: port-level settings replace, they do not merge)."""
    return policy_for_port(top, subset, port)


def _lb_policy(lb: Mapping[str, Any] | None) -> str:
    simple = (lb or {}).get("simple")
    if simple and simple not in _LB:
        raise UsageError(f"loadBalancer.simple {simple!r} is not translated for the docker mesh",
                         f"use one of {sorted(_LB)}")
    return _LB.get(simple or "", "LEAST_REQUEST")  # applySimpleDefaultLoadBalancer: LEAST_REQUEST


def _lb_priority(proxy: Mapping[str, str], endpoint: Mapping[str, str]) -> int:
    """istiod's ``util.LbPriority``: 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 none."""
    if proxy.get("region", "") == endpoint.get("region", ""):
        if proxy.get("zone", "") == endpoint.get("zone", ""):
            return 0 if proxy.get("sub_zone", "") == endpoint.get("sub_zone", "") else 1
        return 2
    return 3


def _load_assignment(name: str, endpoints: Sequence[Endpoint], *, proxy_zone: str = "",
                     failover: bool = False) -> dict[str, Any]:
    """One locality group per zone. With ``failover`` (istiod's ``applyLocalityFailover``, the default
    when the mesh's locality LB is on (meshConfig.localityLbSetting.enabled, true by default) and the
    cluster has outlier detection): each group's priority is ``LbPriority`` against the client
    proxy's locality, renumbered 0..N without gaps, so Envoy sends everything to the proxy's own
    zone and fails over to the next priority only as those hosts are ejected."""
    by_zone: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_zone.setdefault(ep.zone, []).append(ep)
    groups: list[dict[str, Any]] = [{"locality": _locality(zone), "lb_endpoints": [
        {"endpoint": {"address": _address(ep.address, ep.port), "hostname": ep.name}} for ep in eps]}
        for zone, eps in sorted(by_zone.items())]
    if failover:
        proxy = _locality(proxy_zone)
        raw = [_lb_priority(proxy, g["locality"]) for g in groups]
        rank = {p: i for i, p in enumerate(sorted(set(raw)))}
        for g, p in zip(groups, raw):
            if rank[p]:
                g["priority"] = rank[p]
    return {"cluster_name": name, "endpoints": groups}


def _locality_failover(policy: Mapping[str, Any]) -> bool:
    """``GetLocalityLbSetting`` with the default mesh config: on unless the rule disables it."""
    setting = (policy.get("loadBalancer") or {}).get("localityLbSetting")
    if setting is None:
        return True
    if setting.get("enabled") is False:
        return False
    if set(setting) - {"enabled"}:
        raise UsageError(f"localityLbSetting {sorted(set(setting) - {'enabled'})} is not translated",
                         "the seed sets none; use enabled only")
    return True


def _upstream_tls(name: str, tls: TlsBundle, sans: Sequence[str]) -> dict[str, Any]:
    return {"name": _TLS, "typed_config": {
        "@type": _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": _istio_sni(name),
        "common_tls_context": {
            "alpn_protocols": ["istio-peer-exchange", "istio"],
            "tls_certificates": [_tls_certificate(tls.cert, tls.key)],
            "validation_context": {
                "trusted_ca": _data(tls.ca),
                "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": s}} for s in sans]},
        }}}


def _apply_connection_pool(cluster: dict[str, Any], pool_block: Any, what: str) -> None:
    """``applyConnectionPool`` (pilot/pkg/networking/core/cluster_traffic_policy.go): circuit-breaker
    thresholds (istiod's MaxUint32 defaults where unset) and ``max_requests_per_connection``."""
    pool, _ = map_istio_connection_pool(pool_block, path=f"{what}.connectionPool")
    cluster["circuit_breakers"] = {"thresholds": [_thresholds(pool)]}
    connect_timeout = ((pool_block or {}).get("tcp") or {}).get("connectTimeout")
    if connect_timeout is not None:  # applyConnectionPool: tcp.connectTimeout -> cluster connect_timeout
        cluster["connect_timeout"] = _duration(connect_timeout, f"{what}.connectionPool.tcp.connectTimeout")
    http_options: dict[str, Any] = {"@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                                    "explicit_http_config": {"http_protocol_options": {}}}
    if pool.max_requests_per_connection:
        http_options["common_http_protocol_options"] = {"max_requests_per_connection": pool.max_requests_per_connection}
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http_options}


def _cluster(mesh: Mesh, name: str, policy: Mapping[str, Any], endpoints: Sequence[Endpoint],
             tls: TlsBundle | None, what: str, proxy_zone: str = "") -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name, "type": "STATIC", "connect_timeout": MESH_CONNECT_TIMEOUT,
        "lb_policy": _lb_policy(policy.get("loadBalancer")),
        "common_lb_config": {},
    }
    _apply_connection_pool(cluster, policy.get("connectionPool"), what)
    if policy.get("outlierDetection") is not None:
        # harness.oracles.outlier is the one mapping of outlierDetection (applyOutlierDetection).
        od = map_istio_outlier_detection(policy["outlierDetection"], path=f"{what}.outlierDetection")
        if od.accepted and od.envoy_fields is not None:
            cluster["outlier_detection"] = dict(od.envoy_fields)
            if od.healthy_panic_threshold is not None:
                cluster["common_lb_config"]["healthy_panic_threshold"] = {"value": od.healthy_panic_threshold}
    # applyLoadBalancer runs after applyOutlierDetection: failover only with outlier detection.
    cluster["load_assignment"] = _load_assignment(name, endpoints, proxy_zone=proxy_zone,
                                                  failover="outlier_detection" in cluster
                                                  and _locality_failover(policy))
    if tls is not None:
        cluster["transport_socket"] = _upstream_tls(name, tls, [mesh.conductor_identity])
    if not cluster["common_lb_config"]:
        del cluster["common_lb_config"]
    return cluster


def _mtls_mode(mesh: Mesh) -> str:
    """PeerAuthentication mode for the conductor's namespace (no object: PERMISSIVE, Istio's default)."""
    pa = mesh.object("PeerAuthentication")
    mode = (((pa or {}).get("spec") or {}).get("mtls") or {}).get("mode") or "PERMISSIVE"
    if mode == "UNSET":
        mode = "PERMISSIVE"
    if mode not in ("STRICT", "PERMISSIVE", "DISABLE"):
        raise UsageError(f"PeerAuthentication mtls.mode {mode!r} is unknown", "use STRICT, PERMISSIVE or DISABLE")
    return mode


def outbound_clusters(mesh: Mesh, endpoints: Sequence[Endpoint], tls: TlsBundle | None, *,
                      port: int = CONDUCTOR_PORT, proxy_zone: str = "") -> list[dict[str, Any]]:
    """The conductor's outbound cluster and one per DestinationRule subset, STATIC over ``endpoints``.

    ``tls`` None means plaintext upstream (PeerAuthentication DISABLE); otherwise ISTIO_MUTUAL (auto
    mTLS: the destination's sidecars carry Istio certificates). ``proxy_zone``: the client proxy's
    own zone ("" = none, as a pod on a node without a zone label); with outlier detection it sets
    the endpoints' failover priorities (see ``_load_assignment``)."""
    dr = mesh.object("DestinationRule") or {}
    spec = dr.get("spec") or {}
    if not dr and mesh.mesh_default_policy:  # no rule for the host: the mesh-wide default applies
        spec = {"host": "conductor", "trafficPolicy": dict(mesh.mesh_default_policy)}
    ns = (dr.get("metadata") or {}).get("namespace", mesh.workload_namespace)
    host = spec.get("host", "conductor")
    if fqdn(host, ns) != fqdn("conductor", mesh.workload_namespace):
        raise UsageError(f"the DestinationRule's host {host} is not the conductor's Service",
                         "the docker mesh translates the conductor's rule")
    if not endpoints:
        raise UsageError("no conductor endpoints for the outbound cluster", "pass the replicas' sidecar addresses")
    top = spec.get("trafficPolicy") or {}
    clusters = [_cluster(mesh, outbound_cluster_name(host, ns, port), _merged_policy(top, None, port), endpoints, tls,
                         "spec.trafficPolicy", proxy_zone)]
    for i, subset in enumerate(spec.get("subsets") or []):
        labels = subset.get("labels") or {}
        members = list(endpoints) if all(mesh.workload_labels.get(k) == v for k, v in labels.items()) else []
        clusters.append(_cluster(mesh, outbound_cluster_name(host, ns, port, subset["name"]),
                                 _merged_policy(top, subset.get("trafficPolicy"), port), members, tls,
                                 f"spec.subsets[{i}].trafficPolicy", proxy_zone))
    return clusters


# -- bootstraps --------------------------------------------------------------------------------------------
def _hcm(stat_prefix: str, route: dict[str, Any], filters: list[dict[str, Any]], *, gateway: bool) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix, "route_config": route, "access_log": _access_log(),
        "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.router.v3.Router"}}],
        "normalize_path": True, "merge_slashes": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
    }
    if gateway:
        hcm["use_remote_address"] = True
        hcm["forward_client_cert_details"] = "SANITIZE_SET"
    else:
        hcm["forward_client_cert_details"] = "APPEND_FORWARD"
        hcm["set_current_client_cert_details"] = {"subject": True, "dns": True, "uri": True}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


def _tls_inspector() -> dict[str, Any]:
    return {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
        "@type": _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}


def _original_dst() -> dict[str, Any]:
    return {"name": "envoy.filters.listener.original_dst", "typed_config": {
        "@type": _T + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}


def app_probe_path(container: str = "conductor") -> str:
    """The rewritten readinessProbe path (the injector's ``rewriteAppHTTPProbe``: /app-health/<c>/readyz)."""
    return f"/app-health/{container}/readyz"


def _plain_http_listener(name: str, port: int, routes: list[dict[str, Any]], address: str) -> dict[str, Any]:
    route = {"name": name, "validate_clusters": False, "virtual_hosts": [{"name": name, "domains": ["*"],
                                                                          "routes": routes}]}
    hcm = {"@type": _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": name, "route_config": route, "http_filters": [{
               "name": "envoy.filters.http.router",
               "typed_config": {"@type": _T + "envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"name": name, "address": _address(address, port), "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}


def gateway_bootstrap(mesh: Mesh, upstream: Sequence[Endpoint], tls: TlsBundle, *, admin_port: int,
                      listen_port: int, admin_address: str = "127.0.0.1",
                      listen_address: str = "0.0.0.0", zone: str = "",
                      health_port: int | None = None) -> dict[str, Any]:
    """The ingress gateway: the Gateway's HTTPS server (SNI-matched filter chain, SIMPLE TLS with the
    ``credentialName`` certificate) on ``listen_port``, the VirtualService's routes, and one STATIC
    outbound cluster per destination with the DestinationRule's policy and ISTIO_MUTUAL upstream TLS
    to ``upstream`` (the conductor replicas' sidecar inbound ports). ``zone``: the gateway's own
    zone (its node's ``topology.kubernetes.io/zone``; "" = none). With outlier detection, istiod's
    default locality failover puts the replicas of the gateway's zone first (priority 0).
    ``health_port``: also serve ``/healthz/ready`` there (plain HTTP, 200 once Envoy listens), the
    port the istio-ingressgateway Deployment's readinessProbe reads; a LoadBalancer in front of
    several gateways health-checks it."""
    _check_port(listen_port, "listen_port")
    if not tls.server_cert or not tls.server_key:
        raise UsageError("the gateway needs the credentialName certificate (server_cert, server_key)",
                         "issue it with CertificateAuthority.issue_server(mesh.gateway_hosts)")
    gw = mesh.object("Gateway") or {}
    gw_meta = gw.get("metadata") or {}
    servers = (gw.get("spec") or {}).get("servers") or []
    https = [s for s in servers if str((s.get("port") or {}).get("protocol", "")).upper() == "HTTPS"]
    if len(https) != 1:
        raise UsageError(f"the Gateway has {len(https)} HTTPS servers; the docker mesh translates exactly one",
                         "keep the seed's single HTTPS server")
    server = https[0]
    mode = (server.get("tls") or {}).get("mode")
    if mode != "SIMPLE":
        raise UsageError(f"Gateway server tls.mode {mode!r} is not translated", "the seed's server uses SIMPLE")
    port = int(server["port"]["number"])
    rc_name = f"https.{port}.{server['port'].get('name', 'https')}.{gw_meta.get('name')}.{gw_meta.get('namespace')}"
    downstream_tls = {"name": _TLS, "typed_config": {
        "@type": _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"],
                               "tls_certificates": [_tls_certificate(tls.server_cert, tls.server_key)]}}}
    listener = {
        "name": f"0.0.0.0_{port}", "address": _address(listen_address, listen_port),
        "listener_filters": [_tls_inspector()],
        "filter_chains": [{
            "filter_chain_match": {"server_names": list(server.get("hosts") or [])},
            "transport_socket": downstream_tls,
            "filters": [_hcm(f"outbound_0.0.0.0_{port}", route_config(mesh, rc_name, port),
                             [{"name": FAULT_FILTER, "typed_config": {
                                 "@type": _T + "envoy.extensions.filters.http.fault.v3.HTTPFault"}}], gateway=True)],
        }],
    }
    upstream_tls = None if _mtls_mode(mesh) == "DISABLE" else tls
    return {
        "node": {"id": f"router~0.0.0.0~{GATEWAY_SERVICE_ACCOUNT}.{GATEWAY_NAMESPACE}~{GATEWAY_NAMESPACE}.svc.cluster.local",
                 "cluster": f"{GATEWAY_SERVICE_ACCOUNT}.{GATEWAY_NAMESPACE}", "locality": _locality(zone)},
        "admin": _admin(admin_address, admin_port),
        "static_resources": {"listeners": [listener] + ([_plain_http_listener(
                                 "health", _check_port(health_port, "health_port"), [{
                                     "match": {"path": HEALTH_PATH}, "direct_response": {"status": 200}}],
                                 listen_address)] if health_port else []),
                             "clusters": outbound_clusters(mesh, upstream, upstream_tls, proxy_zone=zone)},
    }


# -- authorization (security/authz/model) ------------------------------------------------------------------
def _string_or_regex(value: str, prefix: str = "") -> dict[str, Any]:
    """``matcher.StringMatcherWithPrefix``: ``*`` alone -> any; ``*x`` suffix; ``x*`` prefix; else exact."""
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    return {"exact": prefix + value}


def _path_permission(path: str) -> dict[str, Any]:
    # matcher.PathMatcher: "/x/*" -> prefix "/x/", "*" -> any, "*x" -> suffix, else exact.
    return {"url_path": {"path": _string_or_regex(path)}}


def _or_rules(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {f"or_{key}": {key: items}}


def rbac_filter(mesh: Mesh) -> dict[str, Any] | None:
    """The AuthorizationPolicies selecting the conductor as Envoy's RBAC HTTP filter (ALLOW); None when
    none selects it (then every authenticated request passes, as in Istio)."""
    policies: dict[str, Any] = {}
    selected = False
    for ap in (d for d in mesh.objects if d.get("kind") == "AuthorizationPolicy"):
        meta, spec = ap.get("metadata") or {}, ap.get("spec") or {}
        if meta.get("namespace", mesh.workload_namespace) != mesh.workload_namespace:
            continue
        selector = ((spec.get("selector") or {}).get("matchLabels")) or {}
        if any(mesh.workload_labels.get(k) != v for k, v in selector.items()):
            continue
        selected = True
        action = spec.get("action", "ALLOW")
        if action != "ALLOW":
            raise UsageError(f"AuthorizationPolicy action {action} is not translated", "the seed uses ALLOW")
        for i, rule in enumerate(spec.get("rules") or []):
            principals: list[dict[str, Any]] = []
            for src in (f.get("source") or {} for f in rule.get("from") or []):
                ids = []
                if src.get("principals"):
                    ids.append(_or_rules([{"authenticated": {"principal_name": _string_or_regex(p, "spiffe://")}}
                                          for p in src["principals"]], "ids"))
                if src.get("namespaces"):
                    ids.append(_or_rules([{"authenticated": {"principal_name": {"safe_regex": {
                        "regex": f".*/ns/{n.replace('*', '.*')}/.*"}}}}
                        for n in src["namespaces"]], "ids"))
                unsupported = set(src) - {"principals", "namespaces"}
                if unsupported:
                    raise UsageError(f"AuthorizationPolicy source fields {sorted(unsupported)} are not translated",
                                     "the seed uses principals and namespaces")
                principals.append({"and_ids": {"ids": ids or [{"any": True}]}})
            permissions: list[dict[str, Any]] = []
            for op in ((t.get("operation") or {}) for t in rule.get("to") or []):
                rules = []
                if op.get("methods"):
                    rules.append(_or_rules([{"header": {"name": ":method", "string_match": {"exact": m}}}
                                            for m in op["methods"]], "rules"))
                if op.get("paths"):
                    rules.append(_or_rules([_path_permission(p) for p in op["paths"]], "rules"))
                unsupported = set(op) - {"methods", "paths"}
                if unsupported:
                    raise UsageError(f"AuthorizationPolicy operation fields {sorted(unsupported)} are not translated",
                                     "the seed uses methods and paths")
                permissions.append({"and_rules": {"rules": rules or [{"any": True}]}})
            policies[f"ns[{meta.get('namespace')}]-policy[{meta.get('name')}]-rule[{i}]"] = {
                "permissions": permissions or [{"any": True}], "principals": principals or [{"any": True}]}
    if not selected:
        return None
    # An ALLOW policy without rules selects the workload and admits nothing (Envoy: no policy matches).
    return {"name": RBAC_FILTER, "typed_config": {
        "@type": _T + "envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": policies}}}


def sidecar_bootstrap(mesh: Mesh, replica: Endpoint, tls: TlsBundle, *, admin_port: int, inbound_port: int,
                      app_port: int, admin_address: str = "127.0.0.1",
                      listen_address: str = "0.0.0.0", captured: bool = False,
                      readiness_path: str = "") -> dict[str, Any]:
    """One conductor replica's sidecar: an inbound listener on ``inbound_port`` requiring a client
    certificate (PeerAuthentication STRICT), the AuthorizationPolicy as the RBAC HTTP filter, and the
    local app on 127.0.0.1:``app_port`` as istiod's ``inbound|<port>||`` cluster.

    ``captured``: the pod's inbound TCP is redirected here by iptables (harness.mesh.capture), so
    the listener is istiod's ``virtualInbound`` as it is then: the original-destination listener
    filter restores the port the client named, and the service port's chains match it
    (``destination_port``); a connection to any other port, 15006 itself included, matches no chain
    and is closed (istiod's virtualInbound has no chain for direct 15006 traffic either).
    ``readiness_path``: the app's readinessProbe as the injector rewrites it
    (:func:`app_probe_path` on :data:`AGENT_PORT`, plain HTTP, not captured), so a kubelet-like
    health check still reaches the app while every other inbound connection needs mTLS."""
    _check_port(inbound_port, "inbound_port")
    _check_port(app_port, "app_port")
    service_port = CONDUCTOR_PORT
    cluster = inbound_cluster_name(service_port)
    route = {"name": cluster, "validate_clusters": False, "virtual_hosts": [{
        "name": f"inbound|http|{service_port}", "domains": ["*"],
        "routes": [{"name": "default", "match": {"prefix": "/"}, "decorator": {"operation": f"{cluster}:{service_port}/*"},
                    # BuildDefaultHTTPInboundRoute: no timeout; ENABLE_INBOUND_RETRY_POLICY (on by
                    # default since Istio 1.24) retries requests reset before the app saw them.
                    "route": {"cluster": cluster, "timeout": "0s", "max_stream_duration": {
                        "max_stream_duration": "0s", "grpc_timeout_header_max": "0s"},
                        "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2}}}]}]}
    rbac = rbac_filter(mesh)
    hcm = _hcm(f"inbound_0.0.0.0_{service_port}", route, [rbac] if rbac else [], gateway=False)
    mode = _mtls_mode(mesh)
    chains: list[dict[str, Any]] = []
    if mode in ("STRICT", "PERMISSIVE"):
        chains.append({
            "name": f"0.0.0.0_{service_port}_mtls",
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": {"name": _TLS, "typed_config": {
                "@type": _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": {"tls_certificates": [_tls_certificate(tls.cert, tls.key)],
                                       "validation_context": {"trusted_ca": _data(tls.ca)}}}},
            "filters": [hcm]})
    if mode in ("PERMISSIVE", "DISABLE"):
        chains.append({"name": f"0.0.0.0_{service_port}_plaintext",
                       "filter_chain_match": {"transport_protocol": "raw_buffer"}, "filters": [hcm]})
    if captured:
        for chain in chains:
            chain["filter_chain_match"]["destination_port"] = service_port
    listeners = [{"name": "virtualInbound", "address": _address(listen_address, inbound_port),
                  "listener_filters": ([_original_dst()] if captured else []) + [_tls_inspector()],
                  "filter_chains": chains}]
    clusters = [inbound_cluster(mesh, app_port)]
    if readiness_path:
        probe_cluster = "agent-app-probe"   # pilot-agent calls the app itself, outside the inbound limits
        listeners.append(_plain_http_listener("agent", AGENT_PORT, [{
            "match": {"path": app_probe_path()},
            "route": {"cluster": probe_cluster, "prefix_rewrite": readiness_path, "timeout": "5s"}}], listen_address))
        clusters.append({"name": probe_cluster, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": probe_cluster, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address("127.0.0.1", app_port)}}]}]}})
    return {
        "node": {"id": f"sidecar~{replica.address}~{replica.name}.{mesh.workload_namespace}~"
                       f"{mesh.workload_namespace}.svc.cluster.local",
                 "cluster": f"conductor.{mesh.workload_namespace}", "locality": _locality(replica.zone)},
        "admin": _admin(admin_address, admin_port),
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def inbound_cluster(mesh: Mesh, app_port: int, port: int = CONDUCTOR_PORT) -> dict[str, Any]:
    """The sidecar's ``inbound|<port>||`` cluster to the local app, with the receiver-side limits istiod
    gives it: pilot/pkg/networking/core/cluster_builder.go ``buildInboundCluster`` takes the
    DestinationRule's top-level policy on the port (``MergeTrafficPolicy(nil, dr.TrafficPolicy, port)``,
    subsets do not apply to inbound) and ``applyTrafficPolicy`` applies only its connection pool on the
    inbound direction ("when users specify circuit breakers, they need to be set on the receiver end").
    So the seed's maxConnections/http1MaxPendingRequests/http2MaxRequests also cap each replica's own
    sidecar: overflow there is a local 503 (flag UO) from the destination's Envoy."""
    name = inbound_cluster_name(port)
    dr = mesh.object("DestinationRule") or {}
    policy, _ = port_level_policy((dr.get("spec") or {}).get("trafficPolicy") or {}, port)
    cluster: dict[str, Any] = {"name": name, "type": "STATIC", "connect_timeout": MESH_CONNECT_TIMEOUT,
                               "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                                   {"endpoint": {"address": _address("127.0.0.1", app_port)}}]}]}}
    _apply_connection_pool(cluster, (policy or {}).get("connectionPool"), "spec.trafficPolicy")
    return cluster



def plain_proxy_bootstrap(mesh: Mesh, endpoints: Sequence[Endpoint], *, admin_port: int, listen_port: int,
                          address: str = "127.0.0.1", event_log_path: str | None = None,
                          retry_policy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A client proxy without TLS: a plaintext HTTP listener whose every request goes to the
    conductor's outbound cluster (the DestinationRule's translation: pool, load balancer, outlier
    detection) over plaintext ``endpoints``, no retries. The oracle-vs-Envoy test's rig: the
    cluster is exactly what the gateway gets, without the gateway's TLS and routes around it.
    ``event_log_path``: Envoy's outlier-detection event log (one JSON line per eject/uneject).
    ``retry_policy``: the route's retry policy (e.g. :func:`route_retry_policy` of a VirtualService path)."""
    _check_port(listen_port, "listen_port")
    cluster = outbound_clusters(mesh, endpoints, None)[0]
    route = {"name": "local", "validate_clusters": False, "virtual_hosts": [{
        "name": "local", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster["name"], "timeout": "0s",
                                                        **({"retry_policy": dict(retry_policy)} if retry_policy else {})}}]}]}
    out: dict[str, Any] = {
        "node": {"id": "client~127.0.0.1~oracle-client.local~local", "cluster": "oracle-client"},
        "admin": _admin(address, admin_port),
        "static_resources": {
            "listeners": [{"name": "local_http", "address": _address(address, listen_port),
                           "filter_chains": [{"filters": [_hcm("local_http", route, [], gateway=True)]}]}],
            "clusters": [cluster]},
    }
    if event_log_path:
        out["cluster_manager"] = {"outlier_detection": {"event_log_path": event_log_path}}
    return out
