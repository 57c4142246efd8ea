"""Kubernetes quantities (``resource.Quantity``) as the controller reads them: ``MilliValue()``
and ``AsApproximateFloat64()``."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from harness.oracles.hpa.errors import ManifestError

__all__ = ["quantity_to_milli", "quantity_to_float"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(1000), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}


def _quantity_decimal(q: Any, where: str) -> Decimal:
    if isinstance(q, bool):
        raise ManifestError(f"{where} is a boolean", "write a number or a quantity such as \"100\" or \"500m\"")
    if isinstance(q, (int, float)):
        return Decimal(str(q))
    if not isinstance(q, str) or not q.strip():
        raise ManifestError(f"{where} is {q!r}, not a quantity", "write a quantity such as \"100\", \"500m\" or \"512Mi\"")
    s = q.strip()
    for suffix, mult in _BINARY.items():
        if s.endswith(suffix):
            return _parse_number(s[: -len(suffix)], q, where) * mult
    for suffix in ("n", "u", "m", "k", "M", "G", "T", "P", "E"):
        # "E" is also an exponent marker ("1E3"): only a suffix when nothing follows a digit
        if s.endswith(suffix) and not (suffix == "E" and len(s) > 1 and not s[-2].isdigit()):
            return _parse_number(s[:-1], q, where) * _DECIMAL[suffix]
    return _parse_number(s, q, where)


def _parse_number(text: str, original: Any, where: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ManifestError(f"{where} {original!r} is not a Kubernetes quantity",
                            "write a quantity such as \"100\", \"500m\" or \"512Mi\"") from None
    if not d.is_finite():
        raise ManifestError(f"{where} {original!r} is not finite", "write a finite quantity")
    return d


def quantity_to_milli(q: Any, where: str = "quantity") -> int:
    """``resource.MustParse(q).MilliValue()``: the value x 1000, rounded up (as upstream)."""
    return int((_quantity_decimal(q, where) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def quantity_to_float(q: Any, where: str = "quantity") -> float:
    """``Quantity.AsApproximateFloat64()``."""
    return float(_quantity_decimal(q, where))
