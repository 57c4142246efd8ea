"""Static and live checks of the seed's configuration against what it must achieve: each finding names
the line, the problem and the consequence, and says whether running the seed's own artefact confirmed it.

* ``backup_script`` -- ``scripts/backup-database.sh`` cannot run unattended (``script_findings``).
"""
from harness.audit.backup_script import script_findings

__all__ = ["script_findings"]
