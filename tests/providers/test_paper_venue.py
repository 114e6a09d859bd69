"""The paper venue: fills, closes, resting entries, rejections, idempotency, restarts.

Market parameters are the seeded BTC-USD defaults unless a test says otherwise:
spread 0.0002 (half = 0.0001), impact coefficient 0.5, depth 10,000,000, max slippage 0.01,
taker fee 0.0005, maker fee 0.0002, maintenance margin rate 0.005. Accounts start at 100,000 USD.
"""

import dataclasses
import threading
from decimal import Decimal
from decimal import Decimal as D

import pytest
from django.db import connection

from providers.interface import ErrorCode, ExecStatus, Side, VenueAdapter, VenueEventKind, VenueOrderKind
from providers.models import PaperAccount, PaperFill, PaperMarket, PaperOrder, PaperPosition
from providers.paper.engine import paper_account_set_balance
from providers.prices import price_set
from providers.registry import get_venue, venues_reset
from tests.providers.helpers import ACCOUNT, close_request, frictionless, key, open_request

pytestmark = pytest.mark.usefixtures("paper_markets")


def balance(name: str = ACCOUNT) -> Decimal:
    return PaperAccount.objects.get(name=name).balance


@pytest.fixture
def venue() -> VenueAdapter:
    return get_venue("paper")


def test_the_paper_venue_implements_the_adapter_protocol(venue):
    assert isinstance(venue, VenueAdapter)
    assert venue.name == "paper"
    symbols = {m.symbol for m in venue.get_pairs()}
    assert {"BTC-USD", "ETH-USD", "EUR-USD", "XAU-USD"} <= symbols
    btc = next(m for m in venue.get_pairs() if m.symbol == "BTC-USD")
    assert (btc.category, btc.max_leverage, btc.taker_fee_rate) == ("crypto", Decimal("50"), Decimal("0.0005"))
    eur = next(m for m in venue.get_pairs() if m.symbol == "EUR-USD")
    assert eur.max_leverage == Decimal("100")


def test_market_long_fills_at_mid_plus_half_spread_plus_size_impact_and_pays_taker_fee(venue):
    # given BTC at mid 50,000
    price_set("BTC-USD", Decimal("50000"))
    # when a 1,000 USD collateral x10 long is opened
    result = venue.open_trade(open_request(collateral="1000", leverage="10"))
    # then:
    #   notional = 1000 × 10                       = 10,000
    #   impact   = 0.5 × 10,000 / 10,000,000       = 0.0005
    #   price    = 50,000 × (1 + 0.0001 + 0.0005)  = 50,030
    #   size     = 10,000 / 50,030                 = 0.199880071956825904 (18 dp, rounded down)
    #   fee      = 10,000 × 0.0005                 = 5
    #   balance  = 100,000 − 1,000 − 5             = 98,995
    assert result.status == ExecStatus.FILLED, result.error
    fill = result.fill
    assert fill.price == Decimal("50030")
    assert fill.size == Decimal("0.199880071956825904")
    assert fill.notional == Decimal("10000")
    assert fill.fee == Decimal("5")
    assert fill.slippage == Decimal("0.0006")
    assert fill.price_source == "manual"
    assert fill.is_maker is False
    assert balance() == Decimal("98995")
    row = PaperFill.objects.get()
    assert (row.reference_mid, row.half_spread, row.impact) == (Decimal("50000"), Decimal("0.0001"), Decimal("0.0005"))
    [position] = venue.get_positions(account=ACCOUNT)
    assert position.trade_index == result.trade_index
    assert (position.side, position.entry_price, position.collateral) == (Side.LONG, Decimal("50030"), Decimal("1000"))


def test_market_short_fills_below_mid_and_large_size_impact_is_capped(venue):
    # given BTC at mid 50,000
    price_set("BTC-USD", Decimal("50000"))
    # when a 50,000 x50 short is opened (notional 2,500,000)
    result = venue.open_trade(open_request(side=Side.SHORT, collateral="50000", leverage="50"))
    # then impact = 0.5 × 2,500,000 / 10,000,000 = 0.125, capped at max slippage 0.01;
    #   price = 50,000 × (1 − 0.0001 − 0.01) = 49,495
    #   fee   = 2,500,000 × 0.0005 = 1,250; balance = 100,000 − 50,000 − 1,250 = 48,750
    assert result.status == ExecStatus.FILLED, result.error
    assert result.fill.price == Decimal("49495")
    assert result.fill.slippage == Decimal("0.0101")
    assert result.fill.fee == Decimal("1250")
    assert balance() == Decimal("48750")


