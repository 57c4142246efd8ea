"""The audit's severity rubric: a finding's severity follows from what breaks, where and when, never
from a rule's say-so. Pure; ``severity`` is the one place the mapping lives (README "Configuration
audit" and docs/audit.md describe it).

* what breaks -- ``outage`` (requests fail, all or a share, or an environment cannot be created),
  ``data-loss`` (acknowledged data cannot be recovered within the RPO), ``degraded`` (served, but slower,
  at reduced capacity, costlier, or with a protection missing), ``hygiene`` (nothing breaks).
* where -- ``production``, ``dr`` (the disaster-recovery path: backups, the DR region, the rebuild) or
  ``staging`` (staging and local development: nothing users see).
* when -- ``always`` (as soon as it is deployed), ``fault`` (only under a failure: a zone, a replica, a
  region, a disaster) or ``rebuild`` (the next time the environment is created or upgraded).
* checked -- False when the finding rests on a premise the seed does not settle (something it hands to
  another repository, a secret's contents it never writes down): such a finding is a question to answer,
  at most ``medium``.

Points: outage and data loss 3, degraded 1, hygiene 0; staging -2; under a fault or at the next rebuild
-1. Three points and more is critical, 2 high, 1 medium, 0 low, less info.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Impact", "severity", "WHAT", "WHERE", "WHEN", "UNCHECKED_CAP"]

WHAT = {"outage": 3, "data-loss": 3, "degraded": 1, "hygiene": 0}
WHERE = {"production": 0, "dr": 0, "staging": -2}
WHEN = {"always": 0, "fault": -1, "rebuild": -1}
_BY_POINTS = ((3, "critical"), (2, "high"), (1, "medium"), (0, "low"))
# A finding whose premise the seed does not settle is at most this.
UNCHECKED_CAP = "medium"
_ORDER = ("critical", "high", "medium", "low", "info")


def severity(what: str, where: str, when: str, checked: bool = True) -> str:
    """critical / high / medium / low / info for what breaks, where and when (module docstring)."""
    for name, value, table in (("what", what, WHAT), ("where", where, WHERE), ("when", when, WHEN)):
        if value not in table:
            raise ValueError(f"{name} {value!r} is not one of {', '.join(table)}")
    points = WHAT[what] + WHERE[where] + WHEN[when]
    rated = next((s for p, s in _BY_POINTS if points >= p), "info")
    if not checked and _ORDER.index(rated) < _ORDER.index(UNCHECKED_CAP):
        rated = UNCHECKED_CAP
    return rated


@dataclass(frozen=True)
class Impact:
    """What a finding breaks, where and when; ``note`` is the judgement's evidence in one sentence."""
    what: str
    where: str
    when: str
    checked: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        severity(self.what, self.where, self.when)  # refuses unknown classes early

    @property
    def severity(self) -> str:
        return severity(self.what, self.where, self.when, self.checked)

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "where": self.where, "when": self.when, "checked": self.checked,
                "note": self.note}
