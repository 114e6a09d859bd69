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
    assert "CELERY_TASK_ACKS_LATE" in app.loader.conf and "DEBUG" not in app.loader.conf
