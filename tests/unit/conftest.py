"""Fixtures the unit tests share. Kubernetes cannot run here: ``kube`` fakes the API (see kube_fakes)."""
from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest

from tests.unit.kube_fakes import Nodes, write_kubeconfig


@pytest.fixture(scope="session")
def pristine_seed(tmp_path_factory):
    """One copy of the seed's files as the project keeps them (k8s/, scripts/, seed/, and the harness's own
    .github/ whose workflow the audit also lints), taken once per session."""
    import shutil

    from harness.config import PROJECT_ROOT

    root = tmp_path_factory.mktemp("seed")
    for d in ("k8s", "scripts", "seed", ".github"):
        shutil.copytree(PROJECT_ROOT / d, root / d)
    return root


@pytest.fixture
def seed_copy(pristine_seed, tmp_path):
    """A scratch copy of the seed for one test to break or fix (the audit's tests)."""
    import shutil

    return shutil.copytree(pristine_seed, tmp_path / "copy")


@pytest.fixture
def kube(monkeypatch, tmp_path):
    """The kubeconfig file (KUBECONFIG), the fake API behind the harness's client, chaosk8s' drain."""
    import chaosk8s.node.actions as k8s_node

    from harness.kube import client as kube_client

    path = write_kubeconfig(tmp_path / "kind.kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    fake = Nodes()
    world = SimpleNamespace(path=path, fake=fake, targets=[], drain=mock.MagicMock(return_value=["w"]))

    def api_client(target):
        world.targets.append(target)
        return fake.apis().client

    monkeypatch.setattr(kube_client, "api_client", api_client)
    monkeypatch.setattr(k8s_node, "drain_nodes", world.drain)
    world.calls = lambda: world.targets + fake.requests + world.drain.mock_calls
    return world
