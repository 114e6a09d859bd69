"""The staff configuration API: versions, validation, rollback, scheduling, permissions, the
ledger trail — through the real API and database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from configuration.models import AppConfigurationVersion, VersionStatus
from configuration.runtime import config_source, config_value, provider_enabled
from configuration.services import config_versions_apply_due
from tests.configuration.helpers import BASE, api, envelope, provider_id
from tests.trading.roles import user_in
from trading.models import Event
from trading.services import control

pytestmark = pytest.mark.django_db


@pytest.fixture
def op(operator_user):
    return api(operator_user)


def test_an_app_key_is_stored_as_version_1_read_typed_and_listed_by_category(op):
    assert config_source("PRICE_CACHE_TTL") == (30, "environment")
    created = op.post(
        f"{BASE}/app-configs",
        {"config_key": "PRICE_CACHE_TTL", "config_value": "45", "reason": "slower feed"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["config_value"] == 45 and body["version"] == 1 and body["is_active"] and body["category"] == "prices"
    assert config_source("PRICE_CACHE_TTL") == (45, "database")
    page = op.get(f"{BASE}/app-configs?category=prices&skip=0&limit=10").json()
    assert page["total"] == 1 and page["skip"] == 0 and page["limit"] == 10
    assert [i["config_key"] for i in page["items"]] == ["PRICE_CACHE_TTL"]
    assert op.get(f"{BASE}/app-configs?category=risk").json()["total"] == 0


def test_unknown_keys_wrong_types_and_out_of_range_values_are_refused_with_clear_errors(op):
    post = lambda body: op.post(f"{BASE}/app-configs", {"reason": "r", **body}, format="json")  # noqa: E731
    error = envelope(post({"config_key": "NOPE", "config_value": 1}), 400, "CONFIG_KEY_UNKNOWN")
    assert "PRICE_CACHE_TTL" in error["details"]["known"]
    error = envelope(post({"config_key": "PRICE_CACHE_TTL", "config_value": "soon"}), 400, "CONFIG_VALUE_INVALID")
    assert error["message"] == "PRICE_CACHE_TTL must be a whole number."
    envelope(post({"config_key": "PRICE_CACHE_TTL", "config_value": 0}), 400, "CONFIG_VALUE_INVALID")
    envelope(post({"config_key": "PRICE_CACHE_TTL", "config_value": True}), 400, "CONFIG_VALUE_INVALID")
    envelope(post({"config_key": "WEBHOOK_RETRY_SCHEDULE", "config_value": [5, -1]}), 400, "CONFIG_VALUE_INVALID")
    envelope(post({"config_key": "RISK_MAX_SLIPPAGE", "config_value": "lots"}), 400, "CONFIG_VALUE_INVALID")
    mismatch = post({"config_key": "PRICE_CACHE_TTL", "config_value": 5, "config_type": "string"})
    assert envelope(mismatch, 400, "CONFIG_KEY_MISMATCH")["details"]["config_type"]
    no_reason = op.post(f"{BASE}/app-configs", {"config_key": "PRICE_CACHE_TTL", "config_value": 5}, format="json")
    assert "reason" in envelope(no_reason, 400, "VALIDATION_ERROR")["details"]
    assert op.get(f"{BASE}/app-configs").json()["total"] == 0
    assert not Event.objects.filter(topic="config.changed").exists()


def test_every_change_is_a_new_version_and_rollback_restores_as_another(op):
    cid = op.post(
        f"{BASE}/app-configs",
        {"config_key": "WEBHOOK_RETRY_SCHEDULE", "config_value": [1, 2], "reason": "fast retries"},
        format="json",
    ).json()["id"]
    put = op.put(f"{BASE}/app-configs/{cid}", {"config_value": [10, 20, 30], "reason": "calmer"}, format="json")
    assert put.status_code == 200 and put.json()["version"] == 2 and put.json()["config_value"] == [10, 20, 30]
    assert config_value("WEBHOOK_RETRY_SCHEDULE") == [10, 20, 30]
    back = op.post(f"{BASE}/app-configs/{cid}/rollback", {"version": 1, "reason": "too calm"}, format="json")
    assert back.status_code == 200 and back.json()["version"] == 3 and back.json()["config_value"] == [1, 2]
    assert config_value("WEBHOOK_RETRY_SCHEDULE") == [1, 2]
    history = op.get(f"{BASE}/app-configs/{cid}/versions").json()
    assert [(v["version"], v["value"], v["rollback_of"], v["reason"]) for v in history] == [
        (3, [1, 2], 1, "too calm"),
        (2, [10, 20, 30], None, "calmer"),
        (1, [1, 2], None, "fast retries"),
    ]
    assert history[0]["changes"] == {"config_value": {"before": [10, 20, 30], "after": [1, 2]}}
    off = op.put(f"{BASE}/app-configs/{cid}", {"is_active": False, "reason": "back to env"}, format="json").json()
    assert off["version"] == 4 and not off["is_active"]
    assert config_source("WEBHOOK_RETRY_SCHEDULE")[1] == "environment"
    envelope(
        op.post(f"{BASE}/app-configs/{cid}/rollback", {"version": 9, "reason": "x"}, format="json"),
        404,
        "CONFIG_VERSION_NOT_FOUND",
    )
    events = list(Event.objects.filter(topic="config.changed").order_by("id"))
    assert [(e.payload["version_before"], e.payload["version_after"]) for e in events] == [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    assert events[2].payload["reason"] == "too calm" and events[2].payload["rollback_of"] == 1
    assert all(e.actor.startswith("user:") and e.aggregate_type == "app_config" for e in events)


def test_a_provider_config_put_in_the_seed_shape_makes_a_new_version(op):
    pid = provider_id(op, "lifi")
    answer = op.put(
        f"{BASE}/provider-configs/{pid}",
        {
            "config_data": {"enabled": True, "api_url": "https://api.example.com", "timeout": 30},
            "activate": True,
            "reason": "point at the staging API",
        },
        format="json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "id": pid,
        "provider_name": "lifi",
        "provider_type": "swap",
        "is_active": True,
        "version": 2,
    }
    assert config_value("LIFI_API_URL") == "https://api.example.com" and config_value("LIFI_TIMEOUT") == 30.0
    # merged: a field left out is kept, null removes one (the environment applies again)
    op.put(f"{BASE}/provider-configs/{pid}", {"config_data": {"timeout": None}, "reason": "default"}, format="json")
    assert config_source("LIFI_TIMEOUT") == (10.0, "environment") and config_value("LIFI_API_URL").endswith(
        "example.com"
    )
    bad = op.put(
        f"{BASE}/provider-configs/{pid}",
        {"config_data": {"timeout": 9999, "api_url": "ftp://x"}, "reason": "r"},
        format="json",
    )
    assert set(envelope(bad, 400, "CONFIG_VALUE_INVALID")["details"]) == {"config_data.timeout", "config_data.api_url"}
    unknown = op.put(f"{BASE}/provider-configs/{pid}", {"config_data": {"colour": "red"}, "reason": "r"}, format="json")
    assert envelope(unknown, 400, "CONFIG_FIELD_UNKNOWN")["details"]["unknown"] == ["colour"]
    off = op.put(
        f"{BASE}/provider-configs/{pid}", {"config_data": {}, "activate": False, "reason": "env"}, format="json"
    )
    assert off.json()["is_active"] is False and config_source("LIFI_API_URL") == ("https://li.quest/v1", "environment")
    detail = op.get(f"{BASE}/provider-configs/{pid}").json()
    assert detail["version"] == 4 and detail["fields"]["api_key"]["secret"] is True
    history = op.get(f"{BASE}/provider-configs/{pid}/versions").json()
    assert [v["version"] for v in history] == [4, 3, 2, 1] and history[0]["changes"]["is_active"]["after"] is False
    envelope(op.get(f"{BASE}/provider-configs/999999"), 404, "CONFIG_NOT_FOUND")


def test_the_environment_kill_switch_beats_the_database(op, settings):
    pid = provider_id(op, "ostium")
    op.put(f"{BASE}/provider-configs/{pid}", {"config_data": {"enabled": False}, "reason": "pause"}, format="json")
    assert provider_enabled("ostium") is False
    assert control.venue_enabled("ostium") is False and control.venue_enabled("paper") is True  # what trading asks
    op.put(f"{BASE}/provider-configs/{pid}", {"config_data": {"enabled": True}, "reason": "back"}, format="json")
    assert provider_enabled("ostium") is True
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": False}
    assert provider_enabled("ostium") is False  # OSTIUM_ENABLED=false in the environment wins


def test_a_scheduled_version_waits_for_its_time_and_beat_applies_it(op):
    pid = provider_id(op, "ostium")
    later = timezone.now() + timedelta(minutes=5)
    answer = op.put(
        f"{BASE}/provider-configs/{pid}",
        {"config_data": {"read_timeout": 42}, "reason": "after the upgrade", "effective_at": later.isoformat()},
        format="json",
    )
    assert answer.json()["version"] == 1  # still the one in force
    assert config_source("OSTIUM_READ_TIMEOUT")[1] == "environment"
    assert Event.objects.filter(topic="config.change_scheduled").count() == 1
    assert config_versions_apply_due() == 0
    assert config_versions_apply_due(now=later + timedelta(seconds=1)) == 1
    assert config_value("OSTIUM_READ_TIMEOUT") == 42.0
    event = Event.objects.get(topic="config.changed")
    assert event.payload["version_after"] == 2 and event.payload["reason"] == "after the upgrade"
    assert event.payload["changes"] == {"read_timeout": {"before": None, "after": 42.0}}


def test_a_scheduled_app_value_waits_too(op):
    later = timezone.now() + timedelta(minutes=5)
    body = op.post(
        f"{BASE}/app-configs",
        {
            "config_key": "RISK_MAX_NOTIONAL",
            "config_value": "500",
            "reason": "tighter",
            "effective_at": later.isoformat(),
        },
        format="json",
    ).json()
    assert body["version"] == 0 and not body["is_active"] and body["config_value"] is None
    assert AppConfigurationVersion.objects.get().status == VersionStatus.SCHEDULED
    config_versions_apply_due(now=later + timedelta(seconds=1))
    assert config_value("RISK_MAX_NOTIONAL") == "500"


def test_staff_only_and_each_key_needs_its_role(db, django_user_model):
    user = django_user_model.objects.create_user(username="u", email="u@example.com", password="pw-U-12345!")
    envelope(api(user).get(f"{BASE}/app-configs"), 403, "PERMISSION_DENIED")
    from rest_framework.test import APIClient

    envelope(APIClient().get(f"{BASE}/provider-configs"), 401, "NOT_AUTHENTICATED")
    viewer, operator, risk = user_in("viewer"), user_in("operator"), user_in("risk_admin")
    assert api(viewer).get(f"{BASE}/app-configs").status_code == 200
    risk_body = {"config_key": "RISK_MAX_NOTIONAL", "config_value": "500", "reason": "r"}
    envelope(api(viewer).post(f"{BASE}/app-configs", risk_body, format="json"), 403, "PERMISSION_DENIED")
    envelope(api(operator).post(f"{BASE}/app-configs", risk_body, format="json"), 403, "PERMISSION_DENIED")
    assert api(risk).post(f"{BASE}/app-configs", risk_body, format="json").status_code == 201
    ttl = {"config_key": "PRICE_CACHE_TTL", "config_value": 40, "reason": "r"}
    envelope(api(risk).post(f"{BASE}/app-configs", ttl, format="json"), 403, "PERMISSION_DENIED")
    assert api(operator).post(f"{BASE}/app-configs", ttl, format="json").status_code == 201
    pid = provider_id(api(viewer), "kraken")
    body = {"config_data": {"timeout": 3}, "reason": "r"}
    envelope(api(viewer).put(f"{BASE}/provider-configs/{pid}", body, format="json"), 403, "PERMISSION_DENIED")
    assert api(operator).put(f"{BASE}/provider-configs/{pid}", body, format="json").status_code == 200


def test_the_keys_endpoint_lists_every_key_with_its_value_in_force_and_source(op):
    pid = provider_id(op, "kraken")
    op.put(f"{BASE}/provider-configs/{pid}", {"config_data": {"timeout": 3}, "reason": "r"}, format="json")
    rows = {r["name"]: r for r in op.get(f"{BASE}/keys").json()}
    assert rows["KRAKEN_TIMEOUT"]["value"] == 3.0 and rows["KRAKEN_TIMEOUT"]["source"] == "database"
    assert rows["PRICE_CACHE_TTL"] == {
        **rows["PRICE_CACHE_TTL"],
        "value": 30,
        "source": "environment",
        "type": "int",
        "role": "operator",
    }
    assert rows["RISK_MAX_NOTIONAL"]["role"] == "risk_admin" and rows["LIFI_API_KEY"]["secret"] is True


def test_the_control_panel_lists_pending_scheduled_changes(op, staff_client):
    from django.urls import reverse

    pid = provider_id(op, "coingecko")
    later = timezone.now() + timedelta(hours=2)
    body = {"config_data": {"timeout": 8}, "reason": "night window change", "effective_at": later.isoformat()}
    op.put(f"{BASE}/provider-configs/{pid}", body, format="json")
    page = staff_client.get(reverse("admin:control_panel")).content.decode()
    assert "Scheduled configuration changes" in page and "night window change" in page and "coingecko" in page
    status = staff_client.get(reverse("admin:control_panel_status")).json()
    assert [(c["target"], c["version"]) for c in status["scheduled_config"]] == [("coingecko", 2)]
    config_versions_apply_due(now=later + timedelta(seconds=1))
    assert "night window change" not in staff_client.get(reverse("admin:control_panel")).content.decode()


def test_the_admin_pages_change_a_key_with_a_reason_and_show_history_diff_and_rollback(op, staff_client):
    form = staff_client.get("/admin/configuration/appconfiguration/add/").content.decode()
    assert '<optgroup label="prices">' in form  # each key with what it does and what is in force now
    assert "PRICE_CACHE_TTL: Seconds a cached venue price lives. (now " in form and "from the environment)" in form
    add = staff_client.post(
        "/admin/configuration/appconfiguration/add/",
        {"config_key": "PRICE_CACHE_TTL", "config_value": "50", "is_active": "on", "reason": "from the admin"},
    )
    assert add.status_code == 302, add.content.decode()[-2000:]
    cid = op.get(f"{BASE}/app-configs").json()["items"][0]["id"]
    change = f"/admin/configuration/appconfiguration/{cid}/change/"
    bad = staff_client.post(change, {"config_value": "-5", "is_active": "on", "reason": "oops"})
    assert bad.status_code == 200 and "PRICE_CACHE_TTL must be at least 1." in bad.content.decode()
    no_reason = staff_client.post(change, {"config_value": "60", "is_active": "on", "reason": ""})
    assert no_reason.status_code == 200 and config_value("PRICE_CACHE_TTL") == 50
    assert staff_client.post(change, {"config_value": "60", "is_active": "on", "reason": "longer"}).status_code == 302
    assert config_value("PRICE_CACHE_TTL") == 60
    page = staff_client.get(change).content.decode()
    assert "from the admin" in page and "longer" in page and "compare versions" in page and "../rollback/1/" in page
    diff = staff_client.get(f"/admin/configuration/appconfiguration/{cid}/diff/?a=1&b=2").content.decode()
    assert "td-config-diff" in diff and "50" in diff and "60" in diff
    rollback = f"/admin/configuration/appconfiguration/{cid}/rollback/1/"
    assert staff_client.get(rollback).status_code == 200
    assert staff_client.post(rollback, {"reason": "too long after all"}).status_code == 302
    assert config_value("PRICE_CACHE_TTL") == 50
    assert Event.objects.filter(topic="config.changed").count() == 3
    # a key with its row is changed on that row: the add form no longer offers it ("already exists")
    form = staff_client.get("/admin/configuration/appconfiguration/add/").content.decode()
    assert 'value="PRICE_CACHE_TTL"' not in form and 'value="MARKETS_CACHE_TTL"' in form


def test_the_docs_list_every_runtime_key():
    from pathlib import Path

    from configuration.registry import APP_KEYS, PROVIDER_KEYS

    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in [*APP_KEYS, *PROVIDER_KEYS] if f"`{name}`" not in text]
    assert not missing, f"docs/configuration.md does not list {missing}"


def test_the_webhook_retry_schedule_in_force_comes_from_the_database(op):
    from webhooks.services import max_attempts, retry_delay

    assert max_attempts() == 10
    body = {"config_key": "WEBHOOK_RETRY_SCHEDULE", "config_value": [7, 70], "reason": "two retries are enough"}
    op.post(f"{BASE}/app-configs", body, format="json")
    jitter = {"config_key": "WEBHOOK_RETRY_JITTER", "config_value": 0, "reason": "exact"}
    op.post(f"{BASE}/app-configs", jitter, format="json")
    assert max_attempts() == 3 and retry_delay(1) == 7 and retry_delay(2) == 70