def test_fill_further_than_max_slippage_from_the_reference_is_rejected(venue):
    price_set("BTC-USD", Decimal("50000"))
    # 50,030 is 0.0006 above mid: a 0.0005 limit refuses it
    result = venue.open_trade(open_request(max_slippage=Decimal("0.0005")))
    assert result.status == ExecStatus.REJECTED
    assert result.error.code == ErrorCode.SLIPPAGE_EXCEEDED
    assert not PaperPosition.objects.exists()


def test_partial_close_realises_pnl_on_the_closed_share_only(venue):
    # given a frictionless BTC (fills at mid ± half spread only: keep the spread, drop impact)
    PaperMarket.objects.filter(symbol="BTC-USD").update(impact_coefficient=Decimal("0"))
    price_set("BTC-USD", Decimal("50000"))
    # open: notional 1000.1 × 10 = 10,001; price 50,000 × 1.0001 = 50,005; size 10,001 / 50,005 = 0.2
    #       fee 10,001 × 0.0005 = 5.0005; balance 100,000 − 1,000.1 − 5.0005 = 98,994.8995
    opened = venue.open_trade(open_request(collateral="1000.1", leverage="10"))
    assert opened.fill.size == Decimal("0.2")
    assert balance() == Decimal("98994.8995")
    # when a quarter is closed at mid 52,000
    price_set("BTC-USD", Decimal("52000"))
    closed = venue.close_trade(close_request(trade_index=opened.trade_index, fraction="0.25"))
    # then closed size 0.05; exit 52,000 × (1 − 0.0001) = 51,994.8
    #   pnl      = 0.05 × (51,994.8 − 50,005) = 99.49
    #   fee      = 0.05 × 51,994.8 × 0.0005 = 2,599.74 × 0.0005 = 1.29987
    #   returned = 1,000.1 × 0.25 + 99.49 − 1.29987 = 250.025 + 98.19013 = 348.21513
    #   balance  = 98,994.8995 + 348.21513 = 99,343.11463
    assert closed.status == ExecStatus.FILLED, closed.error
    assert closed.fill.size == Decimal("0.05")
    assert closed.fill.price == Decimal("51994.8")
    assert closed.fill.realized_pnl == Decimal("99.49")
    assert closed.fill.fee == Decimal("1.29987")
    assert balance() == Decimal("99343.11463")
    [position] = venue.get_positions(account=ACCOUNT)
    assert (position.size, position.collateral) == (Decimal("0.15"), Decimal("750.075"))
    # and closing the rest at the same mid closes the position
    rest = venue.close_trade(close_request(trade_index=opened.trade_index))
    # pnl 0.15 × 1,989.8 = 298.47; fee 0.15 × 51,994.8 × 0.0005 = 3.89961
    # returned 750.075 + 298.47 − 3.89961 = 1,044.64539; balance 100,387.76002
    assert rest.fill.realized_pnl == Decimal("298.47")
    assert balance() == Decimal("100387.76002")
    assert venue.get_positions(account=ACCOUNT) == []
    assert PaperPosition.objects.get().status == PaperPosition.Status.CLOSED


def test_a_loss_bigger_than_the_margin_never_takes_more_than_the_margin(venue):
    frictionless()
    price_set("BTC-USD", Decimal("50000"))
    opened = venue.open_trade(open_request(collateral="1000", leverage="10"))  # size 0.2, fee 5
    # move far below the liquidation price without a tick reaching the book (direct state)
    from providers.feeds.paper import PaperFeed

    PaperFeed.price_store("BTC-USD", Decimal("40000"))
    from providers.prices import price_cache_put

    price_cache_put(PaperFeed().get_price("BTC-USD"))
    closed = venue.close_trade(close_request(trade_index=opened.trade_index))
    # pnl 0.2 × (40,000 − 50,000) = −2,000 > margin 1,000: nothing comes back
    assert closed.fill.realized_pnl == Decimal("-2000")
    assert balance() == Decimal("98995")


