"""What a depositing user sees: `deposit_update` on the `deposits` websocket channel at each
transition, and the `deposit.completed` / `swap.completed` webhooks once each — through the real
outbox, Celery worker, Channels and webhook delivery."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import wait_for
from tests.deposits.conftest import create, send, submitted
from tests.realtime.conftest import make_token, recv, subscribe, ws_connect
from tests.webhooks.conftest import allow_loopback, beat, receiver  # noqa: F401

pytestmark = [pytest.mark.celery, pytest.mark.usefixtures("beat")]


def test_deposit_updates_and_the_two_webhooks(lifi, eoa, chain_env, celery_worker, ws_server, receiver, allow_loopback):  # noqa: F811
    from deposits.services import deposits_poll
    from webhooks import services as webhooks
    from webhooks.models import WebhookDelivery

    owner, user, client = eoa
    endpoint, secret = webhooks.endpoint_create(
        user=user, url=receiver.url(), event_types=["deposit.completed", "swap.completed"]
    )
    with ws_connect(ws_server, token=make_token(user)) as ws:
        subscribe(ws, "deposits")
        body = create(client, token_address="0x0000000000000000000000000000000000000000")
        tx_hash = send(chain_env.net, owner, body["transaction"])
        submitted(client, body["id"], tx_hash)
        deposits_poll()  # Beat's job (the kicked poll may have run it already)

        updates = []
        while not updates or updates[-1]["data"]["status"] != "completed":
            message = recv(ws, timeout=30)
            assert message["type"] == "deposit_update" and message["channel"] == "deposits"
            updates.append(message)
    statuses = [m["data"]["status"] for m in updates]
    assert statuses[:3] == ["quoted", "awaiting_signature", "submitted"] and statuses[-1] == "completed"
    last = updates[-1]["data"]
    assert last["deposit_id"] == body["id"] and last["swap_status"] == "completed" and last["swap_progress"] == 100.0

    wait_for(lambda: len(receiver.requests) >= 2, timeout=30, what="two webhooks")
    kinds = sorted(Webhook(secret).verify(r.body, r.headers)["event_type"] for r in receiver.requests)
    assert kinds == ["deposit.completed", "swap.completed"]
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2
