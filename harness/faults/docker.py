"""Docker-platform faults on the application tier: the whole tier lost and redeployed.

The activities record the fault; the work is the platform's application tier capability
(:class:`harness.platforms.docker_tier.DockerApplicationTier`), which touches only containers
labeled with the run id and keeps the removed tier's configuration (secrets included) in this
process's memory only.
"""

from typing import Dict

from harness.faults import safety

__all__ = ["remove_application_tier", "deploy_application_tier"]

FAULT = "application-tier-lost"


def _tier(configuration: Dict):
    from harness.platforms.docker_tier import DockerApplicationTier

    return DockerApplicationTier(safety.run_id_of(configuration), client=safety.engine)


@safety.fault(FAULT, target="application tier", rollback="harness.faults.backups.deploy_application_tier")
def remove_application_tier(configuration: Dict = None) -> dict:
    """Remove every conductor of the run (the cluster running the application is lost).

    The tier's configuration stays in this process's memory for ``deploy_application_tier``.
    """
    run_id = safety.run_id_of(configuration)
    path = safety.fault_log_path(run_id, configuration)
    return _tier(configuration).lose(record=lambda details: safety.add_details(run_id, FAULT, details, path=path))


@safety.fault(reverses=(FAULT,))
def deploy_application_tier(timeout_s: float = 180.0, configuration: Dict = None) -> dict:
    """A fresh application tier, as in a secondary region, **routable** when this returns
    (harness.platforms.docker_tier.DockerApplicationTier.replace). Idempotent: if conductors of the
    run are already running, nothing is created."""
    return _tier(configuration).replace(timeout_s)
