"""Run the real Envoy binary on this machine: validate a bootstrap, or run one on 127.0.0.1.

The I/O half of :mod:`harness.mesh` (the translation is pure). Used by the tests that hold the
translation and the outlier oracle against real Envoy without Docker, and usable by any caller that
wants ``envoy --mode validate`` before starting containers.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from harness.errors import HarnessError, ReadinessTimeout, UsageError
from harness.mesh.binary import envoy_binary

__all__ = ["free_port", "validate", "ValidationFailed", "LocalEnvoy", "log_time"]


class ValidationFailed(HarnessError):
    """Envoy refused a configuration the harness generated (a translation bug, not a user error)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _envoy_error(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "critical" in ln or "error" in ln.lower()]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "no output")[-400:]


def validate(bootstrap: Mapping[str, Any], *, binary: str | None = None) -> str:
    """``envoy --mode validate`` on ``bootstrap``; returns Envoy's verdict line, raises
    :class:`ValidationFailed` with Envoy's own reason when it refuses the configuration."""
    exe = binary or envoy_binary()
    with tempfile.TemporaryDirectory(prefix="harness-envoy-validate-") as tmp:
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json.dumps(bootstrap))
        out = subprocess.run([exe, "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                              "--log-level", "warn"], capture_output=True, text=True, timeout=120, check=False)
    text = out.stdout + out.stderr
    if out.returncode != 0 or " OK" not in text:
        raise ValidationFailed(f"Envoy refused the generated configuration: {_envoy_error(text)}",
                               "fix the translation in harness/mesh (this is a harness bug)")
    return next((ln for ln in text.splitlines() if ln.endswith(" OK")), "OK")


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]")


def log_time(line: str) -> float | None:
    """The wall-clock time (epoch seconds) of an Envoy log line ``[YYYY-mm-dd HH:MM:SS.mmm]...``
    (spdlog writes local time, so it is read back as local time)."""
    m = _LOG_TIME.match(line)
    if not m:
        return None
    base, ms = m.group(1).rsplit(".", 1)
    return time.mktime(time.strptime(base, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000.0


class LocalEnvoy:
    """One Envoy process on 127.0.0.1 with ``bootstrap`` (its admin port must be 127.0.0.1).

    ``with LocalEnvoy(cfg, workdir) as envoy:`` starts it and waits until the admin API answers
    ``/ready`` with LIVE; leaving the block terminates it (kill after 10 s). Envoy's log is kept in
    ``workdir/envoy.log`` (:func:`log_time` reads its timestamps).
    """

    def __init__(self, bootstrap: Mapping[str, Any], workdir: str | Path, *, name: str = "envoy",
                 ready_timeout: float = 60.0, log_level: str = "info", concurrency: int = 1) -> None:
        admin = (bootstrap.get("admin") or {}).get("address", {}).get("socket_address", {})
        if admin.get("address") != "127.0.0.1":
            raise UsageError("a local Envoy's admin API must listen on 127.0.0.1", "pass admin_address='127.0.0.1'")
        self.admin_port = int(admin["port_value"])
        self.workdir = Path(workdir)
        self.name = name
        self.config_path = self.workdir / f"{name}.json"
        self.log_path = self.workdir / f"{name}.log"
        self.bootstrap = bootstrap
        self.ready_timeout = ready_timeout
        self.log_level = log_level
        if concurrency < 1:
            raise UsageError(f"Envoy concurrency {concurrency} is below 1", "pass 1 or more worker threads")
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None

    def __enter__(self) -> "LocalEnvoy":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        log = open(self.log_path, "wb")
        self.started_at = time.time()
        try:
            # One worker by default: outlier detection is per cluster anyway, and one thread keeps a
            # loaded box calm.
            self.proc = subprocess.Popen(
                [envoy_binary(), "-c", str(self.config_path), "--disable-hot-restart",
                 "--concurrency", str(self.concurrency),
                 "--log-level", self.log_level, "--component-log-level", "upstream:info"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"Envoy {self.name} exited with {self.proc.returncode} at start: "
                                   f"{_envoy_error(self.log())}", "see its log; fix the configuration")
            try:
                if self.get("ready").strip() == "LIVE":
                    self.ready_at = time.time()
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ReadinessTimeout(f"Envoy {self.name} not ready after {self.ready_timeout:.0f}s",
                               "the machine may be overloaded; see its log")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def get(self, path: str, timeout: float = 5.0) -> str:
        """``GET /<path>`` on the admin API."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/{path.lstrip('/')}", timeout=timeout) as r:
            return r.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_line_time(self, needle: str) -> float | None:
        """Time of the first log line containing ``needle``."""
        for line in self.log().splitlines():
            if needle in line:
                return log_time(line)
        return None
