"""Probes: what users get from the service (the steady-state hypothesis) and whether replicas are ready.

Endpoints are the configuration's ``endpoints`` (comma-separated; ``HARNESS_ENDPOINTS``, set by the
harness from the platform) or else the run's running conductors found by label (docker platform). Only loopback addresses are accepted:
traffic goes to 127.0.0.1 published ports and nowhere else. The user requests write (``POST
/api/v1/pipeline``): on a cluster the user named, only with ``HARNESS_CONTEXT_ALLOW`` naming ``write``.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Dict

from harness.errors import UsageError
from harness.faults import safety

__all__ = ["service_success_ratio", "all_replicas_ready", "wait_until_serving"]

PIPELINE = "/api/v1/pipeline"


def _endpoints(configuration: Dict) -> list[str]:
    run_id = safety.run_id_of(configuration)
    raw = str((configuration or {}).get("endpoints") or "")
    if raw:
        urls = [u.strip().rstrip("/") for u in raw.split(",") if u.strip()]
    else:
        from harness.platforms.docker import discover_endpoints

        urls = list(discover_endpoints(run_id).values())
    for u in urls:
        if not u.startswith(("http://127.", "http://localhost", "https://127.", "https://localhost")):
            raise UsageError(f"endpoint {u} is not on this machine's loopback",
                             "probes go only to 127.0.0.1 (published ports)")
    return urls


def _may_write(configuration: Dict) -> None:
    """User requests POST records: on a cluster the user named (``context``), only when
    ``HARNESS_CONTEXT_ALLOW`` names ``write`` (``safety.check_allowed``), before any request."""
    named = str((configuration or {}).get("context") or "").strip()
    if named:
        safety.check_allowed(configuration, named, "write")


def _request_ok(url: str, timeout_s: float) -> bool:
    key = f"ssh-{uuid.uuid4().hex}"
    req = urllib.request.Request(url + PIPELINE, data=json.dumps({"name": "steady-state", "key": key}).encode(),
                                 method="POST", headers={"Content-Type": "application/json", "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except Exception:  # noqa: BLE001 - any error is a failed user request
        return False


def service_success_ratio(requests: int = 0, timeout_s: float = 2.0, configuration: Dict = None) -> float:
    """Share of ``requests`` user requests (``POST /api/v1/pipeline``, which needs the database)
    that succeed, spread over the run's replicas (0: the configuration's ``probe_requests``).
    0.0 when no replica is running.

    Use it with a tolerance range from the SLO, e.g. ``[0.99, 1.0]`` for a 1 % error budget.
    """
    requests = int(requests or (configuration or {}).get("probe_requests") or 100)
    if requests < 1:
        raise UsageError(f"requests must be at least 1 (got {requests})", "use e.g. 100 (HARNESS_PROBE_REQUESTS)")
    _may_write(configuration)
    urls = _endpoints(configuration)
    if not urls:
        return 0.0
    ok = sum(_request_ok(urls[i % len(urls)], timeout_s) for i in range(requests))
    return round(ok / requests, 4)


def all_replicas_ready(expected: int = 0, configuration: Dict = None) -> bool:
    """True when every running replica answers 200 on /health/ready and there are at least
    ``expected`` of them (0: any number, but at least one)."""
    urls = _endpoints(configuration)
    if len(urls) < max(expected, 1):
        return False
    for u in urls:
        try:
            with urllib.request.urlopen(u + "/health/ready", timeout=2) as resp:
                if resp.status != 200:
                    return False
        except Exception:  # noqa: BLE001 - not ready
            return False
    return True


def wait_until_serving(timeout_s: float = 0.0, consecutive: int = 20, configuration: Dict = None) -> dict:
    """Wait until the service is back: ``consecutive`` user requests in a row succeed and every
    replica reports ready again, at most ``timeout_s`` (0: the configuration's RTO target,
    ``rto_target_s``). Raises when it is not back in time.

    Readiness is part of recovery: a replica that serves but still reports not ready would be taken
    out of a Kubernetes Service. This only ends the method at recovery; the RTO itself is measured
    by the harness's prober.
    """
    from chaoslib.exceptions import ActivityFailed

    _may_write(configuration)
    timeout_s = float(timeout_s or (configuration or {}).get("rto_target_s") or 900.0)
    t0 = time.monotonic()
    streak, serving_after = 0, None
    while time.monotonic() - t0 < timeout_s:
        try:
            urls = _endpoints(configuration)
        except UsageError:
            raise
        except Exception:  # noqa: BLE001 - docker hiccup: try again
            urls = []
        if serving_after is None:
            if urls and _request_ok(urls[streak % len(urls)], 2.0):
                streak += 1
                if streak >= consecutive:
                    serving_after = time.monotonic() - t0
                continue
            streak = 0
        elif all_replicas_ready(configuration=configuration):
            return {"serving_after_s": round(serving_after, 1), "ready_after_s": round(time.monotonic() - t0, 1),
                    "consecutive_ok": streak}
        time.sleep(0.25)
    what = (f"serve {consecutive} requests in a row" if serving_after is None
            else "report every replica ready (it serves requests)")
    raise ActivityFailed(f"the service did not {what} within {timeout_s:.0f}s")
