"""Go's integer semantics where the port depends on them: truncating division, the int32
clamp of ``int32(math.Ceil(x))`` and int64 wrap-around."""
from __future__ import annotations

import math

__all__ = ["INT32_MAX", "INT32_MIN", "INT64_MAX", "INT64_MIN", "go_div", "int32_ceil", "int64_wrap"]

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def int32_ceil(x: float) -> int:
    """``int32(math.Ceil(x))`` with the int32 clamp upstream applies where it can overflow."""
    if x != x:  # NaN
        return 0
    if x >= INT32_MAX:
        return INT32_MAX
    return int(math.ceil(x))


def int64_wrap(x: int) -> int:
    """``x`` as Go's int64 arithmetic leaves it: two's-complement wrap-around on overflow."""
    return (x - INT64_MIN) % 2**64 + INT64_MIN
