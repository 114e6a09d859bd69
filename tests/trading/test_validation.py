"""Per-type order validation (pure, against a market and the current price), and through
the placing service where an open trade is involved."""

from decimal import Decimal as D

import pytest

from config.errors import ApplicationError
from providers.interface import Market
from tests.conftest import ledger_events_for
from trading.validation import OrderInput, order_validate

BTC = Market(symbol="BTC-USD", pair_id="BTC-USD", category="crypto", max_leverage=D("50"), min_collateral=D("5"))
PRICE = D("60000")


def _check(**kw):
    order_validate(OrderInput(**kw), market=BTC, current_price=PRICE)


def _errors(**kw) -> dict:
    with pytest.raises(ApplicationError) as err:
        _check(**kw)
    assert err.value.code in ("INVALID_ORDER", "MARKET_CLOSED")
    return err.value.details


OPEN = {"side": "long", "collateral": D("100"), "leverage": D("10")}
ON_TRADE = {"has_trade": True}


def test_market_open_with_collateral_and_leverage_is_valid():
    _check(order_type="MARKET", **OPEN)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"collateral": None}, "collateral"),
        ({"collateral": D("0")}, "collateral"),
        ({"collateral": D("1")}, "collateral"),  # below the market minimum
        ({"leverage": None}, "leverage"),
        ({"leverage": D("51")}, "leverage"),
        ({"leverage": D("0.5")}, "leverage"),
    ],
)
def test_market_open_needs_collateral_and_leverage_within_the_market_limits(changes, field):
    assert field in _errors(order_type="MARKET", **(OPEN | changes))


def test_limit_needs_a_price():
    assert "price" in _errors(order_type="LIMIT", **OPEN)
    _check(order_type="LIMIT", price=D("59000"), **OPEN)


def test_negative_prices_are_refused():
    assert "price" in _errors(order_type="LIMIT", price=D("-1"), **OPEN)


@pytest.mark.parametrize(
    ("side", "stop", "ok"),
    [
        ("long", D("59000"), True),
        ("long", D("61000"), False),
        ("short", D("61000"), True),
        ("short", D("59000"), False),
    ],
)
def test_stop_loss_sits_below_the_market_for_a_long_and_above_for_a_short(side, stop, ok):
    kw = {"order_type": "STOP_LOSS", "side": side, "stop_price": stop, **ON_TRADE}
    if ok:
        _check(**kw)
    else:
        assert "stop_price" in _errors(**kw)


def test_stop_loss_needs_a_stop_price_and_a_trade():
    assert "stop_price" in _errors(order_type="STOP_LOSS", side="long", **ON_TRADE)
    assert "trade" in _errors(order_type="STOP_LOSS", side="long", stop_price=D("59000"))


@pytest.mark.parametrize(
    ("side", "tp", "ok"),
    [
        ("long", D("61000"), True),
        ("long", D("59000"), False),
        ("short", D("59000"), True),
        ("short", D("61000"), False),
    ],
)
def test_take_profit_mirrors_the_stop_loss(side, tp, ok):
    kw = {"order_type": "TAKE_PROFIT", "side": side, "take_profit_price": tp, **ON_TRADE}
    if ok:
        _check(**kw)
    else:
        assert "take_profit_price" in _errors(**kw)


def test_take_profit_needs_its_price():
    assert "take_profit_price" in _errors(order_type="TAKE_PROFIT", side="short", **ON_TRADE)


@pytest.mark.parametrize(
    ("levels", "ok"),
    [
        ({"trailing_stop_distance": D("500")}, True),
        ({"trailing_stop_percentage": D("2")}, True),
        ({}, False),
        ({"trailing_stop_distance": D("500"), "trailing_stop_percentage": D("2")}, False),
        ({"trailing_stop_percentage": D("100")}, False),
    ],
)
def test_trailing_stop_takes_exactly_one_of_distance_and_percentage(levels, ok):
    kw = {"order_type": "TRAILING_STOP", "side": "long", **ON_TRADE, **levels}
    if ok:
        _check(**kw)
    else:
        assert _errors(**kw)


@pytest.mark.parametrize(
    ("side", "stop", "tp", "bad"),
    [
        ("long", D("59000"), D("61000"), set()),
        ("long", D("61000"), D("62000"), {"oco_stop_price"}),
        ("long", D("58000"), D("59000"), {"oco_take_profit_price"}),
        ("short", D("61000"), D("59000"), set()),
        ("short", D("59000"), D("61000"), {"oco_stop_price", "oco_take_profit_price"}),
    ],
)
def test_oco_needs_both_legs_on_their_sides(side, stop, tp, bad):
    kw = {"order_type": "OCO", "side": side, "oco_stop_price": stop, "oco_take_profit_price": tp, **ON_TRADE}
    if not bad:
        _check(**kw)
    else:
        assert bad <= set(_errors(**kw))


def test_oco_with_a_missing_leg_is_invalid():
    assert "oco_take_profit_price" in _errors(order_type="OCO", side="long", oco_stop_price=D("59000"), **ON_TRADE)


