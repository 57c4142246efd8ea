"""The behaviour step of ``pkg/controller/podautoscaler/horizontal.go``: stabilization windows and
scaling-policy rate limits, as pure functions over the recommendation and scale-event histories.

Upstream keeps these in horizontal.go beside the sync loop (``normalizeDesiredReplicas`` and
``normalizeDesiredReplicasWithBehaviors`` with ``stabilizeRecommendation[WithBehaviors]``,
``convertDesiredReplicasWithRules``, ``convertDesiredReplicasWithBehaviorRate``,
``calculateScaleUpLimit[WithScalingRules]``, ``calculateScaleDownLimitWithBehaviors``,
``getReplicasChangePerPeriod``, ``storeScaleEvent``/``markScaleEventsOutdated``); the port keeps
them apart from the reconcile pass (``controller``) because they are the part a trajectory is
judged against.

Without ``spec.behavior`` (the legacy path) scale-up is capped at ``max(2 * current, 4)`` per sync,
scale-down is stabilized over ``--horizontal-pod-autoscaler-downscale-stabilization`` (5 min) and
not rate-limited.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

from harness.oracles.hpa.flags import DEFAULT_DOWNSCALE_STABILIZATION_WINDOW
from harness.oracles.hpa.gomath import INT32_MAX, INT32_MIN
from harness.oracles.hpa.spec import Behavior, ScalingPolicy, ScalingRules, parse_behavior

__all__ = [
    "SCALE_UP_LIMIT_FACTOR", "SCALE_UP_LIMIT_MINIMUM", "Recommendation", "ScaleEvent", "NormalizationResult",
    "get_replicas_change_per_period", "policy_limit", "calculate_scale_up_limit_with_scaling_rules",
    "calculate_scale_down_limit_with_behaviors", "convert_desired_replicas_with_behavior_rate",
    "stabilize_recommendation_with_behaviors", "stabilize_recommendation", "calculate_scale_up_limit",
    "convert_desired_replicas_with_rules", "mark_scale_events_outdated", "store_scale_event",
    "normalize_desired_replicas",
]

SCALE_UP_LIMIT_FACTOR = 2.0  # horizontal.go scaleUpLimitFactor (legacy path only)
SCALE_UP_LIMIT_MINIMUM = 4.0  # horizontal.go scaleUpLimitMinimum (legacy path only)


@dataclass(frozen=True)
class Recommendation:
    """``timestampedRecommendation``."""

    replicas: int
    timestamp: float


@dataclass(frozen=True)
class ScaleEvent:
    """``timestampedScaleEvent``: ``replica_change`` is the absolute change."""

    replica_change: int
    timestamp: float
    outdated: bool = False


def get_replicas_change_per_period(period_seconds: float, events: Sequence[ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: the sum of changes strictly after ``now - period``."""
    cutoff = now - period_seconds
    return sum(e.replica_change for e in events if e.timestamp > cutoff)


def policy_limit(rules: ScalingRules, start_for: Callable[[float], int], up: bool) -> Tuple[int, Optional[ScalingPolicy]]:
    """The policies' limit and the policy that sets it: up, the most replicas (``start + value`` for
    Pods, Percent rounded up); down, the fewest (``start - value``, Percent truncated toward zero as
    ``int32()`` does). ``start_for(period)`` is the replica count at the start of a policy's period.
    selectPolicy Max takes the largest change (highest up-limit, lowest down-floor), Min the smallest.
    """
    wants_high = up == (rules.select_policy != "Min")
    result, chosen = (INT32_MIN if wants_high else INT32_MAX), None
    for p in rules.policies:
        start = start_for(p.period_seconds)
        if up:
            proposed = start + p.value if p.type == "Pods" else int(math.ceil(start * (1 + p.value / 100)))
        else:
            proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        if chosen is None or (proposed > result if wants_high else proposed < result):
            result, chosen = proposed, p
    return result, chosen


def _replicas_at_period_start(current_replicas: int, period_seconds: float, scale_up_events: Sequence[ScaleEvent],
                              scale_down_events: Sequence[ScaleEvent], now: float) -> int:
    """The replicas at the start of a policy's period: ``current - added + deleted`` within it."""
    return (current_replicas - get_replicas_change_per_period(period_seconds, scale_up_events, now)
            + get_replicas_change_per_period(period_seconds, scale_down_events, now))


def calculate_scale_up_limit_with_scaling_rules(current_replicas: int, scale_up_events: Sequence[ScaleEvent],
                                                scale_down_events: Sequence[ScaleEvent], rules: ScalingRules,
                                                now: float) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now.

    Each policy starts from the replicas at the start of its period
    (``current - added + deleted`` within it); Percent rounds up; selectPolicy Max takes the
    largest, Min the smallest; Disabled returns ``current_replicas``.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    start = lambda period: _replicas_at_period_start(current_replicas, period, scale_up_events, scale_down_events, now)  # noqa: E731
    return policy_limit(rules, start, up=True)[0]


