"""Processes the stack owns: spawn detached, record a pid file, stop only our own.

A pid file alone is not proof of ownership (pids are reused), so a process counts
as ours only when its command line still contains the marker we started it with
(its state directory path).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.stack.config import HOST


@dataclass(frozen=True)
class ManagedProcess:
    """A long-running process identified by a pid file.

    Attributes:
        name: component name, used in messages.
        pid_file: where the pid is recorded.
        log_file: where stdout and stderr go.
        marker: a string the process's command line must contain to count as ours
            (or its working directory must be the pid file's directory).
    """

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The pid of our running process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        cmdline = _cmdline(pid) if _running(pid) else None
        if cmdline is None:
            with contextlib.suppress(OSError):
                self.pid_file.unlink()  # stale: the process is gone
            return None
        # Alive but not ours: the pid was reused by another program.
        return pid if self._ours(pid, cmdline) else None

    def _ours(self, pid: int, cmdline: str) -> bool:
        """Our command-line marker, or our working directory (redis-server rewrites
        its process title, so its command line no longer shows the marker)."""
        if self.marker in cmdline:
            return True
        try:
            return os.readlink(f"/proc/{pid}/cwd") == str(self.pid_file.parent)
        except OSError:
            return False

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` detached from our session, logging to :attr:`log_file`."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=self.pid_file.parent,
                close_fds=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        # Until exec completes, /proc/<pid>/cmdline is still ours (python's).
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and proc.poll() is None:
            if self._ours(proc.pid, _cmdline(proc.pid) or ""):
                break
            time.sleep(0.01)
        return proc.pid

    def alive(self) -> bool:
        """Whether our process is running."""
        return self.pid() is not None

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        """SIGTERM our process, SIGKILL it after ``timeout_s``; True if one was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        if _running(pid):
            _signal(pid, signal.SIGKILL)
            while _running(pid):
                time.sleep(0.05)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie child of ours still has a /proc entry)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    # Reap it if it is our child (spawned in this process), so it does not linger.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_open(port: int, host: str = HOST, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def port_holder(port: int) -> str:
    """A human description of the process listening on ``port`` (best effort)."""
    ss = shutil.which("ss")
    if ss:
        out = subprocess.run(
            [ss, "-H", "-ltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout.strip()
        found = re.search(r'\("([^"]+)",pid=(\d+)', out)
        if found:
            return f"{found.group(1)} (pid {found.group(2)})"
    return "another process"


def wait_until(check: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``check`` until it returns True or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - a probe failing just means "not yet"
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
