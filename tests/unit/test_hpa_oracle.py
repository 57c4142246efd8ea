"""Upstream HPA controller test tables, reproduced against ``harness.oracles.hpa``.

Upstream cases reproduced: 163 (kubernetes/kubernetes pkg/controller/podautoscaler:
replica_calculator_test.go -- 63 TestReplicaCalc*/TestPlainMetricReplicaCalc* cases,
14 TestGroupPods, 2 TestCalculatePodRequests; horizontal_test.go -- 5 TestNormalizeDesiredReplicas,
5 TestConvertDesiredReplicasWithRules, 1 TestCalculateScaleUpLimitWithScalingRules,
1 TestCalculateScaleDownLimitWithBehaviors, 42 TestScalingWithRules, 8 TestStoreScaleEvents,
11 TestNormalizeDesiredReplicasWithBehavior, 11 controller cases: TestScaleUpCM,
TestScaleUpCMUnreadyAndHotCpuNoLessScale, TestScaleUpCMObject, TestScaleUpFromZeroCMObject,
TestScaleUpFromZeroIgnoresToleranceCMObject, TestScaleUpPerPodCMObject, TestScaleUpOneMetricEmpty,
TestNoScaleDownOneMetricInvalid, TestNoScaleDownOneMetricEmpty, TestScaleUpRCImmediately,
TestScaleDownRCImmediately). Not counted: defaults/parsing checks written from
pkg/apis/autoscaling/v2/defaults.go and the oracle's own simulator/envelope checks.

Each table row names the upstream test (and its case name where the test is a table).
Upstream's fake clients build pods with two containers that each request ``requests[i]`` and
report ``levels[i]`` (``makePodMetricLevels``), so a pod's request and usage are twice the
per-container numbers; ``time.Time{}`` (zero) is modelled as t=0 and ``time.Now()`` as ``NOW``.
The replica-calculator tests use upstream's testing constants: tolerance 0.1, CPU
initialization period 2 min, initial readiness delay 10 s, metric window 1 min.
"""
from __future__ import annotations

import math

import pytest

from harness.oracles import hpa
from harness.oracles.hpa import (Behavior, CalculatorConfig, ControllerState, HPASpec, MetricSnapshot,
                                 MetricSpec, MetricTarget, MetricUnavailable, PodInput, PodMetric,
                                 Recommendation, ScaleEvent, ScalingPolicy, ScalingRules)

NOW = 1_000_000.0
ZERO = 0.0  # Go's zero time.Time: long before NOW
HOT = NOW  # hotCPUCreationTime()
COOL = NOW - 180.0  # coolCPUCreationTime()
TS = ZERO  # tc.timestamp is left zero in the replica-calculator tests
TESTING = CalculatorConfig(tolerances=hpa.Tolerances(0.1, 0.1), cpu_initialization_period=120.0,
                           delay_of_initial_readiness_status=10.0, metric_window=60.0)
R, P, F = "Running", "Pending", "Failed"
T_, F_ = True, False

# ---------------------------------------------------------------------------------------
# replica_calculator_test.go: resource metrics (GetResourceReplicas)
# ---------------------------------------------------------------------------------------
# (upstream test, currentReplicas, expectedReplicas, requests (milli per container),
#  levels (per pod: int = both containers, list = per container), target, expected utilization,
#  expected raw value, extras)  -- expected None with extras["error"] for error cases


def L(*xs):  # makePodMetricLevels
    return list(xs)


