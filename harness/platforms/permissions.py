"""What the harness may do to a cluster it did not create (``--platform context``), and why not (pure).

On kind and docker the harness created the target, so every scenario may act on it. On a cluster the
user named, the harness only reads (Deployments, pods, logs, a ``kubectl port-forward``) unless the
user names the other actions in ``HARNESS_CONTEXT_ALLOW``:

* ``write``: user requests that ``POST /api/v1/pipeline`` (steady load, the RTO prober, the canary
  ledger, the chaos steady-state probes): each one creates a record in the team's database;
* ``drain``: zone loss cordons and drains every node of a zone (pods are evicted; uncordoned after).

Scenarios declare what they need with ``@pytest.mark.context_needs("write", ...)``; the plugin
skips them at collection, before any fixture starts, with the reason and the setting that allows them.
The zone drain and the chaos steady-state probes also check it themselves (``harness.faults.zones``,
``harness.faults.probes``), so a standalone ``chaos run`` against a named cluster is refused the same way.
"""
from __future__ import annotations

from typing import Iterable

from harness.config import CONTEXT_ACTIONS, Settings

__all__ = ["CONTEXT_ACTIONS", "WHAT", "missing_actions", "refusal"]

WHAT = {"write": "POSTs to /api/v1/pipeline (records in the team's database)",
        "drain": "drains a zone's nodes (evicts pods)"}


def missing_actions(allowed: Iterable[str], needs: Iterable[str]) -> list[str]:
    """The actions in ``needs`` that ``allowed`` does not name, in ``CONTEXT_ACTIONS`` order."""
    allowed, needs = set(allowed), set(needs)
    unknown = needs - set(CONTEXT_ACTIONS)
    if unknown:
        raise ValueError(f"unknown context actions {sorted(unknown)}")
    return [a for a in CONTEXT_ACTIONS if a in needs and a not in allowed]


def refusal(settings: Settings, needs: Iterable[str], what: str = "this scenario") -> str | None:
    """Why ``what`` may not run on the settings' platform (a skip reason naming the opt-in), or None."""
    if settings.platform != "context":
        return None  # the harness created the target
    missing = missing_actions(settings.context_allow, needs)
    if not missing:
        return None
    allow = ",".join(sorted(set(settings.context_allow) | set(missing), key=CONTEXT_ACTIONS.index))
    return (f"{what} {' and '.join(WHAT[a] for a in missing)} on context {settings.context!r}, a cluster the "
            f"harness did not create: allow it with HARNESS_CONTEXT_ALLOW={allow}")