def test_resting_limit_fills_as_maker_only_when_the_price_crosses(
    venue, venue_events, django_capture_on_commit_callbacks
):
    # given BTC at 50,000 and a long limit at 49,000 (1,000 x10)
    price_set("BTC-USD", Decimal("50000"))
    placed = venue.open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("49000")))
    # reserve = collateral + maker fee = 1,000 + 10,000 × 0.0002 = 1,002
    assert placed.status == ExecStatus.PENDING
    assert balance() == Decimal("98998")
    assert venue.get_order_status(idempotency_key=placed.raw_request["idempotency_key"]).status == ExecStatus.PENDING
    # when the price comes within a cent but does not cross
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("49000.01"))
    assert venue.get_positions(account=ACCOUNT) == []
    assert venue_events == []
    # and then touches the limit
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("49000"))
    # then it fills at the limit price as a maker: size 10,000 / 49,000 = 0.204081632653061224; fee 2
    [event] = venue_events
    assert event.kind == VenueEventKind.ORDER_FILLED
    assert event.venue_order_id == placed.venue_order_id
    assert event.idempotency_key == placed.raw_request["idempotency_key"]
    assert event.fill.price == Decimal("49000")
    assert event.fill.is_maker is True
    assert event.fill.fee == Decimal("2")
    assert event.fill.size == Decimal("0.204081632653061224")
    assert balance() == Decimal("98998")  # the reserve became margin + fee
    status = venue.get_order_status(idempotency_key=placed.raw_request["idempotency_key"])
    assert status.status == ExecStatus.FILLED
    assert status.trade_index == event.trade_index
    # and a later tick does not fill it again
    with django_capture_on_commit_callbacks(execute=True):
        price_set("BTC-USD", Decimal("48000"))
    assert len(venue_events) == 1
    assert PaperPosition.objects.count() == 1


def test_resting_short_limit_gapped_through_fills_at_its_limit(venue):
    price_set("BTC-USD", Decimal("50000"))
    placed = venue.open_trade(open_request(side=Side.SHORT, kind=VenueOrderKind.LIMIT, limit_price=Decimal("51000")))
    assert placed.status == ExecStatus.PENDING
    price_set("BTC-USD", Decimal("52500"))  # jumps over the limit
    [position] = venue.get_positions(account=ACCOUNT)
    assert position.entry_price == Decimal("51000")
    assert position.side == Side.SHORT


def test_stop_entry_fills_at_market_when_triggered(venue):
    price_set("BTC-USD", Decimal("50000"))
    placed = venue.open_trade(open_request(kind=VenueOrderKind.STOP, stop_price=Decimal("51000")))
    # reserve = 1,000 + 10,000 × 0.0005 (taker) = 1,005
    assert placed.status == ExecStatus.PENDING
    assert balance() == Decimal("98995")
    price_set("BTC-USD", Decimal("50999.99"))
    assert venue.get_positions(account=ACCOUNT) == []
    price_set("BTC-USD", Decimal("51000"))
    # taker fill: 51,000 × (1 + 0.0001 + 0.0005) = 51,030.6
    [position] = venue.get_positions(account=ACCOUNT)
    assert position.entry_price == Decimal("51030.6")
    assert balance() == Decimal("98995")


def test_a_limit_already_marketable_executes_now_as_taker(venue):
    price_set("BTC-USD", Decimal("50000"))
    result = venue.open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("50100")))
    assert result.status == ExecStatus.FILLED
    assert result.fill.price == Decimal("50030")
    assert result.fill.is_maker is False


def test_cancel_releases_the_reserve_and_a_cancelled_order_never_fills(venue):
    price_set("BTC-USD", Decimal("50000"))
    placed = venue.open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("49000")))
    cancelled = venue.cancel_order(account=ACCOUNT, venue_order_id=placed.venue_order_id)
    assert cancelled.status == ExecStatus.CANCELLED
    assert balance() == Decimal("100000")
    again = venue.cancel_order(account=ACCOUNT, venue_order_id=placed.venue_order_id)
    assert again.status == ExecStatus.CANCELLED
    assert balance() == Decimal("100000")
    price_set("BTC-USD", Decimal("48000"))
    assert venue.get_positions(account=ACCOUNT) == []
    other = venue.cancel_order(account="user:2", venue_order_id=placed.venue_order_id)
    assert other.error.code == ErrorCode.ORDER_NOT_FOUND


