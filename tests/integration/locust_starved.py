"""The harness's locustfile with its event loop held still for ``STALL_S`` out of every second,
which to every greenlet inside Locust is what a host too busy to run it looks like: time jumps.

Not imported by the tests (importing locust monkey-patches the importing process): they pass
``HARNESS_STARVE_S`` (the hold, default 0.6 s) and ``HARNESS_STARVE``, how it is held
(tests/integration/test_load_validity.py):
  ``block``  a blocking sleep: no CPU used, no progress (the process starved by a busy machine);
  ``burn``   a busy loop: CPU burnt in the loop (the generator saturating its own core).
Either way the loop is held at least ``STALL_S`` per cycle whatever the machine's speed (a slower
or busier machine only holds it longer), so the generator cannot keep its schedule.
"""
from __future__ import annotations

import os
import time

import gevent
from gevent import monkey
from locust import events

from loadtests.locustfile import PipelineUser  # noqa: F401 - the same users and per-second lines

STALL_S = float(os.environ.get("HARNESS_STARVE_S", "0.6"))
_blocking_sleep = monkey.get_original("time", "sleep")   # locust patched time.sleep to yield


def _hold(seconds: float) -> None:
    if os.environ.get("HARNESS_STARVE", "block") == "burn":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    else:
        _blocking_sleep(seconds)


@events.test_start.add_listener
def _starve(environment, **_kw) -> None:
    def loop() -> None:
        while True:
            gevent.sleep(1.0 - STALL_S)
            _hold(STALL_S)

    environment.harness_starver = gevent.spawn(loop)


@events.quitting.add_listener
def _stop(environment, **_kw) -> None:
    starver = getattr(environment, "harness_starver", None)
    if starver is not None:
        starver.kill()
