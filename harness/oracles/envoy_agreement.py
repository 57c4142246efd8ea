"""Does the outlier oracle agree with a real Envoy? Pure comparison of three Envoy read-outs with a
:class:`~harness.oracles.outlier.SimulationResult` fed the requests that Envoy actually routed.

Envoy's read-outs:

* its outlier-detection **event log** (``cluster_manager.outlier_detection.event_log_path``; one JSON
  ``envoy.data.cluster.v3.OutlierDetectionEvent`` per line: ``action`` EJECT/UNEJECT, ``type``,
  ``upstream_url``, ``enforced``, ``num_ejections``, RFC 3339 ``timestamp``): the timeline;
* ``/clusters`` samples (which hosts carry ``failed_outlier_check``): the state the load balancer used;
* ``/stats`` ``outlier_detection.*``: the detector's decision counters and the active-ejections gauge.

A run is kept as an :class:`EnvoyRecording` (JSON-friendly: committed under ``tests/recordings/``) and
judged by :func:`replay` + :func:`judge`, deterministically.

Agreement rules (decisions, not speed):

* **Ticks from Envoy's own timer.** Envoy un-ejects only on interval ticks
  (``DetectorImpl::onIntervalTimer`` -> ``checkHostForUneject``), so each UNEJECT in its event log is a
  tick it really ran. :func:`ticks_from_event_log` builds the oracle's tick times from them (ticks in
  between spread evenly, as Envoy re-arms its timer after each tick); no grid is searched.
* **Events** are paired per host, in order; a pair agrees when the action, the ejection type,
  ``enforced`` and ``num_ejections`` match and the times differ by at most ``tolerance_s`` (a fraction
  of an interval: an ejection is logged when Envoy processes the response the backend logged; an
  un-ejection is on a tick both sides share). An event without a partner within ``tolerance_s`` of
  the end of the run is not compared (its partner may land just after the end).
* A ``/clusters`` sample agrees when its flagged hosts equal the oracle's ejected hosts at that time;
  hosts within ``tolerance_s`` of a transition of either side are not compared there.
* **Stats** agree when every ``outlier_detection`` counter Envoy reports equals the oracle's; the
  figure says how many of them were non-zero (a counter zero on both sides proves little).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from harness.oracles.outlier import OutlierDetectionSettings, SimulationResult, simulate
from harness.oracles.outlier.detector import ALL_STATS

__all__ = ["ObservedEvent", "parse_event_log", "Agreement", "compare_events", "compare_flags", "compare_stats",
           "DECISION_STATS", "COMPARED_STATS", "ENVOY_EVENT_TYPES", "TICK_EJECTION_TYPES", "POOL_FAILURES", "EnvoyRecording", "ticks_from_event_log",
           "replay", "judge"]

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

#: Local-origin results of requests that never got a stream (the connection pool failed): no
#: LocalOriginConnectSuccess precedes them (router ``onPoolFailure``). A response timeout
#: (``"timeout"``) comes after the stream was ready, so it is not one.
POOL_FAILURES = frozenset({"connect_failed"})

#: Ejection types decided on interval ticks (their EJECT lines are tick times too).
TICK_EJECTION_TYPES = frozenset({"success_rate", "failure_percentage", "local_origin_success_rate",
                                 "local_origin_failure_percentage"})

#: The counters that record the detector's decisions (not deprecated duplicates, not gauges).
DECISION_STATS = tuple(f"outlier_detection.{n}" for n in (
    "ejections_enforced_total", "ejections_overflow",
    "ejections_detected_consecutive_5xx", "ejections_enforced_consecutive_5xx",
    "ejections_detected_consecutive_gateway_failure", "ejections_enforced_consecutive_gateway_failure",
    "ejections_detected_success_rate", "ejections_enforced_success_rate",
    "ejections_detected_failure_percentage", "ejections_enforced_failure_percentage",
))

#: Everything the oracle models and Envoy reports under ``outlier_detection.``: the decision counters,
#: the deprecated duplicates (``ejections_total``, ``ejections_consecutive_5xx``...) and the
#: ``ejections_active`` gauge at the end of the run.
COMPARED_STATS = tuple(dict.fromkeys(DECISION_STATS + tuple(f"outlier_detection.{n}" for n in ALL_STATS)))


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
    #: items where something happened (a counter non-zero on either side); None where not counted.
    nonzero: int | None = None
    #: predicted un-ejections left uncompared at the end of the run (see ``compare_events``).
    deferred_unejects: int = 0

    @property
    def ok(self) -> bool:
        return not self.disagreements and self.agreeing == self.compared

    def figure(self) -> str:
        extra = "" if self.nonzero is None else f" ({self.nonzero} non-zero)"
        return f"{self.what}: {self.agreeing}/{self.compared}{extra}"

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "compared": self.compared, "agreeing": self.agreeing, "ok": self.ok,
                "nonzero": self.nonzero, "disagreements": list(self.disagreements)}


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
            out.append(ObservedEvent(t0 + d["t"], d["host"], "eject", d["type"], False, int(d.get("ejection_count", 0))))
    for e in sim.events:
        if e["event"] == "uneject":
            out.append(ObservedEvent(t0 + e["t"], e["host"], "uneject", None, True, int(e.get("ejection_count", 0))))
    return sorted(out, key=lambda x: (x.t, x.action != "uneject"))


def compare_events(sim: SimulationResult, observed: Sequence[ObservedEvent], *, t0: float, end: float,
                   tolerance_s: float, uneject_window_s: float = 0.0) -> Agreement:
    """Pair predicted and observed events per host, in order (see the module docstring).

    An event of one side with no partner is a disagreement unless it lies within ``tolerance_s`` of
    ``end`` (its partner may fall just after the run), or is an un-ejection within ``uneject_window_s``
    of ``end``: Envoy un-ejects only on a tick, and when the ejection time runs out within the few tenths
    of a second between the client's stamp of the ejecting request and Envoy's, that tick's check can go
    either way and the un-ejection come one tick later, after the run (seen twice in 23-schedule runs on a
    busy machine: +9.98 s predicted, the next tick after the final read). Those are counted in
    ``deferred_unejects`` so the end-of-run gauge can allow them."""
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
            if b is None and a is not None and a.action == "uneject" and a.t > end - uneject_window_s:
                agreement.deferred_unejects += 1   # its tick may come after the run (see above)
                continue
            agreement.compared += 1
            if a is None and b is not None:
                agreement.disagreements.append(f"{host}: Envoy {b.action} ({b.reason}, enforced={b.enforced}) at "
                                               f"+{b.t - t0:.2f}s, oracle predicted nothing")
            elif b is None and a is not None:
                agreement.disagreements.append(f"{host}: oracle predicted {a.action} ({a.reason}, enforced={a.enforced}) "
                                               f"at +{a.t - t0:.2f}s, Envoy did nothing")
            elif a is not None and b is not None:
                same = (a.action, a.reason, a.enforced, a.num_ejections) == (b.action, b.reason, b.enforced,
                                                                             b.num_ejections)
                if same and abs(a.t - b.t) <= tolerance_s:
                    agreement.agreeing += 1
                else:
                    agreement.disagreements.append(
                        f"{host}: oracle {a.action}/{a.reason}/enforced={a.enforced}/num_ejections={a.num_ejections} "
                        f"at +{a.t - t0:.3f}s vs Envoy {b.action}/{b.reason}/enforced={b.enforced}/"
                        f"num_ejections={b.num_ejections} at +{b.t - t0:.3f}s")
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


def compare_stats(sim: SimulationResult, envoy_stats: Mapping[str, float], names: Sequence[str] = COMPARED_STATS,
                  deferred_unejects: int = 0) -> Agreement:
    """The detector's counters: Envoy's ``/stats`` (``outlier_detection.*`` keys) vs the oracle's.

    ``deferred_unejects`` un-ejections the events left uncompared at the end may not have happened in
    Envoy yet: its ``ejections_active`` gauge may exceed the oracle's by that many, never the other way."""
    agreement = Agreement("/stats counters", nonzero=0)
    for name in names:
        if name not in envoy_stats:
            continue  # a counter this Envoy does not have
        agreement.compared += 1
        mine, theirs = int(sim.stats.get(name, 0)), int(envoy_stats[name])
        if mine or theirs:
            agreement.nonzero = (agreement.nonzero or 0) + 1
        if mine == theirs or (name == "outlier_detection.ejections_active"
                              and mine < theirs <= mine + deferred_unejects):
            agreement.agreeing += 1
        else:
            agreement.disagreements.append(f"{name}: oracle {mine}, Envoy {theirs}")
    return agreement