ONE = 1000  # resource.MustParse("1.0")
RESOURCE_CASES = [
    ("TestReplicaCalcDisjointResourcesMetrics", 1, None, [ONE], L(100), 100, None, None,
     dict(pod_names=["an-older-pod-name"], error="no metrics returned matched known pods")),
    ("TestReplicaCalcScaleUp", 3, 5, [ONE] * 3, L(300, 500, 700), 30, 50, 2 * 500, {}),
    ("TestReplicaCalcContainerScaleUp", 3, 5, [ONE] * 3, [[1000, 300], [1000, 500], [1000, 700]], 30, 50, 500,
     dict(container="container2")),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, 4, [ONE] * 3, L(300, 500, 700), 30, 60, 2 * 600,
     dict(ready=[F_, T_, T_])),
    ("TestReplicaCalcScaleUpContainerHotCpuLessScale", 3, 4, [ONE] * 3, [[0, 300], [0, 500], [0, 700]], 30, 60, 600,
     dict(start=[HOT, COOL, COOL], container="container2")),
    ("TestReplicaCalcScaleUpHotCpuLessScale", 3, 4, [ONE] * 3, L(300, 500, 700), 30, 60, 2 * 600,
     dict(start=[HOT, COOL, COOL])),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, 3, [ONE] * 3, L(400, 500, 700), 30, 40, 2 * 400,
     dict(ready=[T_, F_, F_])),
    ("TestReplicaCalcScaleHotCpuNoScale", 3, 3, [ONE] * 3, L(400, 500, 700), 30, 40, 2 * 400,
     dict(ready=[T_, F_, F_], start=[COOL, HOT, HOT])),
    ("TestReplicaCalcScaleUpIgnoresFailedPods", 2, 4, [ONE] * 4, L(500, 700), 30, 60, 2 * 600,
     dict(ready=[T_, T_, F_, F_], phase=[R, R, F, F])),
    ("TestReplicaCalcMissingContainerMetricScaleUpIgnoresFailedPods", 2, 4, [ONE] * 4,
     [[1000, 500], [9000, 700], [1000], [9000]], 30, 60, 600,
     dict(ready=[T_, T_, F_, F_], phase=[R, R, F, F], container="container2")),
    ("TestReplicaCalcScaleUpContainerIgnoresFailedPods", 2, 4, [ONE] * 4, [[1000, 500], [9000, 700]], 30, 60, 600,
     dict(ready=[T_, T_, F_, F_], phase=[R, R, F, F], container="container2")),
    ("TestReplicaCalcScaleUpIgnoresDeletionPods", 2, 4, [ONE] * 4, L(500, 700), 30, 60, 2 * 600,
     dict(ready=[T_, T_, F_, F_], phase=[R] * 4, deleted=[False, False, True, True])),
    ("TestReplicaCalcScaleUpContainerIgnoresDeletionPods", 2, 4, [ONE] * 4, [[500, 500], [700, 700]], 30, 60, 600,
     dict(ready=[T_, T_, F_, F_], phase=[R] * 4, deleted=[False, False, True, True], container="container1")),
    ("TestReplicaCalcScaleDown", 5, 3, [ONE] * 5, L(100, 300, 500, 250, 250), 50, 28, 2 * 280, {}),
    ("TestReplicaCalcContainerScaleDown", 5, 3, [ONE] * 5,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]], 50, 28, 280, dict(container="container2")),
    ("TestReplicaCalcScaleDownExcludeUnreadyPods", 5, 2, [ONE] * 5, L(100, 300, 500, 250, 250), 50, 30, 2 * 300,
     dict(ready=[T_, T_, T_, F_, F_])),
    ("TestReplicaCalcScaleDownContainerExcludeUnreadyPods", 5, 2, [ONE] * 5,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]], 50, 30, 300,
     dict(ready=[T_, T_, T_, F_, F_], container="container2")),
    ("TestReplicaCalcScaleDownExcludeUnscheduledPods", 5, 1, [ONE] * 5, L(100), 50, 10, 2 * 100,
     dict(ready=[T_, F_, F_, F_, F_], phase=[R, P, P, P, P])),
    ("TestReplicaCalcScaleDownContainerExcludeUnscheduledPods", 5, 1, [ONE] * 5,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]], 50, 10, 100,
     dict(ready=[T_, F_, F_, F_, F_], phase=[R, P, P, P, P], container="container2")),
    ("TestReplicaCalcScaleDownIgnoreHotCpuPods", 5, 2, [ONE] * 5, L(100, 300, 500, 250, 250), 50, 30, 2 * 300,
     dict(start=[COOL, COOL, COOL, HOT, HOT])),
    ("TestReplicaCalcScaleDownContainerIgnoreHotCpuPods", 5, 2, [ONE] * 5,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 1000], [1000, 1000]], 50, 30, 300,
     dict(start=[COOL, COOL, COOL, HOT, HOT], container="container2")),
    ("TestReplicaCalcScaleDownIgnoresFailedPods", 5, 3, [ONE] * 7, L(100, 300, 500, 250, 250), 50, 28, 2 * 280,
     dict(ready=[T_] * 5 + [F_, F_], phase=[R] * 5 + [F, F])),
    ("TestReplicaCalcScaleDownContainerIgnoresFailedPods", 5, 3, [ONE] * 7,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]], 50, 28, 280,
     dict(ready=[T_] * 5 + [F_, F_], phase=[R] * 5 + [F, F], container="container2")),
    ("TestReplicaCalcScaleDownIgnoresDeletionPods", 5, 3, [ONE] * 7, L(100, 300, 500, 250, 250), 50, 28, 2 * 280,
     dict(ready=[T_] * 5 + [F_, F_], phase=[R] * 7, deleted=[False] * 5 + [True, True])),
    ("TestReplicaCalcScaleDownIgnoresDeletionPods_StillRunning", 5, 3, [ONE] * 7,
     [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]], 50, 28, 280,
     dict(ready=[T_] * 5 + [F_, F_], phase=[R] * 7, deleted=[False] * 5 + [True, True], container="container2")),
    ("TestReplicaCalcTolerance", 3, 3, [900, 1000, 1100], L(1010, 1030, 1020), 100, 102, 2 * 1020, {}),
    ("TestReplicaCalcSuperfluousMetrics", 4, 24, [ONE] * 4, L(4000, 9500, 3000, 7000, 3200, 2000), 100, 587,
     2 * 5875, {}),
    ("TestReplicaCalcMissingMetrics", 4, 3, [ONE] * 4, L(400, 95), 100, 24, 495, {}),
    ("TestReplicaCalcEmptyMetrics", 4, None, [ONE] * 3, L(), 100, None, None,
     dict(error="unable to get metrics for resource cpu: no metrics returned from resource metrics API")),
    ("TestReplicaCalcEmptyCPURequest", 1, None, [], L(200), 100, None, None, dict(error="missing request for")),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, 2, [ONE] * 2, L(1000), 100, 100, 2 * 1000, {}),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, 2, [ONE] * 2, L(1900), 100, 190, 2 * 1900, {}),
    ("TestReplicaCalcMissingMetricsNoChangeLt", 2, 2, [ONE] * 2, L(600), 100, 60, 2 * 600, {}),
    ("TestReplicaCalcMissingMetricsUnreadyChange", 3, 3, [ONE] * 3, L(100, 450), 50, 45, 2 * 450,
     dict(ready=[F_, T_, T_])),
    ("TestReplicaCalcMissingMetricsHotCpuNoChange", 3, 3, [ONE] * 3, L(100, 450), 50, 45, 2 * 450,
     dict(start=[HOT, COOL, COOL])),
    ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3, 4, [ONE] * 3, L(100, 2000), 50, 200, 2 * 2000,
     dict(ready=[F_, T_, T_])),
    ("TestReplicaCalcMissingMetricsHotCpuScaleUp", 3, 4, [ONE] * 3, L(100, 2000), 50, 200, 2 * 2000,
     dict(ready=[F_, T_, T_], start=[HOT, COOL, COOL])),
    ("TestReplicaCalcMissingMetricsUnreadyScaleDown", 4, 3, [ONE] * 4, L(100, 100, 100), 50, 10, 2 * 100,
     dict(ready=[F_, T_, T_, T_])),
    ("TestReplicaCalcMissingMetricsScaleDownTargetOver100", 4, 2, [ONE, ONE, 2000, 2000], L(200, 100, 100), 300, 6,
     2 * 100, dict(ready=[F_, T_, T_, T_])),
    ("TestReplicaCalcDuringRollingUpdateWithMaxSurge", 2, 2, [ONE] * 3, L(100, 100), 50, 10, 2 * 100,
     dict(phase=[R, R, R])),
]


def build_resource_case(current, requests, levels, extras):
    """The pods and metrics upstream's fake clients return for one test case."""
    phases = extras.get("phase")
    n = max(current, len(phases) if phases else 0)  # failed pods are not in currentReplicas
    container = extras.get("container")
    idx = None if container is None else int(container[-1]) - 1
    pods, metrics = [], {}
    for i in range(n):
        req = {}
        if i < len(requests):
            req = {"cpu": requests[i] * (2 if container is None else 1)}
        pods.append(PodInput(
            name=f"test-pod-{i}", requests=req,
            ready=extras["ready"][i] if i < len(extras.get("ready", [])) else True,
            phase=phases[i] if phases else R,
            deleted=extras.get("deleted", [False] * n)[i],
            start_time=extras["start"][i] if "start" in extras else ZERO,
            ready_transition_time=ZERO))
    names = extras.get("pod_names", [])
    for i, lv in enumerate(levels):
        name = names[i] if i < len(names) else f"test-pod-{i}"
        per_container = lv if isinstance(lv, list) else [lv, lv]
        if idx is None:
            value = sum(per_container)
        elif idx < len(per_container):
            value = per_container[idx]
        else:
            continue  # the container's metric is missing: the pod has no sample
        metrics[name] = PodMetric(value, TS, 60.0)
    return pods, metrics


@pytest.mark.parametrize("name,current,expected,requests,levels,target,util,raw,extras", RESOURCE_CASES,
                         ids=[c[0] for c in RESOURCE_CASES])
