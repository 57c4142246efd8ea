"""The harness as a pytest plugin: options, markers, and session fixtures with guaranteed teardown.

Suite setup brings the stack and platform up once; every scenario reads Setup → Assess →
Teardown; logs are exported before anything is destroyed; whatever the run labeled is swept at
the end, after failures and Ctrl-C too.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, NoReturn

import pytest

from harness.config import Settings, load_settings
from harness.errors import HarnessError, Inconclusive
from harness.preflight import check_settings
from harness.report.writer import RunReport, ScenarioResult

__all__ = ["ScenarioRecorder"]

log = logging.getLogger("harness")
MARKERS = {
    "e2e": "end-to-end scenario run by `make e2e`",
    "chaos": "chaos experiment run by `make chaos`",
    "capacity": "capacity verification run by `make capacity`",
    "kind": "needs Kubernetes (kind or --context); skipped on the docker platform",
    "docker": "needs the docker platform",
}
SCENARIO_MARKERS = ("e2e", "chaos", "capacity")
_SETTINGS = pytest.StashKey[Settings]()
_REPORT = pytest.StashKey[RunReport]()
_PHASE_REPORTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "I2S resilience harness")
    group.addoption("--platform", default=None, help="kind | docker | context (env HARNESS_PLATFORM)")
    group.addoption("--context", default=None, help="an existing cluster's kubeconfig context, named explicitly")
    group.addoption("--report-dir", default=None, help="where reports/<run-id>/ goes (default: reports)")
    group.addoption("--keep", action="store_true", default=None, help="keep the stack and cluster afterwards")
    group.addoption("--run-id", default=None, help="use this run id (labels, report directory)")
    group.addoption("--replicas", default=None, help="docker platform: conductor replicas")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    _CONFIG[:] = [config]
    overrides = {"platform": config.getoption("platform"), "context": config.getoption("context"),
                 "report_dir": config.getoption("report_dir"), "keep": config.getoption("keep"),
                 "run_id": config.getoption("run_id"), "replicas": config.getoption("replicas")}
    try:
        config.stash[_SETTINGS] = load_settings(overrides)
        check_settings(config.stash[_SETTINGS])  # preflight: files, directories, kubeconfig; nothing started
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (CI cancelling, `kill`) tears down like Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    settings = config.stash[_SETTINGS]
    for item in items:
        if settings.platform == "docker" and item.get_closest_marker("kind"):
            item.add_marker(pytest.mark.skip(reason="needs Kubernetes (HPA, Istio, nodes); the docker platform "
                                                    "has none: run with --platform kind or --context NAME"))
        if settings.platform != "docker" and item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.skip(reason="runs on the docker platform only (--platform docker)"))
    if any(item.get_closest_marker(m) for item in items for m in SCENARIO_MARKERS):
        report = RunReport(settings.run_id, settings.platform, settings.report_path, settings.public())
        config.stash[_REPORT] = report
        if not config.option.xmlpath:  # junit.xml beside summary.json unless the user chose a path
            from _pytest.junitxml import LogXML

            xml = LogXML(str(report.root / "junit.xml"), None, "harness", "no", "total", "xunit2", False)
            config.pluginmanager.register(xml, "harness-junitxml")
            xml.pytest_sessionstart()
        print(f"\nharness: run {settings.run_id} on {settings.platform}; report in {report.root}",
              file=sys.stderr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    rep = yield
    item.stash.setdefault(_PHASE_REPORTS, {})[rep.when] = rep
    return rep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    report = config.stash.get(_REPORT, None)
    settings = config.stash[_SETTINGS]
    if report is not None:
        path = report.write()
        print(f"\nharness: report {path / 'index.html'}", file=sys.stderr)
    if getattr(config, "_harness_used_docker", False) and not settings.keep:
        # Last line of defence: anything still labeled with this run goes, whatever happened above.
        from harness.docker_env import sweep

        try:
            left = sweep(settings.run_id)
            if any(left.values()):
                log.warning("swept leftovers of run %s: %s", settings.run_id, left)
        except HarnessError:
            pass


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[_SETTINGS]


@pytest.fixture(scope="session")
def run_report(pytestconfig: pytest.Config, settings: Settings) -> RunReport:
    report = pytestconfig.stash.get(_REPORT, None)
    if report is None:  # a scenario fixture used from an unmarked test
        report = RunReport(settings.run_id, settings.platform, settings.report_path, settings.public())
        pytestconfig.stash[_REPORT] = report
    return report


_CONFIG: list[pytest.Config] = []  # the running session's config, for progress past output capture


def _progress(msg: str) -> None:
    """Long phases show what is happening with elapsed time, even while pytest captures output."""
    line = f"[harness {time.strftime('%H:%M:%S')}] {msg}"
    capman = _CONFIG[0].pluginmanager.getplugin("capturemanager") if _CONFIG else None
    if capman is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(line, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config, settings: Settings) -> Iterator[Any]:
    from harness.stack import Stack

    pytestconfig._harness_used_docker = True  # type: ignore[attr-defined]
    t0 = time.monotonic()
    _progress("starting postgres, redis, rabbitmq (testcontainers)")
    try:
        s = Stack(settings).start()
    except HarnessError as exc:
        pytest.exit(str(exc), returncode=exc.exit_code)
    _progress(f"stack up in {time.monotonic() - t0:.1f}s")
    try:
        yield s
    finally:
        if not settings.keep:
            s.stop()


@pytest.fixture(scope="session")
def platform(request: pytest.FixtureRequest, settings: Settings, run_report: RunReport) -> Iterator[Any]:
    from harness.platforms import make_platform

    # An existing cluster brings its own backing services; only created platforms need the stack.
    stack = None if settings.platform == "context" else request.getfixturevalue("stack")
    p = make_platform(settings, stack)
    t0 = time.monotonic()
    _progress(f"deploying the conductor on the {settings.platform} platform")
    try:
        p.up()
        _progress(f"conductor ready in {time.monotonic() - t0:.1f}s: {', '.join(p.endpoints())}")
        run_report.environment["platform"] = p.describe()
        yield p
    except HarnessError as exc:
        _export_logs(p, run_report)
        p.down()
        pytest.exit(str(exc), returncode=exc.exit_code)
    finally:
        if request.session.testsfailed or sys.exc_info()[0] is not None:
            _export_logs(p, run_report)
        p.down()


def _export_logs(p: Any, report: RunReport) -> None:
    try:
        written = p.export_logs(report.root / "logs")
        report.environment["logs"] = [str(w) for w in written]
    except Exception as exc:  # noqa: BLE001 - logs are best effort; teardown must go on
        log.warning("could not export logs: %s", exc)


class ScenarioRecorder:
    """What a scenario measured and concluded; written into summary.json and the HTML report."""

    def __init__(self, name: str, root: Path):
        self.result = ScenarioResult(name=name)
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._t0 = time.monotonic()

    @property
    def name(self) -> str:
        return self.result.name

    def measure(self, key: str, value: Any) -> None:
        self.result.measurements[key] = value

    def verdict(self, ok: bool, explanation: str) -> bool:
        """Record the verdict (the test still asserts it): pass, or fail = the system missed its target."""
        self.result.verdict = "pass" if ok else "fail"
        self.result.explanation = explanation
        return ok

    def inconclusive(self, explanation: str) -> NoReturn:
        """The harness could not measure (saturated generator, fault not injected, ...): record it
        and end the scenario. Never a pass, never a system failure."""
        self.result.verdict = "inconclusive"
        self.result.explanation = explanation
        raise Inconclusive(explanation)

    def add_plot(self, title: str, path: Path) -> None:
        self.result.plots.append({"title": title, "path": str(path)})

    def add_artifact(self, path: Path) -> None:
        self.result.artifacts.append(str(path))

    def add_table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.result.tables.append({"title": title, "columns": columns, "rows": rows})

    def progress(self, msg: str) -> None:
        _progress(f"{self.name}: {msg} ({time.monotonic() - self._t0:.0f}s)")


@pytest.fixture
def scenario(request: pytest.FixtureRequest, run_report: RunReport) -> Iterator[ScenarioRecorder]:
    rec = ScenarioRecorder(request.node.name, run_report.root)
    try:
        yield rec
    finally:
        call = request.node.stash.get(_PHASE_REPORTS, {}).get("call")
        if call is None:  # setup failed: the scenario never reached its assessment
            rec.result.verdict = "inconclusive"
            rec.result.explanation = rec.result.explanation or "the scenario's setup failed"
        elif call.skipped:
            rec.result.verdict = "skip"
        elif call.failed and rec.result.verdict not in ("fail", "inconclusive"):
            # Failed without a recorded verdict: an assertion is a fail, anything else means the
            # harness could not measure (inconclusive).
            crash = getattr(getattr(call, "longrepr", None), "reprcrash", None)
            message = getattr(crash, "message", "") or str(call.longrepr)
            rec.result.verdict = "fail" if message.startswith("AssertionError") else "inconclusive"
            rec.result.explanation = message.strip().splitlines()[0][:300]
        rec.result.duration_s = round(time.monotonic() - rec._t0, 1)
        run_report.add(rec.result)
