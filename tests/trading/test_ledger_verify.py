"""`manage.py ledger_verify`: after real flows (open, partial close, close, funding, a liquidation,
protective orders, control and trading states) the ledger re-derives every row; a row changed
behind the ledger's back (raw SQL) is caught, named, and fails the command."""

from datetime import timedelta
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.trading.conftest import make_order
from trading.models import ControlState, Order, Position, Trade
from trading.services import execution
from trading.services.control import control_arm, control_disarm, control_pause, trading_state_set
from trading.services.ledger_verify import ledger_verify

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("ledger_verify", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue() + err.getvalue()


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cur:
        cur.execute(statement, params)


@pytest.fixture
def flows(markets, trader, armed, settings):
    """A desk that traded: a trade opened with a stop, half closed, closed; another opened,
    charged funding and liquidated; control and trading states changed."""
    settings.PROTECTIVE_TICK_LISTENER = False
    from providers.events import venue_event_emit
    from providers.interface import VenueEvent, VenueEventKind
    from providers.prices import price_set

    first = make_order(trader, stop_price=D("50000"))
    execution.order_execute(order_id=first.pk)
    trade = Trade.objects.get(orders=first)
    price_set("BTC-USD", D("61000"))
    half = make_order(trader, reduce_only=True, trade=trade, close_fraction=D("0.5"), collateral=D("0"))
    execution.order_execute(order_id=half.pk)
    rest = make_order(trader, reduce_only=True, trade=trade, close_fraction=D("1"), collateral=D("0"))
    execution.order_execute(order_id=rest.pk)

    second = make_order(trader, leverage=D("50"))
    execution.order_execute(order_id=second.pk)
    levered = Trade.objects.get(orders=second)
    venue_event_emit(
        VenueEvent(
            venue="paper",
            kind=VenueEventKind.FUNDING_CHARGED,
            account=f"user:{trader.pk}",
            symbol="BTC-USD",
            pair_id="BTC-USD",
            trade_index=levered.trade_index,
            details={"amount": D("1.25"), "charge_id": 7},
        )
    )
    price_set("BTC-USD", D("58000"))  # far below the 50x long's liquidation price

    control_pause(component="executor:paper", actor="test", reason="a pause")
    control_disarm(component="executor:paper", actor="test", reason="done")
    control_arm(component="executor:paper", actor="test", reason="again")
    trading_state_set(scope_type="instrument", scope_key="ETH-USD", state="REDUCE_ONLY", actor="test", reason="r")
    return {"first": first, "trade": trade, "levered": levered}


def test_the_ledger_rederives_every_row_after_the_flows(flows):
    assert Trade.objects.get(pk=flows["levered"].pk).status == "closed"  # the flows did happen
    report = ledger_verify()
    assert report.ok, [str(m) for m in report.mismatches]
    assert report.checked["order"] >= 5 and report.checked["trade"] == 2 and report.checked["position"] >= 1
    assert report.checked["control_state"] >= 1 and report.checked["trading_state"] == 1

    code, text = _run()
    assert code == 0 and "no mismatch" in text


@pytest.mark.ledger_drift  # corrupts rows on purpose (flushed after it)
def test_a_corrupted_order_status_is_caught(flows):
    order = flows["first"]
    _sql("UPDATE trading_order SET status = 'CANCELLED' WHERE id = %s", [order.pk])

    code, text = _run()

    assert code == 1
    assert f"MISMATCH order {order.pk}: status is 'CANCELLED' in the row, 'FILLED' by the ledger" in text
    assert "1 mismatch(es)" in text


@pytest.mark.ledger_drift  # corrupts rows on purpose (flushed after it)
def test_corrupted_trade_position_and_control_rows_are_each_caught(flows):
    trade = flows["trade"]
    position = Position.objects.get(trades=trade)
    _sql("UPDATE trading_trade SET realized_pnl = realized_pnl + 1 WHERE id = %s", [trade.pk])
    _sql("UPDATE trading_position SET quantity = quantity + 0.5 WHERE id = %s", [position.pk])
    _sql("UPDATE trading_controlstate SET armed = false WHERE component = %s", ["executor:paper"])

    report = ledger_verify()

    found = {(m.kind, m.key, m.field) for m in report.mismatches}
    assert found == {
        ("trade", str(trade.pk), "realized_pnl"),
        ("position", str(position.pk), "quantity"),
        ("control_state", "executor:paper", "armed"),
    }


@pytest.mark.ledger_drift  # corrupts rows on purpose (flushed after it)
def test_a_row_the_ledger_never_saw_is_caught(flows, trader):
    # an order inserted behind the ledger's back (no order.accepted)
    ghost = Order(user=trader, provider="paper", asset="BTC-USD", order_type="MARKET", side="long")
    ghost.save()

    code, text = _run()

    assert code == 1 and f"MISMATCH order {ghost.pk}: events is 'a row'" in text


@pytest.mark.ledger_drift  # corrupts rows on purpose (flushed after it)
def test_since_checks_only_the_aggregates_touched_since(flows):
    order = flows["first"]
    _sql("UPDATE trading_order SET status = 'CANCELLED' WHERE id = %s", [order.pk])
    later = timezone.now() + timedelta(seconds=1)

    assert ledger_verify(since=later).ok  # nothing happened since: nothing checked
    assert not ledger_verify(since=timezone.now() - timedelta(hours=1)).ok
    code, text = _run("--since", "1h")
    assert code == 1 and f"order {order.pk}" in text


@pytest.mark.ledger_drift  # corrupts rows on purpose (flushed after it)
def test_the_daily_job_sets_the_mismatch_metric_the_alert_reads(flows, client, settings):
    from tests.trading.test_metrics import TOKEN, samples, value
    from trading.tasks import ledger_verify_task

    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert ledger_verify_task() == 0
    assert value(samples(client.get("/metrics", **auth).content.decode()), "tradedesk_ledger_mismatches") == 0

    _sql("UPDATE trading_order SET status = 'CANCELLED' WHERE id = %s", [flows["first"].pk])
    assert ledger_verify_task() == 1

    scraped = samples(client.get("/metrics", **auth).content.decode())
    assert value(scraped, "tradedesk_ledger_mismatches") == 1
    assert value(scraped, "tradedesk_ledger_verify_last_run_timestamp_seconds") > 0
    assert ControlState.objects.get(component="executor:paper").armed
