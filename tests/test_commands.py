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
