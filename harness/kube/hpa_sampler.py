"""The HPA scenario's background sampler: the HPA status and the Deployment read every few seconds from a
live cluster, and the samples written out. The plan, the series, the verdict and the plot are pure
(:mod:`harness.analysis.hpa`)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.sampling import Sampler, TickError

__all__ = ["HpaSampler", "write_samples"]


# -- sampling -----------------------------------------------------------------------------------------
class HpaSampler(Sampler[dict[str, Any]]):
    """Calls ``sample()`` every ``interval`` seconds on a daemon thread until ``stop()``
    (:class:`harness.sampling.Sampler`); ``samples`` is the series so far.

    A sample that raises is recorded as ``{"t_wall": ..., "errors": {"sample": ...}}`` so a gap is
    visible rather than silent; the cadence is kept on a monotonic clock.
    """

    def __init__(self, sample: Callable[[], dict[str, Any]], interval: float = 5.0,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic):
        super().__init__(sample, interval, name="hpa-sampler", on_error=self._gap, clock=clock, wall=wall)

    @staticmethod
    def _gap(err: TickError) -> dict[str, Any]:
        return {"t_wall": err.at, "errors": {"sample": str(err)[:200]}}

    @property
    def interval(self) -> float:
        return self.interval_s

    @property
    def samples(self) -> list[dict[str, Any]]:
        return self.results


# -- artifacts ----------------------------------------------------------------------------------------
def write_samples(path: Path, samples: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(samples), indent=1, default=str))
    return path
