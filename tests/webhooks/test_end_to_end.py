"""Through the real pieces: committed ledger event → outbox (Celery) → delivery task (Celery)
→ HTTP receiver on loopback; the admin actions through the Django test client."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from tests.conftest import wait_for
from tests.webhooks.conftest import record
from trading.services.ledger import event_record
from webhooks.models import WebhookDelivery
from webhooks.sandbox import Reply
from webhooks.tasks import webhook_deliver_task, webhook_retry_sweep

pytestmark = [pytest.mark.celery, pytest.mark.usefixtures("beat")]


def test_a_committed_event_reaches_the_receiver_signed(celery_worker, user, make_endpoint, receiver):
    endpoint, secret = make_endpoint(user, ["trade.executed"])
    event = record("order.filled", user.pk, order_id=1)
    wait_for(lambda: receiver.requests)
    req = receiver.requests[0]
    body = Webhook(secret).verify(req.body, req.headers)
    assert body["data"]["order_id"] == 1 and body["event_type"] == "trade.executed"
    delivery = WebhookDelivery.objects.get(event_id=event.id, endpoint=endpoint)
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered")
    assert req.headers["webhook-id"] == delivery.webhook_id


def test_a_rolled_back_transaction_produces_no_delivery(celery_worker, user, make_endpoint, receiver):
    make_endpoint(user, ["*"])
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(topic="trade.closed", aggregate_type="trade", aggregate_id=1, payload={"user_id": user.pk, "n": 1})
        raise RuntimeError("the state change failed")
    kept = record("trade.closed", user.pk, n=2)
    wait_for(lambda: receiver.requests)
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == [kept.id]
    assert len(receiver.requests) == 1


def test_the_ping_button_sends_a_ping(celery_worker, user, make_endpoint, receiver):
    endpoint, secret = make_endpoint(user, ["trade.closed"])
    api = APIClient()
    api.force_authenticate(user)
    assert api.post(f"/api/v1/webhooks/{endpoint.pk}/test").status_code == 202
    wait_for(lambda: receiver.requests)
    assert Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)["event_type"] == "ping"
    wait_for(
        lambda: api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").json()["results"][0]["status"] == "delivered"
    )
    page = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries", {"limit": 10}).json()
    assert page["count"] == 1
    assert page["results"][0]["attempt_log"][0]["response_code"] == 200


def test_admin_redeliver_sends_the_same_webhook_id_again(celery_worker, staff_client, user, make_endpoint, receiver):
    # given a delivery that failed finally (400)
    endpoint, _ = make_endpoint(user, ["*"])
    receiver.script(Reply(400))
    event = record("trade.closed", user.pk)
    wait_for(lambda: WebhookDelivery.objects.filter(event_id=event.id, status="failed").exists())
    delivery = WebhookDelivery.objects.get(event_id=event.id)
    # when an operator redelivers it from the admin
    r = staff_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert r.status_code == 200 and "1 delivery(ies) queued again." in r.content.decode()
    # then
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered")
    assert [q.headers["webhook-id"] for q in receiver.requests] == [delivery.webhook_id] * 2
    assert list(delivery.attempt_log.values_list("number", "response_code")) == [(1, 400), (2, 200)]


def test_admin_redeliver_all_failed_for_an_endpoint(celery_worker, staff_client, user, make_endpoint, receiver):
    endpoint, _ = make_endpoint(user, ["*"])
    receiver.script(Reply(404), Reply(404))
    record("trade.closed", user.pk)
    record("order.filled", user.pk)
    wait_for(lambda: WebhookDelivery.objects.filter(status="failed").count() == 2)
    r = staff_client.post(
        "/admin/webhooks/webhookendpoint/",
        {"action": "redeliver_failed", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    assert "2 delivery(ies) queued again." in r.content.decode()
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 2)
    assert len(receiver.requests) == 4


@override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=2, WEBHOOK_CONCURRENCY_RETRY_DELAY=0.2)
def test_a_slow_receiver_never_has_more_than_the_cap_in_flight(celery_worker, user, make_endpoint, receiver):
    # given a receiver that holds every request until released, and 5 events at once
    make_endpoint(user, ["*"])
    release = threading.Event()
    receiver.default = Reply(200, hold=release)
    for n in range(5):
        record("trade.closed", user.pk, n=n)
    # when the first two are held, the others wait: not attempted, whichever run looks at them
    wait_for(lambda: receiver.in_flight == 2)
    webhook_deliver_task.delay()  # another run meanwhile must not send more
    time.sleep(1)
    assert len(receiver.requests) == 2
    release.set()
    # then everything arrives, never more than two at a time
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 5, timeout=30)
    assert receiver.max_in_flight == 2
    assert len(receiver.requests) == 5


@override_settings(WEBHOOK_RETRY_SCHEDULE=[1, 1])
def test_a_retry_is_sent_by_the_run_kicked_for_its_time(celery_worker, user, make_endpoint, receiver):
    # given a receiver that fails once (no Beat sweep here: only the retry's own run can send it)
    make_endpoint(user, ["*"])
    receiver.script(Reply(503))
    event = record("trade.closed", user.pk)
    # then the retry goes out about a second later, with the same webhook-id
    wait_for(lambda: WebhookDelivery.objects.filter(event_id=event.id, status="delivered").exists())
    delivery = WebhookDelivery.objects.get(event_id=event.id)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 2
    assert 0.9 <= receiver.requests[1].at - receiver.requests[0].at <= 5
    assert list(delivery.attempt_log.values_list("number", "response_code")) == [(1, 503), (2, 200)]


def test_the_beat_sweep_delivers_a_delivery_whose_task_was_lost(celery_worker, user, make_endpoint, receiver):
    # given a due delivery whose task never reached the broker (written directly, long overdue)
    endpoint, _ = make_endpoint(user, ["*"])
    webhook_id = WebhookDelivery.new_webhook_id()
    delivery = WebhookDelivery.objects.create(
        webhook_id=webhook_id,
        endpoint=endpoint,
        event_id="01M80000000000000000000000",
        event_type="trade.closed",
        payload={"id": webhook_id, "event_type": "trade.closed", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}},
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    # when the Beat job runs
    webhook_retry_sweep.delay()
    # then it is delivered
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered")
    assert [r.headers["webhook-id"] for r in receiver.requests] == [webhook_id]
