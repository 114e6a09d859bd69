"""The keeper's trigger maths must agree with the contracts' settlement maths."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.ostium.localnet.keeper import percent_profit

prices = st.integers(min_value=10**12, max_value=10**24)  # 1e-6 .. 1e6 at 1e18


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(open_price=prices, price=prices, buy=st.booleans(), leverage=st.integers(min_value=100, max_value=10000))
def test_percent_profit_matches_callbacks(localnet_session, open_price, price, buy, leverage):
    callbacks = localnet_session.contract("callbacks")
    on_chain = callbacks.functions.currentPercentProfit(open_price, price, buy, leverage).call()
    assert percent_profit(open_price, price, buy, leverage) == on_chain
