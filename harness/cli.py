"""``harness``: e2e/chaos/capacity runs with preflight and a final sweep; ``preflight``, ``doctor``, ``settings``,
``images``, ``expect`` (a run against a baseline) and ``clean`` (earlier runs' leftovers). A stack to
poke at by hand: ``python -m harness.chaos_runner up``.

User mistakes end in one line on stderr and a distinct exit code (see harness/errors.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
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
FLAG_SETTINGS = tuple(k.name for k in KNOBS.values() if k.flag)  # settings a flag can set
# How long pytest may tear down after Ctrl-C before it is killed: on kind, the log export's own limit
# (harness.kube.logs, 300 s) plus the cluster's deletion and the stack's.
INTERRUPT_GRACE_S = {"kind": 480, "docker": 120, "context": 180}


def preflight(settings: Settings, tools_only: bool = False, suite: str = "e2e") -> None:
    """Refuse at once, in one line, when a setting is unusable or the chosen platform cannot run here.

    Settings first (files, directories, kubeconfig: ``harness.preflight``), then the platform.
    ``tools_only`` checks what needs no running service (settings, binaries, kubeconfig), so ``make``
    can stop before it starts a Docker engine for a run that cannot happen. ``suite``: Helm is needed
    only where the circuit-breaker scenarios run (the e2e suite on kind, unless HARNESS_MESH=0).
    """
    from harness.docker_env import docker_client
    from harness.preflight import check_settings

    check_settings(settings)
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
        kind_preflight(settings, tools_only=tools_only, helm=settings.mesh and suite == "e2e")
    elif settings.platform == "docker":
        if not tools_only:
            docker_client()
    else:  # context: nothing is created; the context must exist (checked before any API call)
        from harness.platforms.context import preflight as context_preflight

        context_preflight(settings)


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
    """``harness expect BASELINE``: the run's outcomes against a baseline of expected ones
    (harness.report.baseline). 0 when they match, 10 when they differ, 11 when there is no report."""
    from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE
    from harness.report.baseline import compare_with_baseline, load_baseline

    baseline = load_baseline(Path(args.baseline))
    summary = _read_summary(Path(args.summary))
    if summary is None:
        print(f"harness: no readable summary at {args.summary}: the run wrote no report", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    problems = compare_with_baseline(summary, baseline)
    for line in problems:
        print(f"harness: baseline mismatch: {line}", file=sys.stderr)
    print(f"harness: run {summary.get('run_id')} {'matches' if not problems else 'differs from'} the baseline "
          f"{args.baseline} ({len(baseline)} scenarios)", file=sys.stderr)
    return EXIT_FAIL if problems else 0


def show_settings(args: argparse.Namespace) -> int:
    """``harness settings``: every setting's effective value and its source; ``--markdown``: the
    README's table; ``--plumbing``: the variables the harness passes to its own subprocesses."""
    if args.update_readme:
        readme = PROJECT_ROOT / "README.md"
        readme.write_text(update_readme(readme.read_text()))
        print(f"harness: regenerated the settings table in {readme}")
        return 0
    if args.markdown:
        print(settings_markdown(), end="")
        return 0
    if args.plumbing:
        print(plumbing_markdown(), end="")
        return 0
    rows = describe_settings(_settings_from(args))
    width = max(len(r["name"]) for r in rows)
    vwidth = min(40, max(len(r["value"]) for r in rows))
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value'] or '-':<{vwidth}}  {r['source']:<9}  {r['env']}")
    return 0


def _add_setting_flags(p: argparse.ArgumentParser, keep: bool = True) -> None:
    """The flags that set settings, from the settings model (each knob declared with ``flag=``)."""
    for k in KNOBS.values():
        if not k.flag or (k.name == "keep" and not keep):
            continue
        if k.type == "bool":
            p.add_argument(k.flag, dest=k.name, action="store_true", default=None, help=k.help)
        else:
            p.add_argument(k.flag, dest=k.name, default=None, help=f"{k.help} (env {k.env})")


