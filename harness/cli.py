"""The ``harness`` command: e2e/chaos/capacity runs with preflight and a final sweep; ``preflight``,
``doctor``, ``settings``, ``images``, ``expect`` (a run against a baseline), ``audit``, ``history`` and
``clean`` (earlier runs' leftovers). A stack to poke at by hand: ``python -m harness.chaos_runner up``.

User mistakes end in one line on stderr and a distinct exit code (see harness/errors.py).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from harness.labels import claim_run_owner
from harness.config import (KNOBS, PROJECT_ROOT, Settings, describe_settings, load_settings, plumbing_markdown,
                            settings_markdown, update_readme)
from harness.errors import EXIT_CODES, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, HarnessError, PlatformUnavailable, UnsafeTarget, UsageError
from harness.report.outcome import exit_code_for, exit_meaning

__all__ = ["main", "preflight", "show_settings", "FLAG_SETTINGS", "choose_platform", "doctor"]

SUITES = {"e2e": "e2e", "chaos": "chaos", "capacity": "capacity"}
DESCRIPTION = """\
The I2S resilience harness: runs the e2e, chaos and capacity suites against the system's real
manifests (preflight first, everything the run created removed at the end), checks settings and the
platform (preflight), compares a run with a baseline of expected outcomes (expect), audits the seed's
configuration (audit) and removes leftovers of killed runs (clean).

