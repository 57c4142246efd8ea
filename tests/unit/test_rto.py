"""compute_rto on synthetic timelines: the ones that must pass and the ones that must fail, and the
Prober against a tiny local HTTP server that goes down and comes back."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.errors import UsageError
from harness.measure.rto import Prober, Sample, compute_rto, plot_timeline

STEP = 0.25  # the prober's cadence


def timeline(*segments: tuple[bool, float], start: float = 1000.0) -> list[Sample]:
    """Samples every STEP seconds: segments of (ok, seconds)."""
    out, t = [], start
    for ok, seconds in segments:
        for _ in range(round(seconds / STEP)):
            out.append(Sample(t=t, ok=ok, latency_s=0.01, status=201 if ok else 503))
            t += STEP
    return out


# -- must pass ------------------------------------------------------------------------------------
def test_clean_outage_then_recovery_gives_the_outage_length():
    s = timeline((True, 5), (False, 10), (True, 10))
    r = compute_rto(s, fault_at=1005.0, target_s=900)
    assert r.recovered and r.verdict_ok
    assert r.rto_s == pytest.approx(10.0)
    assert r.outage_start == pytest.approx(1005.0) and r.recovered_at == pytest.approx(1015.0)
    assert r.detection_s == pytest.approx(0.0)
    assert r.sustained_failures == 1 and r.failed == 40
    assert r.availability == pytest.approx(40 / 80)


def test_no_failure_is_rto_zero():
    r = compute_rto(timeline((True, 20)), target_s=1)
    assert r.rto_s == 0.0 and r.recovered and r.verdict_ok and r.outage_start is None


def test_short_blips_below_the_threshold_are_not_an_outage():
    s = timeline((True, 6), (False, 0.5), (True, 6), (False, 0.75), (True, 6))
    r = compute_rto(s, sustain_failure_s=1.0)
    assert r.rto_s == 0.0 and r.recovered
    assert r.blips == 2 and r.sustained_failures == 0 and r.longest_failure_s == pytest.approx(0.75)


def test_blips_during_recovery_count_only_as_interruptions_of_the_sustained_success():
    # Outage 8 s, then 2 s ok, a 0.5 s blip, then 10 s ok: recovery is the run after the blip.
    s = timeline((False, 8), (True, 2), (False, 0.5), (True, 10))
    r = compute_rto(s)
    assert r.recovered and r.rto_s == pytest.approx(10.5)


def test_failures_before_the_fault_are_baseline_not_outage():
    s = timeline((False, 3), (True, 10))
    r = compute_rto(s, fault_at=1003.0)
    assert r.rto_s == 0.0 and r.baseline_failed == 12 and r.samples == 40


# -- must fail ------------------------------------------------------------------------------------
def test_never_recovers():
    r = compute_rto(timeline((True, 5), (False, 30)), fault_at=1005.0, target_s=900)
    assert not r.recovered and r.rto_s is None and not r.verdict_ok
    assert "still failing" in r.explanation
    assert r.to_dict()["verdict"] == "fail"


def test_flapping_never_counts_as_recovered():
    s = timeline((True, 2), *[(False, 1.5), (True, 3)] * 6)
    r = compute_rto(s)
    assert not r.recovered and r.rto_s is None and r.sustained_failures == 6
    assert "flapping" in r.explanation


def test_recovery_too_short_to_be_sustained_is_not_recovery():
    r = compute_rto(timeline((False, 10), (True, 3)), sustain_recovery_s=5)
    assert not r.recovered and "short of the 5s" in r.explanation


def test_rto_over_the_target_fails_the_verdict():
    r = compute_rto(timeline((False, 12), (True, 6)), target_s=10)
    assert r.recovered and r.rto_s == pytest.approx(12) and not r.verdict_ok and "MISSED" in r.explanation


def test_relapse_after_a_recovery_extends_the_outage():
    # 4 s down, 6 s up (looks recovered), 3 s down again, 6 s up: the service was not recovered at 4 s.
    s = timeline((False, 4), (True, 6), (False, 3), (True, 6))
    r = compute_rto(s)
    assert r.rto_s == pytest.approx(13.0) and r.sustained_failures == 2


def test_bad_input_is_one_clear_error():
    with pytest.raises(UsageError, match="no probe samples"):
        compute_rto([])
    with pytest.raises(UsageError, match="after the fault"):
        compute_rto(timeline((True, 2)), fault_at=5000.0)
    with pytest.raises(UsageError, match="sustain"):
        compute_rto(timeline((True, 2)), sustain_failure_s=0)
    with pytest.raises(UsageError, match="250 ms"):
        Prober(lambda: [], interval_s=1.0)


def test_plot_shades_the_fault_and_outage(tmp_path):
    s = timeline((True, 5), (False, 10), (True, 10))
    r = compute_rto(s, fault_at=1005.0)
    path = plot_timeline(tmp_path / "t.png", s, faults=[(1005.0, 1012.0, "database stopped")], result=r)
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"


# -- the prober against a server that goes down -----------------------------------------------------
class _Service:
    """POST /api/v1/pipeline with idempotency, 503 while ``down``; served_by header like the conductor."""

    def __init__(self):
        self.down = False
        self.keys: dict[str, str] = {}
        self.replays = 0
        svc = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if svc.down:
                    self.send_response(503)
                    self.send_header("X-Served-By", "fake-0")
                    self.end_headers()
                    return
                key = self.headers["Idempotency-Key"]
                code = 200 if key in svc.keys else 201
                svc.replays += code == 200
                rid = svc.keys.setdefault(key, f"id-{len(svc.keys)}")
                body = json.dumps({"id": rid}).encode()
                self.send_response(code)
                self.send_header("X-Served-By", "fake-0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _wait_samples(prober: Prober, enough, what: str, timeout_s: float = 30.0) -> None:
    """Wait until the prober's own samples satisfy ``enough`` (not a fixed sleep a busy box may not keep)."""
    deadline = time.monotonic() + timeout_s
    while not enough(prober.samples):
        assert time.monotonic() < deadline, f"the prober never recorded {what} in {timeout_s:.0f}s"
        time.sleep(0.05)


