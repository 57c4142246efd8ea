"""harness.kube.istio at its boundaries: the exact commands (recording runner) and Kubernetes API
requests (a real ``kubernetes`` client over an in-memory API server: the live API is mocked,
because kind cannot create a cluster on this machine), and the parsing of Envoy's own output.

The ``/stats`` and ``/clusters`` texts below are written from Envoy's documented formats
(``name: value`` lines; ``<cluster>::<host>::<stat>::<value>`` with ``health_flags`` as
``HostUtility::healthFlagsToString`` prints them) for the cluster Istio names
``outbound|8080||conductor.i2s-staging.svc.cluster.local``.
"""
from __future__ import annotations

from datetime import datetime, timezone

import logging
from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError, PlatformUnavailable, UsageError
from harness.kube.client import KubeTarget
from harness.analysis.envoy_stats import cluster_stats, outlier_snapshot, parse_clusters, parse_envoy_stats
from harness.mesh import outbound_cluster_name
from harness.mesh.certs import CertificateAuthority
from harness.kube.istio import (CHART_REPO, GATEWAY_HOSTS, GATEWAY_LABELS, ISTIO_VERSION, IstioMesh,
                                gateway_values, helm_install_argv, istiod_values,
                                kind_gateway_ports, kind_host_port, mesh_objects, server_tls)
from harness.kube.kind_config import load_kind_config
from harness.oracles.ejection_analysis import analyze_ejections
from tests.unit.kube_fakes import FakeKube, RecordingRunner, deployment, pod

CLUSTER = "outbound|8080||conductor.i2s-staging.svc.cluster.local"
TARGET = KubeTarget("kind-i2s-harness-r1", "/tmp/i2s-harness/i2s-harness-r1.kubeconfig")
KC = ["--kubeconfig", TARGET.kubeconfig, "--kube-context", TARGET.context]
KUBECTL = ["kubectl", "--kubeconfig", TARGET.kubeconfig, "--context", TARGET.context]

STATS_TEXT = f"""\
cluster.{CLUSTER}.circuit_breakers.default.cx_open: 0
cluster.{CLUSTER}.circuit_breakers.default.rq_pending_open: 1
cluster.{CLUSTER}.outlier_detection.ejections_active: 1
cluster.{CLUSTER}.outlier_detection.ejections_consecutive_5xx: 0
cluster.{CLUSTER}.outlier_detection.ejections_detected_consecutive_gateway_failure: 2
cluster.{CLUSTER}.outlier_detection.ejections_enforced_consecutive_gateway_failure: 1
cluster.{CLUSTER}.outlier_detection.ejections_enforced_total: 1
cluster.{CLUSTER}.outlier_detection.ejections_overflow: 1
cluster.{CLUSTER}.upstream_cx_overflow: 3
cluster.{CLUSTER}.upstream_rq_pending_overflow: 57
cluster.{CLUSTER}.upstream_rq_retry: 42
cluster.{CLUSTER}.upstream_rq_retry_limit_exceeded: 14
cluster.{CLUSTER}.upstream_rq_retry_success: 28
cluster.{CLUSTER}.upstream_rq_time: P0(1.0,1.0) P25(1.025,1.025) P50(2.05,2.05) P75(3.075,3.075) P90(4.0,4.0) P95(4.05,4.05) P99(5.0,5.0) P99.5(5.05,5.05) P99.9(5.1,5.1) P100(6.0,6.0)
cluster.{CLUSTER}.upstream_cx_connect_ms: No recorded values
cluster.outbound|9090||conductor.i2s-staging.svc.cluster.local.upstream_rq_retry: 5
server.live: 1
"""

