"""``harness doctor``: everything the kind platform's preflight knows about this machine, as a table.

Two halves. ``read_machine`` takes the readings (tool versions, ``docker info``, the Linux inotify
limits, free disk, which images are local, the Docker login and mirrors, free ports) through an
injectable ``CommandRunner`` and ``Host``; it starts, pulls and writes nothing. ``judge`` turns the
readings into rows (what was checked, the value seen, what is needed, the fix, ok/warn/fail) and is
pure, so every row is tested with faked readings. The kind preflight refuses on the first failing
row that gates kind (``Row.gate``); ``--platform auto`` picks kind only when none fails.

Minimums, and where they come from:
- inotify: ``fs.inotify.max_user_watches = 524288`` and ``fs.inotify.max_user_instances = 512``,
  the values kind's known-issues page gives for "Pod errors due to too many open files"
  (kind.sigs.k8s.io/docs/user/known-issues). Stock Ubuntu has 128 instances, which five nodes exhaust.
- CPUs and memory of the Docker engine (not of the host: Docker Desktop runs a VM): 4 CPUs and 8 GB
  (the README's figure; a VM set to 8 GB reports about 7.7 GiB, so 7.5 GiB is the floor). Every kind
  node advertises the whole engine, so below that the HPA plan's ~1.7 conductor cores, five kubelets,
  the control plane, the stack and Locust overcommit without the scheduler noticing. Below 6 CPUs with
  the mesh: a warning (istiod, the gateway and a sidecar per pod).
- disk: 20 GiB free where Docker keeps its data (node image ~1 GB compressed, unpacked once; side-loaded
  images are copied into every node).
- Docker Hub: anonymous pulls are rate-limited per IPv4 address; a ``docker login`` on this machine
  does not reach the kind nodes, so the harness pulls on the host and side-loads (harness.platforms.kind).
"""
from __future__ import annotations

import json
import os
import platform as _platform
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.config import Settings
from harness.errors import PlatformUnavailable
from harness.kube.runner import CommandRunner, SubprocessRunner

__all__ = ["Row", "Host", "Machine", "read_machine", "judge", "gate_failures", "format_table", "choose_platform",
           "INOTIFY_MIN", "MIN_CPUS", "MESH_CPUS", "MIN_MEMORY_BYTES", "MIN_DISK_BYTES", "SYSCTL_FIX",
           "docker_hub_image", "stack_images", "KIND_TOOLS"]

KIND_TOOLS = ("kind", "kubectl", "docker")
INOTIFY_MIN = {"fs.inotify.max_user_instances": 512, "fs.inotify.max_user_watches": 524288}
SYSCTL_FIX = ("sudo sysctl -w fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288 (and, to keep "
              "it, put both lines in /etc/sysctl.d/99-kind.conf); kind known issues: too many open files")
MIN_CPUS, MESH_CPUS = 4, 6
GIB = 1024 ** 3
MIN_MEMORY_BYTES = int(7.5 * GIB)
MIN_DISK_BYTES = 20 * GIB
SAVE_PLATFORM_API = (1, 48)   # `docker image save --platform` (docs.docker.com/reference/cli/docker/image/save)
DOCKER_FIX = "run on the docker platform (`make e2e PLATFORM=docker`)"
MESH_SKIP = "set HARNESS_MESH=0 to skip the circuit-breaker scenarios"
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Row:
    check: str
    seen: str
    needed: str
    status: str          # ok | warn | fail | skip
    fix: str = ""
    gate: bool = False   # a fail here means kind cannot run on this machine
    problem: str = ""    # the preflight's one-line refusal, when it is not "check: seen (needs ...)"

    def refusal(self) -> str:
        return self.problem or f"{self.check} is {self.seen}, below what kind needs ({self.needed})"


class Host:
    """What the doctor reads from this machine besides commands; tests replace it with fixed readings."""

    def system(self) -> str:
        return _platform.system()

    def sysctl(self, name: str) -> int | None:
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def disk_free(self, path: str) -> int | None:
        try:
            return shutil.disk_usage(path).free
        except OSError:
            return None

    def docker_config(self) -> dict[str, Any] | None:
        base = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        try:
            return json.loads((base / "config.json").read_text())
        except (OSError, ValueError):
            return None

    def port_free(self, address: str, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, port))
                return True
            except OSError:
                return False


