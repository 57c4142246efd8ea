"""The harness as a pytest plugin: options, markers, and session fixtures with guaranteed teardown.

Suite setup brings the stack and platform up once; every scenario reads Setup → Assess →
Teardown; logs are exported before anything is destroyed; whatever the run labeled is swept at
the end, after failures and Ctrl-C too.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Generator, Iterator, NoReturn

import pytest

from harness.config import PROJECT_ROOT, Settings, load_settings
from harness.errors import HarnessError, Inconclusive
from harness.labels import claim_run_owner
from harness.platforms.permissions import refusal
from harness.process_watch import ensure_interruptible, terminate_like_interrupt
from harness.preflight import check_settings
from harness.report.outcome import Ending, exit_code_for, exit_meaning, one_line, scenario_outcome
from harness.report.writer import RunReport, ScenarioResult

__all__ = ["ScenarioRecorder", "run_interrupted"]

log = logging.getLogger("harness")
MARKERS = {
    "e2e": "end-to-end scenario run by `make e2e`",
    "chaos": "chaos experiment run by `make chaos`",
    "capacity": "capacity verification run by `make capacity`",
    "kind": "needs Kubernetes (kind or --context); skipped on the docker platform",
    "docker": "needs the docker platform",
    "context_needs": "context_needs(*actions): on --platform context, runs only when HARNESS_CONTEXT_ALLOW names "
                     "every action (write, drain)",
    "own_database": "stops, fails over or replaces the run's own database: skipped on --platform context",
}
SCENARIO_MARKERS = ("e2e", "chaos", "capacity")
_SETTINGS = pytest.StashKey[Settings]()
_REPORT = pytest.StashKey[RunReport]()
_PHASE_REPORTS = pytest.StashKey[dict]()       # item: {when: (TestReport, exception or None)}
_RECORDER = pytest.StashKey["ScenarioRecorder"]()  # item: its scenario fixture, if it used one
_RECORDED = pytest.StashKey[bool]()             # item: its outcome is in the run report
_STOPPED = pytest.StashKey[str]()               # config: why the run stopped early (pytest.exit, Ctrl-C)
_INTERRUPTED = pytest.StashKey[bool]()          # config: Ctrl-C / SIGTERM seen
_COLLECT_ERRORS = pytest.StashKey[list[str]]()      # config: test files that failed to import


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "I2S resilience harness")
    group.addoption("--platform", default=None, help="kind | docker | context (env HARNESS_PLATFORM)")
    group.addoption("--context", default=None, help="an existing cluster's kubeconfig context, named explicitly")
    group.addoption("--report-dir", default=None, help="where reports/<run-id>/ goes (default: reports)")
    group.addoption("--keep", action="store_true", default=None, help="keep the stack and cluster afterwards")
    group.addoption("--run-id", default=None, help="use this run id (labels, report directory)")
    group.addoption("--replicas", default=None, help="docker platform: conductor replicas")
    group.addoption("--platform-choice", default="", help="why `harness` chose the platform (with --platform auto)")


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
    claim_run_owner()  # unless `harness` already did: what the run creates names its owner process
    ensure_interruptible()  # Ctrl-C tears down, and reaches `chaos run` children, whatever our parent ignored
    terminate_like_interrupt()  # SIGTERM (CI cancelling, `kill`) tears down like Ctrl-C does


def run_interrupted(config: pytest.Config) -> bool:
    """Ctrl-C or SIGTERM was seen: fixtures tearing down now need only what a deletion does not do."""
    return bool(config.stash.get(_INTERRUPTED, False))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    settings = config.stash[_SETTINGS]
    choice = config.getoption("platform_choice") or ""
    if settings.platform == "auto" and any(_is_scenario(item) for item in items):
        from harness.doctor import choose_platform  # scenarios run under plain pytest: the same choice as `harness`

        settings.platform, choice = choose_platform(settings)
        print(f"\nharness: platform auto -> {settings.platform}: {choice}", file=sys.stderr)
    for item in items:
        if settings.platform == "docker" and item.get_closest_marker("kind"):
            item.add_marker(pytest.mark.skip(reason="needs Kubernetes (HPA, Istio, nodes); the docker platform "
                                                    "has none: run it with --platform kind"))
        if settings.platform != "docker" and item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.skip(reason="runs on the docker platform only (--platform docker)"))
        if settings.platform == "context":
            if item.get_closest_marker("own_database"):
                item.add_marker(pytest.mark.skip(
                    reason=f"stops or replaces the run's own database; on context {settings.context!r} the database "
                           "is the team's, which the harness never touches: run it with --platform kind or docker"))
            needs = item.get_closest_marker("context_needs")
            why = refusal(settings, needs.args, "it") if needs else None
            if why:
                item.add_marker(pytest.mark.skip(reason=why))
    if any(_is_scenario(item) for item in items) and not config.option.collectonly:  # a listing is no run
        try:
            report = RunReport(settings.run_id, settings.platform, settings.report_path, settings.public())
        except HarnessError as exc:  # e.g. the report directory cannot be written: one line, its own code
            pytest.exit(str(exc), returncode=exc.exit_code)
        # The seed's configuration audit first, so every run's report has it (report/ only receives it).
        from harness.audit.engine import audit_for_report  # imported when a run starts: its tools load slowly

        report.audit = audit_for_report(report.root, PROJECT_ROOT)
        config.stash[_REPORT] = report
        if choice:
            report.environment["platform_choice"] = {"requested": "auto", "chosen": settings.platform, "why": choice}
        print(f"\nharness: run {settings.run_id} on {settings.platform}"
              f"{' (auto: ' + choice + ')' if choice else ''}; report in {report.root}", file=sys.stderr)


def _is_scenario(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(m) for m in SCENARIO_MARKERS)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed and _CONFIG:  # a scenario file that does not import is a harness error, not a finding
        errors = _CONFIG[0].stash.setdefault(_COLLECT_ERRORS, [])
        errors.append(f"{report.nodeid or 'collection'}: {one_line(str(report.longrepr))}")


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo) -> None:
    # pytest calls this for pytest.exit too; only a real Ctrl-C / SIGTERM is an interruption.
    if _CONFIG and isinstance(excinfo.value, KeyboardInterrupt):
        _CONFIG[0].stash[_INTERRUPTED] = True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    exc = call.excinfo.value if call.excinfo else None
    item.stash.setdefault(_PHASE_REPORTS, {})[rep.when] = (rep, exc)
    rec: ScenarioRecorder | None = item.stash.get(_RECORDER, None)
    if (rep.when == "call" and rep.failed and rec is not None and rec.result.verdict == "fail"
            and isinstance(exc, (AssertionError, pytest.fail.Exception))):
        _shorten_finding(rep, rec)
    return rep


def _shorten_finding(rep: pytest.TestReport, rec: "ScenarioRecorder") -> None:
    """A fail verdict is a finding about the system, not a harness bug: the terminal gets one line (the
    verdict table follows with the reasons), the traceback goes to the report (a file beside the
    scenario's results, and the JUnit failure). Harness errors (inconclusive) keep theirs on screen."""
    text = rep.longreprtext
    path = rec.dir / "traceback.txt"
    try:
        path.write_text(text)
        rec.add_artifact(path)
    except OSError:
        return  # nowhere to keep it: the terminal keeps it
    rec.result.traceback = text
    rep.longrepr = f"system finding (verdict fail): see the table below; the traceback is in {path}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    """Every scenario ends in exactly one recorded outcome, however it ended: including a skip at
    collection (no fixture ran), a setup error, and ``pytest.exit``/Ctrl-C raised inside it."""
    try:
        result = yield
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            item.config.stash[_INTERRUPTED] = True
            why = "interrupted (Ctrl-C or SIGTERM) while it ran"
        else:
            why = f"the run stopped here: {one_line(str(getattr(exc, 'msg', '') or exc))}"
        item.config.stash[_STOPPED] = why
        _record(item, stopped=why)
        raise
    _record(item)
    return result


def _ending(entry: tuple[Any, BaseException | None] | None) -> Ending | None:
    """A phase's report and exception as an ``Ending`` (harness.report.outcome)."""
    if entry is None:
        return None
    rep, exc = entry
    if rep.skipped:
        longrepr = rep.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        return Ending("skipped", "", reason.removeprefix("Skipped: "))
    if rep.passed:
        return Ending("passed")
    kind = ("inconclusive" if isinstance(exc, Inconclusive)
            else "assertion" if isinstance(exc, (AssertionError, pytest.fail.Exception)) else "error")
    message = str(exc) if exc is not None and str(exc) else one_line(str(rep.longrepr))
    if kind == "error" and exc is not None and not isinstance(exc, HarnessError):
        message = f"{type(exc).__name__}: {message}"
    return Ending("failed", kind, message)


def _record(item: pytest.Item, stopped: str = "") -> None:
    """Add ``item``'s outcome to the run report (scenarios, and any test using the ``scenario`` fixture)."""
    rec: ScenarioRecorder | None = item.stash.get(_RECORDER, None)
    report = item.config.stash.get(_REPORT, None)
    if report is None or (rec is None and not _is_scenario(item)):
        return
    phases = item.stash.get(_PHASE_REPORTS, {})
    result = rec.result if rec is not None else ScenarioResult(name=item.name)
    result.nodeid = item.nodeid
    result.verdict, result.explanation = scenario_outcome(
        _ending(phases.get("setup")), _ending(phases.get("call")), _ending(phases.get("teardown")),
        result.verdict, result.explanation, stopped)
    if rec is not None:
        result.duration_s = round(time.monotonic() - rec._t0, 1)
    else:
        result.duration_s = round(sum(r.duration for r, _ in phases.values()), 1)
    item.stash[_RECORDED] = True
    report.add(result)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    report = config.stash.get(_REPORT, None)
    settings = config.stash[_SETTINGS]
    if report is not None:
        stopped = config.stash.get(_STOPPED, "")
        for item in session.items:  # scenarios the run never reached
            if _is_scenario(item) and not item.stash.get(_RECORDED, False):
                report.add(ScenarioResult(name=item.name, nodeid=item.nodeid, verdict="inconclusive",
                                          explanation=f"not run: {stopped or 'the run ended before it'}"))
        collected: list[str] = config.stash.get(_COLLECT_ERRORS, [])
        report.errors.extend(collected)
        report.exit_code = exit_code_for(report.verdict(), int(exitstatus), config.stash.get(_INTERRUPTED, False))
        if not config.stash.get(_INTERRUPTED, False) and report.scenarios:
            _check_history(report, settings)
        try:
            path = report.write()
            print(f"\nharness: report {path / 'index.html'}", file=sys.stderr)
        except OSError as exc:  # the directory went away or filled up during the run
            print(f"harness: could not write the report in {report.root} ({exc})", file=sys.stderr)
        tr = config.pluginmanager.getplugin("terminalreporter")
        if tr is not None and int(exitstatus) not in _PYTEST_SUMMARY_STATUSES:
            _print_table(tr, report, exitstatus)
    if getattr(config, "_harness_used_docker", False) and not settings.keep:
        # Last line of defence: anything still labeled with this run goes, whatever happened above.
        from harness.docker_env import sweep

        try:
            left = sweep(settings.run_id)
            if any(left.values()):
                log.warning("swept leftovers of run %s: %s", settings.run_id, left)
        except HarnessError:
            pass


def _check_history(report: RunReport, settings: Settings) -> None:
    """Append the run to its history and check it (harness.history); with ``fail_on_regression``, a
    passing run whose history confirms a regression exits 15 (a fail or inconclusive keeps its code)."""
    from harness.errors import EXIT_PASS, EXIT_REGRESSION
    from harness.history.recorder import record_and_check

    report.regressions = record_and_check(report.summary(), settings)
    if settings.fail_on_regression and report.regressions.get("regressions") and report.exit_code == EXIT_PASS:
        report.exit_code = EXIT_REGRESSION


# pytest runs pytest_terminal_summary only for these statuses (OK, TESTS_FAILED, INTERRUPTED,
# USAGE_ERROR, NO_TESTS_COLLECTED: _pytest/terminal.py); after pytest.exit(returncode=11/13/14) the
# harness prints its table from pytest_sessionfinish instead.
_PYTEST_SUMMARY_STATUSES = (0, 1, 2, 4, 5)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report: RunReport | None = config.stash.get(_REPORT, None)
    if report is not None:
        _print_table(terminalreporter, report, exitstatus)


def _print_table(tr: Any, report: RunReport, exitstatus: int) -> None:
    """The run contract at the end of every run: each scenario's outcome and one-line reason, then
    the run's outcome and what its exit code means."""
    tr.section(f"harness run {report.run_id} on {report.platform}")
    width = max([len(s.name) for s in report.scenarios] + [8])
    tr.write_line(f"{'scenario':<{width}}  {'outcome':<12}  reason")
    for s in report.scenarios:
        tr.write_line(f"{s.name:<{width}}  {s.verdict:<12}  {one_line(s.explanation, 160)}")
    for err in report.errors:
        tr.write_line(f"harness error: {err}")
    if report.audit is not None:
        counts = ", ".join(f"{n} {sev}" for sev, n in (report.audit.get("counts") or {}).items() if n)
        tr.write_line(f"configuration audit: {report.audit.get('blocking', 0)} blocking findings ({counts or 'none'}; "
                      f"the run's outcome is the scenarios'); {report.root / 'audit.json'}"
                      + "".join(f"\naudit error: {e}" for e in report.audit.get("errors") or []))
        marks = (report.summary().get("audit") or {}).get("confirmation") or []
        checked = [m for m in marks if m["status"] != "not exercised"]
        if checked:
            tr.write_line("audit findings checked by this run: " + "; ".join(
                f"{m['finding']} {m['status']}" for m in checked))
    if report.regressions is not None:
        tr.write_line(_history_line(report.regressions))
    code = report.exit_code if report.exit_code is not None else exit_code_for(report.verdict(), int(exitstatus))
    tr.write_line(f"run outcome: {report.verdict()} -> exit {code} ({exit_meaning(code)})", bold=True)


def _history_line(block: dict[str, Any]) -> str:
    """The terminal table's history line: counts per status, the regressions and suspects by name."""
    if block.get("error"):
        return f"run history: {block['error']}"
    counts = ", ".join(f"{n} {s}" for s, n in sorted((block.get("counts") or {}).items())) or "nothing tracked"
    named = "".join(f"; {kind}: {', '.join(block[kind])}" for kind in ("regressions", "suspects") if block.get(kind))
    return (f"run history: {counts} (against {block.get('comparable_runs', 0)} comparable runs){named}; "
            f"{block.get('history')}")


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

    def report_only(self, explanation: str) -> None:
        """Measured, but there was no target to judge against (figures only): neither pass nor fail."""
        self.result.verdict = "report-only"
        self.result.explanation = explanation

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
def scenario(request: pytest.FixtureRequest, run_report: RunReport) -> ScenarioRecorder:
    """The scenario's recorder; its outcome is decided and added to the report when the scenario
    has ended (``_record``), from the verdict it recorded and how each phase ended."""
    rec = ScenarioRecorder(request.node.name, run_report.root)
    request.node.stash[_RECORDER] = rec
    return rec