CLUSTERS_TEXT = f"""\
{CLUSTER}::observability_name::outbound|8080||conductor.i2s-staging.svc.cluster.local
{CLUSTER}::outlier::success_rate_average::-1
{CLUSTER}::outlier::success_rate_ejection_threshold::-1
{CLUSTER}::outlier::local_origin_success_rate_average::-1
{CLUSTER}::outlier::local_origin_success_rate_ejection_threshold::-1
{CLUSTER}::default_priority::max_connections::100
{CLUSTER}::default_priority::max_pending_requests::50
{CLUSTER}::default_priority::max_requests::100
{CLUSTER}::default_priority::max_retries::4294967295
{CLUSTER}::high_priority::max_connections::1024
{CLUSTER}::high_priority::max_pending_requests::1024
{CLUSTER}::high_priority::max_requests::1024
{CLUSTER}::high_priority::max_retries::3
{CLUSTER}::added_via_api::true
{CLUSTER}::eds_service_name::outbound|8080||conductor.i2s-staging.svc.cluster.local
{CLUSTER}::10.244.1.5:8080::cx_active::4
{CLUSTER}::10.244.1.5:8080::cx_connect_fail::0
{CLUSTER}::10.244.1.5:8080::cx_total::31
{CLUSTER}::10.244.1.5:8080::rq_active::0
{CLUSTER}::10.244.1.5:8080::rq_error::5
{CLUSTER}::10.244.1.5:8080::rq_success::301
{CLUSTER}::10.244.1.5:8080::rq_timeout::0
{CLUSTER}::10.244.1.5:8080::rq_total::306
{CLUSTER}::10.244.1.5:8080::hostname::
{CLUSTER}::10.244.1.5:8080::health_flags::/failed_outlier_check
{CLUSTER}::10.244.1.5:8080::weight::1
{CLUSTER}::10.244.1.5:8080::region::
{CLUSTER}::10.244.1.5:8080::zone::us-east-1a
{CLUSTER}::10.244.1.5:8080::sub_zone::
{CLUSTER}::10.244.1.5:8080::canary::false
{CLUSTER}::10.244.1.5:8080::priority::0
{CLUSTER}::10.244.1.5:8080::success_rate::-1.0
{CLUSTER}::10.244.1.5:8080::local_origin_success_rate::-1.0
{CLUSTER}::10.244.2.7:8080::cx_active::6
{CLUSTER}::10.244.2.7:8080::rq_error::0
{CLUSTER}::10.244.2.7:8080::rq_success::512
{CLUSTER}::10.244.2.7:8080::rq_total::512
{CLUSTER}::10.244.2.7:8080::hostname::
{CLUSTER}::10.244.2.7:8080::health_flags::healthy
{CLUSTER}::10.244.2.7:8080::zone::us-east-1b
{CLUSTER}::10.244.2.7:8080::success_rate::-1.0
outbound|8080|v2-1-0|conductor.i2s-staging.svc.cluster.local::10.244.2.7:8080::health_flags::healthy
BlackHoleCluster::default_priority::max_connections::1024
"""


def gateway_service(node_ports=(30080, 30443), type_="NodePort") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway",
                                                                "namespace": "istio-system"},
            "spec": {"type": type_, "ports": [
                {"name": "status-port", "port": 15021, "nodePort": 31021},
                {"name": "http2", "port": 80, "nodePort": node_ports[0]},
                {"name": "https", "port": 443, "nodePort": node_ports[1]}]}}


def fake_cluster(service: dict | None = None) -> FakeKube:
    kube = FakeKube()
    for name, labels in (("istiod", {"app": "istiod"}), ("istio-ingressgateway", GATEWAY_LABELS)):
        kube.objects[f"/apis/apps/v1/namespaces/istio-system/deployments/{name}"] = deployment(
            name, "istio-system", replicas=1, ready=1, match_labels=labels)
    kube.objects["/api/v1/namespaces/istio-system/services/istio-ingressgateway"] = service or gateway_service()
    return kube


def mesh(tmp_path: Path, runner: RecordingRunner, kube: FakeKube, which=lambda tool: f"/usr/bin/{tool}") -> IstioMesh:
    return IstioMesh(TARGET, runner, kube.apis(), run_id="r1", work_dir=tmp_path, which=which, ready_timeout=5,
                     interval=0, sleep=lambda s: None)


HELM_OK = (("helm", "version"), "v3.19.0+g3d8990f\n")   # `helm version --short` of Helm 3.19.0


def test_install_runs_the_pinned_charts_in_order_then_waits(tmp_path):
    runner = RecordingRunner([HELM_OK])
    kube = fake_cluster()
    m = mesh(tmp_path, runner, kube)
    m.install()
    common = ["--repo", CHART_REPO, "--version", ISTIO_VERSION, "--namespace", "istio-system"]
    tail = ["--wait", "--timeout", "5s"]   # the mesh's own timeout (HARNESS_MESH_READY_TIMEOUT_S) is Helm's --wait too
    assert runner.argvs() == [
        ("helm", "version", "--short"),
        tuple(["helm", "upgrade", "--install", "istio-base", "base", *common, "--create-namespace", *KC, *tail]),
        tuple([*KUBECTL, "label", "namespace", "istio-system", "--overwrite", "i2s-harness.managed=true",
               "i2s-harness.run-id=r1"]),
        tuple(["helm", "upgrade", "--install", "istiod", "istiod", *common, *KC, "--values",
               str(tmp_path / "istiod-values-r1.yaml"), *tail]),
        tuple(["helm", "upgrade", "--install", "istio-ingressgateway", "gateway", *common, *KC, "--values",
               str(tmp_path / "gateway-values-r1.yaml"), *tail]),
    ]
    # then the API: both rollouts checked, then the gateway Service's node ports
    gets = [r.path for r in kube.requests if r.method == "GET"]
    assert gets.index("/apis/apps/v1/namespaces/istio-system/deployments/istiod/status") < \
        gets.index("/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway/status") < \
        gets.index("/api/v1/namespaces/istio-system/services/istio-ingressgateway")
    assert kube.writes() == []  # installing Istio writes nothing through the API itself
    assert ISTIO_VERSION.count(".") == 2  # a pinned patch version, not a floating "1.26"


