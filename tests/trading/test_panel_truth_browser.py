"""The control panel tells the truth, judged in a real browser (tests/trading/browser.py)
against a live server and real processes."""

import os

import pytest

from tests.conftest import wait_for
from tests.trading.browser import BROWSER_MARKS, DESKTOP, LAPTOP, login
from tests.trading.roles import user_in

pytestmark = BROWSER_MARKS


def _health_badge(page, live_server, slug):
    page.goto(f"{live_server.url}/admin/")
    return page.locator(f'#td-health tr[data-health="{slug}"] .td-badge').inner_text().strip().lower()


def test_the_beat_badge_is_green_while_beat_runs_and_red_once_it_stops(browser, live_server, beat_process):
    from django.core.cache import cache

    from config.beat import HEARTBEAT_KEY, HEARTBEAT_SECONDS

    cache.delete(HEARTBEAT_KEY)
    user_in("viewer", "victor")
    context, page = login(browser, live_server, "victor")
    assert _health_badge(page, live_server, "celery-beat") == "down"  # never ran

    beat_process.start()
    wait_for(lambda: _health_badge(page, live_server, "celery-beat") == "ok", 30, interval=0.5, what="Beat green")
    # green for as long as it runs (several heartbeat intervals, checked each second)
    for _ in range(int(3 * HEARTBEAT_SECONDS)):
        assert _health_badge(page, live_server, "celery-beat") == "ok", beat_process.output()[-2000:]
        page.wait_for_timeout(1000)

    beat_process.stop()
    wait_for(
        lambda: _health_badge(page, live_server, "celery-beat") == "down",
        2 * HEARTBEAT_SECONDS + 5,
        interval=0.5,
        what="Beat red within two heartbeat intervals of stopping",
    )

    beat_process.start()
    wait_for(lambda: _health_badge(page, live_server, "celery-beat") == "ok", 30, interval=0.5, what="Beat green again")
    context.close()


def test_halt_everything_raises_a_banner_on_every_page_and_one_step_resumes(browser, live_server, transactional_db):
    from tests.trading.browser import confirm
    from trading.models import ControlState, TradingState
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="test", reason="the desk is live")
    user_in("risk_admin", "rita")
    context, page = login(browser, live_server, "rita")
    assert page.locator("#td-restrictions").count() == 0

    page.click("#td-halt-all")
    confirm(page, "exchange incident")
    banner = page.locator("#td-restrictions")
    assert "HALTED on global" in banner.inner_text() and "exchange incident" in banner.inner_text()
    assert "rita (user" in banner.inner_text()
    page.goto(f"{live_server.url}/admin/trading/order/")  # every admin page, not only the panel
    assert "exchange incident" in page.locator("#td-restrictions").inner_text()

    page.click("#td-resume-all")
    page.wait_for_selector("#td-confirm")
    assert "arm executor:paper" in page.locator("#content-main ul").inner_text()
    confirm(page, "incident over")

    assert page.locator("#td-restrictions").count() == 0
    assert TradingState.objects.get(scope_type="global").state == "ACTIVE"
    assert list(ControlState.objects.filter(armed=True).values_list("component", flat=True)) == ["executor:paper"]
    context.close()


def test_a_scope_typo_is_refused_on_the_page(browser, live_server, transactional_db, markets):
    from tests.trading.browser import confirm
    from trading.models import TradingState

    user_in("risk_admin", "rita")
    context, page = login(browser, live_server, "rita")
    page.click("text=Reduce-only a scope…")
    page.wait_for_selector("#td-confirm")
    page.select_option("#id_scope_type", "instrument")
    page.fill("#id_scope_key", "BTCUSD")
    page.fill("#id_reason", "thin book")
    page.click("#td-confirm input[type=submit]")

    page.wait_for_selector("#td-confirm .errorlist")
    assert "Did you mean BTC-USD?" in page.locator("#td-confirm .errorlist").inner_text()
    assert not TradingState.objects.exists()

    page.fill("#id_scope_key", "BTC-USD")
    confirm(page, "thin book")
    assert "REDUCE_ONLY on instrument:BTC-USD" in page.locator("#td-restrictions").inner_text()
    context.close()


