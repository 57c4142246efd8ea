"""The outlier oracle's one error type, shared by the Envoy and the Istio halves of the package."""
from __future__ import annotations

__all__ = ["OutlierInputError"]


class OutlierInputError(ValueError):
    """Bad input to the oracle; the message names the problem and the fix."""