# -- a recorded run, replayed --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvoyRecording:
    """One real-Envoy run as data: what the backends served and what Envoy reported.

    Times are seconds after ``t0`` (the load start) except inside ``events``, which are Envoy's event
    log lines as written (absolute RFC 3339 timestamps; ``upstream_url`` named through ``host_of``)."""

    name: str
    hosts: tuple[str, ...]
    outlier_detection: Mapping[str, Any]       # the Envoy cluster's outlier_detection block
    healthy_panic_threshold: float             # the cluster's common_lb_config (Envoy default 50)
    t0: float                                  # epoch seconds of the load start
    detector_start: float                      # when Envoy armed the detector's timer (its log)
    end: float                                 # the last request served
    stats_at: float                            # when /stats was read (after ``end``, between two ticks)
    #: (t, backend, status) as each backend served them; status may be a local-origin result the oracle
    #: knows (``"reset"``: the backend reset the connection without answering).
    attempts: tuple[tuple[float, str, int | str], ...]
    events: tuple[Mapping[str, Any], ...]
    host_of: Mapping[str, str]
    flag_samples: tuple[tuple[float, tuple[str, ...]], ...]
    stats: Mapping[str, float]
    meta: Mapping[str, Any] = field(default_factory=dict)   # the schedule, Envoy's version, the rig
    #: (t, "add" | "remove", backend): the cluster's membership changes (EDS updates the rig wrote);
    #: ``hosts`` are the members at the start.
    membership: tuple[tuple[float, str, str], ...] = ()

    @property
    def settings(self) -> OutlierDetectionSettings:
        return OutlierDetectionSettings.from_envoy(dict(self.outlier_detection))

    def observed(self) -> list[ObservedEvent]:
        return parse_event_log(self.events, self.host_of)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hosts": list(self.hosts), "outlier_detection": dict(self.outlier_detection),
                "healthy_panic_threshold": self.healthy_panic_threshold, "t0": self.t0,
                "detector_start": self.detector_start, "end": self.end, "stats_at": self.stats_at, "meta": dict(self.meta),
                "host_of": dict(self.host_of), "stats": dict(self.stats), "events": [dict(e) for e in self.events],
                "flag_samples": [[t, list(h)] for t, h in self.flag_samples],
                "membership": [list(m) for m in self.membership],
                "attempts": [list(a) for a in self.attempts]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EnvoyRecording":
        return cls(name=d["name"], hosts=tuple(d["hosts"]), outlier_detection=dict(d["outlier_detection"]),
                   healthy_panic_threshold=float(d["healthy_panic_threshold"]), t0=float(d["t0"]),
                   detector_start=float(d["detector_start"]), end=float(d["end"]), stats_at=float(d["stats_at"]),
                   attempts=tuple((float(t), str(h), c if isinstance(c, str) else int(c)) for t, h, c in d["attempts"]),
                   events=tuple(d["events"]), host_of=dict(d["host_of"]),
                   flag_samples=tuple((float(t), tuple(h)) for t, h in d["flag_samples"]),
                   stats=dict(d["stats"]), meta=dict(d.get("meta") or {}),
                   membership=tuple((float(t), str(a), str(h)) for t, a, h in d.get("membership") or ()))