def test_replica_calc_resource(name, current, expected, requests, levels, target, util, raw, extras):
    pods, metrics = build_resource_case(current, requests, levels, extras)
    if expected is None:
        with pytest.raises(MetricUnavailable, match=extras["error"]):
            hpa.get_resource_replicas(current, target, "cpu", pods, now=NOW, metrics=metrics, config=TESTING)
        return
    out = hpa.get_resource_replicas(current, target, "cpu", pods, now=NOW, metrics=metrics, config=TESTING)
    assert (out.replicas, out.usage, out.raw_usage) == (expected, util, raw)


def test_replica_calc_computed_tolerance_alg_implementation():
    """TestReplicaCalcComputedToleranceAlgImplementation: both runs (scale to 9, then no change)."""
    start_pods = 10
    total_used = start_pods * 150
    total_requested = 2 * total_used
    requested_to_used = float(total_requested // total_used)
    per_pod_requested = total_requested // start_pods
    target = abs(1 / (requested_to_used * (1 - 0.1))) + .01
    final_target = int(target * 100)
    used_ratio = total_used / (total_requested * target)
    final_pods = math.ceil(used_ratio * start_pods)
    offsets = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0]
    requests = [per_pod_requested + o for o in offsets]
    pods, metrics = build_resource_case(start_pods, requests, [total_used // 10] * 10, {})
    out = hpa.get_resource_replicas(start_pods, final_target, "cpu", pods, now=NOW, metrics=metrics, config=TESTING)
    assert (out.replicas, out.usage, out.raw_usage) == (final_pods, total_used * 100 // total_requested,
                                                        2 * total_used // 10)
    target2 = int((abs(1 / (requested_to_used * (1 - 0.1))) + .004) * 100)
    out2 = hpa.get_resource_replicas(start_pods, target2, "cpu", pods, now=NOW, metrics=metrics, config=TESTING)
    assert out2.replicas == start_pods


# ---------------------------------------------------------------------------------------
# replica_calculator_test.go: custom metrics (Pods, Object, External)
# ---------------------------------------------------------------------------------------
# (upstream test, kind, currentReplicas, expectedReplicas, levels, target (milli), expected usage, readiness,
#  start times, phases)
METRIC_CASES = [
    ("TestReplicaCalcScaleUpCM", "pods", 3, 4, [20000, 10000, 30000], 15000, 20000, None, None, None),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", "pods", 3, 6, [50000, 10000, 30000], 15000, 30000,
     [T_, T_, F_], [COOL, COOL, HOT], None),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", "pods", 3, 7, [50000, 15000, 30000], 15000, 31666,
     [F_, T_, F_], [HOT, COOL, HOT], None),
    ("TestReplicaCalcScaleUpCMObject", "object", 3, 4, [20000], 15000, 20000, None, None, None),
    ("TestReplicaCalcScaleUpCMPerPodObject", "object_per_pod", 3, 4, [20000], 5000, 6667, None, None, None),
    ("TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods", "object", 3, 5, [50000], 10000, 50000, [F_, T_, F_], None, None),
    ("TestReplicaCalcScaleUpCMExternal", "pods", 1, 2, [8600], 4400, 8600, None, None, None),
    ("TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods", "external", 3, 2, [8600], 4400, 8600, [F_, T_, F_], None, None),
    ("TestReplicaCalcScaleUpCMExternalNoLabels", "pods", 1, 2, [8600], 4400, 8600, None, None, None),
    ("TestReplicaCalcScaleUpPerPodCMExternal", "external_per_pod", 3, 4, [8600], 2150, 2867, None, None, None),
    ("TestReplicaCalcScaleDownCM", "pods", 5, 3, [12000] * 5, 20000, 12000, None, None, None),
    ("TestReplicaCalcScaleDownPerPodCMObject", "object_per_pod", 5, 3, [6000], 2000, 1200, None, None, None),
    ("TestReplicaCalcScaleDownCMObject", "object", 5, 3, [12000], 20000, 12000, None, None, None),
    ("TestReplicaCalcScaleDownCMExternal", "external", 5, 3, [8600], 14334, 8600, None, None, None),
    ("TestReplicaCalcScaleDownPerPodCMExternal", "external_per_pod", 5, 3, [8600], 2867, 1720, None, None, None),
    ("TestReplicaCalcToleranceCM", "pods", 3, 3, [20000, 21000, 21000], 20000, 20666, None, None, None),
    ("TestReplicaCalcToleranceCMObject", "object", 3, 3, [20666], 20000, 20666, None, None, None),
    ("TestReplicaCalcTolerancePerPodCMObject", "object_per_pod", 4, 4, [20166], 5000, 5042, None, None, None),
    ("TestReplicaCalcToleranceCMExternal", "external", 3, 3, [8600], 8888, 8600, None, None, None),
    ("TestReplicaCalcTolerancePerPodCMExternal", "external_per_pod", 3, 3, [8600], 2900, 2867, None, None, None),
    ("TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", "pods", 5, 5, [20000, 19000, 21000], 20000, 20000,
     None, None, None),
    ("TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM", "pods", 2, 2, [10000, 10000], 17000, 10000, None, None,
     [R, R, R]),
]


@pytest.mark.parametrize("name,kind,current,expected,levels,target,usage,ready,start,phase", METRIC_CASES,
                         ids=[c[0] for c in METRIC_CASES])
def test_replica_calc_custom_metrics(name, kind, current, expected, levels, target, usage, ready, start, phase):
    n = max(current, len(phase) if phase else 0)
    pods = [PodInput(name=f"test-pod-{i}", ready=ready[i] if ready else True, phase=phase[i] if phase else R,
                     start_time=start[i] if start else ZERO) for i in range(n)]
    if kind == "pods":
        metrics = {f"test-pod-{i}": PodMetric(v, TS, 60.0) for i, v in enumerate(levels)}
        out = hpa.get_metric_replicas(current, target, "qps", pods, now=NOW, metrics=metrics, config=TESTING)
    elif kind == "object":
        out = hpa.get_object_metric_replicas(current, target, levels[0], pods, TESTING)
    elif kind == "object_per_pod":
        out = hpa.get_object_per_pod_metric_replicas(current, target, levels[0], TESTING)
    elif kind == "external":
        out = hpa.get_external_metric_replicas(current, target, levels, pods, TESTING)
    else:
        out = hpa.get_external_per_pod_metric_replicas(current, target, levels, TESTING)
    assert (out.replicas, out.usage) == (expected, usage)


# ---------------------------------------------------------------------------------------
# replica_calculator_test.go: TestGroupPods, TestCalculatePodRequests
# ---------------------------------------------------------------------------------------
M = 60.0
GROUP_CASES = [
    # (case, pods [(name, phase, start, ready, transition, deleted)], metrics {name: (ts, window)}, resource,
    #  ready count, unready, missing, ignored)
    ("void", [], {}, "cpu", 0, set(), set(), set()),
    ("count in a ready pod - memory", [("bentham", "Succeeded", None, None, ZERO, False)],
     {"bentham": (NOW, M)}, "memory", 1, set(), set(), set()),
    ("unready a pod without ready condition - CPU", [("lucretius", "Succeeded", NOW, None, ZERO, False)],
     {"lucretius": (ZERO, 0.0)}, "cpu", 0, {"lucretius"}, set(), set()),
    ("count in a ready pod with fresh metrics during initialization period - CPU",
     [("bentham", "Succeeded", NOW - 60, True, NOW - 30, False)], {"bentham": (NOW, 30.0)}, "cpu", 1, set(), set(), set()),
    ("unready a ready pod without fresh metrics during initialization period - CPU",
     [("bentham", "Succeeded", NOW - 60, True, NOW - 30, False)], {"bentham": (NOW, 60.0)}, "cpu", 0, {"bentham"},
     set(), set()),
    ("unready an unready pod during initialization period - CPU",
     [("lucretius", "Succeeded", NOW - 600, False, NOW - 594, False)], {"lucretius": (ZERO, 0.0)}, "cpu", 0,
     {"lucretius"}, set(), set()),
    ("count in a ready pod without fresh metrics after initialization period - CPU",
     [("bentham", "Succeeded", NOW - 180, True, NOW - 180, False)], {"bentham": (NOW - 120, M)}, "cpu", 1, set(), set(),
     set()),
    ("count in an unready pod that was ready after initialization period - CPU",
     [("lucretius", "Succeeded", NOW - 600, False, NOW - 540, False)], {"lucretius": (ZERO, 0.0)}, "cpu", 1, set(),
     set(), set()),
    ("unready pod that has never been ready after initialization period - CPU",
     [("lucretius", "Succeeded", NOW - 600, False, NOW - 590, False)], {"lucretius": (ZERO, 0.0)}, "cpu", 1, set(),
     set(), set()),
    ("a missing pod", [("epicurus", "Succeeded", NOW - 180, None, ZERO, False)], {}, "cpu", 0, set(), {"epicurus"}, set()),
    ("several pods", [("lucretius", "Succeeded", NOW, None, ZERO, False),
                      ("niccolo", "Succeeded", NOW - 180, True, NOW - 180, False),
                      ("epicurus", "Succeeded", NOW - 180, None, ZERO, False)],
     {"lucretius": (ZERO, 0.0), "niccolo": (ZERO, 0.0)}, "cpu", 1, {"lucretius"}, {"epicurus"}, set()),
    ("pending pods are unreadied", [("unscheduled", "Pending", None, None, ZERO, False)], {}, "cpu", 0,
     {"unscheduled"}, set(), set()),
    ("ignore pods with deletion timestamps", [("deleted", "Pending", None, None, ZERO, True)],
     {"deleted": (ZERO, 0.0)}, "cpu", 0, set(), set(), {"deleted"}),
    ("ignore pods in a failed state", [("failed", "Failed", None, None, ZERO, False)], {"failed": (ZERO, 0.0)},
     "cpu", 0, set(), set(), {"failed"}),
]


@pytest.mark.parametrize("case,pods,metrics,resource,ready,unready,missing,ignored", GROUP_CASES,
                         ids=[c[0] for c in GROUP_CASES])
def test_group_pods(case, pods, metrics, resource, ready, unready, missing, ignored):
    """TestGroupPods."""
    inputs = [PodInput(name=n, phase=ph, start_time=st, ready=rd, ready_transition_time=tr, deleted=dl)
              for n, ph, st, rd, tr, dl in pods]
    mets = {k: PodMetric(1, ts, w) for k, (ts, w) in metrics.items()}
    g = hpa.group_pods(inputs, mets, resource, now=NOW, cpu_initialization_period=120.0,
                       delay_of_initial_readiness_status=10.0)
    assert (g.ready_pod_count, set(g.unready_pods), set(g.missing_pods), set(g.ignored_pods)) == \
        (ready, unready, missing, ignored)


def test_calculate_pod_requests_void():
    """TestCalculatePodRequests: "void"."""
    assert hpa.calculate_pod_requests([], "cpu") == {}


def test_calculate_pod_requests_container_missing_requests():
    """TestCalculatePodRequests: "container missing requests" (error names the resource and pod)."""
    with pytest.raises(MetricUnavailable, match="missing request for cpu in Pod test-pod"):
        hpa.calculate_pod_requests([PodInput(name="test-pod")], "cpu")


# ---------------------------------------------------------------------------------------
# horizontal_test.go: behaviour tables
# ---------------------------------------------------------------------------------------

def rules(pods=0, pods_period=0, percent=0, percent_period=0, window=0, select="Max"):
    """generateScalingRules (policies Pods then Percent, only those with a value)."""
    pol = []
    if pods:
        pol.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        pol.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, select, tuple(pol))