def test_insufficient_balance_is_rejected_and_changes_nothing(venue):
    price_set("BTC-USD", Decimal("50000"))
    paper_account_set_balance(name=ACCOUNT, balance=Decimal("1004.99"))  # needs 1,000 + fee 5
    result = venue.open_trade(open_request(collateral="1000", leverage="10"))
    assert result.status == ExecStatus.REJECTED
    assert result.error.code == ErrorCode.INSUFFICIENT_BALANCE
    assert Decimal(result.error.details["required"]) == Decimal("1005")
    assert balance() == Decimal("1004.99")
    assert not PaperPosition.objects.exists()
    assert venue.get_order_status(idempotency_key=result.raw_request["idempotency_key"]).status == ExecStatus.REJECTED


@pytest.mark.parametrize("leverage", ["0.5", "50.01", "100"])
def test_leverage_out_of_the_market_range_is_rejected(venue, leverage):
    price_set("BTC-USD", Decimal("50000"))
    result = venue.open_trade(open_request(leverage=leverage))
    assert result.status == ExecStatus.REJECTED
    assert result.error.code == ErrorCode.LEVERAGE_OUT_OF_RANGE
    assert not PaperPosition.objects.exists()


def test_the_highest_allowed_leverage_is_accepted(venue):
    price_set("EUR-USD", Decimal("1.08"))
    result = venue.open_trade(open_request(symbol="EUR-USD", collateral="100", leverage="100"))
    assert result.status == ExecStatus.FILLED, result.error


def test_bad_requests_are_rejected(venue):
    price_set("BTC-USD", Decimal("50000"))
    assert venue.open_trade(open_request(symbol="DOGE-USD")).error.code == ErrorCode.INVALID_MARKET
    assert venue.open_trade(open_request(collateral="0")).error.code == ErrorCode.INVALID_REQUEST
    assert venue.open_trade(open_request(kind=VenueOrderKind.LIMIT)).error.code == ErrorCode.INVALID_REQUEST
    PaperMarket.objects.filter(symbol="BTC-USD").update(is_open=False)
    assert venue.open_trade(open_request()).error.code == ErrorCode.MARKET_CLOSED
    missing = venue.close_trade(close_request(trade_index="999999"))
    assert missing.error.code == ErrorCode.POSITION_NOT_FOUND


def test_same_open_key_twice_gives_one_position_and_one_balance_change(venue):
    price_set("BTC-USD", Decimal("50000"))
    request = open_request(idempotency_key="cmd-open-1")
    first = venue.open_trade(request)
    price_set("BTC-USD", Decimal("51000"))
    second = venue.open_trade(request)
    assert second == first
    assert PaperPosition.objects.count() == 1
    assert balance() == Decimal("98995")


def test_same_close_key_twice_closes_once(venue):
    price_set("BTC-USD", Decimal("50000"))
    opened = venue.open_trade(open_request())
    request = close_request(trade_index=opened.trade_index, fraction="0.5", idempotency_key="cmd-close-1")
    first = venue.close_trade(request)
    after_first = balance()
    second = venue.close_trade(request)
    assert second == first
    assert balance() == after_first
    [position] = venue.get_positions(account=ACCOUNT)
    assert position.size == opened.fill.size / 2
    assert PaperFill.objects.filter(reason="close").count() == 1


def test_unknown_key_is_not_found(venue):
    assert venue.get_order_status(idempotency_key="never-sent").status == ExecStatus.NOT_FOUND


def test_sl_and_tp_are_recorded_on_the_position_only(venue):
    price_set("BTC-USD", Decimal("50000"))
    opened = venue.open_trade(open_request())
    assert opened.pair_id == str(PaperMarket.objects.get(symbol="BTC-USD").pair_id) and opened.pair_id.isdigit()
    sl = venue.update_sl(account=ACCOUNT, pair_id=opened.pair_id, trade_index=opened.trade_index, price=D("45000"))
    tp = venue.update_tp(account=ACCOUNT, pair_id=opened.pair_id, trade_index=opened.trade_index, price=D("60000"))
    assert (sl.status, tp.status) == (ExecStatus.FILLED, ExecStatus.FILLED)
    [position] = venue.get_positions(account=ACCOUNT)
    assert (position.stop_loss, position.take_profit) == (Decimal("45000"), Decimal("60000"))
    price_set("BTC-USD", Decimal("46000"))  # below the SL, above liquidation: the venue does not act
    assert len(venue.get_positions(account=ACCOUNT)) == 1
    wrong = venue.update_sl(account="user:2", pair_id=opened.pair_id, trade_index=opened.trade_index, price=None)
    assert wrong.error.code == ErrorCode.POSITION_NOT_FOUND
    wrong = venue.update_sl(account=ACCOUNT, pair_id=opened.pair_id + "9", trade_index=opened.trade_index, price=None)
    assert wrong.error.code == ErrorCode.POSITION_NOT_FOUND