def ticks_from_event_log(observed: Sequence[ObservedEvent], *, t0: float, start: float, end: float,
                         interval_s: float) -> list[float]:
    """The detector's tick times (seconds after ``t0``) as Envoy ran them.

    Each UNEJECT is logged from inside a tick (``onIntervalTimer`` -> ``checkHostForUneject`` ->
    ``unejectHost``), and so is each success-rate or failure-percentage detection
    (``processSuccessRateEjections``): those times are ticks (events within half an interval of each
    other are one tick). Between two known ticks the count is the nearest whole number of intervals and the ticks
    are spread evenly (Envoy re-arms the timer after each tick, so lateness accumulates); before the
    first known tick they count back from it to ``start`` (when the timer was armed), after the last
    they go on every ``interval_s`` up to ``end``."""
    known: list[float] = []
    for e in sorted(observed, key=lambda x: x.t):
        from_tick = e.action == "uneject" or e.reason in TICK_EJECTION_TYPES
        if from_tick and (not known or e.t - t0 - known[-1] > interval_s / 2):
            known.append(e.t - t0)
    if not known:
        n = int((end - start) / interval_s)
        return [start + k * interval_s for k in range(1, n + 1)]
    first = known[0]
    n = round((first - start) / interval_s)
    ticks = [start + k * (first - start) / n for k in range(1, n)] if n >= 1 else []
    for a, b in zip(known, known[1:]):
        n = max(1, round((b - a) / interval_s))
        ticks += [a + k * (b - a) / n for k in range(n)]
    last = known[-1]
    ticks += [last + k * interval_s for k in range(0, int((end - last) / interval_s) + 1)]
    return ticks


