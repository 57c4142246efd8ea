"""Fixtures the scenarios share beyond the plugin's: the moto server (S3 + Secrets Manager) on the
stack's network, for backups and the secrets the recovery reads."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def moto(settings: Any, stack: Any) -> Iterator[Any]:
    """A moto server next to the stack (``i2s-<run>-moto``, alias ``moto``); removed at the end."""
    from harness.errors import HarnessError
    from harness.stack.services import MotoService

    t0 = time.monotonic()
    service = MotoService(settings, stack.network)
    try:
        service.start()
    except HarnessError as exc:
        pytest.exit(str(exc), returncode=exc.exit_code)
    print(f"\n[harness {time.strftime('%H:%M:%S')}] moto up in {time.monotonic() - t0:.1f}s", flush=True)
    try:
        yield service
    finally:
        if not settings.keep:
            try:
                service.stop()
            except Exception:  # noqa: BLE001 - the run's sweep removes it by label
                pass