def calculate_scale_down_limit_with_behaviors(current_replicas: int, scale_up_events: Sequence[ScaleEvent],
                                              scale_down_events: Sequence[ScaleEvent], rules: ScalingRules,
                                              now: float) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now.

    Percent truncates toward zero (``int32(float64(start) * (1 - v/100))``); selectPolicy
    Max picks the lowest floor, Min the highest; Disabled returns ``current_replicas``.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    start = lambda period: _replicas_at_period_start(current_replicas, period, scale_up_events, scale_down_events, now)  # noqa: E731
    return policy_limit(rules, start, up=False)[0]


def convert_desired_replicas_with_behavior_rate(current_replicas: int, desired_replicas: int, min_replicas: int,
                                                max_replicas: int, scale_up_rules: ScalingRules,
                                                scale_down_rules: ScalingRules, scale_up_events: Sequence[ScaleEvent],
                                                scale_down_events: Sequence[ScaleEvent], now: float) -> Tuple[int, str]:
    """``convertDesiredReplicasWithBehaviorRate`` -> ``(replicas, ScalingLimited reason)``."""
    if desired_replicas > current_replicas:
        limit = calculate_scale_up_limit_with_scaling_rules(current_replicas, scale_up_events, scale_down_events,
                                                            scale_up_rules, now)
        limit = max(limit, current_replicas)  # do not scale up further until events age out
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired_replicas > allowed:
            return allowed, reason
    elif desired_replicas < current_replicas:
        limit = calculate_scale_down_limit_with_behaviors(current_replicas, scale_up_events, scale_down_events,
                                                          scale_down_rules, now)
        limit = min(limit, current_replicas)  # do not scale down further until events age out
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired_replicas < allowed:
            return allowed, reason
    return desired_replicas, "DesiredWithinRange"


def _recorded(recommendations: Sequence[Recommendation], old_index: Optional[int],
              new: Recommendation) -> Tuple[Recommendation, ...]:
    """The history with ``new`` in the slot of the last sample older than the window(s), else appended
    (upstream reuses the slot rather than growing the slice)."""
    history = list(recommendations)
    if old_index is not None:
        history[old_index] = new
    else:
        history.append(new)
    return tuple(history)


def stabilize_recommendation_with_behaviors(current_replicas: int, desired_replicas: int,
                                            scale_up_window: float, scale_down_window: float,
                                            recommendations: Sequence[Recommendation],
                                            now: float) -> Tuple[int, Tuple[Recommendation, ...], str]:
    """``stabilizeRecommendationWithBehaviors`` -> ``(stabilized, new_history, reason)``.

    Up: the minimum recommendation within the scale-up window; down: the maximum within
    the scale-down window (both strictly after ``now - window`` and including this
    ``desired_replicas``); the result is ``current`` moved only as far as both allow. The
    new recommendation replaces the last sample older than both windows, else is appended.
    """
    up_rec = down_rec = desired_replicas
    up_cutoff, down_cutoff = now - scale_up_window, now - scale_down_window
    old_index = None
    for i, r in enumerate(recommendations):
        if r.timestamp > up_cutoff:
            up_rec = min(r.replicas, up_rec)
        if r.timestamp > down_cutoff:
            down_rec = max(r.replicas, down_rec)
        if r.timestamp < up_cutoff and r.timestamp < down_cutoff:
            old_index = i
    rec = current_replicas
    if rec < up_rec:
        rec = up_rec
    if rec > down_rec:
        rec = down_rec
    history = _recorded(recommendations, old_index, Recommendation(desired_replicas, now))
    reason = "ScaleUpStabilized" if desired_replicas >= current_replicas else "ScaleDownStabilized"
    return rec, history, reason


def stabilize_recommendation(desired_replicas: int, recommendations: Sequence[Recommendation], now: float,
                             window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW) -> Tuple[int, Tuple[Recommendation, ...]]:
    """``stabilizeRecommendation`` (legacy path): the maximum recommendation not older than
    ``window``; the new one replaces the last older sample, else is appended."""
    best = desired_replicas
    old_index = None
    cutoff = now - window
    for i, r in enumerate(recommendations):
        if r.timestamp < cutoff:
            old_index = i
        elif r.replicas > best:
            best = r.replicas
    history = _recorded(recommendations, old_index, Recommendation(desired_replicas, now))
    return best, history


def calculate_scale_up_limit(current_replicas: int, factor: float = SCALE_UP_LIMIT_FACTOR,
                             minimum: float = SCALE_UP_LIMIT_MINIMUM) -> int:
    """``calculateScaleUpLimit``: ``max(factor * current, minimum)`` (legacy path)."""
    return int(max(factor * current_replicas, minimum))


