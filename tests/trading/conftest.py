from decimal import Decimal

import pytest

D = Decimal


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    """Risk limits are read on every order in tests (no per-process cache); fast password hashing."""
    from trading.selectors import risk_limits_cache_clear

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.RISK_LIMITS_CACHE_SECONDS = 0
    risk_limits_cache_clear()
    yield
    risk_limits_cache_clear()


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
