"""Static and live checks of the seed's configuration against what it must achieve: each finding names
the lines, the problem, the evidence, the target it threatens and the fix.

* ``engine`` -- ``harness audit``: every rule and field tool, one sorted findings list (``run_audit``),
  ``audit.json`` and the terminal table.
* ``sources`` -- the seed as the audit reads it (``k8s/``, ``scripts/``, ``seed/``), lines mapped to the guide.
* ``findings`` -- the finding model, severities (critical and high block) and targets.
* ``rubric`` -- severity from what breaks, where and when (``severity``); ``catalog`` -- each rule's declared
  impact, the root causes and the scenario that can confirm each; ``root_causes`` -- rating and merging.
* ``versions`` -- apiVersions, modules and their inputs, engines and images against ``upstream/``.
* ``confirmation`` -- a run's scenarios marking findings confirmed, contradicted or not exercised.
* ``rules`` -- the audit's own cross-object rules, pure.
* ``crd_fields`` -- custom resources against their vendored upstream CRD schemas.
* ``field_tools`` -- kubernetes-validate, shellcheck, actionlint, checkov (when installed).
* ``terraform`` -- the seed's terraform read into plain data.
* ``backup_script`` -- ``scripts/backup-database.sh`` cannot run unattended (``script_findings``), checked
  statically and, in ``make test``, by running the unchanged script.
"""
from harness.audit.backup_script import script_findings

__all__ = ["script_findings"]
