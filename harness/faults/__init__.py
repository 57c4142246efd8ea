"""The harness's Chaos Toolkit extension: faults and probes as plain functions.

Experiments call them as python providers (``"module": "harness.faults.postgres"``). Modules:

* ``postgres``  stop/start the database, kill the primary and promote the standby (harness.dr)
* ``backups``   lose the database, recover it into a fresh "secondary region" from S3; the application
                tier lost and redeployed on any platform (harness.platforms.attach)
* ``zones``     Kubernetes zone loss: drain (chaosk8s) and uncordon
* ``probes``    the SLO-based steady state, readiness, waiting for recovery
* ``control``   the Chaos Toolkit control every experiment declares: shared configuration
                (chaos/shared/configuration.json), the safety check before every activity, the fault
                log, progress events
* ``safety``    the checks, the fault declarations (``@fault``), the fault log, ``undo_all``

Activities take Chaos Toolkit's ``configuration`` (injected by chaoslib when a function declares
the parameter), never a run id argument.

``discover()`` is what ``chaos discover`` calls. The activity modules do not use
``from __future__ import annotations``: discovery reads their annotations as types, and strings
would all be reported as "object".
"""
from __future__ import annotations

__all__ = ["discover", "ACTION_MODULES", "PROBE_MODULES", "__version__"]

ACTION_MODULES = ("harness.faults.postgres", "harness.faults.backups",
                  "harness.faults.zones", "harness.faults.zone_docker", "harness.faults.zone_loss")
PROBE_MODULES = ("harness.faults.probes",)

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("i2s-harness")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"


def discover(discover_system: bool = True) -> dict:
    """The extension's actions and probes in Chaos Toolkit's discovery format.

    There is no target system to inspect beyond what ``harness`` itself reports, so
    ``discover_system`` only adds the run's Docker engine, when one answers.
    """
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery = initialize_discovery_result("i2s-harness", __version__, "i2s")
    for mod in ACTION_MODULES:
        discovery["activities"].extend(discover_actions(mod))
    for mod in PROBE_MODULES:
        discovery["activities"].extend(discover_probes(mod))
    if discover_system:
        discovery["system"] = _system()
    return discovery


def _system() -> dict:
    try:
        from harness.docker_env import docker_client

        info = docker_client().version()
        return {"docker": {"version": info.get("Version"), "api_version": info.get("ApiVersion")}}
    except Exception as exc:  # noqa: BLE001 - discovery must not fail because Docker is down
        return {"docker": None, "note": f"docker not reachable ({type(exc).__name__})"}
