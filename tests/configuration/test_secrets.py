"""A secret set through the API or the admin never comes back: not in an API response, an admin
page, a log line or a ledger payload — only its fingerprint. At rest it is a Fernet token."""

import json
import logging

import pytest
from django.test import Client

from config.crypto import decrypt, fingerprint
from configuration.models import ProviderConfiguration, ProviderConfigurationVersion
from configuration.runtime import config_value
from tests.configuration.helpers import BASE, api, provider_id
from trading.models import Event, OutboxMessage

pytestmark = pytest.mark.django_db
MARKER = "sk-MARKER-7f3c9a1e-do-not-leak"
MARKER_2 = "sk-MARKER-2b8d4e6f-do-not-leak"


def test_a_secret_never_appears_in_the_api_the_admin_the_logs_or_the_ledger(operator_user, caplog):
    caplog.set_level(logging.DEBUG)
    op = api(operator_user)
    seen: list[str] = []

    def call(method, url, body=None):
        response = getattr(op, method)(url, body, format="json") if body is not None else getattr(op, method)(url)
        assert response.status_code < 400, response.content
        seen.append(response.content.decode())
        return response

    # a full flow: set the LI-FI key through the API, change other fields, rotate it in the
    # admin, roll back, list, read, diff
    lifi = provider_id(op, "lifi")
    call("put", f"{BASE}/provider-configs/{lifi}", {"config_data": {"api_key": MARKER}, "reason": "first key"})
    assert config_value("LIFI_API_KEY") == MARKER  # the process in force has it, in memory
    call("put", f"{BASE}/provider-configs/{lifi}", {"config_data": {"timeout": 12}, "reason": "slower"})
    admin = Client()
    admin.force_login(operator_user)
    change_url = f"/admin/configuration/providerconfiguration/{lifi}/change/"
    page = admin.get(change_url)
    assert page.status_code == 200
    seen.append(page.content.decode())
    posted = admin.post(
        change_url,
        {"field_api_key": MARKER_2, "field_timeout": "12", "activate": "on", "reason": "rotate in the admin"},
    )
    assert posted.status_code == 302, posted.content.decode()[-3000:]
    assert config_value("LIFI_API_KEY") == MARKER_2
    call("post", f"{BASE}/provider-configs/{lifi}/rollback", {"version": 2, "reason": "undo the rotation"})
    assert config_value("LIFI_API_KEY") == MARKER
    for url in (
        f"{BASE}/provider-configs",
        f"{BASE}/provider-configs/{lifi}",
        f"{BASE}/provider-configs/{lifi}/versions",
        f"{BASE}/keys",
        "/api/v1/ledger/events?limit=100",
    ):
        call("get", url)
    for url in (
        "/admin/configuration/providerconfiguration/",
        change_url,
        f"/admin/configuration/providerconfiguration/{lifi}/diff/?a=1&b=4",
        "/admin/trading/event/",
    ):
        page = admin.get(url)
        assert page.status_code == 200, url
        seen.append(page.content.decode())

    # then: fingerprints everywhere, the values nowhere
    events = list(Event.objects.filter(aggregate_type="provider_config"))
    assert len(events) == 4
    ledger = json.dumps([e.payload for e in events])
    outbox = json.dumps(list(OutboxMessage.objects.values_list("last_error", flat=True)))
    logs = caplog.text + json.dumps([str(r.args) for r in caplog.records])
    for marker in (MARKER, MARKER_2):
        for where, text in (("api/admin", "\n".join(seen)), ("ledger", ledger), ("logs", logs), ("outbox", outbox)):
            assert marker not in text, f"the secret leaked into {where}"
    assert fingerprint(MARKER) in "\n".join(seen) and fingerprint(MARKER_2) in ledger
    assert events[-1].payload["changes"]["api_key"] == {
        "before": {"fingerprint": fingerprint(MARKER_2)},
        "after": {"fingerprint": fingerprint(MARKER)},
    }

    # and: at rest, only Fernet tokens (which open to the value)
    row = ProviderConfiguration.objects.get(pk=lifi)
    stored = json.dumps([row.config_data, row.secret_data]) + json.dumps(
        list(ProviderConfigurationVersion.objects.values_list("config_data", "secret_data"))
    )
    assert MARKER not in stored and MARKER_2 not in stored
    assert decrypt(row.secret_data["api_key"]) == MARKER