def test_values_files_enable_the_conductor_stats_and_a_nodeport_gateway(tmp_path):
    m = mesh(tmp_path, RecordingRunner([HELM_OK]), fake_cluster())
    m.install()
    istiod = yaml.safe_load((tmp_path / "istiod-values-r1.yaml").read_text())
    gateway = yaml.safe_load((tmp_path / "gateway-values-r1.yaml").read_text())
    assert istiod == istiod_values() and gateway == gateway_values()
    prefixes = istiod["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]["inclusionPrefixes"]
    stat_names = parse_envoy_stats(STATS_TEXT)
    wanted = [k for k in stat_names if k.startswith(f"cluster.{CLUSTER}.")
              and (".outlier_detection." in k or k.endswith(("_overflow", "upstream_rq_retry")))]
    assert len(wanted) == 9 and all(any(k.startswith(p) for p in prefixes) for k in wanted)
    # only the conductor's http cluster: the metrics port and Envoy's server stats stay trimmed
    assert not any(k.startswith(p) for p in prefixes for k in stat_names if not k.startswith(f"cluster.{CLUSTER}."))
    assert gateway["service"]["type"] == "NodePort" and gateway["autoscaling"] == {"enabled": False}
    assert {p["name"]: p.get("nodePort") for p in gateway["service"]["ports"]} == {
        "status-port": None, "http2": 30080, "https": 30443}


def test_install_without_helm_says_what_to_install(tmp_path):
    runner = RecordingRunner()
    m = mesh(tmp_path, runner, fake_cluster(), which=lambda tool: None)
    with pytest.raises(PlatformUnavailable, match="needs helm on PATH.*install Helm 3"):
        m.install()
    assert runner.calls == []


@pytest.mark.parametrize("short", ["v2.17.0+ga690bad\n", "v3.18.4+gd80839c\n"])
def test_install_refuses_helm_older_than_3_19(tmp_path, short):
    runner = RecordingRunner([(("helm", "version"), short)])
    m = mesh(tmp_path, runner, fake_cluster())
    with pytest.raises(PlatformUnavailable, match=r"helm v\d+\.\d+\.\d+ is not supported .*needs Helm 3\.19\.0 or newer"):
        m.install()
    assert runner.argvs() == [("helm", "version", "--short")]  # nothing installed


def test_a_gateway_service_on_other_ports_is_an_error(tmp_path):
    m = mesh(tmp_path, RecordingRunner([HELM_OK]), fake_cluster(gateway_service((31111, 30443), "LoadBalancer")))
    with pytest.raises(HarnessError, match="is LoadBalancer with node ports .*not NodePort"):
        m.install()


def test_a_gateway_that_never_rolls_out_names_its_pod(tmp_path):
    kube = fake_cluster()
    kube.objects["/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway"] = deployment(
        "istio-ingressgateway", "istio-system", replicas=1, ready=0, match_labels=GATEWAY_LABELS)
    kube.objects["/api/v1/namespaces/istio-system/pods/istio-ingressgateway-5d8f"] = pod(
        "istio-ingressgateway-5d8f", "istio-system", "n1", ready=False,
        waiting=("ImagePullBackOff", "docker.io/istio/proxyv2:1.31.1 not found"), labels=GATEWAY_LABELS)
    clock = iter(range(0, 1000, 10))
    m = IstioMesh(TARGET, RecordingRunner([HELM_OK]), kube.apis(), run_id="r1", work_dir=tmp_path,
                  which=lambda t: "/x", ready_timeout=15, interval=0, clock=lambda: next(clock), sleep=lambda s: None)
    with pytest.raises(HarnessError, match="istio-ingressgateway not rolled out.*ImagePullBackOff"):
        m.install()
    assert m.installed  # so teardown uninstalls the half-installed releases


def test_uninstall_removes_the_releases_in_reverse_and_only_after_an_install(tmp_path):
    runner = RecordingRunner([HELM_OK])
    m = mesh(tmp_path, runner, fake_cluster())
    m.uninstall()
    assert runner.calls == []
    m.install()
    runner.calls.clear()
    m.uninstall()
    assert [a[:3] for a in runner.argvs()] == [("helm", "uninstall", r) for r in
                                               ("istio-ingressgateway", "istiod", "istio-base")]


def test_tls_secret_goes_through_the_api_and_the_key_never_into_logs(tmp_path, caplog):
    kube = fake_cluster()
    runner = RecordingRunner()
    m = mesh(tmp_path, runner, kube)
    with caplog.at_level(logging.DEBUG):
        tls = m.create_tls_secret(CertificateAuthority("r1", now=datetime.now(timezone.utc)))
    (req,) = kube.writes()
    assert (req.method, req.path) == ("POST", "/api/v1/namespaces/istio-system/secrets")
    assert req.body["type"] == "kubernetes.io/tls" and req.body["metadata"]["name"] == "i2s-tls-cert"
    assert req.body["stringData"]["tls.key"] == tls.key_pem and "PRIVATE KEY" in tls.key_pem
    assert req.body["metadata"]["labels"]["i2s-harness.run-id"] == "r1"
    assert runner.calls == []  # no argv ever carried the key
    assert tls.key_pem not in caplog.text and "PRIVATE" not in caplog.text
    assert tls.fingerprint_sha256[:16] in caplog.text
    assert "key_pem" not in repr(tls) and "PRIVATE" not in str(tls)


def test_gateway_certificate_is_issued_by_the_run_ca_for_the_gateway_hosts():
    """One certificate maker on every platform: kind's Secret comes from the docker mesh's run CA."""
    from cryptography import x509

    ca = CertificateAuthority("r1", now=datetime.now(timezone.utc))
    tls = server_tls(ca)
    cert = x509.load_pem_x509_certificate(tls.cert_pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == list(GATEWAY_HOSTS) == ["api.i2s.studio", "app.i2s.studio"]
    assert cert.issuer == x509.load_pem_x509_certificate(ca.ca_pem.encode()).subject != cert.subject
    with pytest.raises(UsageError, match="no hosts"):
        server_tls(ca, ())


def test_injection_labels_restarts_and_checks_every_pod_has_the_sidecar(tmp_path):
    kube = fake_cluster()
    kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment("conductor", "i2s-staging")
    for name in ("conductor-a", "conductor-b"):
        p = pod(name, "i2s-staging", "n1")
        p["spec"]["containers"].append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.31.1"})
        kube.objects[f"/api/v1/namespaces/i2s-staging/pods/{name}"] = p
    runner = RecordingRunner()
    assert mesh(tmp_path, runner, kube).enable_injection("i2s-staging", "conductor", {"app": "conductor"}) == [
        "conductor-a", "conductor-b"]
    assert runner.argvs() == [
        tuple([*KUBECTL, "label", "namespace", "i2s-staging", "istio-injection=enabled", "--overwrite"]),
        tuple([*KUBECTL, "-n", "i2s-staging", "rollout", "restart", "deployment/conductor"])]
    pods_query = next(r for r in kube.requests if r.path == "/api/v1/namespaces/i2s-staging/pods")
    assert pods_query.query["labelSelector"] == "app=conductor"


def test_injection_that_did_not_happen_is_named(tmp_path):
    kube = fake_cluster()
    kube.objects["/apis/apps/v1/namespaces/i2s-staging/deployments/conductor"] = deployment("conductor", "i2s-staging")
    kube.objects["/api/v1/namespaces/i2s-staging/pods/conductor-a"] = pod("conductor-a", "i2s-staging", "n1")
    with pytest.raises(HarnessError, match="run without the istio-proxy sidecar \\(conductor-a\\).*istio-injection=enabled"):
        mesh(tmp_path, RecordingRunner(), kube).enable_injection("i2s-staging", "conductor", {"app": "conductor"})


def test_apply_mesh_keeps_the_api_servers_refusal_then_applies_with_unknown_fields_pruned(tmp_path):
    refusal = ('Error from server (BadRequest): error when creating "STDIN": DestinationRule in version "v1beta1" '
               'cannot be handled as a DestinationRule: strict decoding error: unknown field '
               '"spec.trafficPolicy.circuitBreaker"')
    runner = RecordingRunner([((*KUBECTL, "apply", "--server-side", "--field-manager=i2s-harness", "-f", "-",
                                "--dry-run=server"), (1, "", refusal)),
                              ((*KUBECTL, "apply"), (0, "serverside-applied\n",
                                                     'Warning: unknown field "spec.trafficPolicy.circuitBreaker"\n'))])
    docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "conductor"}},
            {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
             "metadata": {"name": "conductor-destination", "namespace": "i2s-staging"},
             "spec": {"host": "conductor", "trafficPolicy": {"circuitBreaker": {"interval": "30s"}}}}]
    out = mesh(tmp_path, runner, fake_cluster()).apply_mesh(docs)
    assert [c.argv[len(KUBECTL):] for c in runner.calls] == [
        ("apply", "--server-side", "--field-manager=i2s-harness", "-f", "-", "--dry-run=server", "--validate=strict"),
        ("apply", "--server-side", "--field-manager=i2s-harness", "-f", "-", "--validate=warn")]
    assert all("kind: Service\n" not in c.input and "DestinationRule" in c.input for c in runner.calls)
    sent = yaml.safe_load(runner.calls[1].input)
    assert sent["metadata"]["labels"] == {"i2s-harness.managed": "true", "i2s-harness.run-id": "r1"}
    assert sent["spec"] == docs[1]["spec"]  # the object itself is applied as rendered
    assert not out.strict_ok and "unknown field" in out.strict_message
    assert out.warnings == ['Warning: unknown field "spec.trafficPolicy.circuitBreaker"']
    assert out.applied == ["DestinationRule/i2s-staging/conductor-destination"]
    assert mesh_objects(docs) == docs[1:]