Settings: flag > HARNESS_* environment > [tool.harness] in pyproject.toml > default (harness settings).
pytest arguments go after `--`, e.g. harness e2e --platform docker -- -k steady"""
SUITE_HELP = {"e2e": "steady load, HPA and circuit breaker (report in reports/<run id>/index.html)",
              "chaos": "database outage and failover, cluster loss, zone loss: RTO and RPO against the targets",
              "capacity": "one replica's capacity, projected through the HPAs and node groups"}
FLAG_SETTINGS = tuple(k.name for k in KNOBS.values() if k.flag)  # settings a flag can set
SETTINGS_DOC = "docs/settings.md"  # holds the generated settings table (``harness settings --update-readme``)
LAST_RUN_FILE = "last-run-id"  # in the report dir: the run id of the newest e2e/chaos/capacity started
# How long pytest may tear down after Ctrl-C before it is killed: on kind, the log export's own limit
# (harness.kube.logs, 300 s) plus the cluster's deletion and the stack's.
INTERRUPT_GRACE_S = {"kind": 480, "docker": 120, "context": 180}


def preflight(settings: Settings, tools_only: bool = False, suite: str = "e2e") -> list[str]:
    """Refuse at once, in one line, when a setting is unusable or the chosen platform cannot run here;
    returns what was checked (``harness preflight`` prints it).

    Settings first (files, directories, kubeconfig: ``harness.preflight``), then the platform.
    ``tools_only`` checks what needs no running service (settings, binaries, kubeconfig), so ``make``
    can stop before it starts a Docker engine for a run that cannot happen. ``suite``: Helm is needed
    only where the circuit-breaker scenarios run (the e2e suite on kind, unless HARNESS_MESH=0).
    """
    from harness.docker_env import docker_client
    from harness.preflight import check_settings

    check_settings(settings)
    checked = [f"{len(KNOBS)} settings", f"manifests in {settings.manifests_dir}",
               f"report directory {settings.report_path.parent} writable"]
    if settings.platform == "auto":
        choose_platform(settings, suite, tools_only=tools_only)

    if settings.platform == "kind":
        if shutil.which("kind") is None:
            raise PlatformUnavailable(
                "kind is not installed, so no Kubernetes cluster can be created on this machine",
                "install kind (and Docker) for the kind platform, or run `make e2e PLATFORM=docker` here")
        from harness.platforms.kind import preflight as kind_preflight  # kind/Helm versions, kubectl, ports

        if not tools_only:
            docker_client()
        helm = settings.mesh and suite == "e2e"
        kind_preflight(settings, tools_only=tools_only, helm=helm)
        checked.append("kind, kubectl, docker on PATH, kind version" + (", Helm version" if helm else ""))
        if not tools_only:
            checked.append("Docker engine reachable")
    elif settings.platform == "docker":
        if not tools_only:
            docker_client()
            checked.append("Docker engine reachable")
    else:  # context: nothing is created; the context must exist (checked before any API call)
        from harness.platforms.context import preflight as context_preflight

        context_preflight(settings)
        allowed = ",".join(settings.context_allow) or "nothing but reads (HARNESS_CONTEXT_ALLOW empty)"
        checked.append(f"context {settings.context!r} in the kubeconfig; allowed there: {allowed}")
    return checked


def choose_platform(settings: Settings, suite: str, tools_only: bool = False) -> None:
    """``--platform auto``: kind when its tools are present and pass the doctor, else docker. Sets
    ``settings.platform`` and ``settings.platform_choice`` (the why, for the report) and says so first."""
    from harness.doctor import choose_platform as choose

    chosen, why = choose(settings, suite, tools_only=tools_only)
    settings.platform = chosen
    settings.platform_choice = why  # type: ignore[attr-defined]  # not a setting: the report's record of the choice
    print(f"harness: platform auto -> {chosen}: {why}", file=sys.stderr)


def doctor(args: argparse.Namespace) -> int:
    """``harness doctor``: every reading the kind preflight judges, as a table; creates nothing.
    0 when kind can run here, 13 when a row stops it (``--platform auto`` would then pick docker)."""
    from harness.doctor import format_table, gate_failures, judge, read_machine

    settings = _settings_from(args)
    mesh = settings.mesh and args.suite == "e2e"
    rows = judge(read_machine(settings, helm=mesh), settings, mesh=mesh)
    print(format_table(rows))
    failed = gate_failures(rows)
    warned = [r for r in rows if r.status == "warn"]
    if failed:
        print(f"harness doctor: kind cannot run here: {len(failed)} failing check(s), {len(warned)} warning(s); "
              f"--platform auto would run on docker", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(f"harness doctor: kind can run here ({len(warned)} warning(s))", file=sys.stderr)
    return 0


def _settings_from(args: argparse.Namespace) -> Settings:
    return load_settings({name: getattr(args, name, None) for name in FLAG_SETTINGS})


def expect(args: argparse.Namespace) -> int:
    """``harness expect BASELINE``: one run's outcomes against a baseline of expected ones
    (harness.report.baseline). 0 when they match, 10 when they differ, 11 when that run left no
    report (it ended before writing one, e.g. in preflight), 12 for a malformed baseline.

    Which run: ``--summary PATH``, else ``<report dir>/<run id>/summary.json`` for ``--run-id`` /
    ``HARNESS_RUN_ID``, else for the newest run started (``<report dir>/last-run-id``, written by
    ``harness e2e|chaos|capacity`` before preflight), else ``<report dir>/latest`` (report dir:
    ``--report-dir`` / ``HARNESS_REPORT_DIR``). The summary must be that run's: a report left by an
    earlier run is refused, never judged in its place.
    """
    from harness.config import env_name
    from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE
    from harness.labels import validate_run_id
    from harness.report.baseline import compare_with_baseline, load_baseline

    baseline = load_baseline(Path(args.baseline))
    report_dir = Path(args.report_dir or os.environ.get(env_name("report_dir"), "") or "reports")
    report_dir = report_dir if report_dir.is_absolute() else PROJECT_ROOT / report_dir
    run_id = (args.run_id or os.environ.get(env_name("run_id"), "")).strip()
    if not run_id and not args.summary:  # the newest run started, whether or not it wrote a report
        with contextlib.suppress(OSError):
            run_id = (report_dir / LAST_RUN_FILE).read_text().strip()
    if run_id:
        run_id = validate_run_id(run_id)
    path = Path(args.summary) if args.summary else report_dir / (run_id or "latest") / "summary.json"
    summary = _read_summary(path)
    if summary is None:
        which = f"run {run_id}" if run_id else "the newest run"
        print(f"harness: no report of {which} at {path}: it ended before writing one (a preflight refusal, a "
              "crash or an interruption: see its exit code); nothing to compare", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    if run_id and summary.get("run_id") != run_id:
        print(f"harness: {path} is the report of run {summary.get('run_id')!r}, not of run {run_id!r} asked for: "
              "refusing to judge an earlier run in its place", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    problems = compare_with_baseline(summary, baseline)
    for line in problems:
        print(f"harness: baseline mismatch: {line}", file=sys.stderr)
    print(f"harness: run {summary.get('run_id')} ({path}) {'matches' if not problems else 'differs from'} the "
          f"baseline {args.baseline} ({len(baseline)} scenarios)", file=sys.stderr)
    return EXIT_FAIL if problems else 0


def show_settings(args: argparse.Namespace) -> int:
    """``harness settings``: every setting's effective value for the chosen platform and where it came
    from; ``--markdown``: the generated settings table (``--update-readme`` implies it and writes it
    into docs/settings.md); ``--plumbing``: the variables the harness passes to its own subprocesses."""
    if args.update_readme:
        doc = PROJECT_ROOT / SETTINGS_DOC
        doc.write_text(update_readme(doc.read_text()))
        print(f"harness: regenerated the settings table and the plumbing list in {SETTINGS_DOC}")
        return 0
    if args.markdown:
        print(settings_markdown(), end="")
        return 0
    if args.plumbing:
        print(plumbing_markdown(), end="")
        return 0
    settings = _settings_from(args)
    rows = describe_settings(settings)
    platform_defaults = _platform_defaults(settings)
    for r in rows:
        if r["name"] in platform_defaults:
            r["value"], r["source"] = platform_defaults[r["name"]], f"default ({settings.platform})"
    rows.insert(0, {"name": "setting", "value": "effective value", "source": "source", "env": "environment"})
    width = max(len(r["name"]) for r in rows)
    vwidth = min(40, max(len(r["value"]) for r in rows))
    swidth = max(len(r["source"]) for r in rows)
    print(f"harness settings for platform {settings.platform} (flag > environment > pyproject.toml > default)")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value'] or '-':<{vwidth}}  {r['source']:<{swidth}}  {r['env']}")
    return 0


def _platform_defaults(settings: Settings) -> dict[str, str]:
    """Defaults the chosen platform replaces when the user set nothing (the capacity ramp's steps on
    Kubernetes: harness.capacity.measure.KUBE_STEP_DEFAULTS), shown as the value in force."""
    from harness.capacity.measure import KUBE_STEP_DEFAULTS

    if settings.platform == "docker":
        return {}
    return {f"capacity_{k}": f"{v:g}" for k, v in KUBE_STEP_DEFAULTS.items()
            if settings.source(f"capacity_{k}") == "default"}


def _add_setting_flags(p: argparse.ArgumentParser, keep: bool = True) -> None:
    """The flags that set settings, from the settings model (each knob declared with ``flag=``)."""
    for k in KNOBS.values():
        if not k.flag or (k.name == "keep" and not keep):
            continue
        default = "new per run" if k.name == "run_id" else (k.default if k.default not in ("", None) else "none")
        if k.type == "bool":
            p.add_argument(k.flag, dest=k.name, action="store_true", default=None,
                           help=f"{k.help} (env {k.env}; default {str(default).lower()})")
        else:
            # choices shown, but checked by the settings model: its message names the setting and the fix
            p.add_argument(k.flag, dest=k.name, default=None, metavar="{" + ",".join(k.choices) + "}" if k.choices
                           else k.name.upper(), help=f"{k.help} (env {k.env}; default {default})")


def run_suite(suite: str, args: argparse.Namespace, extra: Sequence[str]) -> int:
    """Run one suite's scenarios under pytest and return the harness's exit code (never pytest's).

    The code comes from the run's summary.json (written by the plugin with the run's outcome and
    code), else from how pytest ended (``harness.report.outcome.exit_code_for``). The last line on
    stderr names the outcome, the code and its meaning.
    """
    settings = _settings_from(args)
    _mark_run_started(settings)
    preflight(settings, suite=suite)  # every setting, the report dir included: one line, exit 12, before anything starts
    claim_run_owner()  # the run's resources name this process, so a concurrent `harness clean` spares them
    if suite == "capacity" and settings.platform == "context":
        # The measurement pins the HPA and the Deployment to one pod: on a cluster the harness did not
        # create that would change a real environment, so it is refused before anything starts.
        raise UnsafeTarget(f"the capacity measurement would pin the HPA of context {settings.context!r} to one pod, "
                           "and the harness changes nothing on a cluster it did not create",
                           "measure with --platform kind or docker")
    cmd = [sys.executable, "-m", "pytest", str(PROJECT_ROOT / "scenarios"), "-m", SUITES[suite],
           "-p", "no:cacheprovider", "--platform", settings.platform, "--run-id", settings.run_id,
           "--report-dir", settings.report_dir, "-o", "console_output_style=classic", "-rs"]
    if settings.context:
        cmd += ["--context", settings.context]
    choice = getattr(settings, "platform_choice", "")
    if choice:
        cmd += ["--platform-choice", choice]
    if settings.keep:
        cmd.append("--keep")
    if settings.source("replicas") == "flag":
        cmd += ["--replicas", str(settings.replicas)]
    cmd += list(extra)
    interrupted = False
    # Settings given as flags that pytest has no option for reach the plugin as their variables.
    env = {**os.environ, **{KNOBS[k].env: str(getattr(settings, k)).lower() if isinstance(getattr(settings, k), bool)
                            else str(getattr(settings, k)) for k in ("history_dir", "fail_on_regression")
                            if settings.source(k) == "flag"}}
    # pytest runs in a session of its own, so a Ctrl-C at the terminal or a SIGTERM to our process group
    # reaches it once, from here, whether it was sent to the group or to this process alone.
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the plugin tears down on it as on Ctrl-C
        # pytest got the same SIGINT and is tearing down; give it time, then make sure. On kind that is
        # `kind export logs` (up to 300 s) then `kind delete cluster`; the mesh undo is skipped then.
        grace = INTERRUPT_GRACE_S.get(settings.platform, 120)
        print(f"harness: interrupted; tearing down (logs first; up to {grace} s, Ctrl-C again to stop at once)",
              file=sys.stderr)
        try:
            status = proc.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            status = EXIT_INTERRUPTED
    finally:
        if not settings.keep:
            _sweep_quietly(settings.run_id)
    summary = _read_summary(settings.report_path / "summary.json")
    outcome = summary.get("verdict") if summary else None
    if interrupted or status == EXIT_INTERRUPTED:
        code = EXIT_INTERRUPTED
    elif summary and isinstance(summary.get("exit_code"), int):
        code = summary["exit_code"]
    else:  # pytest ended before writing the summary (bad pytest argument, killed, a usage error)
        code = exit_code_for(outcome, status)
    print(f"harness: run {settings.run_id} {outcome or 'ended without a report'}: exit {code} "
          f"({exit_meaning(code)})", file=sys.stderr)
    return code


def _mark_run_started(settings: Settings) -> None:
    """Before preflight can refuse a run: a reused run id's old verdict is removed (it is not this
    run's), and ``last-run-id`` names this run, so ``harness expect`` without a run id judges this
    run, or refuses when it left no report, never an earlier one in its place. ``harness preflight``
    marks too: ``make e2e`` runs it first, and a run it refuses never starts."""
    with contextlib.suppress(OSError):
        (settings.report_path / "summary.json").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # an unusable report dir: preflight says so next, in one line
        if settings.report_path.parent.is_dir():  # none yet: no earlier report to judge by mistake either
            (settings.report_path.parent / LAST_RUN_FILE).write_text(settings.run_id + "\n")


def _read_summary(path: Path) -> dict | None:
    """The run's summary.json, or None if the run ended before writing it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _sweep_quietly(run_id: str) -> None:
    """After the suite: whatever is still labeled with this run goes (a pytest killed mid-teardown)."""
    from harness.docker_env import sweep

    try:
        left = sweep(run_id)
        if shutil.which("kind"):
            from harness.platforms.kind import sweep_kind_clusters

            left["kind_clusters"] = sweep_kind_clusters(run_id)
        if any(left.values()):
            print(f"harness: removed leftovers of run {run_id}: {left}", file=sys.stderr)
    except HarnessError:
        pass


