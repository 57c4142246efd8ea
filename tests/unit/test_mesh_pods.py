"""DockerMesh's wiring without Docker: the hooks prepare() gives the platform (capture, the
rewritten probe, the sidecar's bootstrap on the captured port), gateway zones from the settings."""
from __future__ import annotations

from datetime import datetime, timezone

from types import SimpleNamespace

import pytest

from harness.config import load_settings
from harness.errors import UsageError
from harness.manifests import Probe
from harness.mesh import load_mesh
from harness.mesh.bootstrap import AGENT_PORT, app_probe_path
from harness.mesh.certs import CertificateAuthority
from harness.mesh.pods import SIDECAR_ADMIN_PORT, DockerMesh


def _platform():
    spec = SimpleNamespace(readiness=Probe("/ready", 8080, period_s=5.0, failure_threshold=2),
                           readiness_path="/ready")
    return SimpleNamespace(pod_ports=(), sidecar=None, pod_init=None, service_probe=None, spec=spec)


def _mesh(platform, **kw):
    settings = load_settings({"platform": "docker"}, env={})
    return DockerMesh(settings, platform, load_mesh("k8s", what_if=True), CertificateAuthority("unit", now=datetime.now(timezone.utc)), **kw)


def test_prepare_wires_capture_and_the_rewritten_probe():
    platform = _platform()
    dm = _mesh(platform)
    dm.prepare()
    assert platform.pod_ports == (SIDECAR_ADMIN_PORT,)
    assert platform.pod_init == dm.capture_inbound and platform.sidecar == dm.sidecar_config
    # the kubelet's probe as the injector rewrites it: same period and thresholds, the agent's port
    assert platform.service_probe == Probe(app_probe_path(), AGENT_PORT, period_s=5.0, failure_threshold=2)
    boot, files = dm.sidecar_config("c-0", "us-east-1a", "10.0.0.5")
    inbound = boot["static_resources"]["listeners"][0]
    assert inbound["filter_chains"][0]["filter_chain_match"]["destination_port"] == 8080
    assert any(f.secret for f in files) and "BEGIN" not in repr(files)


def test_without_capture_nothing_is_redirected_and_the_spec_probe_stays():
    platform = _platform()
    dm = _mesh(platform, capture=False)
    dm.prepare()
    assert platform.pod_init is None and platform.service_probe is None
    boot, _ = dm.sidecar_config("c-0", "us-east-1a", "10.0.0.5")
    assert len(boot["static_resources"]["listeners"]) == 1


def test_gateways_default_to_the_setting_without_zone():
    dm = _mesh(_platform())
    assert dm.gateway_zones == ("", "")          # mesh_gateways default 2
    assert _mesh(_platform(), gateway_zone="us-east-1a").gateway_zones == ("us-east-1a", "us-east-1a")
    assert _mesh(_platform(), gateway_zones=["a", "b", "c"]).gateway_zones == ("a", "b", "c")
    with pytest.raises(UsageError):
        _mesh(_platform(), gateway_zones=[])
    with pytest.raises(RuntimeError):
        dm.gateway_url()
