"""End to end in a real browser: Debian's Chromium (headless) driven by Playwright against a
live server on the test database, with a real Celery worker executing orders.

Runs in `make test`. Skipped only when no Chromium is installed AND `CI` is not set; in CI a
missing browser is a failure."""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.trading.browser import BROWSER_MARKS, confirm, login
from tests.trading.roles import user_in
from trading.models import ControlState, Order

pytestmark = [*BROWSER_MARKS, pytest.mark.celery]


def _login(browser, live_server, username):
    return login(browser, live_server, username)


def _row(page, component):
    return page.locator(f'#td-components tr[data-component="{component}"]')


def _confirm(page, reason):
    confirm(page, reason)


def _place(api):
    response = api.post(
        "/api/v1/trading/trades",
        {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "2"},
        format="json",
    )
    assert response.status_code == 202, response.content
    return Order.objects.get(pk=response.json()["order_id"])


def _final(order):
    def done():
        order.refresh_from_db()
        return order.status in ("FILLED", "REJECTED") and order

    return wait_for(done, timeout=30)


def _demo_data(trader):
    from django.utils import timezone

    from config.beat import beat_heartbeat_write
    from trading.services.control import trading_state_set
    from trading.services.orders import order_place

    protected = order_place(
        user=trader,
        asset="ETH-USD",
        side="short",
        collateral=Decimal(250),
        leverage=Decimal(5),
        stop_price=Decimal(3150),
    )
    assert _final(protected).status == "FILLED"
    trading_state_set(
        scope_type="instrument",
        scope_key="SOL-USD",
        state="REDUCE_ONLY",
        actor="demo",
        reason="thin liquidity after the token unlock",
        expires_at=timezone.now() + timedelta(hours=2),
    )
    beat_heartbeat_write()


def test_an_operator_disarms_sees_orders_refused_rearms_sees_them_execute_and_opens_the_timeline(
    browser, live_server, celery_worker, markets, trader, api, tmp_path
):
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="test", reason="the desk is live")
    user_in("operator", "olivia")
    context, page = _login(browser, live_server, "olivia")

    # disarm the paper executor, with a reason
    _row(page, "executor:paper").get_by_role("link", name="Disarm").click()
    _confirm(page, "venue maintenance window")
    assert "disarmed" in _row(page, "executor:paper").locator(".td-badge").inner_text().lower()
    assert ControlState.objects.get(component="executor:paper").reason == "venue maintenance window"

    # a trader's order is refused while disarmed (at side-effect time, by the executor)
    refused = _final(_place(api))
    assert refused.status == "REJECTED" and refused.error_code == "VENUE_DISARMED"
    assert not refused.commands.exists()

    # re-arm: the next order executes
    _row(page, "executor:paper").get_by_role("link", name="Arm").click()
    _confirm(page, "maintenance over")
    assert _row(page, "executor:paper").locator(".td-badge").inner_text().strip().lower() == "armed"
    filled = _final(_place(api))
    assert filled.status == "FILLED"

    # the order's timeline, from its admin page
    page.goto(f"{live_server.url}/admin/trading/order/{filled.pk}/change/")
    page.click("a.td-timeline-link")
    page.wait_for_selector("#td-events")
    topics = page.locator("#td-events tr[data-topic]").evaluate_all("rows => rows.map(r => r.dataset.topic)")
    assert topics[:4] == ["order.accepted", "order.submitting", "order.filled", "trade.opened"]
    assert filled.commands.get().idempotency_key in page.locator("#td-commands").inner_text()
    story = page.locator("#td-story").inner_text()
    assert story.startswith("Trader opened a 2× BTC-USD long with 100.00 USD at "), story
    assert "the risk engine passed it at reference" in story and "filled at " in story and "None" not in story

    # the panel with some more demo data, for docs/operating.md
    _demo_data(trader)
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#td-venues svg")
    shot = Path(os.environ.get("CONTROL_PANEL_SCREENSHOT") or tmp_path / "control-panel.png")
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    context.close()


def test_a_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(browser, live_server, transactional_db):
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="test", reason="the desk is live")
    user_in("viewer", "victor")
    context, page = _login(browser, live_server, "victor")

    assert page.locator("#td-components a.button").count() == 0
    assert page.locator("#td-halt-all").count() == 0
    assert _row(page, "executor:paper").locator(".td-badge").inner_text().strip().lower() == "armed"

    csrf = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    forged = context.request.post(
        f"{live_server.url}/admin/control-panel/executor:paper/disarm/",
        form={"reason": "forged", "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{live_server.url}/admin/"},
    )

    assert forged.status == 403
    state = ControlState.objects.get(component="executor:paper")
    assert state.armed and state.reason == "the desk is live"
    context.close()
