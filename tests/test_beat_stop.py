"""Beat stops on SIGTERM even when the signal lands where Python swallows the SystemExit its
handler raises (config/beat.py, stop_on_signal): a finaliser such as a Redis client's `__del__`
closing its connection. Seen in the outage test: the resumed Beat ran on after its SIGTERM."""

from __future__ import annotations

import gc

import pytest

from config import beat


class _Finalised:
    def __del__(self):
        beat.stop_request()  # the signal arriving while this finaliser runs


@pytest.mark.django_db(transaction=True)
def test_a_stop_swallowed_by_a_finaliser_is_raised_again_by_the_next_tick(monkeypatch):
    from config.celery import app

    monkeypatch.setattr(beat, "_stop_requested", False)
    scheduler = beat.ResilientDatabaseScheduler(app=app, lazy=True)
    _Finalised()  # "Exception ignored in ... SystemExit": nothing reaches this frame
    gc.collect()
    with pytest.raises(SystemExit):
        scheduler.tick()


@pytest.mark.django_db(transaction=True)
def test_without_a_stop_the_tick_runs(monkeypatch):
    from config.celery import app

    monkeypatch.setattr(beat, "_stop_requested", False)
    scheduler = beat.ResilientDatabaseScheduler(app=app, lazy=True)
    assert 0 < scheduler.tick() <= beat.HEARTBEAT_SECONDS
