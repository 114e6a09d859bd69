from decimal import Decimal

import pytest

D = Decimal


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    """Risk limits are read on every order in tests (no per-process cache); fast password hashing."""
    from trading.selectors import risk_limits_cache_clear

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from trading.services.orders import venue_market_cache_clear

    settings.RISK_LIMITS_CACHE_SECONDS = 0
    settings.TRADING_MARKET_CACHE_SECONDS = 0
    risk_limits_cache_clear()
    venue_market_cache_clear()
    yield
    risk_limits_cache_clear()
    venue_market_cache_clear()


@pytest.fixture
def markets(db):
    """The paper venue's markets, with exact prices: BTC-USD 60000, ETH-USD 3000."""
    from providers.markets import markets_cache_clear
    from providers.paper.seed import seed_paper_demo
    from providers.prices import price_cache_clear, price_set

    seed_paper_demo()
    markets_cache_clear()
    price_cache_clear()
    price_set("BTC-USD", D("60000"))
    price_set("ETH-USD", D("3000"))
    return {"BTC-USD": D("60000"), "ETH-USD": D("3000")}


@pytest.fixture
def trader(django_user_model):
    return django_user_model.objects.create_user(username="trader", email="trader@example.com", password="pw")


@pytest.fixture
def other_trader(django_user_model):
    return django_user_model.objects.create_user(username="other", email="other@example.com", password="pw")


@pytest.fixture
def armed(db):
    from trading.services.control import control_arm

    return control_arm(component="executor:paper", actor="test", reason="tests trade on paper")


@pytest.fixture
def api(trader):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(trader)
    return client


class CountingVenue:
    """The real paper venue, counting the calls made to it; `fail_after_open` simulates a
    timeout that happens after the venue has done the work (the outcome is then unknown)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, str]] = []
        self.fail_after_open = False
        self.fail_before_open = False

    def __getattr__(self, item):
        return getattr(self.inner, item)

    def open_trade(self, request):
        self.calls.append(("open_trade", request.idempotency_key))
        if self.fail_before_open:
            raise TimeoutError("venue did not answer")
        result = self.inner.open_trade(request)
        if self.fail_after_open:
            raise TimeoutError("venue did not answer in time")
        return result

    def close_trade(self, request):
        self.calls.append(("close_trade", request.idempotency_key))
        return self.inner.close_trade(request)

    def cancel_order(self, **kw):
        self.calls.append(("cancel_order", kw["venue_order_id"]))
        return self.inner.cancel_order(**kw)


@pytest.fixture
def counting_venue():
    from providers.paper.adapter import PaperVenue
    from providers.registry import venue_factory_register

    venue = CountingVenue(PaperVenue())
    venue_factory_register("paper", lambda: venue)
    yield venue
    venue_factory_register("paper", PaperVenue)


def make_order(user, **kw):
    """An ACCEPTED order with its `order.accepted` event, as the placing service leaves it,
    but never handed to the executor by the outbox dispatcher (its `executor` message is marked
    delivered): these tests drive the executor themselves."""
    from django.db import transaction

    from trading.models import Order, OutboxMessage
    from trading.services.orders import order_event, order_snapshot

    values = {
        "provider": "paper",
        "asset": "BTC-USD",
        "asset_type": "crypto",
        "order_type": Order.Type.MARKET,
        "side": "long",
        "collateral": D("100"),
        "leverage": D("10"),
        "max_slippage": D("0.05"),
        "reference_price": D("60000"),
        "pair_id": "BTC-USD",
    } | kw
    with transaction.atomic():
        order = Order.objects.create(user=user, **values)
        event = order_event(order=order, topic="order.accepted", causation_id="", payload=order_snapshot(order))
        OutboxMessage.objects.filter(event_id=event.id, handler="executor").update(status="delivered")
    return order


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium, headless, through Playwright (tests/trading/browser.py)."""
    from playwright.sync_api import sync_playwright

    from tests.trading.browser import CHROMIUM, CHROMIUM_ARGS

    # Playwright's sync API keeps an event loop registered on this thread; the ORM calls of
    # the test body are still plain sync code (the documented setting for this case).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
