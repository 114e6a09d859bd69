"""The treasury page and the control panel lines: inventory per venue with sync ages, stale in
red with a refresh that works, freeze withdrawals as one recorded action, approve and cancel."""

import re
from decimal import Decimal

import pytest

from tests.treasury.conftest import USDC, allow, arm_withdrawals, sync
from trading.models import ControlState, Event
from treasury.models import InventoryBalance, LiquidityAction

pytestmark = pytest.mark.django_db
PAGE = "/admin/treasury/inventorybalance/"


def test_the_page_shows_each_venue_with_sync_age_and_balances(near, operators, client):
    sync()
    sync("paper")
    client.force_login(operators[0])
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    for title in ("NEAR Intents", "Ostium", "Paper", "Pipeline (open liquidity actions"):
        assert title in html
    assert re.search(r'last synced <strong class="td-sync-age">[\d.]+ s</strong> ago', html)
    assert "USDC" in html and "50000" in html
    fragment = client.get(PAGE + "fragment/")
    assert fragment.status_code == 200 and "td-sync-age" in fragment.content.decode()


def test_an_amount_finer_than_its_asset_is_shown_rounded_with_the_exact_value_in_its_tooltip(operators, client):
    from providers.models import PaperAccount

    PaperAccount.objects.create(name="user:7", balance=Decimal("99899.550466705509487074"))
    sync("paper")
    client.force_login(operators[0])
    html = client.get(PAGE).content.decode()
    assert '<span title="99899.550466705509487074">99899.55</span>' in html
    assert ">99899.550466705509487074<" not in html


def test_a_stale_balance_is_red_with_its_reason_and_refresh_recovers_it(near, operators, client):
    sync()
    near.world.down.add("rpc")
    sync()
    client.force_login(operators[0])
    html = client.get(PAGE).content.decode()
    assert 'class="td-stale"' in html and "refused" in html and "RPC_UNAVAILABLE" in html
    from trading.admin_panel.panel import panel_snapshot

    items = {h.name: h for h in panel_snapshot()["health"]}
    assert items["Treasury stale balances"].status == "down"
    assert items["Treasury sync near_intents"].status == "down"
    near.world.down.clear()
    from providers.near_intents.client import breaker_reset
    from providers.near_intents.config import network_config

    breaker_reset(network_config())
    response = client.post(PAGE + "refresh/near_intents/", follow=True)
    assert "inventory synced" in response.content.decode()
    assert 'class="td-stale"' not in client.get(PAGE).content.decode()
    items = {h.name: h for h in panel_snapshot()["health"]}
    assert items["Treasury stale balances"].status == "ok" and items["Treasury sync near_intents"].status == "ok"
    synced = InventoryBalance.objects.filter(venue="near_intents").count()
    assert synced > 1 and items["Treasury sync near_intents"].value == f"{synced} assets"
    from trading.admin_panel.formatting import plural

    assert (plural(1, "asset"), plural(0, "asset")) == ("1 asset", "0 assets")  # the paper venue's one


def test_the_control_panel_shows_the_treasury_lines(near, operators, client):
    sync()
    client.force_login(operators[0])
    html = client.get("/admin/control-panel/").content.decode()
    assert "Treasury sync near_intents" in html and "Treasury stale balances" in html


def test_freeze_withdrawals_is_one_recorded_action(near, operators, client):
    arm_withdrawals()
    client.force_login(operators[0])
    assert "Freeze withdrawals" in client.get(PAGE).content.decode()
    assert client.get(PAGE + "freeze-withdrawals/").status_code == 200  # the confirmation page
    response = client.post(PAGE + "freeze-withdrawals/", {"reason": "key compromise suspected"}, follow=True)
    assert "Withdrawals frozen" in response.content.decode()
    state = ControlState.objects.get(component="treasury:withdrawals")
    assert not state.armed and "key compromise" in state.reason
    frozen = Event.objects.get(topic="treasury.withdrawals_frozen")
    assert frozen.actor.endswith(":alice") and frozen.payload["reason"] == "key compromise suspected"
    assert Event.objects.filter(topic="control.disarmed", aggregate_id="treasury:withdrawals").count() == 1


def test_a_viewer_cannot_freeze_or_refresh(near, django_user_model, client):
    from django.contrib.auth.models import Group

    from trading.admin_panel.roles import roles_and_rows_ensure

    roles_and_rows_ensure()
    viewer = django_user_model.objects.create_user(username="v", email="v@example.com", password="pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    assert client.get(PAGE).status_code == 200
    assert client.post(PAGE + "freeze-withdrawals/", {"reason": "nope nope"}).status_code == 403
    assert client.post(PAGE + "refresh/paper/").status_code == 403


def test_approve_and_cancel_from_the_page(near, operators, client, settings, django_capture_on_commit_callbacks):
    from treasury.services.liquidity import liquidity_action_request

    alice, bob = operators
    settings.WITHDRAWAL_APPROVAL_THRESHOLD = "1"
    sync()
    allow("0x1111111111111111111111111111111111111111")
    arm_withdrawals()
    action = liquidity_action_request(
        actor=alice,
        kind="withdrawal",
        asset=USDC,
        amount=Decimal(5),
        chain="eth:42161",
        address="0x1111111111111111111111111111111111111111",
    )
    client.force_login(bob)
    html = client.get(PAGE).content.decode()
    change = f'<a href="/admin/treasury/liquidityaction/{action.pk}/change/">{action.pk}</a>'
    assert "needs approval" in html and change in html  # the pipeline's # opens the action
    with django_capture_on_commit_callbacks(execute=False):
        client.post(PAGE + f"actions/{action.pk}/approve/", {"reason": "looks right"})
    action.refresh_from_db()
    assert action.approved_by.endswith(":bob")
    client.post(PAGE + f"actions/{action.pk}/cancel/", {"reason": "changed our mind"})
    assert LiquidityAction.objects.get(pk=action.pk).status == "cancelled"
    closed = client.get(PAGE).content.decode().split('id="td-closed"')[1]
    assert "<th>Closed</th>" in closed and change in closed  # and so does the closed list's
