"""Does the outlier oracle agree with a real Envoy? Pure comparison of three Envoy read-outs with a
:class:`~harness.oracles.outlier.SimulationResult` fed the requests that Envoy actually routed.

Envoy's read-outs:

* its outlier-detection **event log** (``cluster_manager.outlier_detection.event_log_path``; one JSON
  ``envoy.data.cluster.v3.OutlierDetectionEvent`` per line: ``action`` EJECT/UNEJECT, ``type``,
  ``upstream_url``, ``enforced``, ``num_ejections``, RFC 3339 ``timestamp``): the timeline;
* ``/clusters`` samples (which hosts carry ``failed_outlier_check``): the state the load balancer used;
* ``/stats`` ``outlier_detection.ejections_*``: the detector's decision counters.

Agreement rules (decisions, not speed): events are paired per host in order; a pair agrees when the
action, the ejection type and ``enforced`` match and the times differ by at most ``tolerance_s``
(one detection interval: un-ejections happen on interval ticks, whose phase the oracle knows only
approximately). An event without a partner within ``tolerance_s`` of the end of the run is not
compared (the partner may land just after the end). A ``/clusters`` sample agrees when its flagged hosts equal the oracle's
ejected hosts at that time; samples within ``tolerance_s`` of a transition of either side are not
compared. Stats agree when the detector's decision counters are equal.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.oracles.outlier import SimulationResult

__all__ = ["ObservedEvent", "parse_event_log", "Agreement", "compare_events", "compare_flags", "compare_stats",
           "DECISION_STATS", "ENVOY_EVENT_TYPES"]

#: Envoy ``OutlierEjectionType`` names -> the oracle's ejection types.
ENVOY_EVENT_TYPES = {
    "CONSECUTIVE_5XX": "consecutive_5xx",
    "CONSECUTIVE_GATEWAY_FAILURE": "consecutive_gateway_failure",
    "SUCCESS_RATE": "success_rate",
    "FAILURE_PERCENTAGE": "failure_percentage",
    "CONSECUTIVE_LOCAL_ORIGIN_FAILURE": "consecutive_local_origin_failure",
    "SUCCESS_RATE_LOCAL_ORIGIN": "local_origin_success_rate",
    "FAILURE_PERCENTAGE_LOCAL_ORIGIN": "local_origin_failure_percentage",
}

#: The counters that record the detector's decisions (not deprecated duplicates, not gauges).
DECISION_STATS = tuple(f"outlier_detection.{n}" for n in (
    "ejections_enforced_total", "ejections_overflow",
    "ejections_detected_consecutive_5xx", "ejections_enforced_consecutive_5xx",
    "ejections_detected_consecutive_gateway_failure", "ejections_enforced_consecutive_gateway_failure",
    "ejections_detected_success_rate", "ejections_enforced_success_rate",
    "ejections_detected_failure_percentage", "ejections_enforced_failure_percentage",
))


@dataclass(frozen=True)
class ObservedEvent:
    t: float
    host: str
    action: str          # "eject" | "uneject"
    reason: str | None   # ejection type for ejections
    enforced: bool
    num_ejections: int


def _epoch(stamp: str) -> float:
    return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def parse_event_log(lines: Iterable[Mapping[str, Any]], host_of: Mapping[str, str]) -> list[ObservedEvent]:
    """Envoy's event log entries (parsed JSON) -> events, hosts named through ``host_of`` (upstream_url -> name).

    An UNEJECT entry carries a placeholder ``type``; only EJECT types are kept."""
    out = []
    for e in lines:
        action = str(e.get("action", "")).lower()
        if action not in ("eject", "uneject"):
            continue
        url = str(e.get("upstream_url", ""))
        out.append(ObservedEvent(
            t=_epoch(str(e["timestamp"])), host=host_of.get(url, url), action=action,
            reason=ENVOY_EVENT_TYPES.get(str(e.get("type")), str(e.get("type")).lower()) if action == "eject" else None,
            enforced=bool(e.get("enforced", False)) if action == "eject" else True,
            num_ejections=int(e.get("num_ejections", 0))))
    return sorted(out, key=lambda x: x.t)


@dataclass
class Agreement:
    """``agreeing`` of ``compared`` items agree; ``disagreements`` says which did not and why."""

    what: str
    compared: int = 0
    agreeing: int = 0
    disagreements: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements and self.agreeing == self.compared

    def figure(self) -> str:
        return f"{self.what}: {self.agreeing}/{self.compared}"

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "compared": self.compared, "agreeing": self.agreeing, "ok": self.ok,
                "disagreements": list(self.disagreements)}


def _predicted(sim: SimulationResult, t0: float) -> list[ObservedEvent]:
    """The oracle's events in the same shape (sim times are seconds after ``t0``), in the detector's
    own order: detections (enforced or not, as Envoy logs them) and un-ejections; at equal times an
    un-ejection (interval tick) comes first, as ticks run before results of the same instant."""
    ejections = iter(e for e in sim.events if e["event"] == "eject")
    out = []
    for d in sim.detections:
        if d.get("outcome") == "ejected":
            e = next(ejections)
            out.append(ObservedEvent(t0 + e["t"], e["host"], "eject", e["reason"], True, int(e["ejection_count"])))
        elif d.get("outcome") == "not_enforced":  # Envoy logs these as EJECT with enforced=false
            out.append(ObservedEvent(t0 + d["t"], d["host"], "eject", d["type"], False, 0))
    for e in sim.events:
        if e["event"] == "uneject":
            out.append(ObservedEvent(t0 + e["t"], e["host"], "uneject", None, True, int(e.get("ejection_count", 0))))
    return sorted(out, key=lambda x: (x.t, x.action != "uneject"))


def compare_events(sim: SimulationResult, observed: Sequence[ObservedEvent], *, t0: float, end: float,
                   tolerance_s: float) -> Agreement:
    """Pair predicted and observed events per host, in order (see the module docstring).

    An event of one side with no partner is a disagreement unless it lies within ``tolerance_s`` of
    ``end`` (its partner may fall just after the run)."""
    agreement = Agreement("events")
    predicted = _predicted(sim, t0)
    for host in sorted({e.host for e in predicted} | {e.host for e in observed}):
        p = [e for e in predicted if e.host == host]
        o = [e for e in observed if e.host == host]
        for i in range(max(len(p), len(o))):
            a = p[i] if i < len(p) else None
            b = o[i] if i < len(o) else None
            lone = a or b
            if (a is None or b is None) and lone is not None and lone.t > end - tolerance_s:
                continue  # at the end of the run: the partner may come after it
            agreement.compared += 1
            if a is None and b is not None:
                agreement.disagreements.append(f"{host}: Envoy {b.action} ({b.reason}, enforced={b.enforced}) at "
                                               f"+{b.t - t0:.2f}s, oracle predicted nothing")
            elif b is None and a is not None:
                agreement.disagreements.append(f"{host}: oracle predicted {a.action} ({a.reason}, enforced={a.enforced}) "
                                               f"at +{a.t - t0:.2f}s, Envoy did nothing")
            elif a is not None and b is not None:
                same = (a.action, a.reason, a.enforced) == (b.action, b.reason, b.enforced)
                if same and abs(a.t - b.t) <= tolerance_s:
                    agreement.agreeing += 1
                else:
                    agreement.disagreements.append(
                        f"{host}: oracle {a.action}/{a.reason}/enforced={a.enforced} at +{a.t - t0:.2f}s vs Envoy "
                        f"{b.action}/{b.reason}/enforced={b.enforced} at +{b.t - t0:.2f}s")
    return agreement


def _transitions(events: Iterable[ObservedEvent]) -> list[tuple[float, str]]:
    return [(e.t, e.host) for e in events if e.enforced]


def compare_flags(sim: SimulationResult, samples: Sequence[tuple[float, frozenset[str]]],
                  observed: Sequence[ObservedEvent], *, t0: float, tolerance_s: float) -> Agreement:
    """``/clusters`` samples (time, hosts flagged ``failed_outlier_check``) against the oracle's state."""
    agreement = Agreement("/clusters samples")
    moves = _transitions(_predicted(sim, t0)) + _transitions(observed)
    for t, flagged in samples:
        near = {h for (tt, h) in moves if abs(tt - t) <= tolerance_s}
        seen, expected = set(flagged) - near, sim.ejected_at(t - t0) - near
        agreement.compared += 1
        if seen == expected:
            agreement.agreeing += 1
        else:
            agreement.disagreements.append(f"+{t - t0:.2f}s: Envoy flags {sorted(seen)}, oracle has {sorted(expected)}")
    return agreement


def compare_stats(sim: SimulationResult, envoy_stats: Mapping[str, float], names: Sequence[str] = DECISION_STATS
                  ) -> Agreement:
    """The detector's decision counters: Envoy's ``/stats`` (``outlier_detection.*`` keys) vs the oracle's."""
    agreement = Agreement("/stats counters")
    for name in names:
        if name not in envoy_stats:
            continue  # a counter this Envoy does not have
        agreement.compared += 1
        mine, theirs = int(sim.stats.get(name, 0)), int(envoy_stats[name])
        if mine == theirs:
            agreement.agreeing += 1
        else:
            agreement.disagreements.append(f"{name}: oracle {mine}, Envoy {theirs}")
    return agreement
