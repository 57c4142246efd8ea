"""The DR modules' shared setting: a stack and one conductor under a run id of the module's own
(they kill and replace databases, nothing else may share it), torn down with everything DR made."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import pytest

from harness.docker_env import export_container_logs, sweep
from harness.dr.replication import cleanup_dr
from harness.platforms.docker import DockerPlatform
from harness.stack.services import Stack


@contextlib.contextmanager
def dr_deployment(settings: Any, request: pytest.FixtureRequest, suffix: str, logs: str,
                  with_moto: bool = False) -> Iterator[tuple[Any, Stack, DockerPlatform]]:
    """Yield (settings, stack, platform) for run ``<run id>-<suffix>``; if a test failed, the containers'
    logs go to ``<report>/logs/<logs>``."""
    s = dataclasses.replace(settings, run_id=f"{settings.run_id[:36]}-{suffix}", replicas=1)
    stack, platform = Stack(s, with_moto=with_moto), None
    try:
        stack.start()
        platform = DockerPlatform(s, stack)
        platform.up()
        yield s, stack, platform
    finally:
        if request.session.testsfailed:
            export_container_logs(s.run_id, s.report_path / "logs" / logs)
        if not s.keep:
            if platform is not None:
                platform.down()
            cleanup_dr(s.run_id)
            stack.stop()
            sweep(s.run_id)
