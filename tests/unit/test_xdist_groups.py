"""`make test` runs under pytest-xdist (``--dist loadscope`` with the scheduler in tests/conftest.py): a
module whose tests share a module-scoped fixture (a stack, a platform) must be one work unit, so the
fixture is built once; every other test is a unit of its own (each CLI run, each real-Envoy schedule)."""
from __future__ import annotations

import pytest

from harness.config import PROJECT_ROOT
from tests.conftest import GROUPED_MODULES, uses_shared_fixture, xdist_scope


class _Collected:
    def __init__(self) -> None:
        self.shared: dict[str, bool] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.shared = {item.nodeid: uses_shared_fixture(item) for item in items}


def test_the_grouped_modules_are_exactly_those_sharing_a_fixture():
    collected = _Collected()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(PROJECT_ROOT / "tests"),
                        str(PROJECT_ROOT / "sut" / "conductor" / "tests")], plugins=[collected])
    assert code == 0 and len(collected.shared) > 1000
    sharing = {nodeid.split("::")[0] for nodeid, shared in collected.shared.items() if shared}
    assert sharing == GROUPED_MODULES, (sorted(sharing - GROUPED_MODULES), sorted(GROUPED_MODULES - sharing))


def test_a_grouped_module_is_one_work_unit_and_other_tests_their_own():
    entry = "tests/integration/test_mesh_entry_point.py"
    assert entry in GROUPED_MODULES
    assert xdist_scope(f"{entry}::test_unready_replica_is_dropped_and_comes_back") == entry
    assert xdist_scope(f"{entry}::test_entry_point_bootstrap_passes_envoy_validate") == entry
    cli = "tests/integration/test_cli_e2e.py::test_kill_during_load_leaves_nothing_behind"
    assert xdist_scope(cli) == cli
    envoy = "tests/integration/test_outlier_vs_envoy.py::test_oracle_agrees_with_real_envoy[return]"
    assert xdist_scope(envoy) == envoy
