"""A change reaches running processes without a restart: a separate web process (uvicorn) and
the Celery worker pick up what another process changed, through the Redis change counter."""

import httpx
import pytest
from django.core.cache import cache

from config.crypto import fingerprint
from configuration.runtime import config_value
from providers.prices import _cache_key
from providers.tasks import price_tick_task
from tests.configuration.helpers import BASE, api, provider_id
from tests.conftest import run_on_worker, wait_for
from tests.trading.accounts_helpers import UserFactory, login
from trading.models import Event


def _keys(base: str, token: str) -> dict:
    response = httpx.get(f"{base}{BASE}/keys", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if response.status_code == 429:  # the staff API's rate limit, while polling: not yet
        return {}
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()}


@pytest.mark.celery
def test_a_web_process_and_the_worker_pick_up_changes_made_elsewhere(asgi_server, celery_worker, paper_markets):
    # given: a running web process that has read the configuration once
    user = UserFactory(is_staff=True, is_superuser=True)
    token = login(user)["access_token"]  # a JWT the web process accepts (same signing key)
    base = asgi_server()
    before = _keys(base, token)
    assert before["OSTIUM_READ_TIMEOUT"]["value"] == 10.0 and before["LIFI_API_KEY"]["value"] is None

    # when: an operator here rotates the LI-FI key and raises the Ostium read timeout
    op = api(user)
    lifi, ostium = provider_id(op, "lifi"), provider_id(op, "ostium")
    rotate = {"config_data": {"api_key": "lifi-key-2"}, "reason": "rotate the LI-FI key"}
    assert op.put(f"{BASE}/provider-configs/{lifi}", rotate, format="json").status_code == 200
    slower = {"config_data": {"read_timeout": 25}, "reason": "the RPC is slow today"}
    assert op.put(f"{BASE}/provider-configs/{ostium}", slower, format="json").status_code == 200

    # then: the web process has both in force, without a restart
    def web_sees_both():
        keys = _keys(base, token)
        return keys and (
            keys["OSTIUM_READ_TIMEOUT"]["value"] == 25.0
            and keys["LIFI_API_KEY"]["value"] == {"fingerprint": fingerprint("lifi-key-2")}
            and keys["OSTIUM_READ_TIMEOUT"]["source"] == "database"
        )

    wait_for(web_sees_both, interval=0.25, what="the web process sees the new timeout and key")

    # when: the web process changes the price cache TTL (this process has read it already)
    assert config_value("PRICE_CACHE_TTL") == 30
    created = httpx.post(
        f"{base}{BASE}/app-configs",
        json={"config_key": "PRICE_CACHE_TTL", "config_value": 777, "reason": "keep prices longer"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text

    # then: the worker's next price tick caches with the new TTL
    redis = cache._cache.get_client(write=True)

    def worker_uses_new_ttl():
        run_on_worker(price_tick_task)
        return redis.ttl(cache.make_key(_cache_key("paper", "BTC-USD"))) > 30

    wait_for(worker_uses_new_ttl, what="the worker caches prices for PRICE_CACHE_TTL=777")

    # and: the history shows both changes with their reasons; a rollback restores the timeout
    history = op.get(f"{BASE}/provider-configs/{ostium}/versions").json()
    assert [(v["version"], v["reason"]) for v in history][0] == (2, "the RPC is slow today")
    lifi_history = op.get(f"{BASE}/provider-configs/{lifi}/versions").json()
    assert lifi_history[0]["reason"] == "rotate the LI-FI key"
    assert lifi_history[0]["changes"] == {
        "api_key": {"before": None, "after": {"fingerprint": fingerprint("lifi-key-2")}}
    }
    back = {"version": 1, "reason": "the RPC recovered"}
    assert op.post(f"{BASE}/provider-configs/{ostium}/rollback", back, format="json").json()["version"] == 3
    wait_for(
        lambda: _keys(base, token).get("OSTIUM_READ_TIMEOUT", {}).get("value") == 10.0,
        interval=0.25,
        what="the rollback reaches the web process",
    )
    reasons = set(Event.objects.filter(topic="config.changed").values_list("payload__reason", flat=True))
    assert {"rotate the LI-FI key", "the RPC is slow today", "keep prices longer", "the RPC recovered"} <= reasons