def _inside(inner, outer) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def _overlap(a, b) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, LAPTOP], ids=["1440x900", "1280x800"])
def test_the_panel_lays_out_without_overlap_and_its_counters_link_to_their_lists(
    browser, live_server, transactional_db, markets, viewport
):
    from trading.services.control import trading_state_set

    trading_state_set(scope_type="instrument", scope_key="SOL-USD", state="REDUCE_ONLY", actor="op", reason="thin")
    trading_state_set(scope_type="venue", scope_key="near_intents", state="HALTED", actor="op", reason="solver down")
    user_in("risk_admin", "rita")
    context, page = login(browser, live_server, "rita", viewport=viewport)

    if os.environ.get("SCREENSHOT_DIR"):  # the docs' screenshots: SCREENSHOT_DIR=docs
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/control-panel-{viewport['width']}.png")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the panel scrolls sideways ({width} px)"
    assert not _overlap(page.locator("#td-halt-all").bounding_box(), page.locator("#td-updated").bounding_box())
    card = page.locator("#td-trading-states").bounding_box()
    buttons = page.locator("#td-trading-states a.button")
    assert buttons.count() >= 6
    for i in range(buttons.count()):
        assert _inside(buttons.nth(i).bounding_box(), card), buttons.nth(i).inner_text()

    hrefs = {
        key: page.locator(f"#td-count-{key}").get_attribute("href") for key in ("unknown", "near", "nostop", "inflight")
    }
    assert hrefs == {
        "unknown": "/admin/trading/order/?status__exact=UNKNOWN",
        "near": "/admin/trading/trade/?attention=near_liquidation",
        "nostop": "/admin/trading/trade/?attention=without_stop",
        "inflight": "/admin/trading/order/?stage=in_flight",
    }
    for href in hrefs.values():
        assert page.goto(f"{live_server.url}{href}").status == 200
    context.close()


LISTS = ("trading/order", "trading/trade", "trading/position", "trading/fill", "webhooks/webhookdelivery")


def test_the_lists_fit_1280_px_and_read_plainly(browser, live_server, transactional_db, markets, trader, armed):
    from decimal import Decimal

    from trading.models import Trade
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    for asset, leverage in (("BTC-USD", 5), ("ETH-USD", 2)):
        opened = order_place(
            user=trader,
            asset=asset,
            side="long",
            collateral=Decimal(100),
            leverage=Decimal(leverage),
            stop_price=markets[asset] * Decimal("0.95"),
        )
        order_execute(order_id=opened.pk)
    trade = Trade.objects.get(asset="ETH-USD")
    close = order_place(
        user=trader, asset="ETH-USD", side="long", reduce_only=True, trade=trade, close_fraction=Decimal("0.5")
    )
    order_execute(order_id=close.pk)
    user_in("viewer", "victor")
    context, page = login(browser, live_server, "victor", viewport=LAPTOP)

    for path in LISTS:
        page.goto(f"{live_server.url}/admin/{path}/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= LAPTOP["width"], f"{path} scrolls sideways ({width} px)"
        clipped = page.evaluate(
            "[...document.querySelectorAll('#changelist .results')].some(e => e.scrollWidth > e.clientWidth)"
        )
        assert not clipped, f"{path}: the table scrolls inside its box"
        text = page.locator("#content").inner_text()
        assert "E-8" not in text and "000000000" not in text and "None" not in text, path
        if os.environ.get("SCREENSHOT_DIR"):
            page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/list-{path.split('/')[1]}.png")

    page.goto(f"{live_server.url}/admin/trading/order/")
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [h.strip() for h in headers if h.strip()][:2] == ["STATUS", "ORDER"]
    assert "reduce-only, 50 % of trade" in page.locator("#result_list").inner_text()
    assert f"trader (user {trader.pk})" in page.locator("#result_list").inner_text()
    page.goto(f"{live_server.url}/admin/trading/order/?q=trader@example.com")
    assert page.locator("#result_list tbody tr").count() == 5  # two opens, two stops, one close
    context.close()