@dataclass
class Machine:
    """The readings the rows are judged from (all optional: what was not read is a skipped row)."""

    system: str = "Linux"
    which: dict[str, str | None] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)      # tool -> CommandResult of its version command
    docker_info: dict[str, Any] | None = None
    docker_error: str = ""
    docker_api: str = ""
    inotify: dict[str, int | None] | None = None
    disk_free: int | None = None
    disk_where: str = ""
    images: dict[str, tuple[bool, str]] = field(default_factory=dict)   # image -> (local?, what needs it)
    docker_config: dict[str, Any] | None = None
    ports: dict[str, bool] = field(default_factory=dict)
    tools_only: bool = False


def docker_hub_image(image: str) -> bool:
    """Whether ``image`` comes from Docker Hub (no registry host in its name, or docker.io)."""
    first = image.split("/")[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        return True
    return first in ("docker.io", "index.docker.io", "registry-1.docker.io")


def stack_images(settings: Settings) -> list[tuple[str, str]]:
    """The images the stack pulls on this machine (testcontainers), with what needs them."""
    out = [(settings.postgres_image, "Postgres (stack)"), (settings.redis_image, "Redis (stack)"),
           (settings.rabbitmq_image, "RabbitMQ (stack)"), (settings.python_image, "Python base (conductor, tools)")]
    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED", "").lower() not in ("1", "true"):
        try:
            from testcontainers.core.config import testcontainers_config

            out.append((testcontainers_config.ryuk_image, "Ryuk (testcontainers' reaper)"))
        except ImportError:  # pragma: no cover - testcontainers is a dependency
            pass
    return out


def read_machine(settings: Settings, runner: CommandRunner | None = None,
                 which: Callable[[str], str | None] = shutil.which, host: Host | None = None, *,
                 tools_only: bool = False, helm: bool | None = None, kind_config: str | Path | None = None,
                 images: Sequence[tuple[str, str]] | None = None) -> Machine:
    """Take every reading (commands run with short timeouts; nothing is created or pulled).
    ``tools_only``: the tools' versions only (no engine, disk, images or ports)."""
    runner = runner or SubprocessRunner()
    host = host or Host()
    m = Machine(system=host.system(), tools_only=tools_only)
    helm = settings.mesh if helm is None else helm
    tools = [*KIND_TOOLS, "helm"] if helm else list(KIND_TOOLS)
    m.which = {t: which(t) for t in tools}
    commands = {"kind": ["kind", "version"], "kubectl": ["kubectl", "version", "--client", "-o", "json"],
                "helm": ["helm", "version", "--short"]}
    for tool, argv in commands.items():
        if tool in m.which and m.which[tool]:
            m.outputs[tool] = runner.run(argv, timeout=30, check=False)
    if m.system == "Linux":
        m.inotify = {name: host.sysctl(name) for name in INOTIFY_MIN}
    if tools_only or not m.which.get("docker"):
        return m
    info = runner.run(["docker", "info", "--format", "{{json .}}"], timeout=30, check=False)
    try:
        m.docker_info = json.loads(info.stdout) if info.ok else None
    except ValueError:
        m.docker_info = None
    if not isinstance(m.docker_info, dict) or m.docker_info.get("ServerVersion") in (None, ""):
        m.docker_error = ((info.stderr or info.stdout).strip().splitlines() or ["no output"])[-1][:160]
        m.docker_info = None
        return m
    api = runner.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], timeout=30, check=False)
    m.docker_api = api.stdout.strip() if api.ok else ""
    root = str(m.docker_info.get("DockerRootDir") or "")
    if m.system == "Linux" and root:
        m.disk_free, m.disk_where = host.disk_free(root), root
    m.docker_config = host.docker_config()
    if images is None:
        from harness.platforms.kind import conductor_image_name, run_images

        images = run_images(settings, conductor_image_name(settings)) + stack_images(settings)
    for image, why in images:
        if image not in m.images:
            m.images[image] = (runner.run(["docker", "image", "inspect", image], timeout=30, check=False).ok, why)
    if settings.kind_fixed_host_ports:
        from harness.kube.kind_config import KIND_CONFIG, load_kind_config, port_mappings

        for pm in port_mappings(load_kind_config(kind_config or KIND_CONFIG)):
            if pm.host_port:
                m.ports[f"{pm.listen_address}:{pm.host_port}"] = host.port_free(pm.listen_address, pm.host_port)
    return m


