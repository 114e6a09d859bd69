"""Live position marks: a price tick pushes the current price and unrealised PnL of the open
positions on the ticked asset to their owners' `positions` channel — positions opened through
the real executor and paper venue, real server, real websocket clients."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.core.cache import cache

from providers.interface import PriceTick
from providers.prices import price_set
from tests.conftest import ledger_events_for
from tests.realtime.conftest import make_token, record, recv, subscribe, ws_connect
from tests.trading.conftest import armed, make_order, markets  # noqa: F401  (fixtures)
from trading.models import Position
from trading.outbox import outbox_dispatch
from trading.services import execution
from trading.services.marks import position_marks, position_marks_on_tick

DUST = D("0.00000001")


def open_position(user, *, side="long", asset="BTC-USD", reference_price=D("60000")) -> Position:
    order = make_order(user, side=side, asset=asset, pair_id=asset, reference_price=reference_price)
    assert execution.order_execute(order_id=order.pk) == "FILLED"
    return Position.objects.get(user=user, asset=asset, side=side, status="open")


def forget_marks_window(asset):
    """Ticks earlier in the test (the markets fixture sets prices) claimed the throttle window."""
    cache.delete(f"trading:marks:paper:{asset}")


def expected_pnl(position, price):
    sign = 1 if position.side == "long" else -1
    return (sign * (price - position.avg_entry_price) * position.quantity).quantize(DUST)


def marker(ws, user):
    """A ledger update for `user`, after whatever was published to them before it: had anything
    else been published to this connection, it would arrive first (one channel, in order)."""
    record("position.updated", user=user, aggregate_type="position", aggregate_id=f"marker-{user.pk}")
    return recv(ws)


@pytest.mark.ledger_drift  # made-up position events (no rows): a test of the websocket transport
@pytest.mark.usefixtures("markets", "armed")
def test_a_tick_pushes_each_owner_the_mark_of_their_own_positions(ws_server, make_user, settings):
    settings.REALTIME_MARKS_INTERVAL_MS = 0
    alice, bob, carol = make_user(), make_user(), make_user()
    alices = open_position(alice, side="long")
    bobs = open_position(bob, side="short")
    outbox_dispatch()  # the fills' ledger events go out before anyone listens
    with (
        ws_connect(ws_server, token=make_token(alice)) as a,
        ws_connect(ws_server, token=make_token(bob)) as b,
        ws_connect(ws_server, token=make_token(carol)) as c,
    ):
        for ws in (a, b, c):
            subscribe(ws, "positions")

        # when the price moves
        price_set("BTC-USD", D("61000"))

        # then each owner gets their position marked at the new price
        mark = recv(a)
        assert (mark["type"], mark["channel"], mark["data"]["reason"]) == ("position_update", "positions", "mark")
        data = mark["data"]
        assert data["position_id"] == alices.pk and data["pair"] == "BTC-USD" and data["side"] == "long"
        assert D(data["current_price"]) == D("61000")
        assert D(data["entry_price"]) == alices.avg_entry_price and D(data["size"]) == alices.quantity
        assert D(data["unrealized_pnl"]) == expected_pnl(alices, D("61000")) > 0
        assert D(data["collateral"]) == alices.margin and data["provider"] == "paper"

        short = recv(b)["data"]
        assert short["position_id"] == bobs.pk and D(short["current_price"]) == D("61000")
        assert D(short["unrealized_pnl"]) == expected_pnl(bobs, D("61000")) < 0

        # and nobody gets anyone else's: the next thing each receives is their own marker
        assert marker(a, alice)["data"]["aggregateId"] == f"marker-{alice.pk}"
        assert marker(b, bob)["data"]["aggregateId"] == f"marker-{bob.pk}"
        assert marker(c, carol)["data"]["aggregateId"] == f"marker-{carol.pk}"

        # a later move is pushed again, with the PnL at that price
        price_set("BTC-USD", D("59000"))
        again = recv(a)["data"]
        assert D(again["current_price"]) == D("59000")
        assert D(again["unrealized_pnl"]) == expected_pnl(alices, D("59000")) < 0


@pytest.mark.ledger_drift  # made-up position events (no rows): a test of the websocket transport
@pytest.mark.usefixtures("markets", "armed")
def test_marks_of_a_hot_asset_are_throttled_per_asset(ws_server, make_user, settings):
    settings.REALTIME_MARKS_INTERVAL_MS = 60_000
    alice = make_user()
    open_position(alice, asset="BTC-USD")
    open_position(alice, asset="ETH-USD", reference_price=D("3000"))
    outbox_dispatch()
    forget_marks_window("BTC-USD")
    forget_marks_window("ETH-USD")
    with ws_connect(ws_server, token=make_token(alice)) as ws:
        subscribe(ws, "positions")

        price_set("BTC-USD", D("61000"))
        assert D(recv(ws)["data"]["current_price"]) == D("61000")
        # a second BTC tick inside the window is not pushed
        price_set("BTC-USD", D("61500"))
        # another asset has a window of its own
        price_set("ETH-USD", D("3100"))
        eth = recv(ws)["data"]
        assert (eth["pair"], D(eth["current_price"])) == ("ETH-USD", D("3100"))
        assert marker(ws, alice)["data"]["aggregateId"] == f"marker-{alice.pk}"

        # the window over, the next tick is pushed
        forget_marks_window("BTC-USD")
        price_set("BTC-USD", D("62000"))
        assert D(recv(ws)["data"]["current_price"]) == D("62000")


@pytest.mark.django_db
def test_marks_read_the_assets_open_positions_at_the_ticks_venue_in_one_query(make_user, django_assert_num_queries):
    alice, bob = make_user(), make_user()
    common = {"provider": "paper", "asset": "BTC-USD", "margin": D(100), "leverage": D(10)}
    a_long = Position.objects.create(user=alice, side="long", quantity=D("0.5"), avg_entry_price=D(60000), **common)
    a_short = Position.objects.create(
        user=alice, side="short", quantity=D("0.25"), avg_entry_price=D(62000), **{**common, "provider": "ostium"}
    )
    b_long = Position.objects.create(user=bob, side="long", quantity=D("1"), avg_entry_price=D(50000), **common)
    Position.objects.create(user=bob, side="short", status="closed", **common)  # closed: no mark
    Position.objects.create(user=bob, side="long", quantity=D(2), avg_entry_price=D(3000), asset="ETH-USD")
    ledger_events_for(*Position.objects.all())
    at = datetime.now(UTC)

    with django_assert_num_queries(1):
        marks = position_marks(venue="paper", asset="BTC-USD", price=D(61000), at=at)

    assert sorted(marks) == [alice.pk, bob.pk]
    pnl = {m["position_id"]: m["unrealized_pnl"] for ms in marks.values() for m in ms}
    # the Ostium position is not marked at the paper venue's price
    assert pnl == {a_long.pk: D("500.00000000"), b_long.pk: D("11000.00000000")}
    assert {m["position_id"] for m in marks[bob.pk]} == {b_long.pk}
    assert all(m["current_price"] == D(61000) and m["updated_at"] == at for ms in marks.values() for m in ms)
    # it is marked at Ostium's
    ostium = position_marks(venue="ostium", asset="BTC-USD", price=D(61000), at=at)
    assert {m["position_id"]: m["unrealized_pnl"] for ms in ostium.values() for m in ms} == {
        a_short.pk: D("250.00000000")
    }


@pytest.mark.django_db
def test_a_tick_inside_the_window_or_with_the_listener_off_reads_nothing(
    make_user, settings, django_assert_num_queries
):
    Position.objects.create(user=make_user(), provider="paper", asset="SOL-USD", side="long", quantity=D(1))
    ledger_events_for(*Position.objects.all())
    tick = PriceTick(symbol="SOL-USD", price=D(150), timestamp=datetime.now(UTC), source="test", venue="paper")
    settings.REALTIME_MARKS_INTERVAL_MS = 60_000
    forget_marks_window("SOL-USD")
    with django_assert_num_queries(1):
        position_marks_on_tick(tick)
    with django_assert_num_queries(0):
        position_marks_on_tick(tick)

    forget_marks_window("SOL-USD")
    settings.REALTIME_MARKS_TICK_LISTENER = False
    with django_assert_num_queries(0):
        position_marks_on_tick(tick)
