"""Webhook delivery attempts on /metrics, by outcome, counted as each attempt is sent."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.trading.test_metrics import TOKEN, samples, value
from tests.webhooks.conftest import record
from trading import outbox
from webhooks import services
from webhooks.models import WebhookDelivery
from webhooks.sandbox import Reply

pytestmark = pytest.mark.django_db


def test_attempts_are_counted_by_outcome(user, make_endpoint, receiver, client, settings):
    settings.METRICS_TOKEN = TOKEN

    def scrape():
        return samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())

    make_endpoint(user)
    event = record("trade.closed", user.pk)
    outbox.outbox_dispatch()
    delivery = WebhookDelivery.objects.get(event_id=event.id)
    receiver.script(Reply(503), Reply(200))
    before = scrape()
    assert before[("tradedesk_webhook_backlog", frozenset())] >= 1  # the state gauge sees it waiting

    t0 = timezone.now() + timedelta(days=400)  # far from real time: only our calls are due
    first = services.delivery_attempt(delivery_id=delivery.pk, now=t0)
    assert first.status == "retry"
    assert services.delivery_attempt(delivery_id=delivery.pk, now=first.next_attempt_at).status == "delivered"

    after = scrape()
    for outcome in ("retry", "ok"):
        grew = value(after, "tradedesk_webhook_attempts_total", outcome=outcome)
        assert grew - value(before, "tradedesk_webhook_attempts_total", outcome=outcome) == 1, outcome