def uniform_events(raw, period):
    """generateEventsUniformDistribution (Go truncates the float Duration toward zero)."""
    seg = period / len(raw)
    return tuple(ScaleEvent(c, NOW - int(period - seg * (i + 1) + seg / 2)) for i, c in enumerate(raw))


DEFAULT_UP = hpa.generate_scale_up_rules(None)
DEFAULT_DOWN = hpa.generate_scale_down_rules(None)

NORMALIZE_LEGACY_CASES = [  # TestNormalizeDesiredReplicas: (case, recs, desired, stabilized, log length)
    ("empty log", [], 5, 5, 1),
    ("stabilize", [(4, -120), (5, -60)], 3, 5, 3),
    ("no stabilize", [(1, -120), (2, -60)], 3, 3, 3),
    ("no stabilize - old recommendations", [(10, -600), (9, -540)], 3, 3, 2),
    ("stabilize - old recommendations", [(10, -600), (4, -60), (5, -120), (9, -540)], 3, 5, 4),
]


@pytest.mark.parametrize("case,recs,desired,stabilized,length", NORMALIZE_LEGACY_CASES,
                         ids=[c[0] for c in NORMALIZE_LEGACY_CASES])
def test_normalize_desired_replicas_legacy(case, recs, desired, stabilized, length):
    """TestNormalizeDesiredReplicas (stabilizeRecommendation, 5 min window)."""
    history = [Recommendation(r, NOW + dt) for r, dt in recs]
    got, new = hpa.stabilize_recommendation(desired, history, NOW, 300.0)
    assert (got, len(new)) == (stabilized, length)


