"""The outlier oracle package re-exports every public name of its modules, so
``from harness.oracles.outlier import X`` keeps working whichever module X moved to."""
from __future__ import annotations

import importlib

import harness.oracles.outlier as outlier

MODULES = ("errors", "units", "settings", "limits", "result", "detector", "simulation", "destination_rule")

# The names the single-module oracle exported before the split (its __all__).
BEFORE_SPLIT = (
    "OutlierInputError", "OutlierDetectionSettings", "Response", "OutlierDetector", "SimulationResult", "simulate",
    "success_rate_ejection_threshold", "max_ejectable_hosts", "is_host_set_in_panic", "parse_duration_ms", "is_5xx",
    "is_gateway_error", "Finding", "IstioOutlierMapping", "CircuitBreakerThresholds", "DestinationRuleMapping",
    "map_istio_outlier_detection", "map_istio_connection_pool", "map_destination_rule", "EJECTION_TYPES",
    "LOCAL_RESULTS", "MAX_UINT32",
)


def test_every_module_name_is_re_exported_by_the_package() -> None:
    missing = []
    for name in MODULES:
        module = importlib.import_module(f"harness.oracles.outlier.{name}")
        for public in module.__all__:
            if public not in outlier.__all__ or getattr(outlier, public) is not getattr(module, public):
                missing.append(f"{name}.{public}")
    assert not missing, f"not re-exported by harness.oracles.outlier: {missing}"


def test_the_names_exported_before_the_split_still_are() -> None:
    assert [n for n in BEFORE_SPLIT if n not in outlier.__all__ or not hasattr(outlier, n)] == []


def test_the_package_exports_only_what_its_modules_define() -> None:
    defined = {n for name in MODULES for n in importlib.import_module(f"harness.oracles.outlier.{name}").__all__}
    assert set(outlier.__all__) == defined