def images(args: argparse.Namespace) -> int:
    """List every image a run needs (kind's node, add-ons, Istio, the conductor; the stack's Postgres,
    Redis, RabbitMQ, Ryuk and Python base); with ``--pull``, pull what is not local (runs side-load them)."""
    from harness.doctor import stack_images
    from harness.kube.runner import SubprocessRunner
    from harness.platforms.kind import conductor_image_name, pull_images, run_images

    settings = _settings_from(args)
    listed = run_images(settings, conductor_image_name(settings)) + stack_images(settings)
    for image, why in listed:
        print(f"{image}\t{why}")
    if args.pull:
        pulled = pull_images([i for i, _ in listed], SubprocessRunner(), lambda m: print(f"harness: {m}", file=sys.stderr))
        print(f"harness: pulled {len(pulled)} image(s); later kind runs side-load them into the nodes", file=sys.stderr)
    return 0


def clean(args: argparse.Namespace) -> int:
    from harness.docker_env import sweep

    removed = sweep(None)  # spares runs in progress (their owner process is alive)
    clusters: list[str] = []
    if shutil.which("kind"):
        from harness.platforms.kind import sweep_kind_clusters

        # only clusters named with the harness's prefix, and not those of runs in progress
        clusters = sweep_kind_clusters(None, spare=removed["in_progress"])
    print(f"harness: removed {len(removed['containers'])} containers, {len(removed['networks'])} networks, "
          f"{len(removed['volumes'])} volumes, {len(clusters)} kind clusters")
    if removed["in_progress"]:
        print(f"harness: left runs in progress alone: {', '.join(removed['in_progress'])} (their processes are "
              "running; stop them first, or wait)")
    return 0