def test_sl_tp_attached_to_an_open_are_checked_against_the_entry():
    _check(order_type="MARKET", stop_price=D("55000"), take_profit_price=D("70000"), **OPEN)
    errors = _errors(order_type="MARKET", stop_price=D("65000"), take_profit_price=D("50000"), **OPEN)
    assert {"stop_price", "take_profit_price"} <= set(errors)
    # a LIMIT's attached levels are judged against its limit price, not the market
    _check(order_type="LIMIT", price=D("50000"), stop_price=D("49000"), take_profit_price=D("55000"), **OPEN)
    # and the message names that price as a person writes it (the API's limit price has 8 places)
    errors = _errors(order_type="LIMIT", price=D("58123.54000000"), stop_price=D("59000"), **OPEN)
    assert errors["stop_price"] == ["must be below the entry price 58123.54"]


def test_oco_legs_name_the_price_they_are_judged_against():
    errors = _errors(
        order_type="OCO", side="long", oco_stop_price=D("61000"), oco_take_profit_price=D("59000"), **ON_TRADE
    )
    assert errors["oco_stop_price"] == ["must be below the current price 60000"]
    assert errors["oco_take_profit_price"] == ["must be above the current price 60000"]


def test_reduce_only_is_for_market_orders_on_a_trade():
    assert "trade" in _errors(order_type="MARKET", side="long", reduce_only=True)
    assert "reduce_only" in _errors(order_type="LIMIT", side="long", price=D("1"), reduce_only=True, **ON_TRADE)


def test_unknown_type_and_side_are_refused():
    assert "order_type" in _errors(order_type="ICEBERG", **OPEN)
    assert "side" in _errors(order_type="MARKET", side="up", collateral=D("100"), leverage=D("2"))


def test_closed_market_refuses_opens_but_not_protection():
    closed = Market(symbol="EUR-USD", pair_id="EUR-USD", category="forex", max_leverage=D("100"), is_open=False)
    with pytest.raises(ApplicationError) as err:
        order_validate(OrderInput(order_type="MARKET", **OPEN), market=closed, current_price=D("1.1"))
    assert err.value.code == "MARKET_CLOSED"
    order_validate(
        OrderInput(order_type="STOP_LOSS", side="long", stop_price=D("1.0"), has_trade=True),
        market=closed,
        current_price=D("1.1"),
    )


# --- through the placing service ------------------------------------------------------------------


@pytest.mark.django_db
def test_placing_service_refuses_invalid_orders_and_writes_nothing(markets, trader):
    from trading.models import Event, Order
    from trading.services.orders import order_place

    with pytest.raises(ApplicationError) as err:
        order_place(user=trader, asset="BTC-USD", side="long", order_type="LIMIT", collateral=D("100"), leverage=D("5"))
    assert err.value.code == "INVALID_ORDER" and "price" in err.value.details
    with pytest.raises(ApplicationError) as err:
        order_place(user=trader, asset="BTC-USD", side="long", collateral=D("100"), leverage=D("500"))
    assert "leverage" in err.value.details
    with pytest.raises(ApplicationError) as err:
        order_place(user=trader, asset="NOPE-USD", side="long", collateral=D("100"), leverage=D("5"))
    assert err.value.code == "INVALID_MARKET"
    assert not Order.objects.exists()
    assert not Event.objects.filter(topic__startswith="order.").exists()


@pytest.mark.django_db
def test_protective_orders_wait_for_their_trigger_on_the_trade(markets, trader):
    from trading.models import Order, Position, Trade
    from trading.services.orders import order_place

    position = Position.objects.create(user=trader, provider="paper", asset="BTC-USD", side="short")
    trade = Trade.objects.create(
        user=trader,
        position=position,
        provider="paper",
        asset="BTC-USD",
        pair_id="BTC-USD",
        trade_index="7",
        side="short",
        collateral=D("100"),
        leverage=D("5"),
        size=D("0.01"),
        initial_size=D("0.01"),
        entry_price=D("60000"),
        current_price=D("60000"),
        margin=D("100"),
    )
    ledger_events_for(position, trade)

    sl = order_place(
        user=trader, asset="BTC-USD", side="short", order_type="STOP_LOSS", trade=trade, stop_price=D("61000")
    )
    oco = order_place(
        user=trader,
        asset="BTC-USD",
        side="short",
        order_type="OCO",
        trade=trade,
        oco_stop_price=D("62000"),
        oco_take_profit_price=D("58000"),
    )
    assert sl.status == oco.status == Order.Status.PENDING_TRIGGER
    assert sl.trade == trade and sl.quantity == trade.size and sl.is_close
    with pytest.raises(ApplicationError) as err:
        order_place(
            user=trader, asset="BTC-USD", side="short", order_type="STOP_LOSS", trade=trade, stop_price=D("59000")
        )
    assert "stop_price" in err.value.details


def test_field_errors_are_lists_of_messages_with_numbers_written_plainly():
    details = _errors(order_type="MARKET", side="long", collateral=D("100"), leverage=D("1000"))
    low, high = BTC.min_leverage.normalize(), BTC.max_leverage.normalize()
    assert details["leverage"] == [f"must be between {low:f} and {high:f}"]
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in details.values())
    assert "000000" not in details["leverage"][0]