def run_suite(suite: str, args: argparse.Namespace, extra: Sequence[str]) -> int:
    """Run one suite's scenarios under pytest and return the harness's exit code (never pytest's).

    The code comes from the run's summary.json (written by the plugin with the run's outcome and
    code), else from how pytest ended (``harness.report.outcome.exit_code_for``). The last line on
    stderr names the outcome, the code and its meaning.
    """
    settings = _settings_from(args)
    preflight(settings, suite=suite)  # every setting, the report dir included: one line, exit 12, before anything starts
    claim_run_owner()  # the run's resources name this process, so a concurrent `harness clean` spares them
    if suite == "capacity" and settings.platform == "context":
        # The measurement pins the HPA and the Deployment to one pod: on a cluster the harness did not
        # create that would change a real environment, so it is refused before anything starts.
        raise UnsafeTarget(f"the capacity measurement would pin the HPA of context {settings.context!r} to one pod, "
                           "and the harness changes nothing on a cluster it did not create",
                           "measure with --platform kind or docker")
    (settings.report_path / "summary.json").unlink(missing_ok=True)  # a reused run id's old verdict is not this run's
    cmd = [sys.executable, "-m", "pytest", str(PROJECT_ROOT / "scenarios"), "-m", SUITES[suite],
           "-p", "no:cacheprovider", "--platform", settings.platform, "--run-id", settings.run_id,
           "--report-dir", settings.report_dir, "-o", "console_output_style=classic", "-rs"]
    if settings.context:
        cmd += ["--context", settings.context]
    if getattr(settings, "platform_choice", ""):
        cmd += ["--platform-choice", settings.platform_choice]
    if settings.keep:
        cmd.append("--keep")
    if settings.source("replicas") == "flag":
        cmd += ["--replicas", str(settings.replicas)]
    cmd += list(extra)
    interrupted = False
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT)
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        interrupted = True
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
    p = _Parser(prog="harness", description=__doc__.splitlines()[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="exit codes:\n" + "\n".join(f"  {c:>3}  {m}" for c, m in EXIT_CODES.items()))
    sub = p.add_subparsers(dest="command", required=True)
    for suite in SUITES:
        s = sub.add_parser(suite, help=f"run the {suite} scenarios (extra args go to pytest)")
        _add_setting_flags(s)
    pf = sub.add_parser("preflight", help="check every setting and that the platform can run here; one line if not")
    _add_setting_flags(pf, keep=False)
    pf.add_argument("--tools-only", action="store_true", help="check settings, binaries and kubeconfig only")
    pf.add_argument("--suite", choices=tuple(SUITES), default="e2e", help="the suite about to run (default e2e)")
    st = sub.add_parser("settings", help="every setting's effective value and where it came from")
    _add_setting_flags(st)
    st.add_argument("--markdown", action="store_true", help="print the README's settings table")
    st.add_argument("--update-readme", action="store_true", help="with --markdown: rewrite README's generated table")
    st.add_argument("--plumbing", action="store_true", help="list the harness's process-to-process variables")
    im = sub.add_parser("images", help="list (and with --pull, pre-pull) every image a kind run needs")
    _add_setting_flags(im, keep=False)
    im.add_argument("--pull", action="store_true", help="docker pull what is not local yet")
    ex = sub.add_parser("expect", help="compare a run's outcomes with a baseline of expected ones (0 match, 10 differ)")
    ex.add_argument("baseline", help="JSON baseline: {\"scenarios\": {name: {\"outcome\": ..., \"why\": ...}}}")
    ex.add_argument("--summary", default=str(PROJECT_ROOT / "reports" / "latest" / "summary.json"),
                    help="the run's summary.json (default: reports/latest/summary.json)")
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from harness.process_watch import ensure_interruptible

    ensure_interruptible()  # Ctrl-C tears the run down even if our parent started us with SIGINT ignored
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to pytest untouched.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    try:
        args = build_parser().parse_args(argv)
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
        if args.command == "doctor":
            return doctor(args)
        if args.command == "preflight":
            preflight(_settings_from(args), tools_only=args.tools_only, suite=args.suite)
            return 0
        return run_suite(args.command, args, extra)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
