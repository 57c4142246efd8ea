"""Static findings against what a run measured: each finding whose rule names a scenario that can confirm
it is marked "confirmed by this run", "contradicted by this run" (the audit or the scenario is wrong: a
harness bug) or "not exercised", from the scenarios' verdicts and ``scenario.measure`` values as the run
report records them (summary.json ``scenarios``). Pure: data in, marks out."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from harness.audit.catalog import ONE_ZONE_LOSS, SEED_MESH, WHAT_IF_MESH

__all__ = ["Mark", "mark_findings", "contradictions", "JUDGES", "CONFIRMED", "CONTRADICTED", "NOT_EXERCISED"]

CONFIRMED = "confirmed by this run"
CONTRADICTED = "contradicted by this run"
NOT_EXERCISED = "not exercised"
_RAN = ("pass", "fail")

Scenario = Mapping[str, Any]
Judge = Callable[[list[Scenario]], tuple[str, str, str]]  # (status, scenario, why)


@dataclass(frozen=True)
class Mark:
    finding: str
    status: str
    scenario: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _matching(scenarios: Iterable[Scenario], name: str) -> list[Scenario]:
    return [s for s in scenarios if str(s.get("name", "")).startswith(name)]


def _not_run(found: list[Scenario], name: str) -> tuple[str, str, str]:
    if not found:
        return NOT_EXERCISED, name, "the scenario was not part of this run"
    s = found[0]
    return NOT_EXERCISED, str(s.get("name")), f"the scenario's verdict is {s.get('verdict')}: {s.get('explanation', '')}"


def _seed_mesh(scenarios: list[Scenario]) -> Scenario | None:
    found = [s for s in _matching(scenarios, SEED_MESH) if s.get("verdict") in _RAN]
    return found[0] if found else None


def _codes(s: Scenario) -> set[str]:
    return {str(f.get("code")) for f in (s.get("measurements") or {}).get("findings") or []}


def _judge_circuit_breaker(scenarios: list[Scenario]) -> tuple[str, str, str]:
    s = _seed_mesh(scenarios)
    if s is None or "envoy_outlier_stats_present" not in (s.get("measurements") or {}):
        return _not_run(_matching(scenarios, SEED_MESH), SEED_MESH)
    if s["measurements"]["envoy_outlier_stats_present"]:
        return CONTRADICTED, s["name"], "the gateway's Envoy has outlier_detection stats: something configured ejection"
    code = " (finding no_outlier_detection)" if "no_outlier_detection" in _codes(s) else ""
    return CONFIRMED, s["name"], f"the seed's objects on real Envoy: no outlier_detection stats for the conductor{code}"


def _judge_gateway_denied(scenarios: list[Scenario]) -> tuple[str, str, str]:
    s = _seed_mesh(scenarios)
    responses = ((s or {}).get("measurements") or {}).get("responses") or {}
    answered = {k: int(v) for k, v in responses.items() if not str(k).startswith(("0", "None"))}
    if s is None or not answered:
        return _not_run(_matching(scenarios, SEED_MESH), SEED_MESH)
    denied = sum(v for k, v in answered.items() if str(k).startswith("403") and "RBAC" in str(k))
    if denied == 0:
        return CONTRADICTED, s["name"], f"no request through the gateway got 403 RBAC ({answered})"
    return CONFIRMED, s["name"], f"{denied} of {sum(answered.values())} requests through the gateway got 403 RBAC"


def _judge_handover(scenarios: list[Scenario]) -> tuple[str, str, str]:
    s = _seed_mesh(scenarios)
    health = ((s or {}).get("measurements") or {}).get("health_route") or {}
    status = health.get("status")
    if s is None or not status:
        return _not_run(_matching(scenarios, SEED_MESH), SEED_MESH)
    if int(status) == 503 and health.get("served_by") in ("-", None, ""):
        return CONFIRMED, s["name"], "GET /api/v1/health (routed to health-service) got Envoy's own 503: no such Service"
    return CONTRADICTED, s["name"], f"the route to health-service answered {status} from {health.get('served_by')}"


def _judge_zone_spread(scenarios: list[Scenario]) -> tuple[str, str, str]:
    found = _matching(scenarios, ONE_ZONE_LOSS)
    ran = [s for s in found if s.get("verdict") in _RAN]
    if not ran:
        return _not_run(found, ONE_ZONE_LOSS + "*]")
    passed = [s for s in ran if s.get("verdict") == "pass"]
    if passed:
        return CONTRADICTED, passed[0]["name"], ("users were served through the loss of the zone holding every "
                                                 "replica: " + str(passed[0].get("explanation", "")))
    s = ran[0]
    facts = (((s.get("measurements") or {}).get("placement") or {}).get("facts") or {})
    spread = facts.get("topology_spread")
    if spread:
        return NOT_EXERCISED, s["name"], f"the placement read a zone spread from the seed ({spread}): not the seed as written"
    return CONFIRMED, ", ".join(x["name"] for x in ran), (
        f"every replica placed in one zone (the seed permits it: no topologySpreadConstraints) and the zone's loss "
        f"failed the runbook's 'degraded performance': {s.get('explanation', '')}")


def _judge_pool_cap(scenarios: list[Scenario]) -> tuple[str, str, str]:
    """The what-if keeps the seed's connectionPool: past the cap Envoy must answer 503 UO, however many
    replicas serve (the fixed cap the finding is about)."""
    found = [s for s in _matching(scenarios, WHAT_IF_MESH) if s.get("verdict") in _RAN]
    overflow = ((found[0].get("measurements") or {}).get("overflow") or {}) if found else {}
    above = (overflow.get("capacity") or {}).get("overflow_above")
    steps = [r for r in overflow.get("steps") or [] if above and float(r.get("concurrency", 0)) >= 1.1 * float(above)]
    if not steps:
        return _not_run(_matching(scenarios, WHAT_IF_MESH), WHAT_IF_MESH)
    uo = sum(int(r.get("uo_503", 0)) for r in steps)
    worst = max(steps, key=lambda r: float(r["concurrency"]))
    if uo == 0:
        return CONTRADICTED, found[0]["name"], f"no 503 UO at {worst['concurrency']} concurrent, past the cap of {above}"
    return CONFIRMED, found[0]["name"], (f"{uo} x 503 UO from Envoy past the cap of {above} concurrent requests "
                                         f"(up to {worst['concurrency']} offered), whatever the replicas")


# Finding id -> how a run confirms or contradicts it.
JUDGES: dict[str, Judge] = {
    "crd.unknown-field.DestinationRule.conductor-destination.spec.trafficPolicy.circuitBreaker": _judge_circuit_breaker,
    "availability.gateway-denied.conductor-authz": _judge_gateway_denied,
    "ref.production-manifests-elsewhere": _judge_handover,
    "availability.no-zone-spread.i2s-staging.conductor": _judge_zone_spread,
    "scaling.pool-cap-fixed.conductor-destination": _judge_pool_cap,
}


def mark_findings(findings: Iterable[Mapping[str, Any]], scenarios: Iterable[Scenario]) -> list[Mark]:
    """A mark for every finding (dicts as in summary.json's ``audit.findings``): judged from the run where a
    judge exists; "not exercised" with the scenario that could confirm it (or none) otherwise."""
    scenarios = list(scenarios)
    out = []
    for f in findings:
        judge = JUDGES.get(str(f.get("id")))
        if judge is not None:
            status, scenario, why = judge(scenarios)
        else:
            by = str(f.get("confirmed_by") or "")
            status, scenario = NOT_EXERCISED, by
            why = "no run's scenario can confirm it (static only)" if not by else \
                "no judge reads this scenario's measurements yet" if not by.startswith("make test") else \
                "confirmed outside runs, by running the unchanged script in make test"
        out.append(Mark(str(f.get("id")), status, scenario, why))
    return out


def contradictions(marks: Iterable[Mark]) -> list[Mark]:
    return [m for m in marks if m.status == CONTRADICTED]
