import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tradedesk")
app.autodiscover_tasks()


def _outbox_listener_step() -> None:
    """Every worker listens for new outbox messages (`trading/outbox_listener.py`): a new
    order's INSERT notifies, and the listener kicks the dispatcher."""
    from trading.outbox_listener import KickListenerStep

    app.steps["worker"].add(KickListenerStep)


_outbox_listener_step()


def _redis_channel_close_after_connection_loss() -> None:
    """kombu 5.7: when the worker loses Redis with an unacknowledged message in hand, closing
    the broker connection closes its channel after the transport was detached from it; the
    channel then builds a client from the connection's parameters, finds none, and raises
    AttributeError ('NoneType' object has no attribute 'hostname'). Celery takes that for an
    unrecoverable error and the worker exits instead of reconnecting. A channel whose
    connection is gone raises the connection error it is, which kombu's close path ignores
    (the message stays unacknowledged in Redis and is redelivered after the visibility
    timeout; a restarted Redis without persistence has lost it either way)."""
    from kombu.transport import redis as kombu_redis

    connparams = kombu_redis.Channel._connparams
    if getattr(connparams, "connection_loss_safe", False):
        return

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise kombu_redis.redis.exceptions.ConnectionError("the broker connection is closed")
        return connparams(self, asynchronous=asynchronous)

    _connparams.connection_loss_safe = True
    kombu_redis.Channel._connparams = _connparams


_redis_channel_close_after_connection_loss()


def _database_connections_kept_between_tasks() -> None:
    """Celery 5.6+'s Django fix-up closes every database connection before and after each task
    (celery/celery#9824 reverted honouring CONN_MAX_AGE): every task opened a new PostgreSQL
    connection, a few milliseconds of a paced webhook's way to its first attempt, and no
    statement a task runs was ever prepared (DB_PREPARE_THRESHOLD counts per connection). Around
    a task the worker now does what Django does around a request: `close_old_connections()`,
    which closes a connection past CONN_MAX_AGE, in a broken state or after errors that left it
    unusable, and has the next task's first query check it (CONN_HEALTH_CHECKS), so a worker
    still reconnects after PostgreSQL restarts. The connections a forked child inherits are
    still closed by the fix-up's own `on_worker_process_init`."""
    from celery.fixups.django import DjangoWorkerFixup

    if getattr(DjangoWorkerFixup.on_task_prerun, "keeps_connections", False):
        return

    def on_task_prerun(self, sender, **kwargs):
        if not getattr(sender.request, "is_eager", False):
            from django.db import close_old_connections

            close_old_connections()

    def on_task_postrun(self, sender, **kwargs):
        if not getattr(sender.request, "is_eager", False):
            from django.db import close_old_connections

            close_old_connections()
            self.close_cache()

    on_task_prerun.keeps_connections = True
    DjangoWorkerFixup.on_task_prerun = on_task_prerun
    DjangoWorkerFixup.on_task_postrun = on_task_postrun


_database_connections_kept_between_tasks()


@app.on_configure.connect
def _settings_snapshot(sender, **kwargs):
    """Celery's configuration: the CELERY_* Django settings (namespace CELERY), copied into a
    plain dict when Celery first needs them. Not `config_from_object("django.conf:settings")`:
    then every publish looked up a dozen settings through Django's lazy settings object, most
    of them unset, each miss an AttributeError. A CELERY_* setting changed after that
    (override_settings) does not reach Celery.

    Given under Celery's own (lowercase) names: `CELERY_RESULT_BACKEND` → `result_backend`, the
    namespace's rule. Through `namespace="CELERY"` two of them (CELERY_RESULT_BACKEND,
    CELERY_TIMEZONE) also read as Celery 3's old setting names, and every worker and Beat
    start printed a deprecation warning for each."""
    from django.conf import settings

    snapshot = {
        name.removeprefix("CELERY_").lower(): getattr(settings, name)
        for name in dir(settings)
        if name.startswith("CELERY_")
    }
    sender.config_from_object(snapshot)


def enqueue(task, *args, swept_by: str, **options) -> bool:
    """Publish `task` for work that is already committed and that a Beat sweep finds again in
    the database (`swept_by` names it, for the log). If the broker cannot take the message,
    log and return False rather than raise: an exception after the commit would fail the
    request (a 5xx a client retries, placing the same thing twice) while its work is safe."""
    try:
        task.apply_async(args, **options)
        return True
    except Exception:
        logging.getLogger("tradedesk.celery").warning(
            "could not enqueue %s; %s will", task.name, swept_by, exc_info=True, extra={"task_args": list(args)}
        )
        return False


# --- metrics (config/metrics.py): every task's run time and outcome, and what Beat sends -------
_task_started: dict[str, float] = {}
_in_beat = False


def _task_prerun(task_id=None, **kwargs):
    import time

    _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id=None, task=None, state=None, **kwargs):
    import time

    from config import metrics

    started = _task_started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        metrics.TASK_LATENCY.labels(name).observe(time.perf_counter() - started)
    metrics.TASK_RESULTS.labels(name, str(state or "UNKNOWN").lower()).inc()


def _beat_init(**kwargs):
    global _in_beat
    _in_beat = True
    from config.beat import stop_on_signal

    stop_on_signal()  # (after Celery installed its own handlers)


def _before_task_publish(sender=None, **kwargs):
    if not _in_beat:
        return
    import time

    from config import metrics

    metrics.BEAT_SENT.labels(str(sender)).inc()
    metrics.BEAT_LAST_SENT.set(time.time())


def _worker_process_freeze(**kwargs) -> None:
    """Each prefork child, once forked: what it inherited (Django, the apps, the tasks) out of
    the cyclic GC's reach, so that a full collection does not stall a task (an order's
    execution, a webhook run) for about 90 ms (config/gc_freeze.py)."""
    from config.gc_freeze import long_lived_freeze

    long_lived_freeze()


def _connect_metrics() -> None:
    from celery import signals

    signals.worker_process_init.connect(_worker_process_freeze, weak=False)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)
    signals.beat_init.connect(_beat_init, weak=False)
    signals.before_task_publish.connect(_before_task_publish, weak=False)


_connect_metrics()
