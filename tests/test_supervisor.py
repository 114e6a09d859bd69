"""`make run`'s supervisor (config/supervisor.py) with real processes: one process exiting does
not take the others down — it is restarted — and one that keeps exiting stops everything with
a message naming it and how it ended."""

import io
import os
import signal
import threading
import time

from config.supervisor import Supervisor, describe_exit, read_procfile
from tests.conftest import wait_for


def _run(supervisor: Supervisor) -> tuple[threading.Thread, dict]:
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", supervisor.run()), daemon=True)
    thread.start()
    return thread, result


def test_an_exited_process_is_restarted_and_the_others_are_left_alone(tmp_path):
    out = io.StringIO()
    flag = tmp_path / "crashed-once"
    supervisor = Supervisor(
        {
            "steady": "echo up; exec sleep 60",
            # exits (code 3) the first time, then runs like the other
            "flaky": f"if [ ! -e {flag} ]; then touch {flag}; echo dying; exit 3; fi; exec sleep 60",
        },
        out=out,
        backoff=(0.2,),
        stop_timeout=5,
    )
    thread, result = _run(supervisor)
    steady = wait_for(lambda: supervisor.pid("steady"), 10)
    wait_for(lambda: supervisor.exits == [("flaky", 3)] and supervisor.pid("flaky"), 10)
    assert supervisor.pid("steady") == steady  # untouched
    text = out.getvalue()
    assert "flaky exited (exit code 3); restarting it in 0.2 s" in text and "flaky      | dying" in text

    os.killpg(supervisor.pid("flaky"), signal.SIGKILL)  # a kill is an exit like any other
    wait_for(lambda: supervisor.exits[-1] == ("flaky", -9) and supervisor.pid("flaky"), 10)
    assert "flaky exited (killed by SIGKILL)" in out.getvalue()

    supervisor.request_stop()
    thread.join(15)
    assert result["rc"] == 0
    assert supervisor.pid("steady") is None and supervisor.pid("flaky") is None


def test_a_process_that_keeps_exiting_stops_everything_and_says_which_and_why(tmp_path):
    out = io.StringIO()
    marker = tmp_path / "steady-stopped"
    supervisor = Supervisor(
        {
            "steady": f"trap 'touch {marker}; exit 0' TERM; while true; do sleep 0.1; done",
            "broken": "echo 'cannot connect' >&2; exit 1",
        },
        out=out,
        max_restarts=2,
        window=30,
        backoff=(0.1,),
        stop_timeout=5,
    )
    thread, result = _run(supervisor)
    thread.join(30)
    assert result["rc"] == 1
    assert supervisor.exits == [("broken", 1)] * 3
    text = out.getvalue()
    assert "broken exited 3 times within 30 s (last: exit code 1); stopping every process" in text
    assert "broken     | cannot connect" in text
    assert marker.exists()  # the others were stopped (SIGTERM), not left running
    assert supervisor.pid("steady") is None


def test_a_process_that_ignores_sigterm_is_killed(tmp_path):
    supervisor = Supervisor(
        {"stubborn": "trap '' TERM; while true; do sleep 0.1; done"}, out=io.StringIO(), stop_timeout=1
    )
    thread, _ = _run(supervisor)
    wait_for(lambda: supervisor.pid("stubborn"), 10)
    started = time.monotonic()
    supervisor.request_stop()
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - started < 10
    assert supervisor.pid("stubborn") is None


def test_exits_are_described_and_the_procfile_read():
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-11) == "killed by SIGSEGV"
    from django.conf import settings

    entries = read_procfile(settings.BASE_DIR / "Procfile")
    assert {"web", "worker", "beat"} <= set(entries)
