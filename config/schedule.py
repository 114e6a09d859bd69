"""The Celery Beat schedule, as code. `manage.py sync_beat_schedule` writes it into
django_celery_beat's tables (creating, updating, and disabling entries no longer listed).
Each entry has `expires` (seconds) so a run that could not start in time is dropped."""

BEAT_SCHEDULE: dict[str, dict] = {
    "outbox-dispatch": {
        "task": "trading.tasks.outbox_dispatch_task",
        "every": 2.0,
        "expires": 10,
    },
    "webhook-retry-sweep": {
        "task": "webhooks.tasks.webhook_retry_sweep",
        "every": 30.0,
        "expires": 25,
    },
}