CONVERT_RULES_CASES = [  # TestConvertDesiredReplicasWithRules (upstream's test init sets scaleUpLimitFactor = 8)
    ("prenormalized desired replicas within range", 5, 7, 3, 8, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas"),
    ("prenormalized desired zeroed replicas within range", 1, 0, 0, 10, 0, "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10, 10, "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas", 3, 1000, 1, 2000, 24, "ScaleUpLimit"),
]


@pytest.mark.parametrize("case,current,desired,lo,hi,expected,condition", CONVERT_RULES_CASES,
                         ids=[c[0] for c in CONVERT_RULES_CASES])
def test_convert_desired_replicas_with_rules(case, current, desired, lo, hi, expected, condition):
    assert hpa.convert_desired_replicas_with_rules(current, desired, lo, hi, factor=8.0) == (expected, condition)
    assert hpa.calculate_scale_up_limit(3, factor=8.0) == 24


def test_calculate_scale_up_limit_with_scaling_rules():
    """TestCalculateScaleUpLimitWithScalingRules: Min of Pods 2/60 and Percent 50/60 from 1 -> 2."""
    r = rules(2, 60, 50, 60, 300, select="Min")
    assert hpa.calculate_scale_up_limit_with_scaling_rules(1, (), (), r, NOW) == 2


def test_calculate_scale_down_limit_with_behaviors():
    """TestCalculateScaleDownLimitWithBehaviors: Min of Pods 2/60 and Percent 50/60 from 5 -> 3."""
    r = rules(2, 60, 50, 60, 300, select="Min")
    assert hpa.calculate_scale_down_limit_with_behaviors(5, (), (), r, NOW) == 3


E159 = uniform_events([1, 5, 9], 120)
E8 = uniform_events([8, 12, 9, 11], 120)
SCALING_WITH_RULES_CASES = [
    # (case, up events, down events, min, max, up rules, down rules, current, desired, expected, condition)
    ("prenormalized desired replicas within range", (), (), 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", (), (), 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", (), (), 0, 10, None, None, 1, 0, 0,
     "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", (), (), 1, 10, None, None, 20, 1000, 10,
     "TooManyReplicas"),
    ("desired replica count is more than the maximum replica count", (), (), 100, 150, None, None, 100, 1000, 150,
     "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", (), (), 1, 2000,
     rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    ("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies (testThis)",
     (), (), 3, 2000, None, rules(20, 60, 0, 0, 0), 1000, 3, 980, "ScaleDownLimit"),
    ("scaleUp with default behavior", (), (), 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", (), (), 1, 1000, rules(100, 60, 100, 60, 0), None, 10, 500,
     110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", (), (), 1, 1000, rules(2, 60, 100, 60, 0), None, 10, 500,
     20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", (), (), 1, 1000, rules(100, 60, 0, 0, 0), None,
     10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", (), (), 1, 1000, rules(10000, 60, 0, 0, 0),
     None, 10, 50, 50, "DesiredWithinRange"),
    ("scaleUp with pod policy limitation", (), (), 1, 1000, rules(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", (), (), 1, 1000, rules(0, 0, 200, 60, 0), None, 10, 50, 30,
     "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", (), (), 1, 1000, None, rules(20, 60, 1, 60, 300), 100, 2,
     80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", (), (), 1, 1000, None, rules(2, 60, 1, 60, 300), 100, 2,
     98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", (), (), 1, 1000, None,
     rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy", (), (), 1, 1000, None,
     rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", (), (), 5, 1000, None,
     rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", (), (), 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5,
     "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", (), (), 1, 1000, None, rules(0, 0, 50, 60, 300), 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", E159, (), 1, 200,
     rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", E159, (), 1, 200,
     rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events", E159, (),
     1, 1000, rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", E159, (), 1, 1000, rules(150, 120, 0, 0, 0), None, 100,
     500, 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", E159, (), 1, 1000, rules(0, 0, 200, 120, 0), None,
     100, 500, 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events", uniform_events([4], 120),
     uniform_events([2], 120), 1, 1000, rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", (), E159, 1, 1000, None, None, 10, 5, 5,
     "DesiredWithinRange"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events", (), E159, 1, 1000,
     None, rules(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events", (), E159, 5, 1000, None,
     rules(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous events", (), E159, 5, 1000,
     None, rules(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", (), E159, 1, 1000, None, rules(5, 120, 0, 0, 300),
     100, 2, 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", (), uniform_events([2, 4, 6], 120), 1, 1000,
     None, rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events", uniform_events([2], 120),
     uniform_events([4], 120), 1, 1000, None, rules(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", (), uniform_events([10, 10, 10], 120), 1, 1000,
     None, rules(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ("scaleDown with with previous events still allowing more scale down", (), uniform_events([10, 10, 10], 120), 1,
     1000, None, rules(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for up", E8, (), 1, 1000, rules(1000, 60, 0, 0, 0), None, 100,
     200, 200, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the behavior for up", E8, (), 1,
     1000, rules(1000, 120, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior for up", E8, (), 1, 1000,
     rules(1000, 30, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for down", (), E8, 1, 1000, None, rules(1000, 60, 0, 0, 300),
     100, 5, 5, "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the behavior for down", (), E8, 1,
     1000, None, rules(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ("check that events were marked 'outdated' for two different policies in the behavior for down", (), E8, 1, 1000,
     None, rules(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
]


@pytest.mark.parametrize("case,up_events,down_events,lo,hi,up,down,current,desired,expected,condition",
                         SCALING_WITH_RULES_CASES, ids=[c[0] for c in SCALING_WITH_RULES_CASES])
def test_scaling_with_rules(case, up_events, down_events, lo, hi, up, down, current, desired, expected, condition):
    """TestScalingWithRules (convertDesiredReplicasWithBehaviorRate; rules pass through GenerateHPAScale*Rules)."""
    up_rules = DEFAULT_UP if up is None else up
    down_rules = DEFAULT_DOWN if down is None else down
    got = hpa.convert_desired_replicas_with_behavior_rate(current, desired, lo, hi, up_rules, down_rules,
                                                          up_events, down_events, NOW)
    assert got == (expected, condition)


STORE_EVENTS_CASES = [
    # (case, prev events [(change, age s)], new events [(change, outdated)], rules, expected change in 60 s)
    ("empty entries with default behavior", [], [], None, 0),
    ("empty entries with two-policy-behavior", [], [(5, False)], rules(10, 60, 100, 60, 0), 0),
    ("one outdated entry to be kept untouched without behavior", [(7, 61)], [(7, False)], None, 0),
    ("one outdated entry to be replaced with behavior", [(7, 61)], [(5, False)], rules(10, 60, 100, 60, 0), 0),
    ("one actual entry to be not touched with behavior", [(7, 58)], [(7, False), (5, False)],
     rules(10, 60, 100, 60, 0), 7),
    ("two entries, one of them to be replaced", [(7, 61), (6, 59)], [(5, False), (6, False)],
     rules(10, 60, 0, 0, 0), 6),
    ("replace one entry, use policies with different periods", [(8, 29), (6, 59), (7, 61), (9, 61)],
     [(8, False), (6, False), (7, True), (5, False)], rules(10, 60, 100, 30, 0), 14),
    ("two entries, both actual", [(7, 58), (6, 59)], [(7, False), (6, False), (5, False)],
     rules(10, 120, 100, 30, 0), 13),
]


@pytest.mark.parametrize("case,prev,new,rule,change", STORE_EVENTS_CASES, ids=[c[0] for c in STORE_EVENTS_CASES])
def test_store_scale_events(case, prev, new, rule, change):
    """TestStoreScaleEvents: getReplicasChangePerPeriod(60) before, storeScaleEvent up and down after."""
    events = tuple(ScaleEvent(c, NOW - age) for c, age in prev)
    behavior = None if rule is None else Behavior(rule, rule)
    assert hpa.get_replicas_change_per_period(60, events, NOW) == change
    up, _ = hpa.store_scale_event(behavior, events, (), 10, 15, NOW)
    assert [(e.replica_change, e.outdated) for e in up] == new
    _, down = hpa.store_scale_event(behavior, (), events, 10, 5, NOW)
    assert [(e.replica_change, e.outdated) for e in down] == new


STABILIZE_CASES = [
    # (case, recs [(replicas, age s)], current, desired, stabilized, expected recs or None, up window, down window)
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", [(4, 120), (5, 60)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", [(4, 120), (5, 60)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 3, [4, 5, 3], 0, 300),
    ("no scale down stabilization, reuse recommendation element", [(10, 600), (9, 540)], 100, 3, 3, [10, 3], 0, 0),
    ("no scale up stabilization, reuse recommendation element", [(10, 600), (9, 540)], 1, 100, 100, [10, 100], 0, 0),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     [(10, 600), (4, 60), (5, 120), (9, 540)], 100, 3, 5, [10, 4, 5, 3], 0, 180),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     [(10, 6000), (6, 60), (5, 120), (9, 180)], 1, 100, 5, [100, 6, 5, 9], 300, 0),
    ("scale up and down stabilization, do not scale up when prenormalized rec goes down", [(2, 6000), (3, 180)], 2, 1,
     2, None, 300, 300),
    ("scale up and down stabilization, do not scale down when prenormalized rec goes up", [(2, 6000), (1, 180)], 2, 3,
     2, None, 300, 300),
]


@pytest.mark.parametrize("case,recs,current,desired,stabilized,expected_recs,up_w,down_w", STABILIZE_CASES,
                         ids=[c[0] for c in STABILIZE_CASES])
def test_normalize_desired_replicas_with_behavior(case, recs, current, desired, stabilized, expected_recs, up_w,
                                                  down_w):
    """TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors)."""
    history = [Recommendation(r, NOW - age) for r, age in recs]
    got, new, _ = hpa.stabilize_recommendation_with_behaviors(current, desired, up_w, down_w, history, NOW)
    assert got == stabilized
    if expected_recs is not None:
        assert [r.replicas for r in new] == expected_recs


# ---------------------------------------------------------------------------------------
# horizontal_test.go: controller-level cases through reconcile()
# ---------------------------------------------------------------------------------------

def cpu_pods(levels, requests=None, ready=None, start=None):
    """The horizontal_test harness: reportedLevels/reportedCPURequests per pod (ratios are what matter)."""
    reqs = requests or [ONE] * len(levels)
    return tuple(PodInput(name=f"test-pod-{i}", requests={"cpu": reqs[i]}, usage={"cpu": lv, "qps": lv},
                          ready=True if ready is None else ready[i], start_time=ZERO if start is None else start[i],
                          ready_transition_time=ZERO if start is None else start[i])
                 for i, lv in enumerate(levels))


def spec_with(metrics, lo=2, hi=6):
    return HPASpec(name="test-hpa", namespace="test-namespace", min_replicas=lo, max_replicas=hi,
                   metrics=tuple(metrics), behavior=None)


CPU30 = MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=30))
CPU50 = MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=50))
QPS15 = MetricSpec("Pods", "qps", MetricTarget("AverageValue", average_value=15000))
OBJ15 = MetricSpec("Object", "qps", MetricTarget("Value", value=15000), described_object={"kind": "Deployment"})
OBJ1 = MetricSpec("Object", "qps", MetricTarget("Value", value=1000), described_object={"kind": "Deployment"})
OBJAVG10 = MetricSpec("Object", "qps", MetricTarget("AverageValue", average_value=10000),
                      described_object={"kind": "Deployment"})
EXT01 = MetricSpec("External", "qps", MetricTarget("Value", value=100))
EXT1 = MetricSpec("External", "qps", MetricTarget("Value", value=1000))
CHEDDAR = MetricSpec("CheddarCheese", "cheddar", MetricTarget("Value", value=1))

CONTROLLER_CASES = [
    # (upstream test, spec, spec replicas, snapshot, recommendations (None = fresh controller), expected)
    ("TestScaleUpCM", spec_with([QPS15]), 3, MetricSnapshot(cpu_pods([20000, 10000, 30000])), None, 4),
    ("TestScaleUpCMUnreadyAndHotCpuNoLessScale", spec_with([QPS15]), 3,
     MetricSnapshot(cpu_pods([50000, 10000, 30000], ready=[T_, T_, F_], start=[COOL, COOL, HOT])), None, 6),
    ("TestScaleUpCMObject", spec_with([OBJ15]), 3, MetricSnapshot(cpu_pods([1, 1, 1]), object_values={"qps": 20000}),
     None, 4),
    ("TestScaleUpFromZeroCMObject", spec_with([OBJ15], lo=0), 0, MetricSnapshot((), object_values={"qps": 20000}),
     None, 2),
    ("TestScaleUpFromZeroIgnoresToleranceCMObject", spec_with([OBJ1], lo=0), 0,
     MetricSnapshot((), object_values={"qps": 1000}), None, 1),
    ("TestScaleUpPerPodCMObject", spec_with([OBJAVG10]), 3, MetricSnapshot((), object_values={"qps": 40000}), None, 4),
    ("TestScaleUpOneMetricEmpty", spec_with([CPU30, EXT01]), 3, MetricSnapshot(cpu_pods([300, 400, 500])), None, 4),
    ("TestNoScaleDownOneMetricInvalid", spec_with([CPU50, CHEDDAR]), 5,
     MetricSnapshot(cpu_pods([100, 300, 500, 250, 250])), (), 5),
    ("TestNoScaleDownOneMetricEmpty", spec_with([CPU50, EXT1]), 5,
     MetricSnapshot(cpu_pods([100, 300, 500, 250, 250])), (), 5),
    ("TestScaleUpRCImmediately", spec_with([CPU30]), 1, MetricSnapshot(cpu_pods([0, 0, 0, 0])), None, 2),
    ("TestScaleDownRCImmediately", spec_with([CPU50], lo=2, hi=5), 6,
     MetricSnapshot(cpu_pods([8000, 9500, 1000], [900, 1000, 1100])), None, 5),
]


@pytest.mark.parametrize("name,spec,replicas,snapshot,recs,expected", CONTROLLER_CASES,
                         ids=[c[0] for c in CONTROLLER_CASES])
def test_controller_cases(name, spec, replicas, snapshot, recs, expected):
    """horizontal_test.go controller tests (legacy path: no behavior, upstream test factor 8)."""
    state = ControllerState(recommendations=recs)
    res = hpa.reconcile(spec, state, replicas, replicas, snapshot, now=NOW, config=TESTING, scale_up_limit_factor=8.0)
    assert res.desired_replicas == expected


def test_no_scale_down_one_metric_invalid_reports_why():
    """TestNoScaleDownOneMetricInvalid: the refusal comes from computeReplicasForMetrics (-1), not clamping."""
    res = hpa.reconcile(spec_with([CPU50, CHEDDAR]), ControllerState(()), 5, 5,
                        MetricSnapshot(cpu_pods([100, 300, 500, 250, 250])), now=NOW, config=TESTING)
    assert res.metrics is not None and res.metrics.replicas == -1
    assert res.metrics.proposals == {"cpu": 3, "cheddar": None}
    assert "invalid metrics (1 invalid out of 2)" in res.reason


def test_combine_metric_proposals():
    """computeReplicasForMetrics: maximum over valid metrics; scale-up proceeds with an invalid metric."""
    assert hpa.combine_metric_proposals(3, [4, None]) == (4, 1, 0)
    assert hpa.combine_metric_proposals(5, [3, None]) == (-1, 1, None)
    assert hpa.combine_metric_proposals(5, [None, None]) == (-1, 2, None)
    assert hpa.combine_metric_proposals(5, [3, 7, 6]) == (7, 0, 1)


# ---------------------------------------------------------------------------------------
# defaults.go and manifest parsing
# ---------------------------------------------------------------------------------------

STAGING = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "conductor-hpa", "namespace": "i2s-staging"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "conductor"},
             "minReplicas": 2, "maxReplicas": 6,
             "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                       "averageUtilization": 70}}},
                         {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                                          "averageUtilization": 80}}}],
             "behavior": {"scaleUp": {"stabilizationWindowSeconds": 60,
                                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}]},
                          "scaleDown": {"stabilizationWindowSeconds": 300,
                                        "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}}}


def manifest(**spec_changes):
    import copy
    m = copy.deepcopy(STAGING)
    for k, v in spec_changes.items():
        if v is None:
            m["spec"].pop(k, None)
        else:
            m["spec"][k] = v
    return m


def test_defaults_scale_up_rules():
    """defaults.go GenerateHPAScaleUpRules(nil): window 0, Pods 4/15s + Percent 100/15s, Max."""
    assert DEFAULT_UP == ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))


def test_defaults_scale_down_rules():
    """defaults.go GenerateHPAScaleDownRules(nil): window nil (controller flag), Percent 100/15s, Max."""
    assert DEFAULT_DOWN == ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))
    assert DEFAULT_DOWN.window(300.0) == 300.0


def test_defaults_behavior_absent_stays_nil():
    """SetDefaults_HorizontalPodAutoscalerBehavior: no behavior -> nil (the legacy controller path)."""
    assert hpa.parse_hpa_manifest(manifest(behavior=None)).behavior is None


def test_defaults_half_behavior_filled():
    """copyHPAScalingRules: a present half keeps its fields; the absent half is defaulted."""
    spec = hpa.parse_hpa_manifest(manifest(behavior={"scaleUp": {"selectPolicy": "Min"}}))
    assert spec.behavior.scale_up == ScalingRules(0, "Min", DEFAULT_UP.policies)
    assert spec.behavior.scale_down == DEFAULT_DOWN


def test_defaults_min_replicas_and_metrics():
    """SetDefaults_HorizontalPodAutoscaler: minReplicas 1 and a cpu 80% metric when absent."""
    spec = hpa.parse_hpa_manifest(manifest(minReplicas=None, metrics=None))
    assert spec.min_replicas == 1
    assert spec.metrics == (MetricSpec("Resource", "cpu", MetricTarget("Utilization", average_utilization=80)),)


def test_parse_staging_manifest():
    spec = hpa.parse_hpa_manifest(STAGING)
    assert (spec.min_replicas, spec.max_replicas, [m.key for m in spec.metrics]) == (2, 6, ["cpu", "memory"])
    assert spec.behavior.scale_up == ScalingRules(60, "Max", (ScalingPolicy("Percent", 100, 60),))
    assert spec.behavior.scale_down == ScalingRules(300, "Max", (ScalingPolicy("Percent", 50, 60),))


@pytest.mark.parametrize("change,match", [
    (dict(maxReplicas=None), r"spec\.maxReplicas is missing; set spec\.maxReplicas"),
    (dict(behavior={"scaleUp": {"policies": [{"type": "Pod", "value": 4, "periodSeconds": 15}]}}),
     r"unknown policy type 'Pod'.*use type Pods or Percent"),
    (dict(behavior={"scaleUp": {"selectPolicy": "Maximum"}}), r"selectPolicy 'Maximum'; use Max, Min or Disabled"),
    (dict(behavior={"scaleup": {}}), r"unknown field spec\.behavior\.scaleup"),
    (dict(minReplicas=7), r"minReplicas 7 is above spec\.maxReplicas 6"),
    (dict(metrics=[{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": 1}}}]),
     r"target\.type is 'Value'; use one of Utilization, AverageValue"),
    (dict(behavior={"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 3600}]}}),
     r"periodSeconds is 3600, above 1800"),
])
def test_bad_manifest_raises_value_error_naming_the_fix(change, match):
    with pytest.raises(ValueError, match=match) as err:
        hpa.parse_hpa_manifest(manifest(**change))
    assert isinstance(err.value, hpa.ManifestError)
    assert "\n" not in str(err.value) and "; " in str(err.value)


def test_production_manifest_object_and_external_targets():
    """The seed's production HPA: Object Value "100" and External AverageValue "50" in milli-units."""
    import pathlib

    import yaml
    path = pathlib.Path(__file__).resolve().parents[2] / "k8s" / "autoscaling" / "custom-metrics-hpa.yml"
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    spec = hpa.parse_hpa_manifest(yaml.safe_load(path.read_text()))
    assert spec.metric("active_pipeline_executions").target == MetricTarget("Value", value=100_000)
    assert spec.metric("rabbitmq_queue_messages").target == MetricTarget("AverageValue", average_value=50_000)
    assert spec.behavior.scale_up.select_policy == "Max" and spec.behavior.scale_down.select_policy == "Min"


@pytest.mark.parametrize("q,milli", [("100", 100_000), ("500m", 500), ("1.5", 1500), ("512Mi", 512 * 2**20 * 1000),
                                     ("1k", 1_000_000), (50, 50_000), ("1e3", 1_000_000), ("0.1", 100)])
def test_quantity_to_milli(q, milli):
    assert hpa.quantity_to_milli(q) == milli


# ---------------------------------------------------------------------------------------
# Oracle-specific behaviour (not upstream tables)
# ---------------------------------------------------------------------------------------

def test_legacy_path_scale_up_cap_differs_from_default_behavior():
    """No behavior: cap max(2*3, 4) = 6; behavior {} (defaults): max(3+4, 2*3) = 7."""
    legacy = hpa.normalize_desired_replicas(3, 50, 1, 100, None, now=NOW)
    defaulted = hpa.normalize_desired_replicas(3, 50, 1, 100, {}, now=NOW)
    assert (legacy.replicas, legacy.scaling_limited_reason) == (6, "ScaleUpLimit")
    assert (defaulted.replicas, defaulted.scaling_limited_reason) == (7, "ScaleUpLimit")
    assert defaulted.scale_up_events == (ScaleEvent(4, NOW),) and legacy.scale_up_events == ()


def test_behavior_tolerance_field_overrides_flag():
    """tolerancesForHpa: behavior.scaleUp.tolerance 0.05 lets a 7% excess scale up (0.1 would not)."""
    m = manifest(metrics=[{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                        "averageUtilization": 100}}}],
                 maxReplicas=20)
    pods = cpu_pods([1070] * 10)
    base = hpa.reconcile(hpa.parse_hpa_manifest(m), ControllerState(()), 10, 10, MetricSnapshot(pods), now=NOW)
    m["spec"]["behavior"]["scaleUp"]["tolerance"] = "0.05"
    tight = hpa.reconcile(hpa.parse_hpa_manifest(m), ControllerState(()), 10, 10, MetricSnapshot(pods), now=NOW)
    assert base.metrics.proposals["cpu"] == 10 and tight.metrics.proposals["cpu"] == 11


def test_simulator_staging_timeline_matches_hand_computation():
    """Staging HPA, 2 pods at 50% CPU, demand 4x from t=60s, 200Mi memory per pod.

    By hand: recommendations are 6 from t=60s; the scaleUp window (60 s, strictly after the
    cutoff) holds the initial 2s until t=105s, when Percent 100/60s allows 2->4. At t=135s the
    new pods are Ready but their CPU sample is not one window (15 s) past Ready, so groupPods
    marks them unready and the rebalanced ratio flips direction: recommendation 4 (current).
    From t=150s recommendations are 6 again, so the 60 s window clears at t=195s: 4->6
    (Percent 100/60s from the 4 at t=135s allows 8, capped at maxReplicas). Load falls at
    t=600s; the last recommendation of 6 is at t=585s, so the 300 s scaleDown window lets the
    first scale-down happen at t=885s, limited by Percent 50/60s to 3.
    """
    spec = hpa.parse_hpa_manifest(STAGING)
    mem = 200 * 2**20
    load = [hpa.LoadPoint(0, {"cpu": 0.25, "memory": mem}), hpa.LoadPoint(60, {"cpu": 1.0, "memory": mem}),
            hpa.LoadPoint(600, {"cpu": 0.2, "memory": mem})]
    changes = [(s.t, s.current, s.desired) for s in hpa.simulate(spec, 2, load, end=1500) if s.desired != s.current]
    assert changes[:3] == [(105.0, 2, 4), (195.0, 4, 6), (885.0, 6, 3)]


def test_envelope_contains_nominal_and_widens_with_allowance():
    spec = hpa.parse_hpa_manifest(STAGING)
    load = [hpa.LoadPoint(0, {"cpu": 0.25, "memory": 0}), hpa.LoadPoint(60, {"cpu": 1.0, "memory": 0})]
    env = hpa.envelope(spec, 2, load, end=600)
    assert all(p.lo <= p.expected <= p.hi for p in env.points)
    assert env.at(120).lo == 2 and env.at(120).hi == 4  # 2->4 at t=105s: a lagging controller may still show 2
    assert env.at(500).lo == env.at(500).hi == 6


# ---------------------------------------------------------------------------------------
# int64 overflow of the summed External metric (replica_calculator.go after kubernetes PRs
# #127050 "Fix int overflow in GetExternalPerPodMetricReplicas" and #133888 "prevent integer
# overflow in external metrics sum"): Go sums int64 series values; upstream caps the sum at
# MaxInt64 and reports MaxInt64 as the per-pod usage once float64(usage) reaches 2^63.
# ---------------------------------------------------------------------------------------
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def test_external_per_pod_usage_at_int64_overflow_is_capped_at_max_int64():
    out = hpa.get_external_per_pod_metric_replicas(1, 1000, [INT64_MAX, 1], TESTING)
    assert out.usage == INT64_MAX  # Python's unbounded sum reported 2**63 here: one above MaxInt64
    assert out.replicas == INT32_MAX  # ceil(usage / target) clamped to int32


def test_external_per_pod_usage_reports_max_int64_once_float64_rounds_to_2_63():
    # float64(MaxInt64 - 100) == 2**63, so upstream's ">= float64(MaxInt64)" guard reports MaxInt64
    # instead of ceil(usage / statusReplicas).
    out = hpa.get_external_per_pod_metric_replicas(2, 1000, [INT64_MAX - 100], TESTING)
    assert out.usage == INT64_MAX


def test_external_per_pod_negative_running_sum_is_taken_for_overflow_as_upstream_does():
    # upstream: "usage < 0: the only way we would ever get here is because of an Int64 overflow"
    out = hpa.get_external_per_pod_metric_replicas(2, 1000, [-5], TESTING)
    assert out.usage == INT64_MAX and out.replicas == INT32_MAX


def test_external_value_sum_is_capped_at_max_int64():
    pods = [PodInput(f"p{i}") for i in range(3)]
    out = hpa.get_external_metric_replicas(3, 1000, [INT64_MAX, 5], pods, TESTING)
    assert out.usage == INT64_MAX
    assert out.replicas == INT32_MAX  # usage ratio x 3 ready pods, clamped to int32


def test_external_sums_without_overflow_are_unchanged():
    assert hpa.get_external_per_pod_metric_replicas(3, 1000, [4000, 5000], TESTING).usage == 3000
    pods = [PodInput(f"p{i}") for i in range(3)]
    assert hpa.get_external_metric_replicas(3, 1000, [4000, -1000], pods, TESTING).usage == 3000
