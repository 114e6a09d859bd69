"""Orders: the status state machine, placing (validation + risk + accepted event), closes,
cancels and SL/TP changes. The executor (`trading.services.execution`) does the venue side."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config import metrics
from config.errors import ApplicationError, ConflictError, NotFoundError
from providers.interface import VenueException
from trading import validation
from trading.lock_objects import order_lock, trade_lock, trade_waiting_orders_lock
from trading.models import Event, Order, Trade
from trading.risk import OrderIntent, risk_check
from trading.selectors import risk_snapshot_load, trade_open_for_user
from trading.services.accounts import wallet_for_order
from trading.services.idempotency import idempotency_completion_sql, idempotency_pending
from trading.services.ledger import event_record, insert_with_event
from trading.services.reference import reference_band_for

logger = logging.getLogger("tradedesk.orders")

ZERO = Decimal(0)
QUANT = Decimal("0.00000001")


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(QUANT)


def order_last_event_id(order: Order) -> str:
    return (
        Event.objects.filter(correlation_id=order.correlation_id).order_by("-id").values_list("id", flat=True).first()
        or ""
    )


def order_event(
    *, order: Order, topic: str, actor: str = "system", causation_id: str | None = None, payload=None, kick: bool = True
):
    """Write one event of an order's life: correlation `order-<id>`, causation = the causing
    event (by default the order's previous event, so the chain can be walked back). The
    payload names the order and its owner (`user_id`: realtime and webhooks route by it)."""
    return event_record(
        kick=kick,
        topic=topic,
        aggregate_type="order",
        aggregate_id=order.pk,
        correlation_id=order.correlation_id,
        causation_id=causation_id if causation_id is not None else order_last_event_id(order),
        actor=actor,
        payload={"order_id": order.pk, "user_id": order.user_id, **(payload or {})},
    )


def fill_payload(fill, source: str) -> dict:
    """What an `order.filled` / `order.partially_filled` event says of the venue's fill."""
    return {
        "source": source,
        "price": fill.price,
        "size": fill.size,
        "notional": fill.notional,
        "fee": fill.fee,
        "slippage": fill.slippage,
        "price_source": fill.price_source,
        "realized_pnl": fill.realized_pnl,
    }


def seed_fill_fields(order: Order, fill) -> dict:
    """What the seed API's `trade.executed` (webhooks) and `trade_update` (websocket) show of a
    fill, as far as the order knows it when it fills: the trade (a close's; an open's trade is
    made by this fill, and its `trade.opened` event names it), the asset, the direction, the
    entry price (an open's fill price, a close's trade entry), collateral, leverage, the venue's
    transaction hash."""
    trade = order.trade if order.is_close else None
    return {
        "trade_id": order.trade_id,
        "asset": order.asset,
        "direction": order.side,
        "entry_price": trade.entry_price if trade is not None else fill.price,
        "collateral": order.collateral,
        "leverage": order.leverage,
        "transaction_hash": order.transaction_hash,
    }


def order_snapshot(order: Order) -> dict:
    return {
        "order_id": order.pk,
        "user_id": order.user_id,
        "provider": order.provider,
        "asset": order.asset,
        "order_type": order.order_type,
        "side": order.side,
        "collateral": order.collateral,
        "leverage": order.leverage,
        "quantity": order.quantity,
        "price": order.price,
        "stop_price": order.stop_price,
        "take_profit_price": order.take_profit_price,
        "trailing_stop_distance": order.trailing_stop_distance,
        "trailing_stop_percentage": order.trailing_stop_percentage,
        "oco_stop_price": order.oco_stop_price,
        "oco_take_profit_price": order.oco_take_profit_price,
        "reduce_only": order.reduce_only,
        "close_fraction": order.close_fraction,
        "trade_id": order.trade_id,
        "parent_id": order.parent_id,
        "client_order_id": order.client_order_id,
        "reference_price": order.reference_price,
        "max_slippage": order.max_slippage,
    }


@transaction.atomic
def order_transition(
    *,
    order: Order,
    to: str,
    actor: str = "system",
    causation_id: str | None = None,
    payload: dict | None = None,
    fields: tuple[str, ...] = (),
) -> Event:
    """Move `order` to status `to` (raises IllegalTransition when the table forbids it), save
    it with `fields`, and write `order.<to>`. The caller holds the order's row lock."""
    order.check_transition(to)
    source = order.status
    order.status = to
    if to == Order.Status.TRIGGERED and not order.triggered_at:
        order.triggered_at = timezone.now()
        fields = (*fields, "triggered_at")
    order.save(update_fields=["status", "updated_at", *fields])
    body = {"from": source, "to": to}
    if order.error_code and to in (Order.Status.REJECTED, Order.Status.CANCELLED, Order.Status.UNKNOWN):
        body.update(error_code=order.error_code, error_message=order.error_message)
    body.update(payload or {})
    event = order_event(order=order, topic=f"order.{to.lower()}", actor=actor, causation_id=causation_id, payload=body)
    metrics.order_status_count(status=to, venue=order.provider)
    if to == Order.Status.FILLED and order.created_at:
        waited = ((order.filled_at or timezone.now()) - order.created_at).total_seconds()
        metrics.after_commit(lambda: metrics.FILL_LATENCY.labels(order.provider).observe(max(waited, 0.0)))
    return event


# --- placing ------------------------------------------------------------------------------------


def _route(asset: str) -> str:
    from providers.router import route

    try:
        return route(asset)
    except VenueException as exc:
        raise ApplicationError(exc.error.message, code=str(exc.error.code), status_code=400) from exc


def _market(asset: str):
    from providers.markets import market_get

    try:
        return market_get(asset)
    except VenueException as exc:
        raise ApplicationError(
            exc.error.message, code=str(exc.error.code), details={"asset": asset}, status_code=400
        ) from exc


_venue_market_cache: dict[str, tuple[float, str, object]] = {}


def venue_and_market(asset: str):
    """(venue name, Market) for `asset`; kept per process for TRADING_MARKET_CACHE_SECONDS so
    the placing path does not re-read routes and market lists on every order."""
    ttl = settings.TRADING_MARKET_CACHE_SECONDS
    hit = _venue_market_cache.get(asset)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        return hit[1], hit[2]
    venue, market = _route(asset), _market(asset)
    if ttl > 0:
        _venue_market_cache[asset] = (time.monotonic() + ttl, venue, market)
    return venue, market


def venue_market_cache_clear() -> None:
    _venue_market_cache.clear()
    _asset_cache.clear()


_asset_cache: dict[tuple[str, str], tuple[float, str]] = {}


def asset_resolve(asset: str, asset_type: str = "") -> str:
    """Our market symbol for an order's `asset` as the client wrote it: the symbol, an alias
    (BTCUSDT, BTCUSD, BTC/USD) or a base symbol narrowed by `asset_type` (a category); see
    `providers.markets.market_resolve`. Unknown: 400 INVALID_MARKET. Kept per process for
    TRADING_MARKET_CACHE_SECONDS, like `venue_and_market`."""
    from providers.markets import market_resolve

    key = (asset, asset_type)
    ttl = settings.TRADING_MARKET_CACHE_SECONDS
    hit = _asset_cache.get(key)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        return hit[1]
    try:
        symbol = market_resolve(asset, asset_type or None)
    except VenueException as exc:
        raise ApplicationError(
            exc.error.message, code=str(exc.error.code), details={"asset": asset}, status_code=400
        ) from exc
    if ttl > 0:
        _asset_cache[key] = (time.monotonic() + ttl, symbol)
    return symbol


def _price(asset: str, venue: str, prefetched: dict | None = None):
    """The price `asset` trades at on `venue` (its own feed: paper's walk, Ostium's price API)."""
    from providers.prices import price_get

    try:
        return price_get(asset, venue=venue, prefetched=prefetched)
    except VenueException as exc:
        raise ApplicationError(
            exc.error.message, code=str(exc.error.code), details={"asset": asset}, status_code=503
        ) from exc


def order_price_keys(*, asset: str, asset_type: str = "") -> list[str]:
    """The cache key of the price a new order on `asset` (as the client wrote it) is placed at,
    for a caller that reads it ahead (`order_place(cache_prefetched=)`); [] when the asset does
    not resolve (placing says why)."""
    from providers.prices import price_cache_key

    try:
        symbol = asset_resolve(asset, asset_type)
        venue, _ = venue_and_market(symbol.upper())
    except ApplicationError:
        return []
    return [price_cache_key(symbol, venue=venue)]


def order_hand_off(event) -> None:
    """Outbox handler (`order.accepted`): hand an order still waiting to the executor (one
    `execute_order_task`). The placing request only kicks the dispatcher (debounced: a burst of
    orders costs one dispatch run, and no request pays for a Celery publish); a publish the
    broker refuses leaves the order ACCEPTED for `reconcile-executions`, and a task that comes
    twice (a redelivered message, a requeue) finds the order claimed and does nothing."""
    order_hand_off_many([event])


def order_hand_off_many(events) -> None:
    """`order_hand_off` for many (the outbox handler's batch): which orders still wait, in one
    query; one `execute_order_task` each, in event order."""
    from config.celery import enqueue
    from trading.tasks import execute_order_task

    order_ids = [int(event.aggregate_id) for event in events]
    waiting = set(
        Order.objects.filter(pk__in=order_ids, status=Order.Status.ACCEPTED).values_list("pk", flat=True)
    )  # not held orders
    for order_id in order_ids:
        if order_id in waiting:
            enqueue(execute_order_task, order_id, swept_by="execution reconciliation")
            waiting.discard(order_id)


# Pre-trade checks per venue, registered by the apps that own them (AppConfig.ready), e.g.
# delegations: an Ostium order of a user trading through a Safe needs an active delegation and
# a USDC allowance. A check raises an ApplicationError (recorded as `risk.rejected`) or returns
# the venue account to trade for (an object with `.account`), or None for the default account.
PretradeCheck = Callable[..., Any]
PRETRADE_CHECKS: dict[str, PretradeCheck] = {}


def register_pretrade_check(venue: str, check: PretradeCheck) -> None:
    """`check(*, user, intent)` runs after the risk engine, before the order is written."""
    PRETRADE_CHECKS[venue] = check


def _pretrade_account(*, user, intent: OrderIntent) -> str | None:
    check = PRETRADE_CHECKS.get(intent.venue)
    if check is None:
        return None
    found = check(user=user, intent=intent)
    return getattr(found, "account", None)


def _record_risk_rejection(*, user, actor: str, intent: OrderIntent, denial: ApplicationError, request: dict) -> None:
    """The rejection is recorded even though no order exists: its own transaction, committed
    before the error goes back (when the caller holds no transaction of its own)."""
    with transaction.atomic():
        event_record(
            topic="risk.rejected",
            aggregate_type="user",
            aggregate_id=user.pk,
            actor=actor,
            payload={
                "code": denial.code,
                "message": denial.message,
                "details": denial.details,
                "venue": intent.venue,
                "asset": intent.asset,
                "side": intent.side,
                "order_type": intent.order_type,
                "notional": intent.notional,
                "request": request,
            },
        )
    metrics.after_commit(metrics.RISK_REJECTIONS.labels(str(denial.code)).inc)


def order_place(
    *,
    user,
    asset: str,
    side: str,
    order_type: str = Order.Type.MARKET,
    collateral: Decimal | None = None,
    leverage: Decimal | None = None,
    asset_type: str = "",
    price: Decimal | None = None,
    stop_price: Decimal | None = None,
    take_profit_price: Decimal | None = None,
    trailing_stop_distance: Decimal | None = None,
    trailing_stop_percentage: Decimal | None = None,
    oco_stop_price: Decimal | None = None,
    oco_take_profit_price: Decimal | None = None,
    reduce_only: bool = False,
    trade: Trade | None = None,
    close_fraction: Decimal | None = None,
    max_slippage: Decimal | None = None,
    client_order_id: str | None = None,
    wallet_address: str | None = None,
    origin: str | None = None,
    parent: Order | None = None,
    actor: str | None = None,
    causation_id: str = "",
    cache_prefetched: dict | None = None,
    placed_response: Callable[[Order], tuple[int, dict]] | None = None,
) -> Order:
    """Validate, run the risk engine, write the order and `order.accepted` in one transaction,
    and enqueue execution after commit. MARKET/LIMIT go to the executor (LIMIT rests at the
    venue); protective orders wait in PENDING_TRIGGER for the protective engine. Never calls
    a venue (only the cached market list and the price cache). The order records the wallet it
    trades from: the address (explicit, else the Safe of a delegated venue account, else the
    user's sign-in address) and the user's Wallet row for it. `cache_prefetched`: cache values
    the caller read already (the API reads the price with the rate limit: `order_price_keys`).
    `placed_response(order) -> (status, body)`: what the API answers for the new order; under an
    Idempotency-Key it is stored as the request's response in the order's own statement."""
    actor = actor or f"user:{user.pk}"
    order_type = str(order_type).upper()
    side = str(side).lower()
    asset = asset.upper()
    if trade is not None:
        if trade.user_id != user.pk or trade.status != Trade.Status.OPEN:
            raise NotFoundError("No such open trade.", code="TRADE_NOT_FOUND")
        asset, side = trade.asset, trade.side
    provider, market = venue_and_market(asset)
    if trade is not None:
        provider = trade.provider
    tick = _price(asset, provider, cache_prefetched)
    ref = tick.price
    protective = order_type in validation.PROTECTIVE
    validation.order_validate(
        validation.OrderInput(
            order_type=order_type,
            side=side,
            collateral=collateral,
            leverage=leverage,
            price=price,
            stop_price=stop_price,
            take_profit_price=take_profit_price,
            trailing_stop_distance=trailing_stop_distance,
            trailing_stop_percentage=trailing_stop_percentage,
            oco_stop_price=oco_stop_price,
            oco_take_profit_price=oco_take_profit_price,
            reduce_only=reduce_only,
            has_trade=trade is not None,
        ),
        market=market,
        current_price=ref,
    )
    if close_fraction is not None and not (ZERO < close_fraction <= 1):
        raise validation.invalid("close_fraction must be in (0, 1].", close_fraction="must be in (0, 1]")
    reduces = protective or reduce_only
    if reduces:
        collateral, leverage = ZERO, trade.leverage
        close_fraction = close_fraction or Decimal(1)
        quantity = trade.size * close_fraction
    else:
        entry = price if order_type == Order.Type.LIMIT else ref
        quantity = collateral * leverage / entry

    snapshot = risk_snapshot_load(
        user=user, venue=provider, asset=asset, market_max_leverage=market.max_leverage, reference_price=ref
    )
    band = None if reduces else reference_band_for(asset)
    if band is not None:
        snapshot = dataclasses.replace(snapshot, reference_band=band)
    if max_slippage is None:
        max_slippage = snapshot.limits.max_slippage
    band_prices = {
        name: value
        for name, value in (
            ("price", price),
            ("stop_price", stop_price),
            ("take_profit_price", take_profit_price),
            ("oco_stop_price", oco_stop_price),
            ("oco_take_profit_price", oco_take_profit_price),
        )
        if value is not None
    }
    intent = OrderIntent(
        venue=provider,
        asset=asset,
        side=side,
        order_type=order_type,
        collateral=collateral,
        leverage=leverage,
        reduces_exposure=reduces,
        max_slippage=max_slippage,
        prices=band_prices,
    )
    try:
        risk_check(intent, snapshot)
        venue_account = _pretrade_account(user=user, intent=intent)
    except ApplicationError as denial:
        _record_risk_rejection(
            user=user,
            actor=actor,
            intent=intent,
            denial=denial,
            request={"client_order_id": client_order_id, "trade_id": trade.pk if trade else None},
        )
        raise

    address = wallet_address or venue_account or (user.wallet_address or None)
    wallet = wallet_for_order(user=user, address=address, safe=bool(venue_account) and address == venue_account)
    try:
        return _order_write(
            user=user,
            actor=actor,
            tick=tick,
            protective=protective,
            causation_id=causation_id,
            placed_response=placed_response,
            extra={"reference_check": band.record()} if band else {},
            fields={
                "wallet": wallet,
                "wallet_address": address,
                "origin": origin or (Order.Origin.PROTECTIVE if protective else Order.Origin.USER),
                "provider": provider,
                "asset": asset,
                "asset_type": asset_type or market.category,
                "order_type": order_type,
                "side": side,
                "collateral": _q(collateral),
                "leverage": leverage,
                "quantity": _q(quantity),
                "price": price,
                "stop_price": stop_price,
                "take_profit_price": take_profit_price,
                "trailing_stop_distance": trailing_stop_distance,
                "trailing_stop_percentage": trailing_stop_percentage,
                "oco_stop_price": oco_stop_price,
                "oco_take_profit_price": oco_take_profit_price,
                "close_fraction": close_fraction if reduces else None,
                "max_slippage": max_slippage,
                "reference_price": ref,
                "reduce_only": reduce_only,
                "client_order_id": client_order_id or None,
                "trade": trade,
                "parent": parent,
                "pair_id": trade.pair_id if trade else market.pair_id,
                "trade_index": trade.trade_index if trade else "",
            },
        )
    except IntegrityError as exc:
        if client_order_id and "order_client_order_id_unique" in str(exc):
            raise ConflictError(
                "An order with this client_order_id exists.",
                code="DUPLICATE_CLIENT_ORDER_ID",
                details={"client_order_id": client_order_id},
            ) from exc
        raise


def _order_write(
    *,
    user,
    actor: str,
    tick,
    protective: bool,
    causation_id: str,
    fields: dict,
    extra: dict | None = None,
    placed_response: Callable[[Order], tuple[int, dict]] | None = None,
) -> Order:
    order = Order(user=user, **fields)
    if protective or _limit_held_here(order):
        return _order_write_held(order=order, actor=actor, tick=tick, causation_id=causation_id, extra=extra)
    # Under an Idempotency-Key, the request's response is stored by the order's statement (its
    # record completes in the order's commit, one round trip fewer); the decorator checks it.
    pending = idempotency_pending() if placed_response is not None else None
    stored = []

    def completion(row: Order):
        status, body = placed_response(row)
        stored.append((status, body))
        return idempotency_completion_sql(pending=pending, status=status, body=body, id_key="order_id")

    # An order on its way to the executor: the order and `order.accepted` in one statement (its
    # own transaction, or a savepoint in the caller's so that a duplicate client_order_id leaves
    # the caller's transaction usable). The kick after commit has the dispatcher hand it to the
    # executor (`order_hand_off`).
    snapshot = order_snapshot(order)
    del snapshot["order_id"]  # the new id: insert_with_event puts it in the payload
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        insert_with_event(
            order,
            topic="order.accepted",
            aggregate_type="order",
            correlation_prefix=Order.CORRELATION_PREFIX,
            id_key="order_id",
            actor=actor,
            causation_id=causation_id,
            payload={**snapshot, "price_source": tick.source, "price_at": tick.timestamp, **(extra or {})},
            also=completion if pending is not None else None,
        )
    if stored:
        status, body = stored[0]
        pending.stored = (status, {**body, "order_id": order.pk})
    metrics.order_status_count(status=Order.Status.ACCEPTED, venue=order.provider)
    return order


@transaction.atomic
def _order_write_held(*, order: Order, actor: str, tick, causation_id: str, extra: dict | None = None) -> Order:
    """An order the protective engine triggers: accepted, then PENDING_TRIGGER."""
    order.save(force_insert=True)
    order_event(
        order=order,
        topic="order.accepted",
        actor=actor,
        causation_id=causation_id,
        payload={**order_snapshot(order), "price_source": tick.source, "price_at": tick.timestamp, **(extra or {})},
        kick=False,  # the pending_trigger event right below kicks the dispatcher
    )
    metrics.order_status_count(status=Order.Status.ACCEPTED, venue=order.provider)
    order_transition(order=order, to=Order.Status.PENDING_TRIGGER, actor=actor)
    return order


def _limit_held_here(order: Order) -> bool:
    """A LIMIT entry on a venue that cannot rest it waits for the protective engine instead."""
    if order.order_type != Order.Type.LIMIT:
        return False
    from trading.services.protective import limit_orders_held_here

    return limit_orders_held_here(order.provider)


# --- closes, cancels, SL/TP ---------------------------------------------------------------------


def trade_close(
    *, user, pair_id: str, trade_index: str, percentage: Decimal | None = None, client_order_id: str | None = None
) -> Order:
    """Close a trade (or `percentage` of it) through the same order/command/executor path."""
    trade = trade_open_for_user(user=user, pair_id=pair_id, trade_index=trade_index)
    if trade is None:
        raise NotFoundError("No such open trade.", code="TRADE_NOT_FOUND")
    fraction = Decimal(1) if percentage is None else Decimal(percentage) / 100
    if not (ZERO < fraction <= 1):
        raise validation.invalid("percentage must be in (0, 100].", percentage="must be in (0, 100]")
    return order_place(
        user=user,
        asset=trade.asset,
        side=trade.side,
        order_type=Order.Type.MARKET,
        reduce_only=True,
        trade=trade,
        close_fraction=fraction,
        client_order_id=client_order_id,
    )


CANCELLABLE_LOCALLY = frozenset({Order.Status.ACCEPTED, Order.Status.PENDING_TRIGGER, Order.Status.TRIGGERED})


def order_cancel(*, user, order_id: int, actor: str | None = None, reason: str = "cancelled by the user") -> Order:
    """Cancel an order. One that has not reached the venue is cancelled here; a resting one
    (SUBMITTED) is cancelled at the venue by the executor (status follows its answer)."""
    actor = actor or f"user:{user.pk}"
    with transaction.atomic():
        order = order_lock(order_id)
        if order is None or order.user_id != user.pk:
            raise NotFoundError("No such order.", code="ORDER_NOT_FOUND")
        if order.status in CANCELLABLE_LOCALLY:
            order.error_code, order.error_message = "CANCELLED_BY_USER", reason
            order_transition(
                order=order, to=Order.Status.CANCELLED, actor=actor, fields=("error_code", "error_message")
            )
            return order
        if order.status == Order.Status.SUBMITTED:
            order_event(order=order, topic="order.cancel_requested", actor=actor, payload={"reason": reason})
            from config.celery import enqueue
            from trading.tasks import cancel_order_task

            transaction.on_commit(lambda: enqueue(cancel_order_task, order.pk, swept_by="execution reconciliation"))
            return order
        raise ConflictError(
            f"An order in status {order.status} cannot be cancelled.",
            code="ORDER_NOT_CANCELLABLE",
            details={"status": order.status},
        )


_UNSET = object()


def _named_as_sent(exc: ApplicationError, internal: str, sent: str) -> ApplicationError:
    """A refusal of the order behind a field, naming the field as the caller sent it: the
    stop-loss order's level is `stop_price`, the request's field `stop_loss_price`."""
    if internal != sent:
        exc.details = {(sent if k == internal else k): v for k, v in exc.details.items()}
        if exc.details.get("field") == internal:
            exc.details["field"] = sent
        exc.message = exc.message.replace(internal, sent)
    return exc


def trade_protection_update(
    *, user, pair_id: str, trade_index: str, stop_loss_price=_UNSET, take_profit_price=_UNSET
) -> Trade:
    """Set or remove (None) the SL/TP of an open trade: the active STOP_LOSS/TAKE_PROFIT order
    is replaced by a new one (PENDING_TRIGGER) and the level is sent to the venue natively."""
    trade = trade_open_for_user(user=user, pair_id=pair_id, trade_index=trade_index)
    if trade is None:
        raise NotFoundError("No such open trade.", code="TRADE_NOT_FOUND")
    actor = f"user:{user.pk}"
    changes = []
    if stop_loss_price is not _UNSET:
        changes.append((Order.Type.STOP_LOSS, "stop_loss_price", "stop_price", stop_loss_price))
    if take_profit_price is not _UNSET:
        changes.append((Order.Type.TAKE_PROFIT, "take_profit_price", "take_profit_price", take_profit_price))
    if not changes:
        raise validation.invalid("Nothing to change.", stop_loss_price="give stop_loss_price and/or take_profit_price")
    new_orders = []
    with transaction.atomic():
        trade_waiting_orders_lock(trade.pk)  # orders before the trade, as every close takes them
        trade = trade_lock(trade.pk)
        for order_type, trade_field, order_field, level in changes:
            for old in Order.objects.select_for_update().filter(
                trade=trade, order_type=order_type, status__in=CANCELLABLE_LOCALLY
            ):
                old.error_code, old.error_message = "REPLACED", "replaced by a new level"
                order_transition(
                    order=old, to=Order.Status.CANCELLED, actor=actor, fields=("error_code", "error_message")
                )
            if level is not None:
                try:
                    new_orders.append(
                        order_place(
                            user=user,
                            asset=trade.asset,
                            side=trade.side,
                            order_type=order_type,
                            trade=trade,
                            **{order_field: Decimal(level)},
                        )
                    )
                except ApplicationError as exc:
                    raise _named_as_sent(exc, order_field, trade_field) from None
            setattr(trade, trade_field, level)
        trade.protection_sync_due_at = timezone.now()
        trade.save(update_fields=[c[1] for c in changes] + ["protection_sync_due_at", "updated_at"])
        event_record(
            topic="trade.protection_updated",
            aggregate_type="trade",
            aggregate_id=trade.pk,
            correlation_id=f"trade-{trade.pk}",
            actor=actor,
            payload={
                "stop_loss_price": trade.stop_loss_price,
                "take_profit_price": trade.take_profit_price,
                "orders": [o.pk for o in new_orders],
            },
        )
        from config.celery import enqueue
        from trading.tasks import protection_sync_task

        actions = [("update_sl" if c[0] == Order.Type.STOP_LOSS else "update_tp") for c in changes]
        transaction.on_commit(
            lambda: enqueue(protection_sync_task, trade.pk, actions, swept_by="execution reconciliation")
        )
    return trade


def in_transaction() -> bool:
    return connection.in_atomic_block