def test_state_survives_a_restart(venue):
    # given an open position, a resting order and a processed key
    price_set("BTC-USD", Decimal("50000"))
    request = open_request(idempotency_key="cmd-restart-1")
    opened = venue.open_trade(request)
    resting = venue.open_trade(open_request(kind=VenueOrderKind.LIMIT, limit_price=Decimal("49000")))
    # when the process "restarts": adapter instances and caches are gone
    venues_reset()
    from providers.prices import price_cache_clear

    price_cache_clear()
    fresh = get_venue("paper")
    assert fresh is not venue
    # then everything is read back from the database
    [position] = fresh.get_positions(account=ACCOUNT)
    assert position.trade_index == opened.trade_index
    assert fresh.open_trade(request) == opened
    assert PaperPosition.objects.count() == 1
    assert fresh.get_order_status(idempotency_key=resting.raw_request["idempotency_key"]).status == ExecStatus.PENDING
    price_set("BTC-USD", Decimal("49000"))
    assert len(fresh.get_positions(account=ACCOUNT)) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_opens_fill_once(paper_markets):
    price_set("BTC-USD", Decimal("50000"))
    request = open_request(idempotency_key=key("race"))
    barrier = threading.Barrier(4)
    results = []

    def submit():
        try:
            barrier.wait()
            results.append(get_venue("paper").open_trade(request))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(r.status == ExecStatus.FILLED for r in results)
    assert len({r.trade_index for r in results}) == 1
    assert PaperPosition.objects.count() == 1
    assert PaperOrder.objects.count() == 1
    assert balance() == Decimal("98995")


def test_a_stale_feed_rejects_as_retryable_and_the_key_is_not_spent(venue, settings):
    # given a feed whose only price is a minute old (an outside feed that stopped updating)
    from django.utils import timezone

    from providers.interface import PriceTick

    class FrozenFeed:
        name = "frozen"

        def get_price(self, symbol):
            return PriceTick(
                symbol=symbol, price=Decimal("50000"), timestamp=timezone.now() - timezone.timedelta(seconds=60),
                source="frozen", venue="paper",
            )  # fmt: skip

        def get_prices(self, symbols):
            return {s: self.get_price(s) for s in symbols}

    from providers import registry

    paper = registry.venue_spec("paper")
    registry.venue_register("paper", dataclasses.replace(paper, price_feed=FrozenFeed))
    settings.PRICE_MAX_AGE = 10
    try:
        request = open_request(idempotency_key="cmd-stale-1")
        # when an open arrives
        result = venue.open_trade(request)
        # then it is rejected as retryable and nothing is remembered for the key
        assert result.status == ExecStatus.REJECTED
        assert (result.error.code, result.error.retryable) == (ErrorCode.PRICE_STALE, True)
        assert venue.get_order_status(idempotency_key="cmd-stale-1").status == ExecStatus.NOT_FOUND
        # and once prices are fresh again the same key goes through
        registry.venue_register("paper", paper)
        price_set("BTC-USD", Decimal("50000"))
        assert venue.open_trade(request).status == ExecStatus.FILLED
    finally:
        registry._specs.pop("paper", None)
        registry.venues_reset()


def test_the_paper_venue_numbers_its_pairs_and_references_its_fills(venue):
    # the markets carry distinct numbers; a new one takes the next free number
    numbers = list(PaperMarket.objects.values_list("pair_id", flat=True))
    assert len(set(numbers)) == len(numbers) and all(isinstance(n, int) for n in numbers)
    added = PaperMarket.objects.get(symbol="BTC-USD")
    added.pk, added.pair_id, added.symbol = None, None, "ZZZ-USD"
    added.save()
    assert added.pair_id == max(numbers) + 1
    # a fill names the pair by its number and carries a transaction-hash-shaped reference
    price_set("BTC-USD", Decimal("50000"))
    opened = venue.open_trade(open_request())
    assert opened.pair_id == str(PaperMarket.objects.get(symbol="BTC-USD").pair_id)
    assert opened.trade_index.isdigit()
    assert opened.transaction_hash.startswith("0x") and len(opened.transaction_hash) == 66
    int(opened.transaction_hash, 16)
