"""The risk engine: each check alone (pure), limits from the database, and the committed
`risk.rejected` event when the placing service refuses an order."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from tests.conftest import ledger_events_for
from trading.risk import OrderIntent, RiskCode, RiskDenied, RiskLimits, RiskSnapshot, risk_check

LIMITS = RiskLimits(
    max_notional=D("10000"),
    max_leverage=None,
    max_open_positions=3,
    max_slippage=D("0.05"),
    price_band=D("0.10"),
    daily_loss_cap=D("1000"),
    max_orders_per_minute=10,
)
SNAP = RiskSnapshot(
    limits=LIMITS,
    trading_states={},
    market_max_leverage=D("50"),
    open_positions=frozenset(),
    realized_loss_today=D("0"),
    orders_last_minute=0,
    reference_price=D("60000"),
)
OPEN = OrderIntent(
    venue="paper",
    asset="BTC-USD",
    side="long",
    order_type="MARKET",
    collateral=D("100"),
    leverage=D("10"),
    reduces_exposure=False,
    max_slippage=D("0.01"),
)
CLOSE = replace(OPEN, reduces_exposure=True, collateral=D("0"))


def _denied(intent=OPEN, **snap) -> str:
    with pytest.raises(RiskDenied) as err:
        risk_check(intent, replace(SNAP, **snap))
    assert err.value.status_code == 422
    return err.value.code


def test_a_plain_order_passes():
    assert risk_check(OPEN, SNAP) is None


@pytest.mark.parametrize("scope", ["global", "venue:paper", "instrument:BTC-USD"])
def test_halted_scope_refuses_everything(scope):
    assert _denied(trading_states={scope: "HALTED"}) == RiskCode.TRADING_HALTED
    assert _denied(CLOSE, trading_states={scope: "HALTED"}) == RiskCode.TRADING_HALTED


@pytest.mark.parametrize("scope", ["global", "venue:paper", "instrument:BTC-USD"])
def test_reduce_only_scope_admits_only_exposure_reducing_orders(scope):
    assert _denied(trading_states={scope: "REDUCE_ONLY"}) == RiskCode.REDUCE_ONLY
    risk_check(CLOSE, replace(SNAP, trading_states={scope: "REDUCE_ONLY"}))


def test_states_of_other_scopes_do_not_apply():
    risk_check(OPEN, replace(SNAP, trading_states={"venue:ostium": "HALTED", "instrument:ETH-USD": "HALTED"}))


def test_max_notional():
    risk_check(replace(OPEN, collateral=D("1000"), leverage=D("10")), SNAP)  # exactly 10,000
    assert _denied(replace(OPEN, collateral=D("1000.01"), leverage=D("10"))) == RiskCode.MAX_NOTIONAL


def test_max_leverage_is_the_lower_of_the_market_and_the_limit():
    assert _denied(
        replace(OPEN, leverage=D("20"), collateral=D("10")), limits=replace(LIMITS, max_leverage=D("15"))
    ) == (RiskCode.MAX_LEVERAGE)
    assert _denied(replace(OPEN, leverage=D("60"), collateral=D("10")), market_max_leverage=D("50")) == (
        RiskCode.MAX_LEVERAGE
    )


def test_max_open_positions_counts_new_positions_only():
    three = frozenset({("paper", "ETH-USD", "long"), ("paper", "SOL-USD", "long"), ("paper", "BTC-USD", "long")})
    risk_check(OPEN, replace(SNAP, open_positions=three))  # adds to the open BTC long
    assert _denied(replace(OPEN, side="short"), open_positions=three) == RiskCode.MAX_OPEN_POSITIONS


def test_max_slippage():
    assert _denied(replace(OPEN, max_slippage=D("0.06"))) == RiskCode.MAX_SLIPPAGE
    assert _denied(replace(CLOSE, max_slippage=D("0.06"))) == RiskCode.MAX_SLIPPAGE


def test_price_band_rejects_levels_too_far_from_the_reference():
    risk_check(replace(OPEN, order_type="LIMIT", prices={"price": D("54000")}), SNAP)  # exactly 10 %
    assert _denied(replace(OPEN, order_type="LIMIT", prices={"price": D("53999")})) == RiskCode.PRICE_BAND
    assert _denied(replace(CLOSE, order_type="STOP_LOSS", prices={"stop_price": D("70000")})) == RiskCode.PRICE_BAND


def test_daily_loss_cap_blocks_new_exposure_but_not_closes():
    assert _denied(realized_loss_today=D("1000")) == RiskCode.DAILY_LOSS_CAP
    risk_check(CLOSE, replace(SNAP, realized_loss_today=D("5000")))
    risk_check(OPEN, replace(SNAP, realized_loss_today=D("999.99")))


def test_order_rate():
    risk_check(OPEN, replace(SNAP, orders_last_minute=9))
    assert _denied(orders_last_minute=10) == RiskCode.ORDER_RATE
    assert _denied(CLOSE, orders_last_minute=10) == RiskCode.ORDER_RATE


def test_draining_venue_refuses_new_exposure():
    assert _denied(venue_draining=True) == RiskCode.VENUE_DRAINING
    risk_check(CLOSE, replace(SNAP, venue_draining=True))


# --- through the service and the database ---------------------------------------------------------


@pytest.mark.django_db
def test_limits_come_from_settings_then_the_global_row_then_the_instrument_row(settings):
    from trading.models import RiskLimit
    from trading.selectors import risk_limits_for

    settings.RISK_DEFAULTS = settings.RISK_DEFAULTS | {"max_notional": "10000", "max_orders_per_minute": 60}
    assert risk_limits_for("BTC-USD").max_notional == D("10000")
    RiskLimit.objects.create(instrument="", max_notional=D("5000"), max_orders_per_minute=5)
    RiskLimit.objects.create(instrument="BTC-USD", max_notional=D("2000"))
    btc, eth = risk_limits_for("BTC-USD"), risk_limits_for("ETH-USD")
    assert (btc.max_notional, btc.max_orders_per_minute) == (D("2000"), 5)
    assert (eth.max_notional, eth.max_orders_per_minute) == (D("5000"), 5)


@pytest.mark.django_db
def test_snapshot_counts_recent_orders_today_losses_and_open_positions(markets, trader, other_trader):
    from trading.models import Fill, Order, Position, Trade
    from trading.selectors import risk_snapshot_load

    for user in (trader, other_trader):
        Order.objects.create(
            user=user,
            provider="paper",
            asset="BTC-USD",
            order_type="MARKET",
            side="long",
            collateral=D("10"),
            leverage=D("2"),
        )
    Order.objects.create(
        user=trader,
        provider="paper",
        asset="BTC-USD",
        order_type="MARKET",
        side="long",
        collateral=D("10"),
        leverage=D("2"),
        created_at=timezone.now() - timedelta(minutes=2),
    )
    position = Position.objects.create(user=trader, provider="paper", asset="ETH-USD", side="short")
    Position.objects.create(user=trader, provider="paper", asset="SOL-USD", side="long", status="closed")
    trade = Trade.objects.create(
        user=trader,
        position=position,
        provider="paper",
        asset="ETH-USD",
        pair_id="ETH-USD",
        trade_index="1",
        side="short",
        collateral=D("100"),
        leverage=D("5"),
        size=D("1"),
        initial_size=D("1"),
        entry_price=D("3000"),
        current_price=D("3000"),
        margin=D("100"),
    )
    Fill.objects.create(dedupe_key="a", user=trader, trade=trade, kind="close", realized_pnl=D("-300"), fee=D("2"))
    Fill.objects.create(dedupe_key="b", user=trader, trade=trade, kind="close", realized_pnl=D("100"), fee=D("1"))
    Fill.objects.create(dedupe_key="c", user=trader, trade=trade, kind="funding", funding=D("4"))
    Fill.objects.create(
        dedupe_key="d",
        user=trader,
        trade=trade,
        kind="close",
        realized_pnl=D("-999"),
        occurred_at=timezone.now() - timedelta(days=2),
    )
    ledger_events_for(*Order.objects.all(), *Position.objects.all(), trade)  # the rows' histories

    snap = risk_snapshot_load(
        user=trader, venue="paper", asset="BTC-USD", market_max_leverage=D("50"), reference_price=D("60000")
    )
    assert snap.orders_last_minute == 1
    assert snap.realized_loss_today == D("207")  # -300 - 2 + 100 - 1 - 4
    assert snap.open_positions == frozenset({("paper", "ETH-USD", "short")})


@pytest.mark.django_db(transaction=True)
def test_a_denial_is_a_422_with_its_code_and_a_committed_risk_rejected_event(markets, trader, api):
    from trading.models import Event, Order, RiskLimit

    RiskLimit.objects.create(instrument="BTC-USD", max_notional=D("500"))

    response = api.post(
        "/api/v1/trading/trades",
        {"asset": "BTC-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "6"},
        format="json",
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "RISK_MAX_NOTIONAL"
    assert response.json()["error"]["details"]["limit"] == "500"
    assert not Order.objects.exists()
    event = Event.objects.get(topic="risk.rejected")
    assert event.payload["code"] == "RISK_MAX_NOTIONAL" and event.aggregate_id == str(trader.pk)
    assert event.payload["asset"] == "BTC-USD" and D(event.payload["notional"]) == 600


@pytest.mark.django_db
def test_a_halted_instrument_refuses_through_the_service(markets, trader):
    from trading.models import Event
    from trading.services.control import trading_state_set
    from trading.services.orders import order_place

    trading_state_set(scope_type="instrument", scope_key="BTC-USD", state="HALTED", actor="op", reason="incident")
    with pytest.raises(RiskDenied) as err:
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("100"), leverage=D("2"))
    assert err.value.code == RiskCode.TRADING_HALTED
    assert Event.objects.filter(topic="risk.rejected", payload__code="RISK_TRADING_HALTED").exists()
    order_place(user=trader, asset="ETH-USD", side="long", collateral=D("100"), leverage=D("2"))


@pytest.mark.django_db
def test_order_rate_through_the_service(markets, trader):
    from trading.models import RiskLimit
    from trading.services.orders import order_place

    limit = RiskLimit.objects.create(instrument="", max_orders_per_minute=2)
    for _ in range(2):
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    with pytest.raises(RiskDenied) as err:
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    assert err.value.code == RiskCode.ORDER_RATE
    assert (err.value.details["limit"], err.value.details["recent"]) == (2, 2)

    # the count stops at the limit (enough to decide): 3 orders in the minute, limit 1 → counted 1
    RiskLimit.objects.filter(pk=limit.pk).update(max_orders_per_minute=3)
    order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    RiskLimit.objects.filter(pk=limit.pk).update(max_orders_per_minute=1)
    with pytest.raises(RiskDenied) as err:
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    assert (err.value.details["limit"], err.value.details["recent"]) == (1, 1)


@pytest.mark.django_db
def test_closes_the_venue_or_an_operator_recorded_do_not_count_toward_the_users_order_rate(markets, trader):
    from trading.models import Order, RiskLimit
    from trading.services.orders import order_place

    RiskLimit.objects.create(instrument="", max_orders_per_minute=2)
    order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    # a liquidation, a venue close, a reconciliation and an operator's close in the same minute
    for origin in ("liquidation", "venue", "reconciliation", "operator"):
        Order.objects.create(
            user=trader,
            provider="paper",
            asset="BTC-USD",
            side="short",
            reduce_only=True,
            origin=origin,
            status="FILLED",
        )
    ledger_events_for(*Order.objects.exclude(origin="user"))  # their histories
    order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))  # the 2nd of 2
    with pytest.raises(RiskDenied) as err:
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("10"), leverage=D("2"))
    assert err.value.code == RiskCode.ORDER_RATE


@pytest.mark.django_db
def test_price_band_through_the_service(markets, trader):
    from trading.services.orders import order_place

    with pytest.raises(RiskDenied) as err:
        order_place(
            user=trader,
            asset="BTC-USD",
            side="long",
            order_type="LIMIT",
            price=D("40000"),
            collateral=D("10"),
            leverage=D("2"),
        )
    assert err.value.code == RiskCode.PRICE_BAND
