"""The outlier oracle's one error type, shared by the Envoy and the Istio halves of the package: a harness
error with its own exit code (:class:`harness.errors.OutlierInputError`), named here for the oracle's modules."""
from __future__ import annotations

from harness.errors import OutlierInputError

__all__ = ["OutlierInputError"]
