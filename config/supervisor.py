"""The process supervisor behind `make run` (`manage.py run`): runs every Procfile process and
keeps them running.

A process that exits (a crash, a kill, even exit code 0) is started again after a short pause
(1, 2, 5, then 10 s), and the others are left alone; each exit and restart is announced on its
own line, naming the process and how it ended. A process that exits `MAX_RESTARTS` times
within `WINDOW` seconds is not restarted again: every process is stopped, with a message saying
which one kept dying and how, and `run()` returns 1. Ctrl-C / SIGTERM stops them all (SIGTERM,
then SIGKILL after `STOP_TIMEOUT` seconds) and returns 0.

(honcho, used before, stopped every process — and with them the embedded services — as soon
as one exited, and a died Beat took the whole desk down silently.)

Each process runs in a session of its own (its children with it), through `sh -c` as
Procfile lines expect, with its output prefixed by its name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

MAX_RESTARTS = 5
WINDOW = 60.0
BACKOFF = (1.0, 2.0, 5.0, 10.0)
STOP_TIMEOUT = 10.0
POLL = 0.2


def read_procfile(path: Path) -> dict[str, str]:
    entries = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    exits: deque = field(default_factory=deque)  # monotonic times of recent exits
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        entries: dict[str, str],
        *,
        env: dict | None = None,
        cwd: str | Path | None = None,
        out=None,
        max_restarts: int = MAX_RESTARTS,
        window: float = WINDOW,
        backoff: tuple[float, ...] = BACKOFF,
        stop_timeout: float = STOP_TIMEOUT,
    ):
        self.children = [Child(name, command) for name, command in entries.items()]
        self.env = env
        self.cwd = cwd
        self.out = out or sys.stdout
        self.max_restarts = max_restarts
        self.window = window
        self.backoff = backoff
        self.stop_timeout = stop_timeout
        self.width = max(len(name) for name in ["supervisor", *entries])
        self.exits: list[tuple[str, int]] = []  # (name, returncode) of every exit seen, in order
        self._stop = threading.Event()
        self._write_lock = threading.Lock()

    # -- output ----------------------------------------------------------------------------------

    def say(self, name: str, text: str) -> None:
        with self._write_lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} | {text}\n")
            self.out.flush()

    def _pump(self, child: Child, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(child.name, raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    # -- lifecycle ------------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(  # noqa: S602 - a Procfile line, run the way Procfiles are
            child.command,
            shell=True,
            cwd=self.cwd,
            # the `service` field of its log lines (config/logging.py): the Procfile entry's name
            env={**(self.env if self.env is not None else os.environ), "TRADEDESK_SERVICE": child.name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.restart_at = None
        threading.Thread(target=self._pump, args=(child, child.proc.stdout), daemon=True).start()
        self.say("supervisor", f"{child.name} started (pid {child.proc.pid})")

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def pid(self, name: str) -> int | None:
        """The running process `name`'s pid (its session's id too), or None."""
        child = next((c for c in self.children if c.name == name), None)
        if child is None or child.proc is None or child.proc.poll() is not None:
            return None
        return child.proc.pid

    def run(self) -> int:
        """Run until stopped (0) or until a process keeps dying (1)."""
        for child in self.children:
            self._start(child)
        failed: str | None = None
        while not self._stop.wait(POLL):
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and child.restart_at is None:
                    code = child.proc.poll()
                    if code is not None:
                        failed = self._exited(child, code, now)
                        if failed:
                            break
                elif child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
            if failed:
                break
        self.stop_all(failed)
        return 1 if failed else 0

    def _exited(self, child: Child, code: int, now: float) -> str | None:
        self.exits.append((child.name, code))
        child.exits.append(now)
        while child.exits and now - child.exits[0] > self.window:
            child.exits.popleft()
        how = describe_exit(code)
        self._signal(child, signal.SIGKILL)  # what it left behind in its session (pool processes)
        if len(child.exits) > self.max_restarts:
            return (
                f"{child.name} exited {len(child.exits)} times within {self.window:.0f} s (last: {how}); "
                "stopping every process"
            )
        delay = self.backoff[min(len(child.exits), len(self.backoff)) - 1]
        child.restart_at = now + delay
        self.say(
            "supervisor",
            f"{child.name} exited ({how}); restarting it in {delay:g} s "
            f"(exit {len(child.exits)} of at most {self.max_restarts} within {self.window:.0f} s)",
        )
        return None

    def stop_all(self, reason: str | None = None) -> None:
        self.say("supervisor", reason or "stopping every process")
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("supervisor", f"{child.name} did not stop within {self.stop_timeout:.0f} s; killing it")
                self._signal(child, signal.SIGKILL)
                child.proc.wait()
        for child in self.children:  # whatever a process left behind in its session
            if child.proc is not None:
                self._signal(child, signal.SIGKILL)

    @staticmethod
    def _signal(child: Child, signum) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signum)
