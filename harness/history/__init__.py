"""Run history: every e2e, chaos, capacity and benchmark run's figures kept, and each new run judged
against the stable range of the comparable runs before it.

* ``harness/history/metrics.py`` (pure): which figures of a run summary are tracked, with unit,
  direction and minimum effect size; the environment fingerprint (stable configuration only).
* ``harness/history/detect.py`` (pure): change points in a noisy series (e-divisive energy statistic,
  merged by a rank-sum significance test and the metric's minimum effect).
* ``harness/history/check.py`` (pure): the latest run against the stable range since the last change:
  pass, suspect, regression, improved, acknowledged or no baseline.
* ``harness/history/store.py`` (I/O): JSON-lines records (the source of truth), the SQLite index
  beside them, acknowledgements.
* ``harness/history/trends.py`` (pure): the report's Trends section as inline SVG.
* ``harness/history/recorder.py`` (I/O glue): ingest a run's summary and check it, for the plugin,
  the CLI and the benchmarks.
* ``harness/history/cli.py``: ``harness history list | show | compare | check | ack | ingest``.
"""