def test_proxy_reads_go_through_pilot_agent_in_the_istio_proxy_container(tmp_path):
    runner = RecordingRunner([((*KUBECTL, "-n", "istio-system", "exec"),
                               lambda argv, _in: STATS_TEXT if argv[-1] == "stats" else CLUSTERS_TEXT)])
    m = mesh(tmp_path, runner, fake_cluster())
    stats = m.stats("istio-ingressgateway-5d8f")
    clusters = m.clusters("istio-ingressgateway-5d8f", only=CLUSTER)
    assert runner.argvs() == [
        tuple([*KUBECTL, "-n", "istio-system", "exec", "istio-ingressgateway-5d8f", "-c", "istio-proxy", "--",
               "pilot-agent", "request", "GET", "stats"]),
        tuple([*KUBECTL, "-n", "istio-system", "exec", "istio-ingressgateway-5d8f", "-c", "istio-proxy", "--",
               "pilot-agent", "request", "GET", "clusters"])]
    assert stats[f"cluster.{CLUSTER}.upstream_rq_pending_overflow"] == 57
    assert list(clusters) == [CLUSTER]


def test_stats_parsing_keeps_counters_and_gauges_only():
    stats = parse_envoy_stats(STATS_TEXT)
    assert len(stats) == 15  # 17 lines minus the two histograms
    assert not any(k.endswith(("upstream_rq_time", "upstream_cx_connect_ms")) for k in stats)
    ours = cluster_stats(stats, CLUSTER)
    assert ours["upstream_rq_retry"] == 42 and ours["upstream_rq_retry_limit_exceeded"] == 14
    assert ours["outlier_detection.ejections_overflow"] == 1 and ours["upstream_cx_overflow"] == 3
    assert "upstream_rq_retry" in cluster_stats(stats, CLUSTER.replace("8080", "9090"))  # other port kept apart
    assert ours["upstream_rq_retry"] != stats[f"cluster.{CLUSTER.replace('8080', '9090')}.upstream_rq_retry"]


