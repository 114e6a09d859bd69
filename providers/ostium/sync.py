"""The Ostium poller (Beat): settles two-phase market orders and resting limit/stop opens,
and notices what the venue did on its own, as VenueEvents for the trading core's listener.

- pending market orders → ORDER_FILLED (fill attached) / ORDER_CANCELLED (reason);
  an order pending longer than OSTIUM_ORDER_TIMEOUT_SECONDS is timed out at the venue
  once Ostium's own timeout (in blocks) has passed: openTradeMarketTimeout returns the
  collateral, closeTradeMarketTimeout(retry=False) drops the close (the trade stays open);
  either way the order ends CANCELLED with code ORDER_TIMEOUT (never retried: the keeper
  that did not answer would not answer a retry either; the user may send it again). These
  writes go last in a round, after every read; the first one the signer cannot take (busy
  with another write, or the chain unavailable) leaves the rest to the next round;
- resting limit/stop opens → ORDER_FILLED once a keeper trigger opened the trade,
  ORDER_CANCELLED (VENUE_CANCELLED) once the limit was cancelled at the venue; each is read
  at most every OSTIUM_LIMIT_POLL_SECONDS (a read costs a few RPC calls);
- open trades closed by Ostium (native TP/SL, liquidation, anything not ours) →
  POSITION_CLOSED / POSITION_LIQUIDATED with the exit price and the realised PnL
  (USDC sent to the trader minus the collateral that was at stake), carrying the idempotency
  key of the open. A trade is watched from its fill on, even one already closed when the fill
  was read (an SL hit right after it), and the close is booked whatever arrives first: a close
  whose open the desk has not booked yet books that open first (`trading.services.venue_events`).
Listeners are idempotent, so a re-delivered event changes nothing; an event lost to a crash
after the row was updated is caught up by `execution_reconcile`, which asks
`get_order_status` (it re-reads the same outcome from the subgraph).

The timeouts are writes: they are sent only while the component that writes is armed
(`executor:ostium` in-process, `signer:ostium` in the signer service); the reads go on regardless.

It runs where the keys are: `ostium_sync_run` (the Beat task) calls `ostium_sync` in-process,
or, with OSTIUM_SERVICE_BASE_URL set, asks the signer service to run one round
(`POST orders/sync`), which calls `ostium_sync` in the service's environment. One round at a
time per network (a Redis lock): overlapping Beat runs skip.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from configuration.runtime import provider_enabled
from providers.events import venue_event_emit
from providers.interface import ErrorCode, ExecStatus, Fill, VenueEvent, VenueEventKind, VenueException

logger = logging.getLogger("tradedesk.providers.ostium.sync")

E18 = Decimal(10) ** 18
E6 = Decimal(10) ** 6


def _venue():
    """The in-process adapter (the sync job runs where the keys are: with the service's
    settings when the signer service is a separate process)."""
    from providers.ostium.service import _venue as service_venue

    return service_venue()


def ostium_sync_run() -> dict[str, int]:
    """The Beat door: one round where the keys are (in-process, or in the signer service)."""
    if settings.OSTIUM_SERVICE_BASE_URL and provider_enabled("ostium"):
        from providers.ostium.service_client import OstiumServiceVenue

        return OstiumServiceVenue().sync()
    return ostium_sync()


def ostium_sync(*, limit: int = 200, timeouts: bool | None = None) -> dict[str, int]:
    """One round of the poller, here (this process must hold the keys). Returns counts. The
    market-order timeouts it would send are writes: sent only when `timeouts` (default: while
    `executor:ostium` is armed; the signer service passes its own `signer:ostium` state)."""
    if not provider_enabled("ostium") or settings.OSTIUM_SERVICE_BASE_URL:
        return {"skipped": 1}  # disabled, or the signer service (which holds the keys) runs it
    if timeouts is None:
        from providers.ostium.write_gate import write_refusal

        timeouts = write_refusal("executor:ostium", trading_states=False) is None
    from config.cache import cache_redis

    network = str(settings.OSTIUM_NETWORK).lower()
    lock = cache_redis().lock(f"ostium:sync:{network}", timeout=300, thread_local=False)
    if not lock.acquire(blocking=False):
        return {"busy": 1}  # another round is running
    try:
        return _round(network, limit, timeouts)
    finally:
        with contextlib.suppress(Exception):
            lock.release()


def _round(network: str, limit: int, timeouts: bool) -> dict[str, int]:
    from providers.models import OstiumOrder

    counts = {"filled": 0, "cancelled": 0, "closed": 0, "timed_out": 0, "errors": 0}
    S = OstiumOrder.Status
    pending = OstiumOrder.objects.filter(
        network=network, status__in=[S.PENDING, S.SENDING, S.UNKNOWN], action__in=["open", "close"]
    )
    open_rows = OstiumOrder.objects.filter(network=network, action="open", status=S.EXECUTED, trade_open=True).exclude(
        trade_id=""
    )
    if not pending.exists() and not open_rows.exists():
        return counts  # nothing to watch: no network access at all
    venue = _venue()
    due = []  # market orders to time out: sent last, after every read of the round
    for row in pending.order_by("id")[:limit]:
        if _limit_read_lately(row):
            continue
        try:
            if _settle(venue, row, counts):
                due.append(row)
        except Exception:
            counts["errors"] += 1
            logger.exception("ostium order could not be settled", extra={"ostium_order": row.pk})
    for row in open_rows.order_by("id")[:limit]:
        try:
            if _venue_close(venue, row):
                counts["closed"] += 1
        except Exception:
            counts["errors"] += 1
            logger.exception("ostium trade could not be checked", extra={"ostium_order": row.pk})
    for row in due if timeouts else []:
        try:
            if not _time_out(venue, row, counts):
                break
        except Exception:
            counts["errors"] += 1
            logger.exception("ostium market timeout failed", extra={"ostium_order": row.pk})
    return counts


def _limit_read_lately(row) -> bool:
    """A resting limit read less than OSTIUM_LIMIT_POLL_SECONDS ago waits for a later round."""
    interval = settings.OSTIUM_LIMIT_POLL_SECONDS
    if interval <= 0 or row.status != row.Status.PENDING or not row.venue_order_id.startswith("limit:"):
        return False
    return time.time() - float((row.limit_scan or {}).get("read_at", 0)) < interval


def _settle(venue, row, counts) -> bool:
    """Settle one pending row from the venue; True: a market order due to be timed out."""
    before = row.status
    result = venue.order_outcome(row)
    status = ExecStatus(result.status)
    if status == ExecStatus.FILLED and before != row.Status.EXECUTED:
        venue_event_emit(
            VenueEvent(
                venue="ostium",
                kind=VenueEventKind.ORDER_FILLED,
                account=row.account,
                symbol=row.symbol,
                pair_id=row.pair_id,
                trade_index=result.trade_index or row.trade_index,
                idempotency_key=row.idempotency_key,
                venue_order_id=row.venue_order_id,
                fill=result.fill,
                occurred_at=result.fill.timestamp if result.fill else None,
            )
        )
        counts["filled"] += 1
        if row.action == "close":
            _mark_trade_closed_if_done(venue, row)
    elif status == ExecStatus.CANCELLED:
        _emit_cancelled(
            row,
            reason=result.error.message if result.error else "cancelled",
            code=str(result.error.code) if result.error else "",
        )
        counts["cancelled"] += 1
    return (
        status == ExecStatus.PENDING
        and row.order_type == "market"
        and bool(row.venue_order_id)
        and row.created_at < timezone.now() - timedelta(seconds=settings.OSTIUM_ORDER_TIMEOUT_SECONDS)
    )


def _emit_cancelled(row, *, reason: str, code: str) -> None:
    venue_event_emit(
        VenueEvent(
            venue="ostium",
            kind=VenueEventKind.ORDER_CANCELLED,
            account=row.account,
            symbol=row.symbol,
            pair_id=row.pair_id,
            idempotency_key=row.idempotency_key,
            venue_order_id=row.venue_order_id,
            details={"reason": reason, "code": code},
        )
    )


# A timeout write that met one of these (the signer busy with another write, the chain or its
# breaker down) would meet it again for the next order: the rest wait for the next round.
_WRITES_UNAVAILABLE = frozenset({ErrorCode.RPC_UNAVAILABLE, ErrorCode.RPC_TIMEOUT, ErrorCode.CIRCUIT_OPEN})


def _time_out(venue, row, counts) -> bool:
    """Time out a market order the keeper never executed (once Ostium's own timeout in blocks
    has passed: the adapter checks first). False: writes are unavailable for now."""
    outcome = venue.cancel_order(account=row.account, venue_order_id=row.venue_order_id, delegated=row.delegated)
    if ExecStatus(outcome.status) == ExecStatus.CANCELLED:
        what = "collateral returned" if row.action == "open" else "the trade stays open"
        _emit_cancelled(
            row,
            reason=f"not executed by Ostium's keeper in time; timed out at the venue ({what})",
            code=str(ErrorCode.ORDER_TIMEOUT),
        )
        counts["timed_out"] += 1
        return True
    if outcome.error is None or outcome.error.code == ErrorCode.ORDER_TIMEOUT:
        return True  # Ostium's own timeout has not passed yet: nothing was sent
    logger.warning(
        "ostium market timeout not sent",
        extra={"ostium_order": row.pk, "code": str(outcome.error.code), "error": outcome.error.message},
    )
    return outcome.error.code not in _WRITES_UNAVAILABLE


def _mark_trade_closed_if_done(venue, close_row) -> None:
    from providers.models import OstiumOrder

    if close_row.fraction < 1:
        return
    OstiumOrder.objects.filter(
        network=close_row.network,
        action="open",
        account=close_row.account,
        pair_id=close_row.pair_id,
        trade_index=close_row.trade_index,
        trade_open=True,
    ).update(trade_open=False)


def _venue_close(venue, row) -> bool:
    """An open trade of ours that Ostium closed by itself (TP/SL/liquidation)."""
    from providers.models import OstiumOrder

    client = venue._client(delegated=row.delegated)
    try:
        trade = venue._read(lambda: client.trade(row.trade_id), during="trade")
    except VenueException:
        return False
    if not trade or trade.get("isOpen", True):
        return False
    ours = set(
        OstiumOrder.objects.filter(network=row.network, action="close", trade_id=row.trade_id).values_list(
            "venue_order_id", flat=True
        )
    )
    closing = venue._read(lambda: client.closing_orders(row.trade_id), during="closing_orders")
    foreign = [o for o in closing if str(o["id"]) not in ours and not o.get("isCancelled")]
    row.trade_open = False
    row.save(update_fields=["trade_open", "updated_at"])
    if not foreign:
        return False  # our own close settled it (its ORDER_FILLED carried the fill)
    order = foreign[-1]
    kind = (
        VenueEventKind.POSITION_LIQUIDATED
        if order.get("orderType") == "Liquidation"
        else VenueEventKind.POSITION_CLOSED
    )
    reason = {"TakeProfit": "take_profit", "StopLoss": "stop_loss", "Liquidation": "liquidation"}.get(
        order.get("orderType"), "venue"
    )
    price = Decimal(str(order.get("price") or 0)) / E18
    sent = Decimal(str(order.get("amountSentToTrader") or 0)) / E6
    at_stake = Decimal(str(trade.get("collateral") or 0)) / E6
    fee = sum(
        (Decimal(str(order.get(k) or 0)) / E6 for k in ("devFee", "vaultFee", "oracleFee", "liquidationFee")),
        Decimal(0),
    )
    executed = order.get("executedAt")
    when = datetime.fromtimestamp(int(executed), tz=UTC) if executed else timezone.now()
    venue_event_emit(
        VenueEvent(
            venue="ostium",
            kind=kind,
            account=row.account,
            symbol=row.symbol,
            pair_id=row.pair_id,
            trade_index=row.trade_index,
            idempotency_key=row.idempotency_key,  # the open's: the desk books it first if it has not yet
            venue_order_id=str(order["id"]),
            fill=Fill(
                price=price,
                size=Decimal(0),
                notional=Decimal(0),
                fee=fee,
                slippage=Decimal(0),
                price_source="ostium",
                timestamp=when,
                realized_pnl=sent + fee - at_stake,
            ),
            details={"reason": reason, "order_type": order.get("orderType"), "amount_sent": str(sent)},
            occurred_at=when,
        )
    )
    return True
