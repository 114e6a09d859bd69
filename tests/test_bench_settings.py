"""`make bench` starts its servers and migrations with `bench._settings`, which imports the
project's settings module: loading it must not depend on settings that are still being read
(the Celery app is imported from inside it)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_bench_settings_load_and_pass_djangos_checks():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench._settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