def test_stats_that_are_not_stats_are_an_error_not_zeroes():
    with pytest.raises(HarnessError, match="no `name: value` line.*istio-proxy"):
        parse_envoy_stats("error: container istio-proxy not found in pod conductor-a\n")
    assert parse_envoy_stats("") == {}


def test_outlier_snapshot_is_what_the_ejection_analysis_reads():
    snap = outlier_snapshot(12.0, parse_envoy_stats(STATS_TEXT), CLUSTER)
    assert set(snap["stats"]) == {f"cluster.{CLUSTER}.outlier_detection.{s}" for s in (
        "ejections_active", "ejections_consecutive_5xx", "ejections_detected_consecutive_gateway_failure",
        "ejections_enforced_consecutive_gateway_failure", "ejections_enforced_total", "ejections_overflow")}
    series = {float(t): {"a": {"ok": 0 if t >= 10 else 30}, "b": {"ok": 30}} for t in range(20)}
    # ejections_active=1 at 12 s agrees with an ejection of "a" at 10 s, and contradicts one that never happens
    assert analyze_ejections(series, {"a": [(10.0, None)]}, envoy_stats=[snap]).ok
    bad = analyze_ejections(series, {"a": [(10.0, None)]}, envoy_stats=[{"t": 12.0, "stats": {
        f"cluster.{CLUSTER}.outlier_detection.ejections_active": 0}}])
    assert "stats_mismatch" in bad.reasons