def convert_desired_replicas_with_rules(current_replicas: int, desired_replicas: int, min_replicas: int,
                                        max_replicas: int, factor: float = SCALE_UP_LIMIT_FACTOR,
                                        minimum: float = SCALE_UP_LIMIT_MINIMUM) -> Tuple[int, str]:
    """``convertDesiredReplicasWithRules`` (legacy path) -> ``(replicas, condition)``."""
    limit = calculate_scale_up_limit(current_replicas, factor, minimum)
    if max_replicas > limit:
        maximum, cond = limit, "ScaleUpLimit"
    else:
        maximum, cond = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > maximum:
        return maximum, cond
    return desired_replicas, "DesiredWithinRange"


def mark_scale_events_outdated(events: Sequence[ScaleEvent], longest_period: float, now: float) -> Tuple[ScaleEvent, ...]:
    """``markScaleEventsOutdated``: flag events older than the longest policy period."""
    cutoff = now - longest_period
    return tuple(replace(e, outdated=True) if e.timestamp < cutoff else e for e in events)


def store_scale_event(behavior: Optional[Behavior], scale_up_events: Sequence[ScaleEvent],
                      scale_down_events: Sequence[ScaleEvent], prev_replicas: int, new_replicas: int,
                      now: float) -> Tuple[Tuple[ScaleEvent, ...], Tuple[ScaleEvent, ...]]:
    """``storeScaleEvent``: record a rescale, reusing the last outdated slot.

    Nothing is stored without a behavior (the legacy path never reads events).
    """
    up, down = tuple(scale_up_events), tuple(scale_down_events)
    if behavior is None:
        return up, down
    if new_replicas > prev_replicas:
        events = list(mark_scale_events_outdated(up, behavior.scale_up.longest_period(), now))
        change = new_replicas - prev_replicas
    else:
        events = list(mark_scale_events_outdated(down, behavior.scale_down.longest_period(), now))
        change = prev_replicas - new_replicas
    old = None
    for i, e in enumerate(events):
        if e.outdated:
            old = i
    new = ScaleEvent(change, now, False)
    if old is not None:
        events[old] = new
    else:
        events.append(new)
    return (tuple(events), down) if new_replicas > prev_replicas else (up, tuple(events))


@dataclass(frozen=True)
class NormalizationResult:
    """One behaviour step: the replicas to set and the updated histories.

    ``stabilized`` is the recommendation after the stabilization window(s);
    ``able_to_scale_reason`` and ``scaling_limited_reason`` are the condition reasons
    upstream sets (e.g. ``ScaleDownStabilized``, ``ScaleUpLimit``, ``TooManyReplicas``).
    """

    replicas: int
    stabilized: int
    able_to_scale_reason: str
    scaling_limited_reason: str
    recommendations: Tuple[Recommendation, ...]
    scale_up_events: Tuple[ScaleEvent, ...]
    scale_down_events: Tuple[ScaleEvent, ...]


def normalize_desired_replicas(current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int,
                               behavior: Union[None, Mapping[str, Any], Behavior], *,
                               recommendations: Sequence[Recommendation] = (),
                               scale_up_events: Sequence[ScaleEvent] = (),
                               scale_down_events: Sequence[ScaleEvent] = (), now: float,
                               downscale_stabilization_window: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW,
                               scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
                               scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM) -> NormalizationResult:
    """The behaviour step as a pure function (``normalizeDesiredReplicas[WithBehaviors]``).

    ``behavior`` is the manifest's ``spec.behavior`` block as written (camelCase dict), a
    parsed ``Behavior``, or ``None``. With a behavior: stabilize over the recommendation
    history, then limit by the policies over the scale-event history, then clamp to
    ``[min, max]``. Without (upstream keeps ``Behavior`` nil): stabilize over
    ``downscale_stabilization_window`` and cap scale-up at ``max(factor*current, minimum)``.
    The returned histories include this step's recommendation and, if the replicas
    change, its scale event (``storeScaleEvent``).
    """
    b = parse_behavior(behavior)
    if b is None:
        stabilized, history = stabilize_recommendation(desired_replicas, recommendations, now,
                                                       downscale_stabilization_window)
        able = "ScaleDownStabilized" if stabilized != desired_replicas else "ReadyForNewScale"
        replicas, limited = convert_desired_replicas_with_rules(current_replicas, stabilized, min_replicas,
                                                                max_replicas, scale_up_limit_factor,
                                                                scale_up_limit_minimum)
        return NormalizationResult(replicas, stabilized, able, limited, history,
                                   tuple(scale_up_events), tuple(scale_down_events))
    stabilized, history, reason = stabilize_recommendation_with_behaviors(
        current_replicas, desired_replicas, b.scale_up.window(0),
        b.scale_down.window(downscale_stabilization_window), recommendations, now)
    able = reason if stabilized != desired_replicas else "ReadyForNewScale"
    replicas, limited = convert_desired_replicas_with_behavior_rate(
        current_replicas, stabilized, min_replicas, max_replicas, b.scale_up, b.scale_down,
        scale_up_events, scale_down_events, now)
    up, down = tuple(scale_up_events), tuple(scale_down_events)
    if replicas != current_replicas:
        up, down = store_scale_event(b, up, down, current_replicas, replicas, now)
    return NormalizationResult(replicas, stabilized, able, limited, history, up, down)
