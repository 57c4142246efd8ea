"""What the outlier rig (harness.mesh.outlier_rig) reads from Envoy's access log as attempts no backend
recorded: failed connects (UF), and requests reset on a connection the rig dropped as a REFUSE window
began (UC inside the window). Replayed, the CI run's refused_split case (Envoy ejected on UC, UF, UF at
+1.42 s) then ejects where Envoy did; without the UC the oracle ejected 2.8 s later."""
from __future__ import annotations

import json

from harness.mesh.outlier_rig import CONNECT_FAILED, RESET, OutlierRig
from harness.oracles.envoy_agreement import POOL_FAILURES
from harness.oracles.outlier import OutlierDetectionSettings, simulate

T0 = 1_796_332_000.0
BY_PORT = {"127.0.0.1:4001": "a", "127.0.0.1:4002": "b"}


def _log(tmp_path, entries):
    path = tmp_path / "access.jsonl"
    path.write_text("\n".join(json.dumps({"start": f"{T0 + t:.3f}", "duration_ms": str(ms), "upstream": up,
                                          "flags": flags, "code": "503"}) for t, ms, up, flags in entries))
    return path


def test_failed_connects_and_resets_inside_a_refuse_window_are_read_back(tmp_path):
    log = _log(tmp_path, [(0.5, 1, "127.0.0.1:4001", "-"),        # served: its backend recorded it
                          (1.071, 1, "127.0.0.1:4001", "UC"),     # dropped as the window began
                          (1.179, 0, "127.0.0.1:4001", "UF"),
                          (1.418, 1, "127.0.0.1:4001", "UF"),
                          (3.0, 1, "127.0.0.1:4002", "UC"),       # a RESET window's: b's backend recorded it
                          (8.0, 1, "127.0.0.1:4001", "UC"),       # after the window (and its second)
                          (2.0, 0, "-", "UF")])                   # no upstream host: not attributable
    got = OutlierRig._local_failures(log, BY_PORT, {"a": [(T0 + 1.0, T0 + 7.0)]})
    assert [(round(a.t - T0, 3), a.host, a.status) for a in sorted(got, key=lambda a: a.t)] == [
        (1.072, "a", RESET), (1.179, "a", CONNECT_FAILED), (1.419, "a", CONNECT_FAILED)]
    # no REFUSE window: a UC is a RESET window's, recorded by its backend, never read twice
    assert [a.status for a in OutlierRig._local_failures(log, BY_PORT)] == [CONNECT_FAILED] * 2


def _replayed(attempts):
    """The oracle fed attempts as harness.oracles.envoy_agreement.replay feeds them."""
    s = OutlierDetectionSettings.from_envoy({"consecutive_local_origin_failure": 3,
                                             "split_external_local_origin_errors": True,
                                             "interval": "1s", "base_ejection_time": "2s",
                                             "max_ejection_percent": 50})
    inputs = []
    for t, h, c in attempts:
        if c not in POOL_FAILURES:
            inputs.append({"t": t, "host": h, "local": "connect_success"})
        inputs.append({"t": t, "host": h, "local": c} if isinstance(c, str) else {"t": t, "host": h, "code": c})
    return simulate(s, ["a", "b", "c"], inputs, until=4.0)


def test_the_reset_read_back_makes_the_oracle_eject_where_envoy_did():
    served = [(0.9, "a", 200)]
    fails = [(1.179, "a", CONNECT_FAILED), (1.419, "a", CONNECT_FAILED)]
    with_uc = _replayed(served + [(1.072, "a", RESET)] + fails)
    assert [e["t"] for e in with_uc.ejections()] == [1.419]
    # the bug this guards against: the UC not read back, two local-origin failures, no ejection
    assert _replayed(served + fails).ejections() == []
