"""No key ever leaves: logs (every record at DEBUG, through the project's JSON formatter and
before any redaction), API responses and admin pages of a whole delegation flow contain
neither the delegate key, the relayer key nor the owners' keys."""

from __future__ import annotations

import io
import logging

import pytest

from config.logging import ContextFilter, JsonFormatter
from delegations import keys
from tests.delegations.conftest import new_owner, user_client
from tests.delegations.test_lifecycle import BASE, add_signature, execute, prepare, sign_typed
from tests.delegations.test_trading_api import OPEN, _order_status, _sync_until, desk  # noqa: F401
from trading.models import Order


@pytest.fixture
def all_logs():
    """Capture every record at DEBUG, ahead of the console handler's redaction filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    saved = {name: lg.level for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root_level = root.level
    root.handlers.insert(0, handler)
    root.setLevel(logging.DEBUG)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.handlers.remove(handler)
        root.setLevel(root_level)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def forms(key: bytes) -> list[str]:
    h = key.hex()
    return [h, "0x" + h, h.upper()]


@pytest.mark.celery
def test_no_key_in_logs_responses_or_admin(desk, celery_worker, django_user_model, all_logs, client):  # noqa: F811
    chain_env = desk
    net = chain_env.net
    owners = [new_owner(net), new_owner(net)]
    user, api = user_client(django_user_model, owners[0])
    safe = net.create_safe([o.address for o in owners], threshold=2)
    net.fund(safe, usdc=1000)
    seen: list[str] = []

    body = prepare(api, safe)
    seen.append(str(body))
    for owner in owners:
        seen.append(str(add_signature(api, body["id"], sign_typed(owner, body))))
    seen.append(str(execute(api, body["id"])))
    logging.getLogger("tradedesk.test").debug("flow half way", extra={"delegation": body["id"]})
    # a trade through the API: the executor's signer decrypts the delegate key and uses it
    opened = api.post("/api/v1/trading/trades", OPEN, format="json")
    assert opened.status_code == 202, opened.content
    seen.append(opened.content.decode())
    order_id = opened.json()["order_id"]
    assert _order_status(order_id, "SUBMITTED", "REJECTED", "UNKNOWN") == "SUBMITTED"
    net.run_keeper()
    _sync_until(lambda: Order.objects.get(pk=order_id).status == "FILLED")
    seen.append(api.get(f"/api/v1/trading/orders/{order_id}").content.decode())
    response = api.post(f"{BASE}/{body['id']}/revoke", format="json")
    seen.append(response.content.decode())
    revoke = response.json()
    for owner in owners:
        seen.append(str(add_signature(api, body["id"], sign_typed(owner, revoke))))
    seen.append(str(execute(api, body["id"])))
    seen.append(api.get(f"{BASE}/{body['id']}").content.decode())
    seen.append(api.get(f"{BASE}/?safe={safe}").content.decode())
    seen.append(api.get("/api/v1/ledger/events").content.decode())

    admin = django_user_model.objects.create_superuser(username="root", email="root@example.com", password="pw")
    client.force_login(admin)
    from delegations.models import CustodyKey

    pages = [
        "/admin/delegations/ostiumdelegation/",
        "/admin/delegations/ostiumdelegation/?status__exact=revoked",
        f"/admin/delegations/ostiumdelegation/{body['id']}/change/",
        "/admin/delegations/custodykey/",
        *[f"/admin/delegations/custodykey/{pk}/change/" for pk in CustodyKey.objects.values_list("pk", flat=True)],
        "/admin/trading/event/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        seen.append(response.content.decode())
    timeline = seen[-len(pages) + 2]
    assert "delegation.prepared" in timeline and "delegation.revoked" in timeline  # the change page shows it
    assert chain_env.delegate_address in seen[-3]  # fingerprints are shown

    logs = all_logs.getvalue()
    # records at DEBUG were captured: RPC traffic (web3) and the Celery worker's side
    assert '"logger": "web3.providers.HTTPProvider"' in logs and '"logger": "tradedesk.venue_events"' in logs
    secrets = {
        "delegate": bytes(keys.delegate_key_load("localnet").key),
        "relayer": bytes(keys.relayer_key_load("localnet").key),
        **{f"owner{i}": bytes(o.key) for i, o in enumerate(owners)},
    }
    haystacks = {"logs": logs, **{f"seen{i}": text for i, text in enumerate(seen)}}
    for name, secret in secrets.items():
        for form in forms(secret):
            for where, text in haystacks.items():
                assert form not in text, f"{name} key found in {where}"
