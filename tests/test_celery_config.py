"""Celery's configuration: the CELERY_* Django settings, copied once (config/celery.py)."""

from django.conf import settings

from config.celery import app


def test_every_celery_setting_reaches_celery_under_its_own_name():
    names = [name for name in dir(settings) if name.startswith("CELERY_")]
    assert "CELERY_BROKER_URL" in names and "CELERY_TASK_DEFAULT_QUEUE" in names
    for name in names:
        assert app.conf[name.removeprefix("CELERY_").lower()] == getattr(settings, name), name


def test_celery_reads_a_plain_mapping_not_the_lazy_settings_object():
    assert app.conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE  # configured
    assert type(app.loader.conf) is dict
    assert "task_acks_late" in app.loader.conf and "DEBUG" not in app.loader.conf


def test_no_setting_reads_as_a_deprecated_celery_3_name():
    # through namespace="CELERY", CELERY_RESULT_BACKEND and CELERY_TIMEZONE were also Celery 3's
    # names: a deprecation warning for each on every worker and Beat start
    assert not app.conf.deprecated_settings
    assert not app.conf.maybe_warn_deprecated_settings()


def test_a_task_keeps_the_database_connection_it_found_and_drops_an_expired_one(transactional_db):
    """Celery's Django fix-up closed every connection before and after each task: every task
    connected afresh. Around a task the worker now closes only what Django closes around a
    request (config/celery.py)."""
    import time

    from celery.fixups.django import DjangoWorkerFixup
    from django.db import connection

    from trading.tasks import outbox_dispatch_task as task

    fixup = DjangoWorkerFixup(app)
    connection.ensure_connection()
    kept = connection.connection
    fixup.on_task_prerun(sender=task)
    fixup.on_task_postrun(sender=task)
    assert connection.connection is kept
    with connection.cursor() as cur:  # checked at the next task's first query, then used
        cur.execute("SELECT 1")
    assert connection.connection is kept

    connection.close_at = time.monotonic() - 1  # past DB_CONN_MAX_AGE
    fixup.on_task_prerun(sender=task)
    assert connection.connection is None


def test_a_task_the_worker_holds_for_later_is_dropped_between_tests(celery_worker):
    """A countdown task (a webhook retry's run) waits in the worker, neither queued nor
    reserved: the drain between tests revokes it, or it would run in the middle of a later one."""
    import threading
    import uuid

    from celery.signals import task_prerun, task_revoked
    from celery.worker import state

    from tests.conftest import _drain_worker, wait_for
    from webhooks.tasks import webhook_deliver_task

    wanted, ran, revoked = str(uuid.uuid4()), threading.Event(), threading.Event()

    def on_prerun(task_id=None, **_):
        if task_id == wanted:
            ran.set()

    def on_revoked(request=None, **_):
        if getattr(request, "id", None) == wanted:
            revoked.set()

    task_prerun.connect(on_prerun, weak=False)
    task_revoked.connect(on_revoked, weak=False)
    try:
        webhook_deliver_task.apply_async(countdown=1, task_id=wanted)
        wait_for(lambda: any(r.id == wanted for r in list(state.scheduled_requests)), what="held by the worker")
        _drain_worker()
        assert revoked.wait(10), "the held task neither ran nor was revoked when it came due"
        assert not ran.is_set()
    finally:
        task_prerun.disconnect(on_prerun)
        task_revoked.disconnect(on_revoked)
