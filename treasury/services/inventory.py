"""Inventory: what a consumer may spend (`credited − reserved` of a balance that is not stale),
reservations taken and released in the consumer's own transaction, and what a sync writes.

    with transaction.atomic():
        decision = ...                                   # the consumer's own rows
        inventory_reserve(venue="near_intents", account=solver, asset=token_id,
                          amount=Decimal("0.1"), ref=f"quote:{quote_id}", actor="strategy")

The balance row is locked (`SELECT ... FOR UPDATE`) while the reservation is checked and
written, so two concurrent reservations that together exceed what is spendable cannot both
pass: the second waits for the first to commit and then sees its hold."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from config.errors import ApplicationError, ConflictError, NotFoundError
from config.logging import log_event
from providers.interface import InventoryReading
from trading.services.ledger import event_record, insert_with_event
from treasury import lock_objects
from treasury.models import ZERO, InventoryBalance, InventorySnapshot, LiquidityAction, Reservation, amount_text

logger = logging.getLogger("tradedesk.treasury")
S = InventoryBalance.Status


class InventoryRefused(ApplicationError):
    status_code = 409
    code = "INVENTORY_REFUSED"


def _balance_ref(balance: InventoryBalance) -> dict:
    return {"venue": balance.venue, "account": balance.account, "asset": balance.asset, "symbol": balance.symbol}


def inventory_usable(balance: InventoryBalance | None, *, venue: str, account: str, asset: str, now=None) -> None:
    """Refuse a balance that is unknown or stale, with the reason."""
    if balance is None:
        raise NotFoundError(
            f"No inventory for {venue}:{account}:{asset}: it has never been synced.",
            code="INVENTORY_UNKNOWN",
            details={"venue": venue, "account": account, "asset": asset},
        )
    if balance.effective_status(now) == S.STALE:
        raise InventoryRefused(
            f"Inventory of {balance} is stale: {balance.why_stale(now)}. Nothing is spent on a stale balance.",
            code="INVENTORY_STALE",
            details={**_balance_ref(balance), "reason": balance.why_stale(now), "synced_at": balance.synced_at},
        )


def inventory_spendable(*, venue: str, account: str, asset: str, now=None) -> Decimal:
    """`credited − reserved` of a fresh balance; INVENTORY_UNKNOWN / INVENTORY_STALE otherwise."""
    balance = InventoryBalance.objects.filter(venue=venue, account=account, asset=asset).first()
    inventory_usable(balance, venue=venue, account=account, asset=asset, now=now)
    return balance.spendable


def _snapshot(balance: InventoryBalance, *, source: str, now) -> InventorySnapshot:
    return InventorySnapshot(
        balance=balance,
        venue=balance.venue,
        account=balance.account,
        asset=balance.asset,
        credited=balance.credited,
        reserved=balance.reserved,
        pending_in=balance.pending_in,
        pending_out=balance.pending_out,
        locked=balance.locked,
        status=balance.effective_status(now),
        source=source,
        taken_at=now,
    )


# The hold itself: one statement that takes the row lock, checks freshness and what is spendable,
# and adds the hold. The lock is held from here to the commit only (the hold's rows are written
# before it), as short as a plain SELECT ... FOR UPDATE + UPDATE.
_RESERVE = (
    f"UPDATE {InventoryBalance._meta.db_table} SET reserved = reserved + %s, updated_at = %s "
    "WHERE id = %s AND status <> 'stale' AND synced_at >= %s AND credited - reserved >= %s RETURNING id"
)


def inventory_reserve(
    *,
    venue: str,
    account: str,
    asset: str,
    amount: Decimal,
    ref: str,
    actor: str = "system",
    reason: str = "",
    expires_at=None,
    causation_id: str = "",
) -> Reservation:
    """Hold `amount` of a balance for `ref` (in the caller's transaction). A second call with
    the same `ref` while the hold exists returns it. Refused: an unknown or stale balance,
    more than `credited − reserved` (INSUFFICIENT_INVENTORY). Concurrent holds on one balance
    serialise on its row: two that together exceed what is spendable cannot both pass."""
    if amount is None or amount <= 0:
        raise ApplicationError(
            "The amount must be positive.", code="INVALID_AMOUNT", details={"amount": ["Must be positive."]}
        )
    try:
        with transaction.atomic():
            return _reserve(venue, account, asset, amount, ref, actor, reason, expires_at, causation_id)
    except IntegrityError:  # `ref` holds a reservation already (the held-ref unique index)
        held = Reservation.objects.filter(ref=ref, status=Reservation.Status.HELD).first()
        if (
            held is not None
            and held.amount == amount
            and (held.balance.venue, held.balance.account, held.balance.asset) == (venue, account, asset)
        ):
            return held
        raise ConflictError(f"{ref} already holds another reservation.", code="RESERVATION_REF_IN_USE") from None


def _reserve(venue, account, asset, amount, ref, actor, reason, expires_at, causation_id) -> Reservation:
    from datetime import timedelta

    from django.conf import settings

    balance = InventoryBalance.objects.filter(venue=venue, account=account, asset=asset).first()
    now = timezone.now()
    inventory_usable(balance, venue=venue, account=account, asset=asset, now=now)
    reservation = Reservation(
        balance=balance, amount=amount, ref=ref, actor=actor, reason=reason, expires_at=expires_at, created_at=now
    )
    insert_with_event(  # the hold's row and its event in one statement, before the balance's lock
        reservation,
        topic="inventory.reserved",
        aggregate_type="reservation",
        correlation_prefix="reservation-",
        id_key="reservation_id",
        actor=actor,
        causation_id=causation_id,
        payload={**_balance_ref(balance), "ref": ref, "amount": amount_text(amount)},
    )
    fresh_since = now - timedelta(seconds=settings.INVENTORY_MAX_AGE_SECONDS)
    with connection.cursor() as cur:
        cur.execute(_RESERVE, [amount, now, balance.pk, fresh_since, amount])
        taken = cur.fetchone()
    if taken is None:  # refused: say why, from the row as the winner of the lock left it
        balance = InventoryBalance.objects.get(pk=balance.pk)
        inventory_usable(balance, venue=venue, account=account, asset=asset, now=now)
        spendable = max(balance.credited - balance.reserved, ZERO)
        raise InventoryRefused(
            f"Only {amount_text(spendable)} {balance.symbol or balance.asset} spendable on {balance}; "
            f"{amount_text(amount)} asked.",
            code="INSUFFICIENT_INVENTORY",
            details={**_balance_ref(balance), "spendable": amount_text(spendable), "asked": amount_text(amount)},
        )
    return reservation


def inventory_holds_sql(amounts: dict[int, Decimal], *, now, after: tuple[str, ...] = ()) -> tuple[str, list]:
    """`_RESERVE` for several balances at once (balance id → amount), as a part of the caller's
    own statement: the rows are locked in id order (two such statements cannot deadlock), each
    held only while fresh and `credited − reserved` covers its amount. Returns the ids of the
    balances held: when fewer than asked, the caller rolls its transaction back. `after`: names of
    the caller's CTEs (each with a RETURNING) to run to the end before the rows are locked, so
    that the lock is held from there to the commit only. For the NEAR Intents solver's batches
    (with `inventory_hold_parts` for each hold's row and event)."""
    from datetime import timedelta

    from django.conf import settings

    ids = sorted(amounts)
    table = InventoryBalance._meta.db_table
    values = ", ".join(["(%s::bigint, %s::numeric)"] * len(ids))
    first = f"WHERE {' + '.join(f'(SELECT count(*) FROM {name})' for name in after)} >= 0 " if after else ""
    sql = (
        f"UPDATE {table} b SET reserved = b.reserved + v.amount, updated_at = %s "
        f"FROM (SELECT l.id, a.amount FROM {table} l JOIN (VALUES {values}) AS a (id, amount) ON l.id = a.id "
        f"{first}ORDER BY l.id FOR NO KEY UPDATE OF l) AS v "
        "WHERE b.id = v.id AND b.status <> 'stale' AND b.synced_at >= %s AND b.credited - b.reserved >= v.amount "
        "RETURNING b.id"
    )
    params: list = [now]
    for pk in ids:
        params += [pk, amounts[pk]]
    return sql, [*params, now - timedelta(seconds=settings.INVENTORY_MAX_AGE_SECONDS)]


def inventory_hold_parts(
    balance: InventoryBalance,
    *,
    reservation_id: int,
    amount: Decimal,
    ref: str,
    actor: str,
    reason: str,
    expires_at,
    causation_id: str,
    now,
) -> tuple[Reservation, dict, str, list]:
    """A hold written as parts of the caller's own statement: the hold's row (its id taken by
    the caller from the table's sequence), its `inventory.reserved` event (for
    `trading.services.ledger.event_rows_sql`) and the hold itself, `_RESERVE` with its params
    (the statement that locks the balance row and checks freshness and what is spendable; it
    returns no row when refused, and the caller then rolls its transaction back). For the NEAR
    Intents solver, whose whole quote is one statement; `inventory_reserve` is the general way."""
    from datetime import timedelta

    from django.conf import settings

    reservation = Reservation(
        pk=reservation_id,
        balance=balance,
        amount=amount,
        ref=ref,
        actor=actor,
        reason=reason,
        expires_at=expires_at,
        created_at=now,
    )
    event = {
        "topic": "inventory.reserved",
        "aggregate_type": "reservation",
        "aggregate_id": reservation_id,
        "correlation_id": f"reservation-{reservation_id}",
        "actor": actor,
        "causation_id": causation_id,
        "payload": {
            "reservation_id": reservation_id,
            **_balance_ref(balance),
            "ref": ref,
            "amount": amount_text(amount),
        },
    }
    fresh_since = now - timedelta(seconds=settings.INVENTORY_MAX_AGE_SECONDS)
    return reservation, event, _RESERVE, [amount, now, balance.pk, fresh_since, amount]


def _close(reservation: Reservation, *, status: str, actor: str, reason: str, consume: bool) -> Reservation:
    balance = lock_objects.balance_locked_by_pk(reservation.balance_id)
    reservation = lock_objects.reservation_locked(reservation.pk)
    if reservation.status != Reservation.Status.HELD:
        return reservation  # already released or consumed: nothing twice
    balance.reserved = max(balance.reserved - reservation.amount, ZERO)
    fields = ["reserved", "updated_at"]
    if consume:  # the venue has spent it: the book follows until the next sync reads the venue
        balance.credited -= reservation.amount
        fields.append("credited")
    balance.save(update_fields=fields)
    reservation.status, reservation.closed_at = status, timezone.now()
    reservation.reason = (reason or reservation.reason)[:300]
    reservation.save(update_fields=["status", "closed_at", "reason"])
    event_record(
        topic=f"inventory.{status}",
        aggregate_type="reservation",
        aggregate_id=reservation.pk,
        correlation_id=f"reservation-{reservation.pk}",
        actor=actor,
        payload={
            **_balance_ref(balance),
            "reservation_id": reservation.pk,
            "ref": reservation.ref,
            "amount": amount_text(reservation.amount),
            "reason": reason,
        },
    )
    return reservation


@transaction.atomic
def inventory_release(*, reservation: Reservation, actor: str = "system", reason: str = "") -> Reservation:
    """Give a hold back (idempotent)."""
    return _close(reservation, status=Reservation.Status.RELEASED, actor=actor, reason=reason, consume=False)


@transaction.atomic
def inventory_consume(*, reservation: Reservation, actor: str = "system", reason: str = "") -> Reservation:
    """The held amount left the venue (a settled withdrawal or quote): off `reserved` and off
    `credited` until the next sync reads the venue itself (idempotent)."""
    return _close(reservation, status=Reservation.Status.CONSUMED, actor=actor, reason=reason, consume=True)


def inventory_release_expired(*, now=None) -> int:
    """Release holds whose `expires_at` has passed (a quote's deadline)."""
    now = now or timezone.now()
    count = 0
    for reservation in Reservation.objects.filter(status=Reservation.Status.HELD, expires_at__lte=now):
        inventory_release(reservation=reservation, reason="expired")
        count += 1
    return count


# --- pending in / out ------------------------------------------------------------------------------
def balance_for_action(*, venue: str, account: str, asset: str, symbol: str = "", decimals: int = 0):
    """The balance an action moves (created, never synced yet, when the asset is new)."""
    balance, _ = InventoryBalance.objects.get_or_create(
        venue=venue, account=account, asset=asset, defaults={"symbol": symbol, "decimals": decimals}
    )
    return balance


# Other apps' inbound money that is on its way to a balance the treasury tracks, e.g. a user's
# LI.FI deposit into their Safe or a desk treasury swap (the deposits app registers it):
# `source(venue=, account=, asset=) -> Decimal`, added to the balance's `pending_in`.
PendingInboundSource = Callable[..., Decimal]
PENDING_INBOUND_SOURCES: dict[str, PendingInboundSource] = {}


def register_pending_inbound(name: str, source: PendingInboundSource) -> None:
    PENDING_INBOUND_SOURCES[name] = source


def pending_refresh(*, venue: str, account: str, asset: str) -> None:
    """Recompute a balance's pending in and out from the open liquidity actions and the
    registered inbound sources (caller's transaction)."""
    if not (venue and account and asset):
        return
    balance = lock_objects.balance_locked(venue=venue, account=account, asset=asset)
    if balance is None:
        return
    open_actions = LiquidityAction.objects.filter(status__in=LiquidityAction.OPEN, duplicate_of__isnull=True)
    K = LiquidityAction.Kind
    inbound = (
        open_actions.filter(
            Q(kind=K.FUNDING, venue=venue, account=account, asset=asset)
            | Q(kind=K.REBALANCE, dest_venue=venue, dest_account=account, dest_asset=asset)
        ).aggregate(total=Sum("amount"))["total"]
        or ZERO
    )
    for source in PENDING_INBOUND_SOURCES.values():
        inbound += source(venue=venue, account=account, asset=asset) or ZERO
    outbound = (
        open_actions.filter(
            kind__in=(K.WITHDRAWAL, K.REBALANCE), venue=venue, account=account, asset=asset, submitted_at__isnull=False
        ).aggregate(total=Sum("amount"))["total"]
        or ZERO
    )
    if (balance.pending_in, balance.pending_out) != (inbound, outbound):
        balance.pending_in, balance.pending_out = inbound, outbound
        balance.save(update_fields=["pending_in", "pending_out", "updated_at"])


# --- what a sync writes ------------------------------------------------------------------------------
# Every balance of a round in one statement (Django's bulk_update builds a CASE per field and row:
# ~10 ms of Python per balance).
_SYNC_COLUMNS = (
    ("symbol", "text"),
    ("decimals", "int"),
    ("credited", "numeric"),
    ("locked", "numeric"),
    ("synced_at", "timestamptz"),
    ("sync_source", "text"),
    ("stale_reason", "text"),
    ("status", "text"),
    ("updated_at", "timestamptz"),
)
_SYNC_UPDATE = (
    f"UPDATE {InventoryBalance._meta.db_table} AS b SET "
    + ", ".join(f"{c} = v.{c}" for c, _ in _SYNC_COLUMNS)
    + " FROM unnest(%s::bigint[], "
    + ", ".join(f"%s::{t}[]" for _, t in _SYNC_COLUMNS)
    + ") AS v(id, "
    + ", ".join(c for c, _ in _SYNC_COLUMNS)
    + ") WHERE b.id = v.id"
)


def _balances_write(balances: list[InventoryBalance]) -> None:
    params = [[b.pk for b in balances]] + [[getattr(b, c) for b in balances] for c, _ in _SYNC_COLUMNS]
    with connection.cursor() as cur:
        cur.execute(_SYNC_UPDATE, params)


@transaction.atomic
def inventory_sync_apply(*, venue: str, readings: list[InventoryReading], source: str, now=None) -> dict:
    """Write one round of a venue's balances: credited and locked from the venue, synced now,
    `ok` (or `drift` while a drift is unacknowledged); balances the round did not report go
    stale. One snapshot per balance, one `inventory.synced` event for the round."""
    now = now or timezone.now()
    rows = {(b.account, b.asset): b for b in lock_objects.balances_of_venue_locked(venue)}
    seen, created, updated, recovered = set(), [], [], []
    for r in readings:
        key = (r.account, r.asset)
        seen.add(key)
        balance = rows.get(key)
        if balance is None:
            balance = InventoryBalance(venue=venue, account=r.account, asset=r.asset)
            created.append(balance)
        else:
            if balance.effective_status(now) == S.STALE:
                recovered.append(str(balance))
            updated.append(balance)
        balance.symbol, balance.decimals = r.symbol or balance.symbol, r.decimals
        balance.credited, balance.locked = r.credited, r.locked
        balance.synced_at, balance.sync_source, balance.stale_reason = now, source[:200], ""
        balance.status = S.DRIFT if balance.drift > 0 else S.OK
        balance.updated_at = now
    went_stale = []
    for key, balance in rows.items():
        if key not in seen and balance.status != S.STALE:
            balance.status, balance.stale_reason = S.STALE, f"not reported by the last {venue} sync"[:300]
            balance.updated_at = now
            updated.append(balance)
            went_stale.append(str(balance))
    for balance in created:  # money already on its way to a balance read for the first time
        balance.pending_in = sum(
            (s(venue=venue, account=balance.account, asset=balance.asset) for s in PENDING_INBOUND_SOURCES.values()),
            ZERO,
        )
    if created:
        InventoryBalance.objects.bulk_create(created)
    if updated:
        _balances_write(updated)
    InventorySnapshot.objects.bulk_create(_snapshot(b, source=source, now=now) for b in (*created, *updated))
    summary = {
        "venue": venue,
        "source": source,
        "assets": len(readings),
        "created": [str(b) for b in created],
        "recovered": recovered,
        "stale": went_stale,
    }
    event_record(topic="inventory.synced", aggregate_type="inventory_venue", aggregate_id=venue, payload=summary)
    if recovered:
        log_event(logger, "inventory.recovered", "inventory recovered", venue=venue, balances=recovered)
    return summary


@transaction.atomic
def inventory_sync_failed(*, venue: str, code: str, message: str, now=None) -> list[str]:
    """A venue could not be read: its balances are stale now (consumers are refused), with the reason."""
    now = now or timezone.now()
    reason = f"the {venue} sync failed: {code}: {message}"[:300]
    went = []
    for balance in lock_objects.balances_of_venue_locked(venue):
        if balance.status != S.STALE:
            went.append(str(balance))
        balance.status, balance.stale_reason, balance.updated_at = S.STALE, reason, now
        balance.save(update_fields=["status", "stale_reason", "updated_at"])
    if went:
        event_record(
            topic="inventory.stale",
            aggregate_type="inventory_venue",
            aggregate_id=venue,
            payload={"venue": venue, "code": code, "message": message[:300], "balances": went},
        )
        logger.warning("inventory stale", extra={"venue": venue, "code": code, "balances": went})
    return went


@transaction.atomic
def inventory_drift_record(*, balance: InventoryBalance, amount: Decimal, action: LiquidityAction) -> None:
    balance = lock_objects.balance_locked_by_pk(balance.pk)
    balance.drift += amount
    if balance.status != S.STALE:
        balance.status = S.DRIFT
    balance.save(update_fields=["drift", "status", "updated_at"])
    event_record(
        topic="inventory.drift",
        aggregate_type="inventory_balance",
        aggregate_id=balance.pk,
        causation_id=action.correlation_id,
        payload={
            **_balance_ref(balance),
            "drift": amount_text(amount),
            "total_drift": amount_text(balance.drift),
            "action_id": action.pk,
        },
    )
    logger.warning(
        "inventory drift",
        extra={"venue": balance.venue, "asset": balance.asset, "drift": amount_text(amount), "action": action.pk},
    )


@transaction.atomic
def inventory_drift_acknowledge(*, balance_id: int, actor: str, reason: str) -> InventoryBalance:
    """An operator has looked at a drift and accepts the credited balance as the truth."""
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required.", code="REASON_REQUIRED")
    balance = lock_objects.balance_locked_by_pk(balance_id)
    before = balance.drift
    balance.drift = ZERO
    if balance.status == S.DRIFT:
        balance.status = S.OK
    balance.save(update_fields=["drift", "status", "updated_at"])
    event_record(
        topic="inventory.drift_acknowledged",
        aggregate_type="inventory_balance",
        aggregate_id=balance.pk,
        actor=actor,
        payload={**_balance_ref(balance), "drift": amount_text(before), "reason": reason.strip()},
    )
    return balance
