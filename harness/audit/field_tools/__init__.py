"""The field's own tools over the seed, one module each, their output turned into findings:
kubernetes-validate (built-in kinds against the seed's Kubernetes version, strict), shellcheck (the seed's shell), actionlint (the
seed's GitHub workflow and the harness's own) and, when installed, checkov (Kubernetes and terraform).

Each ``*_findings`` function returns ``(findings, ToolRun)`` and never raises for a tool's sake: a tool
that is not installed is a ToolRun "not run" (with what to install), one whose output cannot be read is
a ToolRun "error" (quoting it). Findings are sorted and their ids are stable: the tool, its check, and
the file (or object) it fired on."""
from harness.audit.field_tools.actionlint import actionlint_findings
from harness.audit.field_tools.checkov import checkov_findings, parse_checkov_json
from harness.audit.field_tools.kubernetes_validate import (DEFAULT_KUBERNETES_VERSION, kubernetes_validate_findings,
                                                           kubernetes_version)
from harness.audit.field_tools.shellcheck import shellcheck_findings
from harness.audit.field_tools.tools import TOOL_TIMEOUT

__all__ = ["kubernetes_validate_findings", "shellcheck_findings", "actionlint_findings", "checkov_findings",
           "parse_checkov_json", "kubernetes_version", "DEFAULT_KUBERNETES_VERSION", "TOOL_TIMEOUT"]
