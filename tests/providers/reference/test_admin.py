"""Reference prices on the control panel and in the admin: health lines for both sources and each
pair's fair rate; pause / resume actions with a reason; bases edited with who/when and an event."""

from decimal import Decimal

from django.urls import reverse

from providers.coingecko.poll import coingecko_poll
from providers.kraken.refresh import kraken_refresh
from providers.models import ReferenceBasis, ReferenceSource
from tests.trading.roles import user_in
from trading.models import Event


def _health(client):
    items = client.get(reverse("admin:control_panel_status")).json()["health"]
    return {h["name"]: h for h in items}


def test_the_panel_shows_both_sources_health_and_each_pairs_fair_rate_age_and_outcome(client, reference):
    client.force_login(user_in("viewer"))
    kraken_refresh()
    coingecko_poll(force=True)
    health = _health(client)
    kraken, gecko = health["Reference source kraken"], health["Reference source coingecko"]
    assert kraken["status"] == "down" and kraken["value"].startswith("down · 0 reconnects")
    assert "not connected" in kraken["detail"] and "BTC/EUR 60001 (" in kraken["detail"]
    assert gecko["status"] == "ok" and "BTC/EUR 60003" in gecko["detail"]
    btc = health["Fair rate BTC/EUR"]
    assert btc["status"] == "ok" and btc["value"].startswith("ok · 60001 via kraken · ") and "s old" in btc["value"]
    assert health["Fair rate BTC/EURE"]["status"] == "ok"
    page = client.get(reverse("admin:index")).content.decode()
    assert "Fair rate BTC/EUR" in page and "Reference source coingecko" in page

    reference.gecko.set_price("bitcoin", "eur", "70000")
    coingecko_poll(force=True)
    conflicted = _health(client)["Fair rate BTC/EUR"]
    assert conflicted["status"] == "down" and conflicted["value"].startswith("conflicted · no usable rate")
    assert "bps apart" in conflicted["detail"]


def test_a_sources_last_error_says_when_it_happened(client, reference):
    from providers.reference.store import error_fields, now_ms, state_update

    client.force_login(user_in("viewer"))
    state_update("coingecko", fields=error_fields("HTTP 500: boom", at_ms=now_ms() - 180_000), incr={"errors": 1})
    gecko = _health(client)["Reference source coingecko"]
    assert "· 1 error ·" in gecko["value"] and "last error 3 min ago: HTTP 500: boom" in gecko["detail"]


def test_an_operator_pauses_a_source_from_the_admin_with_a_reason(client, reference):
    client.force_login(user_in("operator"))
    url = reverse("admin:providers_referencesource_changelist")
    confirm = client.post(url, {"action": "pause_source", "_selected_action": ["coingecko"]})
    assert confirm.status_code == 200 and not ReferenceSource.objects.get(name="coingecko").paused
    client.post(url, {"action": "pause_source", "_selected_action": ["coingecko"], "confirm": "yes", "reason": "quota"})
    row = ReferenceSource.objects.get(name="coingecko")
    assert row.paused and row.reason == "quota" and row.changed_by.startswith("user:")
    assert Event.objects.get(topic="reference.source_paused").payload["reason"] == "quota"
    assert _health(client)["Reference source coingecko"]["status"] == "warn"


def test_a_viewer_cannot_pause(client, reference):
    client.force_login(user_in("viewer"))
    url = reverse("admin:providers_referencesource_changelist")
    client.post(url, {"action": "pause_source", "_selected_action": ["kraken"], "confirm": "yes", "reason": "x"})
    assert not ReferenceSource.objects.get(name="kraken").paused


def test_a_risk_admin_changes_a_basis_and_it_is_recorded(client, reference):
    user = user_in("risk_admin")
    client.force_login(user)
    basis = ReferenceBasis.objects.get(asset="EURE")
    url = reverse("admin:providers_referencebasis_change", args=[basis.pk])
    response = client.post(
        url, {"equals": "EUR", "rate": "0.999", "source": "desk estimate", "sanity_coingecko_id": "", "note": "audit"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    basis.refresh_from_db()
    assert basis.rate == Decimal("0.999") and basis.set_by == f"user:{user.pk}:risk_admin"
    event = Event.objects.get(topic="reference.basis_changed")
    assert event.payload["before"]["rate"] == "1" and event.payload["after"]["rate"] == "0.999"


def test_an_operator_cannot_change_a_basis(client, reference):
    client.force_login(user_in("operator"))
    basis = ReferenceBasis.objects.get(asset="EURE")
    url = reverse("admin:providers_referencebasis_change", args=[basis.pk])
    client.post(url, {"equals": "EUR", "rate": "2", "source": "x", "sanity_coingecko_id": "", "note": ""})
    assert ReferenceBasis.objects.get(asset="EURE").rate == 1
