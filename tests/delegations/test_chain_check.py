"""The Beat job `delegation-chain-check`: active delegations re-read from the chain in batches;
a delegate removed from another wallet is marked revoked with its ledger event and the
`delegation.updated` webhook."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from config.schedule import BEAT_SCHEDULE
from delegations import services
from delegations.models import OstiumDelegation
from tests.conftest import wait_for
from tests.delegations.conftest import new_owner, user_client
from tests.delegations.test_recovery import active_delegation
from trading import outbox
from trading.models import Event, OutboxMessage
from webhooks import services as webhooks
from webhooks.models import WebhookAllowlist, WebhookDelivery
from webhooks.sandbox import Receiver


def remove_delegate_on_chain(net, safe, owner):
    trading = net.contract("trading")
    net.exec_safe_tx(safe, trading.address, trading.encode_abi("removeDelegate", []), [owner.key.to_0x_hex()])


@pytest.mark.django_db(transaction=True)
def test_a_delegate_removed_elsewhere_is_marked_revoked_with_its_event_and_webhook(chain_env, django_user_model):
    net = chain_env.net
    owner = new_owner(net)
    user, client = user_client(django_user_model, owner)
    kept_safe, gone_safe = (net.create_safe([owner.address], threshold=1) for _ in range(2))
    kept = active_delegation(net, client, owner, kept_safe)
    gone = active_delegation(net, client, owner, gone_safe)
    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test receiver")

    with Receiver() as receiver:
        endpoint, secret = webhooks.endpoint_create(user=user, url=receiver.url(), event_types=["delegation.updated"])
        # deliveries for the events so far are not this test's subject (published here, or by a
        # session worker's dispatch their commits kicked: it holds the handler's lock meanwhile)
        wait_for(lambda: outbox.outbox_dispatch() >= 0 and not OutboxMessage.objects.filter(status="pending").exists())
        WebhookDelivery.objects.all().delete()

        # the owner removes the delegate of one Safe from another wallet
        remove_delegate_on_chain(net, gone_safe, owner)
        assert services.delegations_chain_check() == {"checked": 2, "revoked": 1, "errors": 0}

        row = OstiumDelegation.objects.get(pk=gone)
        assert row.status == "revoked" and row.revoked_at and row.checked_at
        event = Event.objects.get(correlation_id=f"delegation-{gone}", topic="delegation.revoked")
        assert event.actor == "system:chain_check"
        assert event.payload["reason"] == "chain_check" and event.payload["from"] == "active"
        assert event.payload["on_chain_delegate"] == "0x0000000000000000000000000000000000000000"
        untouched = OstiumDelegation.objects.get(pk=kept)
        assert untouched.status == "active" and untouched.checked_at

        # the webhook: delegation.updated, signed, carrying the new status
        wait_for(lambda: outbox.outbox_dispatch() >= 0 and WebhookDelivery.objects.filter(endpoint=endpoint).exists())
        (delivery,) = WebhookDelivery.objects.filter(endpoint=endpoint)
        assert delivery.event_type == "delegation.updated"
        webhooks.delivery_attempt(delivery_id=delivery.pk)  # here, unless a worker's task made it first
        wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered")
        (request,) = [r for r in receiver.requests if r.headers.get("webhook-id") == delivery.webhook_id]
        sent = Webhook(secret).verify(request.body, request.headers)
        assert sent["event_type"] == "delegation.updated"
        assert sent["data"]["delegation_id"] == gone and sent["data"]["status"] == "revoked"

    # noticed once: the next run checks the remaining active one only
    assert services.delegations_chain_check() == {"checked": 1, "revoked": 0, "errors": 0}
    assert Event.objects.filter(correlation_id=f"delegation-{gone}", topic="delegation.revoked").count() == 1


@pytest.mark.django_db(transaction=True)
def test_each_run_checks_one_batch_oldest_checked_first(chain_env, django_user_model):
    net = chain_env.net
    owner = new_owner(net)
    _, client = user_client(django_user_model, owner)
    safes = [net.create_safe([owner.address], threshold=1) for _ in range(3)]
    ids = [active_delegation(net, client, owner, safe) for safe in safes]
    OstiumDelegation.objects.update(checked_at=None)

    def checked():
        return {pk for pk, at in OstiumDelegation.objects.values_list("pk", "checked_at") if at}

    assert services.delegations_chain_check(batch_size=2) == {"checked": 2, "revoked": 0, "errors": 0}
    assert checked() == set(ids[:2])
    remove_delegate_on_chain(net, safes[0], owner)  # already checked this round
    # the next run starts with the one never checked, then the oldest checked
    assert services.delegations_chain_check(batch_size=2) == {"checked": 2, "revoked": 1, "errors": 0}
    assert checked() == set(ids)
    assert OstiumDelegation.objects.get(pk=ids[0]).status == "revoked"
    assert [OstiumDelegation.objects.get(pk=pk).status for pk in ids[1:]] == ["active", "active"]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_chain_changes_nothing(one_owner_safe, settings):
    net, owner, _, client, safe = one_owner_safe
    d_id = active_delegation(net, client, owner, safe)
    remove_delegate_on_chain(net, safe, owner)
    before = OstiumDelegation.objects.get(pk=d_id).checked_at
    events = Event.objects.count()

    settings.OSTIUM_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    assert services.delegations_chain_check() == {"checked": 0, "revoked": 0, "errors": 1}
    row = OstiumDelegation.objects.get(pk=d_id)
    assert (row.status, row.checked_at) == ("active", before) and Event.objects.count() == events

    settings.OSTIUM_RPC_URL = ""  # back: the next run notices
    assert services.delegations_chain_check()["revoked"] == 1


def test_both_delegation_jobs_are_scheduled_with_an_expiry():
    from config.celery import app

    app.loader.import_default_modules()
    for key in ("delegation-recovery", "delegation-chain-check"):
        entry = BEAT_SCHEDULE[key]
        assert entry["task"] in app.tasks, entry["task"]
        assert 0 < entry["expires"] <= entry["every"]