def replay(rec: EnvoyRecording, *, settings: OutlierDetectionSettings | None = None,
           max_ejection_rule: str = "current") -> SimulationResult:
    """The oracle fed the recorded requests, ticking when Envoy ticked (:func:`ticks_from_event_log`), up
    to when ``/stats`` was read. Each request is a connect success (the stream was pool-ready) and then
    its result: the status the backend answered, or a local-origin result (``"reset"``)."""
    settings = settings or rec.settings
    until = max(rec.end, rec.stats_at)
    ticks = ticks_from_event_log(rec.observed(), t0=rec.t0, start=rec.detector_start, end=until,
                                 interval_s=rec.settings.interval_ms / 1000)
    inputs: list[dict[str, Any]] = [{"t": t, "tick": True} for t in ticks if t <= until]
    inputs += [{"t": t, f"{action}_host": h} for t, action, h in rec.membership]
    for t, h, c in rec.attempts:
        # Every request that reached a backend had a pool-ready stream first: the router reports
        # LocalOriginConnectSuccess for each (source/common/router/upstream_request.cc onPoolReady),
        # which with split_external_local_origin_errors resets the consecutive local-origin count.
        if c not in POOL_FAILURES:
            inputs.append({"t": t, "host": h, "local": "connect_success"})
        inputs.append({"t": t, "host": h, "local": c} if isinstance(c, str) else {"t": t, "host": h, "code": c})
    start = min([rec.detector_start] + [i["t"] for i in inputs])
    return simulate(settings, list(rec.hosts), inputs, until=until, detector_start=start,
                    healthy_panic_threshold=rec.healthy_panic_threshold, auto_ticks=False,
                    max_ejection_rule=max_ejection_rule)


def judge(rec: EnvoyRecording, sim: SimulationResult, *, tolerance_s: float | None = None) -> list[Agreement]:
    """Events, ``/clusters`` samples and counters of ``rec`` against ``sim`` (see the module docstring).

    ``tolerance_s`` defaults to a quarter interval, at most 0.5 s: far below the interval that a wrong
    ejection time or a wrong tick shifts an event by."""
    interval = rec.settings.interval_ms / 1000
    tol = min(0.5, interval / 4) if tolerance_s is None else tolerance_s
    observed = rec.observed()
    samples = [(rec.t0 + t, frozenset(h)) for t, h in rec.flag_samples]
    end = rec.t0 + max(rec.end, rec.stats_at)  # the event log was read after /stats
    events = compare_events(sim, observed, t0=rec.t0, end=end, tolerance_s=tol, uneject_window_s=interval + tol)
    return [events, compare_flags(sim, samples, observed, t0=rec.t0, tolerance_s=tol),
            compare_stats(sim, rec.stats, deferred_unejects=events.deferred_unejects)]