def audit(args: argparse.Namespace) -> int:
    """``harness audit``: the seed's configuration against its own targets, no Docker and no cluster.
    Prints the findings table, writes ``<report dir>/<run id>/audit.json``; exit 0 when no finding is
    blocking (critical or high), 10 when some are, 11 when a rule or tool broke (the audit is incomplete)."""
    from harness.audit.engine import render_table, run_audit, write_audit
    from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE
    from harness.preflight import check_settings
    from harness.report.writer import ensure_writable

    root = Path(args.root).resolve()
    if not root.is_dir():
        raise UsageError(f"--root {args.root} is not a directory", "pass the project (or a copy of it) to --root")
    settings = load_settings({"report_dir": args.report_dir})
    check_settings(settings)
    run_dir = ensure_writable(settings.report_path)
    result = run_audit(root, progress=lambda step: print(f"harness audit: {step} ...", file=sys.stderr))
    path = write_audit(result, run_dir)
    print(render_table(result))
    code = EXIT_INCONCLUSIVE if result.errors else (EXIT_FAIL if result.blocking else 0)
    print(f"harness: audit {settings.run_id}: {len(result.findings)} findings, {len(result.blocking)} blocking; "
          f"{path}; exit {code} ({exit_meaning(code)})", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is the harness's usage error (exit 12, one line), not argparse's 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="exit codes:\n" + "\n".join(f"  {c:>3}  {m}" for c, m in EXIT_CODES.items()))
    sub = p.add_subparsers(dest="command", required=True)
    for suite in SUITES:
        s = sub.add_parser(suite, help=f"run the {suite} suite: {SUITE_HELP[suite]}; pytest args after --",
                           description=f"Run the {suite} suite: {SUITE_HELP[suite]}. pytest arguments go after "
                                       f"`--`, e.g. harness {suite} --platform docker -- -k steady -x")
        _add_setting_flags(s)
    pf = sub.add_parser("preflight", help="check every setting and that the platform can run here; one line if not")
    _add_setting_flags(pf, keep=False)
    pf.add_argument("--tools-only", action="store_true", help="check settings, binaries and kubeconfig only")
    pf.add_argument("--suite", choices=tuple(SUITES), default="e2e", help="the suite about to run (default e2e)")
    st = sub.add_parser("settings", help="every setting's effective value and where it came from")
    _add_setting_flags(st)
    st.add_argument("--markdown", action="store_true", help="print the generated settings table (docs/settings.md)")
    st.add_argument("--update-readme", action="store_true",
                    help=f"implies --markdown: rewrite the generated settings table and plumbing list in {SETTINGS_DOC}")
    st.add_argument("--plumbing", action="store_true", help="list the harness's process-to-process variables")
    im = sub.add_parser("images", help="list (and with --pull, pre-pull) every image a kind run needs")
    _add_setting_flags(im, keep=False)
    im.add_argument("--pull", action="store_true", help="docker pull what is not local yet")
    ex = sub.add_parser("expect", help="compare a run's outcomes with a baseline of expected ones (0 match, 10 differ)")
    ex.add_argument("baseline", help="JSON baseline: {\"scenarios\": {name: {\"outcome\": ..., \"why\": ...}}}")
    ex.add_argument("--run-id", dest="run_id", default=None,
                    help="the run to judge (env HARNESS_RUN_ID): its report must exist and be that run's")
    ex.add_argument("--report-dir", dest="report_dir", default=None,
                    help="where the runs' reports are (env HARNESS_REPORT_DIR; default reports)")
    ex.add_argument("--summary", default=None,
                    help="a summary.json to judge (default: <report dir>/<run id>/summary.json, without a run id "
                         "<report dir>/latest/summary.json)")
    au = sub.add_parser("audit", help="check the seed's configuration against its RTO/RPO targets (no Docker, no "
                                      "cluster; 0 no blocking finding, 10 blocking findings)")
    au.add_argument("--root", default=str(PROJECT_ROOT), help="the project (k8s/, scripts/, seed/) to audit")
    au.add_argument("--report-dir", dest="report_dir", default=None,
                    help=f"{KNOBS['report_dir'].help} (env {KNOBS['report_dir'].env})")
    dr = sub.add_parser("doctor", help="what kind needs on this machine, checked, as a table (creates nothing; "
                                       "0 kind can run, 13 it cannot)")
    _add_setting_flags(dr, keep=False)
    dr.add_argument("--suite", choices=tuple(SUITES), default="e2e", help="the suite about to run (default e2e)")
    sub.add_parser("clean", help="remove every container, network, volume and kind cluster the harness labeled")
    from harness.history.cli import add_history_parser

    add_history_parser(sub, _add_setting_flags)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from harness.process_watch import ensure_interruptible, terminate_like_interrupt

    ensure_interruptible()  # Ctrl-C tears the run down even if our parent started us with SIGINT ignored
    terminate_like_interrupt()  # SIGTERM (a CI cancel, `kill`) too: torn down, exit 130, never killed by it
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to pytest untouched.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.command in SUITES:  # e.g. `harness e2e -k steady`
            raise UsageError(f"`harness {args.command}` does not take {' '.join(unknown)}",
                             f"pytest arguments go after `--`: harness {args.command} -- {' '.join(unknown)}")
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command == "clean":
            return clean(args)
        if args.command == "settings":
            return show_settings(args)
        if args.command == "images":
            return images(args)
        if args.command == "expect":
            return expect(args)
        if args.command == "audit":
            return audit(args)
        if args.command == "history":
            from harness.history.cli import run_history

            return run_history(args)
        if args.command == "doctor":
            return doctor(args)
        if args.command == "preflight":
            settings = _settings_from(args)
            _mark_run_started(settings)
            checked = preflight(settings, tools_only=args.tools_only, suite=args.suite)
            print(f"harness: preflight ok for {args.suite} on {settings.platform}"
                  f"{' (tools only)' if args.tools_only else ''}: {'; '.join(checked)}", file=sys.stderr)
            return 0
        return run_suite(args.command, args, extra)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `harness settings | head`: the reader had enough; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and none at interpreter exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
