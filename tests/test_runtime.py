"""Every process entry point runs with CPython's own recursion limit, not the 100,000 that
importing py_ecc / py-evm sets: with that limit a deeply nested JSON body overflowed the C
stack and killed the process (SIGSEGV). Each Procfile process (and so any process added to it
later) and a management command is started for real, through the same command line."""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from config.runtime import RECURSION_LIMIT
from config.supervisor import read_procfile
from tests.conftest import _database_url_for_tests

ROOT = Path(settings.BASE_DIR)
PROBE = ROOT / "tests" / "entry_probe.py"


def procfile_entries() -> dict[str, str]:
    return read_procfile(ROOT / "Procfile")


def probed(command: str) -> str:
    """The command with its interpreter replaced by the probe; a management command only
    prints its help (it loads Django and the command's module, and starts nothing)."""
    probe = f"{shlex.quote(sys.executable)} {shlex.quote(str(PROBE))}"
    command, found = re.subn(r"(?<![\w/.-])python(?![\w.-])", probe, command, count=1)
    assert found, f"no python interpreter in {command!r}"
    if " manage.py " in f" {command} ":
        command += " --help"
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("entry", [*procfile_entries(), "manage.py"])
def test_entry_point_runs_with_a_sane_recursion_limit(entry, db, tmp_path):
    command = procfile_entries().get(entry) or "python manage.py check"
    out = tmp_path / "limit"
    env = {
        **os.environ,
        "ENTRY_PROBE_OUT": str(out),
        "PORT": str(_free_port()),
        "DATABASE_URL": _database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_QUEUE": f"probe-{uuid.uuid4().hex[:8]}",  # consume nothing of anyone's
        "LOG_LEVEL": "WARNING",
        # One web worker: uvicorn then serves in the probed process itself (with more, it spawns
        # workers through a fresh interpreter the probe does not reach; they load the app, and
        # with it the `config` package that sets the limit, the same way).
        "WEB_CONCURRENCY": "1",
    }
    log = tmp_path / "log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # noqa: S602 (the Procfile's command line, as the supervisor runs it)
            probed(command),
            shell=True,
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.2)  # (a process that exits on its own writes at exit)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
    assert out.exists(), f"{entry} never finished setting Django up:\n{log.read_text()[-3000:]}"
    assert int(out.read_text()) == RECURSION_LIMIT
