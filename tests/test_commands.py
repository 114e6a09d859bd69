import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from config.schedule import BEAT_SCHEDULE

pytestmark = pytest.mark.django_db


def test_migrations_are_up_to_date():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_sync_beat_schedule_is_idempotent_and_disables_stale_entries():
    from django_celery_beat.models import IntervalSchedule

    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="tradedesk:retired", task="x", interval=every, enabled=True)
    call_command("sync_beat_schedule", stdout=io.StringIO())
    call_command("sync_beat_schedule", stdout=io.StringIO())
    names = set(PeriodicTask.objects.filter(name__startswith="tradedesk:", enabled=True).values_list("name", flat=True))
    assert names == {f"tradedesk:{k}" for k in BEAT_SCHEDULE}
    assert not PeriodicTask.objects.get(name="tradedesk:retired").enabled
    task = PeriodicTask.objects.get(name="tradedesk:outbox-dispatch")
    assert task.enabled and task.expire_seconds == BEAT_SCHEDULE["outbox-dispatch"]["expires"]


def test_ensure_operator_prints_the_password_only_when_created(django_user_model):
    out = io.StringIO()
    call_command("ensure_operator", stdout=out)
    first = out.getvalue()
    password = first.split(" / ")[1].split()[0]
    user = django_user_model.objects.get(username="operator")
    assert user.is_superuser and user.check_password(password)

    out = io.StringIO()
    call_command("ensure_operator", stdout=out)
    assert password not in out.getvalue() and " / " not in out.getvalue()


def test_run_check_prepares_everything_without_starting_processes(django_user_model):
    call_command("run", "--check", stdout=io.StringIO())
    assert django_user_model.objects.filter(username="operator").exists()
    assert django_user_model.objects.filter(username="demo").exists()
    assert PeriodicTask.objects.filter(name="tradedesk:outbox-dispatch").exists()


def test_run_creates_the_database_a_fresh_server_does_not_have_yet(settings, tmp_path):
    """`make run` with DATABASE_URL naming a database the server lacks creates it, then migrates."""
    import os
    import subprocess
    import sys

    import psycopg
    from django.db import connection

    from tests.conftest import _database_url_for_tests

    s = connection.settings_dict
    fresh = f"{s['NAME']}_fresh"
    admin = {
        k: v
        for k, v in {"user": s["USER"], "password": s["PASSWORD"], "host": s["HOST"], "port": s["PORT"]}.items()
        if v
    }

    def drop():
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')

    drop()
    try:
        url = _database_url_for_tests().replace(f"/{s['NAME']}", f"/{fresh}", 1)
        out = subprocess.run(
            [sys.executable, "manage.py", "run", "--check", "--no-seed"],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DATABASE_URL": url,
                "REDIS_URL": settings.REDIS_URL,
                "LOG_LEVEL": "WARNING",
                # its own metrics directory: `manage.py run` empties the one it is given
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"created database {fresh}" in out.stdout
        with psycopg.connect(dbname=fresh, **admin) as conn:
            assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
            assert conn.execute("SELECT count(*) FROM trading_user WHERE username = 'operator'").fetchone()[0] == 1
    finally:
        drop()