# -- the rows (pure) ------------------------------------------------------------------------------------
def _version_row(tool: str, m: Machine, check: Callable[[CommandRunner, str], Any], needed: str) -> Row:
    from harness.kube.runner import CommandResult
    from harness.kube.toolchain import version_text

    if not m.which.get(tool):
        return Row(tool, "not found on PATH", needed, "fail", f"install {needed}, or {DOCKER_FIX}", gate=True,
                   problem=f"{tool} is not on PATH (kind needs {needed})")
    result = m.outputs.get(tool) or CommandResult((tool,), 1, "", "not run")

    class _Replay:  # the toolchain checks take a runner: hand them the output already read
        def run(self, argv, **_kw):
            return result

    try:
        version = check(_Replay(), DOCKER_FIX)  # type: ignore[arg-type]
    except PlatformUnavailable as exc:
        words = exc.problem.split()
        seen = words[1] if len(words) > 1 and words[0] == tool and words[1].startswith("v") else exc.problem
        return Row(tool, seen, needed, "fail", exc.fix or "", gate=True, problem=exc.problem)
    return Row(tool, version_text(version), needed, "ok")


def _tool_rows(m: Machine, mesh: bool) -> list[Row]:
    from harness.kube.toolchain import KUBECTL_RANGE, MIN_HELM, MIN_KIND, check_helm, check_kind, check_kubectl

    lo, hi = KUBECTL_RANGE
    rows = [_version_row("kind", m, check_kind, f"kind v{'.'.join(map(str, MIN_KIND))} or newer"),
            _version_row("kubectl", m, check_kubectl, f"kubectl {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}")]
    helm_needed = f"Helm {'.'.join(map(str, MIN_HELM))} or newer (3.x or 4.x)"
    if not mesh:
        rows.append(Row("helm", "not needed (HARNESS_MESH=0)", helm_needed + " for the circuit-breaker scenarios", "skip"))
    else:
        row = _version_row("helm", m, lambda r, fix: check_helm(r, lambda t: "helm", "Istio", fix), helm_needed)
        if row.status == "fail":
            missing = not m.which.get("helm")
            row = Row(row.check, row.seen, row.needed + " for the circuit-breaker scenarios", "fail",
                      f"install {helm_needed} (https://helm.sh/docs/intro/install/), or {MESH_SKIP}" if missing
                      else row.fix.replace(DOCKER_FIX, MESH_SKIP), gate=True,
                      problem=("the circuit-breaker scenarios (Istio from its official Helm charts) needs helm on PATH "
                               "(not found)") if missing else row.problem)
        rows.append(row)
    return rows


def _inotify_rows(m: Machine) -> list[Row]:
    if m.inotify is None:
        return [Row("inotify limits", f"not read ({m.system}: the Docker VM's own limits apply)",
                    "max_user_instances >= 512, max_user_watches >= 524288", "skip")]
    rows = []
    for name, need in INOTIFY_MIN.items():
        seen = m.inotify.get(name)
        if seen is None:
            rows.append(Row(name, "unreadable", f">= {need}", "warn", SYSCTL_FIX))
        elif seen < need:
            rows.append(Row(name, str(seen), f">= {need} (kind known issues)", "fail", SYSCTL_FIX, gate=True,
                            problem=f"{name} is {seen}, below the {need} kind documents: kind's pods would fail "
                                    "with \"too many open files\""))
        else:
            rows.append(Row(name, str(seen), f">= {need}", "ok"))
    return rows