def test_clusters_parsing_gives_hosts_flags_thresholds_and_outlier_presence():
    clusters = parse_clusters(CLUSTERS_TEXT)
    assert set(clusters) == {CLUSTER, "outbound|8080|v2-1-0|conductor.i2s-staging.svc.cluster.local",
                             "BlackHoleCluster"}
    c = clusters[CLUSTER]
    assert c.thresholds["default_priority"] == {"max_connections": 100, "max_pending_requests": 50,
                                                "max_requests": 100, "max_retries": 4294967295}
    assert c.outlier["success_rate_average"] == -1
    a, b = c.hosts["10.244.1.5:8080"], c.hosts["10.244.2.7:8080"]
    assert (a.ip, a.ejected, a.health_flags) == ("10.244.1.5", True, ("failed_outlier_check",))
    assert (b.ejected, b.health_flags) == (False, ())
    assert a.counters == {"cx_active": 4, "cx_connect_fail": 0, "cx_total": 31, "rq_active": 0, "rq_error": 5,
                          "rq_success": 301, "rq_timeout": 0, "rq_total": 306}
    assert c.attributes["added_via_api"] == "true"
    only = parse_clusters(CLUSTERS_TEXT, only=CLUSTER)
    assert list(only) == [CLUSTER]
    multi = parse_clusters(CLUSTERS_TEXT.replace("/failed_outlier_check", "/failed_active_hc/failed_outlier_check"))
    assert multi[CLUSTER].hosts["10.244.1.5:8080"].health_flags == ("failed_active_hc", "failed_outlier_check")


def test_clusters_without_an_outlier_detector_have_no_outlier_lines():
    text = "\n".join(ln for ln in CLUSTERS_TEXT.splitlines() if "::outlier::" not in ln)
    assert parse_clusters(text)[CLUSTER].outlier == {}
    with pytest.raises(HarnessError, match="not in Envoy's text format"):
        parse_clusters("<html>503 Service Unavailable</html>")


def test_cluster_name_is_istios_outbound_name():
    assert outbound_cluster_name("conductor", "i2s-staging", 8080) == CLUSTER
    assert outbound_cluster_name("conductor", "i2s-staging", 8080, subset="v2-1-0") == \
        "outbound|8080|v2-1-0|conductor.i2s-staging.svc.cluster.local"


def test_helm_argv_without_a_kubeconfig_still_pins_the_context():
    argv = helm_install_argv(KubeTarget("kind-x"), "istiod", "istiod")
    assert "--kubeconfig" not in argv and argv[argv.index("--kube-context") + 1] == "kind-x"


def test_the_kind_config_maps_the_gateway_ports_on_loopback(tmp_path):
    cfg = load_kind_config()
    assert kind_gateway_ports(cfg) == (30080, 30443)
    broken = yaml.safe_load(yaml.safe_dump(cfg))
    broken["nodes"][0]["extraPortMappings"] = [m for m in broken["nodes"][0]["extraPortMappings"]
                                               if m["containerPort"] != 30443]
    with pytest.raises(UsageError, match="NodePort 30443 on 127.0.0.1.*add containerPort 30443"):
        kind_gateway_ports(broken)


def test_host_port_is_read_from_docker_for_the_mapped_node():
    cfg = load_kind_config()
    runner = RecordingRunner([(("docker", "port"), "127.0.0.1:43443\n")])
    assert kind_host_port(runner, "i2s-harness-r1", cfg, 30443) == 43443
    assert runner.argvs() == [("docker", "port", "i2s-harness-r1-control-plane", "30443/tcp")]
    wrong = RecordingRunner([(("docker", "port"), "0.0.0.0:43443\n")])
    with pytest.raises(HarnessError, match="on no 127.0.0.1 port"):
        kind_host_port(wrong, "i2s-harness-r1", cfg, 30443)
