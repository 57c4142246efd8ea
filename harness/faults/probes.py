"""Probes: what users get from the service (the steady-state hypothesis) and whether replicas are ready.

Endpoints are, in order: the ``endpoints`` argument (comma-separated), ``HARNESS_ENDPOINTS``, or the
run's running conductors found by label (docker platform). Only loopback addresses are accepted:
traffic goes to 127.0.0.1 published ports and nowhere else.
"""

import json
import os
import time
import urllib.error
import urllib.request
import uuid

from harness.errors import UsageError

__all__ = ["service_success_ratio", "all_replicas_ready", "wait_until_serving"]

PIPELINE = "/api/v1/pipeline"


def _endpoints(run_id: str, endpoints: str = "") -> list[str]:
    from harness.faults.safety import require_run_id

    require_run_id(run_id)
    raw = endpoints or os.environ.get("HARNESS_ENDPOINTS", "")
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


def _request_ok(url: str, timeout_s: float) -> bool:
    key = f"ssh-{uuid.uuid4().hex}"
    req = urllib.request.Request(url + PIPELINE, data=json.dumps({"name": "steady-state", "key": key}).encode(),
                                 method="POST", headers={"Content-Type": "application/json", "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except Exception:  # noqa: BLE001 - any error is a failed user request
        return False


def service_success_ratio(run_id: str, requests: int = 100, timeout_s: float = 2.0, endpoints: str = "") -> float:
    """Share of ``requests`` user requests (``POST /api/v1/pipeline``, which needs the database)
    that succeed, spread over the run's replicas. 0.0 when no replica is running.

    Use it with a tolerance range from the SLO, e.g. ``[0.99, 1.0]`` for a 1 % error budget.
    """
    if requests < 1:
        raise UsageError(f"requests must be at least 1 (got {requests})", "use e.g. 100")
    urls = _endpoints(run_id, endpoints)
    if not urls:
        return 0.0
    ok = sum(_request_ok(urls[i % len(urls)], timeout_s) for i in range(requests))
    return round(ok / requests, 4)


def all_replicas_ready(run_id: str, expected: int = 0, endpoints: str = "") -> bool:
    """True when every running replica answers 200 on /health/ready and there are at least
    ``expected`` of them (0: any number, but at least one)."""
    urls = _endpoints(run_id, endpoints)
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


def wait_until_serving(run_id: str, timeout_s: float = 900.0, consecutive: int = 20,
                       endpoints: str = "") -> dict:
    """Wait until the service is back: ``consecutive`` user requests in a row succeed and every
    replica reports ready again, at most ``timeout_s`` (use the RTO target). Raises when it is not
    back in time.

    Readiness is part of recovery: a replica that serves but still reports not ready would be taken
    out of a Kubernetes Service. This only ends the method at recovery; the RTO itself is measured
    by the harness's prober.
    """
    from chaoslib.exceptions import ActivityFailed

    t0 = time.monotonic()
    streak, serving_after = 0, None
    while time.monotonic() - t0 < timeout_s:
        try:
            urls = _endpoints(run_id, endpoints)
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
        elif all_replicas_ready(run_id, endpoints=endpoints):
            return {"serving_after_s": round(serving_after, 1), "ready_after_s": round(time.monotonic() - t0, 1),
                    "consecutive_ok": streak}
        time.sleep(0.25)
    what = (f"serve {consecutive} requests in a row" if serving_after is None
            else "report every replica ready (it serves requests)")
    raise ActivityFailed(f"the service did not {what} within {timeout_s:.0f}s")