def _engine_rows(m: Machine, mesh: bool) -> list[Row]:
    if not m.which.get("docker"):
        return [Row("Docker engine", "docker CLI not found", "a running Docker engine", "fail",
                    "install Docker (Docker Engine, or Docker Desktop on a Mac)", gate=True)]
    info = m.docker_info
    if info is None:
        return [Row("Docker engine", f"not reachable ({m.docker_error})", "a running Docker engine", "fail",
                    f"start Docker for kind (Docker Desktop, or `sudo systemctl start docker`), or {DOCKER_FIX}", gate=True,
                    problem="the Docker engine is not reachable (`docker info` failed)")]
    store = "containerd image store" if any("io.containerd.snapshotter" in str(v) for v in info.get("DriverStatus") or []) \
        else f"{info.get('Driver', '?')} store"
    rows = [Row("Docker engine", f"{info.get('ServerVersion')} (API {m.docker_api or '?'}, {info.get('OSType', '?')}/"
                f"{info.get('Architecture', '?')}, {store})", "a running Linux engine", "ok")]
    api = tuple(int(x) for x in m.docker_api.split(".")[:2] if x.isdigit()) if m.docker_api else ()
    if api and api < SAVE_PLATFORM_API:
        rows.append(Row("image side-loading", f"API {m.docker_api}: no `docker save --platform`",
                        "API 1.48+ (Docker 28)", "warn",
                        "side-loading saves whole images; under the containerd image store multi-platform images then "
                        "fail to load (kind#3795) and the nodes pull them instead: upgrade Docker"))
    cpus, mem = int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0)
    vm_fix = ("raise Docker Desktop's Settings > Resources" if m.system == "Darwin"
              else "use a larger machine (every kind node shares this engine's CPUs)")
    if cpus < MIN_CPUS:
        rows.append(Row("engine CPUs", str(cpus), f">= {MIN_CPUS}", "fail", f"{vm_fix}, or {DOCKER_FIX}", gate=True))
    elif mesh and cpus < MESH_CPUS:
        rows.append(Row("engine CPUs", str(cpus), f">= {MESH_CPUS} with the mesh ({MIN_CPUS} without)", "warn",
                        f"{vm_fix}, or HARNESS_MESH=0; runs may be inconclusive (saturated) on {cpus} CPUs"))
    else:
        rows.append(Row("engine CPUs", str(cpus), f">= {MIN_CPUS}" + (f" ({MESH_CPUS} with the mesh)" if mesh else ""), "ok"))
    status = "fail" if mem < MIN_MEMORY_BYTES else "ok"
    rows.append(Row("engine memory", f"{mem / GIB:.1f} GiB", "8 GB (>= 7.5 GiB as the engine reports it)", status,
                    f"{vm_fix}, or {DOCKER_FIX}" if status == "fail" else "", gate=status == "fail"))
    if m.disk_free is None:
        rows.append(Row("free disk", "not read (Docker's data is inside its VM)" if m.system != "Linux"
                        else "not read", ">= 20 GiB for Docker's data", "skip",
                        "check Docker Desktop's disk image size" if m.system != "Linux" else ""))
    else:
        ok = m.disk_free >= MIN_DISK_BYTES
        rows.append(Row("free disk", f"{m.disk_free / GIB:.1f} GiB at {m.disk_where}", ">= 20 GiB", "ok" if ok else "warn",
                        "" if ok else "free space (`docker system prune`), or pulls and side-loading may fail"))
    return rows


def _logged_in(config: dict[str, Any] | None) -> bool:
    if not config:
        return False
    keys = set((config.get("auths") or {}).keys()) | set((config.get("credHelpers") or {}).keys())
    return any(k.rstrip("/") in {h.rstrip("/") for h in _HUB_KEYS} for k in keys)


