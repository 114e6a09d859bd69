import pytest
from django.test import override_settings

from config import health


def test_health_is_always_ok(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.celery
def test_ready_when_db_redis_and_a_worker_answer(client, celery_worker):
    response = client.get("/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["celery"]["workers"]


@pytest.mark.django_db
def test_not_ready_without_a_worker(client, settings, caplog):
    settings.READY_CELERY_TIMEOUT = 0.2
    from config.celery import app

    original = app.control.ping
    app.control.ping = lambda timeout, limit=None: []  # no worker in this test: what the broker would answer
    try:
        response = client.get("/ready")
    finally:
        app.control.ping = original
    assert response.status_code == 503
    assert response.json()["checks"]["celery"] == {"ok": False, "error": "RuntimeError: no Celery worker answered"}
    # a desk that is starting answers 503 here until its worker is up: not an ERROR line
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert "not ready: celery" in caplog.text


@pytest.mark.django_db
def test_not_ready_when_redis_is_unreachable(client, tmp_path):
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"unix://{tmp_path}/nothing.sock",
        }
    }
    with override_settings(CACHES=caches):
        response = client.get("/ready")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"] is True
    assert body["checks"]["celery"]["ok"] is False


def test_check_reports_failures_instead_of_raising():
    def broken():
        raise OSError("boom")

    assert health._check(broken) == {"ok": False, "error": "OSError: boom"}