def test_prober_sees_an_outage_and_its_recovery():
    svc = _Service()
    try:
        prober = Prober(lambda: [svc.url], interval_s=0.05, timeout_s=1.0).start()
        _wait_samples(prober, lambda ss: sum(s.ok for s in ss) >= 5, "a healthy baseline")
        fault_at = time.time()
        svc.down = True
        # The outage lasts until the prober has seen well over sustain_failure_s of failures.
        _wait_samples(prober, lambda ss: any(not s.ok and s.t - fault_at >= 1.0 for s in ss), "a sustained outage")
        up_at = time.time()
        svc.down = False
        _wait_samples(prober, lambda ss: any(s.ok and s.t - up_at >= 1.5 for s in ss), "a sustained recovery")
        samples = prober.stop()
    finally:
        svc.server.shutdown()
    assert {s.kind for s in samples} == {"write", "replay"} and svc.replays > 0
    assert all(s.replica == "fake-0" for s in samples)
    r = compute_rto(samples, fault_at=fault_at, sustain_failure_s=0.5, sustain_recovery_s=1.0)
    # The RTO spans the outage the test made: from the first failed request (sent after fault_at, or
    # in flight then: within the prober's 1 s timeout) to the first success after it (sent after
    # up_at, or in flight then). Checked against the prober's own samples, not against wall-clock
    # margins a busy box's scheduling delays would eat into.
    first_fail = min(s.t for s in samples if s.t >= fault_at and not s.ok)
    first_back = min(s.t for s in samples if s.ok and s.t > first_fail)
    assert fault_at - 1.0 <= first_fail < up_at and first_back >= up_at - 1.0, (fault_at, first_fail, up_at, first_back)
    assert r.recovered and r.rto_s == pytest.approx(first_back - first_fail, abs=1e-3), r.to_dict()


def test_prober_records_no_endpoint_as_failure():
    prober = Prober(lambda: [], interval_s=0.05).start()
    _wait_samples(prober, lambda s: len(s) >= 1, "a sample")   # not a sleep: a busy box may not tick in 0.3 s
    samples = prober.stop()
    assert samples and not any(s.ok for s in samples) and "no endpoint" in samples[0].error