def _image_rows(m: Machine, settings: Settings) -> list[Row]:
    from harness.platforms.kind import is_pullable

    rows = []
    hub_pulls = []
    for image, (local, why) in m.images.items():
        if local:
            rows.append(Row(f"image {image.split('@')[0]}", "present", why, "ok"))
        elif not is_pullable(image):
            rows.append(Row(f"image {image}", "built by the run", why, "ok"))
        else:
            rows.append(Row(f"image {image.split('@')[0]}", "to be pulled", why, "ok",
                            "`make images` pulls it now"))
            if docker_hub_image(image):
                hub_pulls.append(image)
    if m.docker_info is None:
        return rows
    mirrors = list((m.docker_info.get("RegistryConfig") or {}).get("Mirrors") or [])
    login = _logged_in(m.docker_config)
    seen = (f"logged in to Docker Hub: {'yes' if login else 'no'}; engine mirrors: {', '.join(mirrors) or 'none'}; "
            f"node mirror (HARNESS_REGISTRY_MIRROR): {settings.registry_mirror or 'none'}")
    if hub_pulls and not login and not mirrors:
        rows.append(Row("Docker Hub pulls", f"{len(hub_pulls)} anonymous docker.io pull(s); {seen}",
                        "a login or a mirror (anonymous pulls are rate-limited per IPv4 address)", "warn",
                        "`docker login` (the harness side-loads what this machine pulled, so the nodes need no "
                        "login), or a registry mirror in Docker's daemon.json plus HARNESS_REGISTRY_MIRROR"))
    else:
        rows.append(Row("Docker Hub pulls", f"{len(hub_pulls)} docker.io pull(s) to make; {seen}",
                        "a login or a mirror when pulls are anonymous", "ok"))
    return rows


def _port_rows(m: Machine, settings: Settings) -> list[Row]:
    if not settings.kind_fixed_host_ports:
        return [Row("host ports", "kind picks free ports per run", "free ports", "ok")]
    return [Row(f"host port {addr}", "free" if free else "in use", "free (HARNESS_KIND_FIXED_HOST_PORTS)",
                "ok" if free else "fail", "" if free else "free it, or unset HARNESS_KIND_FIXED_HOST_PORTS", gate=not free)
            for addr, free in m.ports.items()]


def judge(m: Machine, settings: Settings, *, mesh: bool | None = None, inotify: bool | None = None) -> list[Row]:
    """Every row, in the order a user would fix them (pure: the readings in, the rows out). Readings
    taken ``tools_only`` give the tools' rows (and the inotify rows when ``inotify``)."""
    mesh = settings.mesh if mesh is None else mesh
    rows = _tool_rows(m, mesh)
    if inotify if inotify is not None else not m.tools_only:
        rows += _inotify_rows(m)
    if m.tools_only:
        return rows
    return rows + _engine_rows(m, mesh) + _image_rows(m, settings) + _port_rows(m, settings)


def gate_failures(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.status == "fail" and r.gate]


def format_table(rows: Sequence[Row]) -> str:
    head = ("", "check", "seen", "needed", "fix")
    mark = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}
    cells = [head] + [(mark[r.status], r.check, r.seen, r.needed, r.fix) for r in rows]
    limits = (4, 40, 56, 48)
    widths = [min(limits[i], max(len(c[i]) for c in cells)) for i in range(4)]
    lines = []
    for c in cells:
        lines.append("  ".join(_cut(c[i], limits[i]).ljust(widths[i]) for i in range(4)) + ("  " + c[4] if c[4] else ""))
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def choose_platform(settings: Settings, suite: str = "e2e", *, runner: CommandRunner | None = None,
                    which: Callable[[str], str | None] = shutil.which, host: Host | None = None,
                    tools_only: bool = False) -> tuple[str, str]:
    """``--platform auto``: kind when its tools are present and pass the doctor, else docker; with why."""
    missing = [t for t in KIND_TOOLS if which(t) is None]
    if missing:
        return "docker", f"{', '.join(missing)} not found on PATH (`make doctor` lists what kind needs)"
    mesh = settings.mesh and suite == "e2e"
    machine = read_machine(settings, runner, which, host, tools_only=tools_only, helm=mesh, images=[])
    rows = judge(machine, settings, mesh=mesh, inotify=True)
    failed = gate_failures(rows)
    if failed:
        r = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        return "docker", f"kind cannot run here: {r.check} {r.seen} (needs {r.needed}){more}; `make doctor` for all"
    versions = ", ".join(f"{r.check} {r.seen}" for r in rows if r.status == "ok" and r.check in ("kind", "kubectl", "helm"))
    return "kind", f"kind's tools are present and pass the doctor ({versions})"
