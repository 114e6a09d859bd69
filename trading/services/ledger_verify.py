"""The ledger replay check: re-derive current state from the append-only event ledger and compare
it with the rows (`manage.py ledger_verify`, and a daily Beat job over the last day's aggregates).

What each aggregate's events say of it:
- **order** (`order.accepted`, then `order.<status>` with `{"from", "to"}`): its status; a filled
  order's filled quantity, price and fee (the `order.filled` payload);
- **trade** (`trade.opened`, `trade.reduced`, `trade.closed`, `trade.funding_charged`): status,
  open size, realised PnL, fees and funding;
- **position** (each `position.*` event carries its snapshot; funding charged to its trades after
  that): status, quantity, average entry, realised PnL, fees, funding;
- **control state** (`control.*`, the `after` snapshot): armed, paused, draining;
- **trading state** (`trading_state.changed`, `trading_state.expired`): the state;
- **delegation** (`delegation.*`, the snapshot): status.

With `since`, the aggregates that have an event since then are checked, each replayed from its
first event. A row of those kinds made since then with no event at all is a mismatch too."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from trading.models import Event, Order, Position, Trade
from trading.ulid import ulid_floor

logger = logging.getLogger("tradedesk.ledger")

ZERO = Decimal(0)


@dataclass(frozen=True)
class Mismatch:
    kind: str  # order, trade, position, control_state, trading_state, delegation
    key: str  # the aggregate id
    field: str
    ledger: object
    row: object

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.field} is {self.row!r} in the row, {self.ledger!r} by the ledger"


@dataclass
class Report:
    checked: dict[str, int]
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _d(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _same(a, b) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        da, db = _d(a), _d(b)
        return (da if da is not None else ZERO) == (db if db is not None else ZERO)
    return a == b


def _events(aggregate_type: str, since_id: str | None, topic_prefix: str | None = None) -> dict[str, list[Event]]:
    """Every event of the aggregates of `aggregate_type` (those with an event since `since_id`),
    grouped by aggregate id, in ledger order."""
    events = Event.objects.filter(aggregate_type=aggregate_type)
    if since_id:
        touched = (
            Event.objects.filter(aggregate_type=aggregate_type, id__gte=since_id)
            .values_list("aggregate_id", flat=True)
            .distinct()
        )
        events = events.filter(aggregate_id__in=touched)
    if topic_prefix:
        events = events.filter(topic__startswith=topic_prefix)
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events.only("id", "topic", "aggregate_id", "payload").order_by("id").iterator(chunk_size=2000):
        grouped[event.aggregate_id].append(event)
    return grouped


def _compare(out: list[Mismatch], kind: str, key, derived: dict, row) -> None:
    for field, expected in derived.items():
        actual = getattr(row, field)
        if not _same(expected, actual):
            out.append(Mismatch(kind, str(key), field, expected, actual))


def _missing_rows(out: list[Mismatch], kind: str, keys: Iterable[str], rows: dict) -> None:
    for key in keys:
        if key not in rows:
            out.append(Mismatch(kind, key, "row", "exists", "missing"))


def _without_events(out: list[Mismatch], kind: str, model, keys: set[str], since: datetime | None, field: str) -> None:
    """Rows (made since `since`) with no event at all."""
    rows = model.objects.all()
    if since is not None:
        rows = rows.filter(**{f"{field}__gte": since})
    for pk in rows.values_list("pk", flat=True).iterator():
        if str(pk) not in keys:
            out.append(Mismatch(kind, str(pk), "events", "none", "a row"))


# --- orders --------------------------------------------------------------------------------------


def _order_replay(events: list[Event]) -> dict:
    derived: dict = {}
    for event in events:
        p = event.payload or {}
        if event.topic == "order.accepted":
            derived["status"] = Order.Status.ACCEPTED
        elif "to" in p and event.topic == f"order.{str(p['to']).lower()}":
            derived["status"] = p["to"]
            if p["to"] == Order.Status.FILLED and "size" in p:
                derived.update(filled_quantity=_d(p["size"]), filled_price=_d(p.get("price")), fee=_d(p.get("fee")))
    return derived


def _orders(out: list[Mismatch], since_id, since) -> int:
    grouped = _events("order", since_id, topic_prefix="order.")
    rows = {str(o.pk): o for o in Order.objects.filter(pk__in=[int(k) for k in grouped if k.isdigit()])}
    _missing_rows(out, "order", grouped, rows)
    for key, events in grouped.items():
        if key in rows:
            _compare(out, "order", key, _order_replay(events), rows[key])
    _without_events(out, "order", Order, set(grouped) if since_id else _all_ids("order"), since, "created_at")
    return len(grouped)


def _all_ids(aggregate_type: str) -> set[str]:
    return set(Event.objects.filter(aggregate_type=aggregate_type).values_list("aggregate_id", flat=True).distinct())


# --- trades and positions ------------------------------------------------------------------------


def _trade_replay(events: list[Event]) -> dict:
    derived: dict = {}
    fees = ZERO
    for event in events:
        p = event.payload or {}
        if event.topic == "trade.opened":
            fees += _d(p.get("fee")) or ZERO
            derived.update(status=Trade.Status.OPEN, size=_d(p.get("size")), realized_pnl=ZERO)
        elif event.topic in ("trade.reduced", "trade.closed"):
            fees += _d(p.get("fee")) or ZERO
            derived.update(size=_d(p.get("remaining_size")), realized_pnl=_d(p.get("trade_realized_pnl")))
            if event.topic == "trade.closed":
                derived["status"] = Trade.Status.CLOSED
        elif event.topic == "trade.funding_charged":
            derived["funding_paid"] = _d(p.get("funding_paid"))
    if "status" in derived:
        derived["fees_paid"] = fees
    return derived


def _trades(out: list[Mismatch], since_id, since) -> int:
    grouped = _events("trade", since_id)
    rows = {str(t.pk): t for t in Trade.objects.filter(pk__in=[int(k) for k in grouped if k.isdigit()])}
    _missing_rows(out, "trade", grouped, rows)
    for key, events in grouped.items():
        if key in rows:
            _compare(out, "trade", key, _trade_replay(events), rows[key])
    _without_events(out, "trade", Trade, set(grouped) if since_id else _all_ids("trade"), since, "opened_at")
    return len(grouped)


_POSITION_FIELDS = ("status", "quantity", "avg_entry_price", "realized_pnl", "fees_paid", "funding_paid")


def _positions(out: list[Mismatch], since_id, since) -> int:
    grouped = _events("position", since_id)
    rows = {str(p.pk): p for p in Position.objects.filter(pk__in=[int(k) for k in grouped if k.isdigit()])}
    _missing_rows(out, "position", grouped, rows)
    # funding charged to a position's trades after its last snapshot (the funding path writes a
    # trade event only)
    trade_position = dict(Trade.objects.filter(position_id__in=[int(k) for k in rows]).values_list("pk", "position_id"))
    funding = Event.objects.filter(
        aggregate_type="trade",
        topic="trade.funding_charged",
        aggregate_id__in=[str(pk) for pk in trade_position],
    ).only("id", "aggregate_id", "payload")
    funding_by_position: dict[str, list[Event]] = defaultdict(list)
    for event in funding:
        funding_by_position[str(trade_position[int(event.aggregate_id)])].append(event)
    for key, events in grouped.items():
        if key not in rows:
            continue
        last = events[-1]
        derived = {f: last.payload.get(f) for f in _POSITION_FIELDS if f in last.payload}
        later = [e for e in funding_by_position.get(key, []) if e.id > last.id]
        if later and "funding_paid" in derived:
            derived["funding_paid"] = (_d(derived["funding_paid"]) or ZERO) + sum(
                (_d(e.payload.get("amount")) or ZERO for e in later), ZERO
            )
        _compare(out, "position", key, derived, rows[key])
    _without_events(out, "position", Position, set(grouped) if since_id else _all_ids("position"), since, "opened_at")
    return len(grouped)


# --- control and trading states, delegations -----------------------------------------------------


def _control_states(out: list[Mismatch], since_id, since) -> int:
    from trading.models import ControlState

    grouped = _events("control_state", since_id)
    rows = {s.component: s for s in ControlState.objects.filter(component__in=list(grouped))}
    _missing_rows(out, "control_state", grouped, rows)
    for key, events in grouped.items():
        if key not in rows:
            continue
        derived: dict = {}
        for event in events:
            after = (event.payload or {}).get("after") or {}
            derived.update({f: after[f] for f in ("armed", "paused", "draining") if f in after})
        _compare(out, "control_state", key, derived, rows[key])
    return len(grouped)


def _trading_states(out: list[Mismatch], since_id, since) -> int:
    from trading.models import TradingState

    grouped = _events("trading_state", since_id)
    rows = {f"{s.scope_type}:{s.scope_key}": s for s in TradingState.objects.all()}
    _missing_rows(out, "trading_state", grouped, rows)
    for key, events in grouped.items():
        if key not in rows:
            continue
        derived: dict = {}
        for event in events:
            # set by an operator (`changed`), or returned to the previous one when it lapsed (`expired`)
            if event.topic in ("trading_state.changed", "trading_state.expired") and "state" in (event.payload or {}):
                derived["state"] = event.payload["state"]
        _compare(out, "trading_state", key, derived, rows[key])
    return len(grouped)


def _delegations(out: list[Mismatch], since_id, since) -> int:
    from delegations.models import OstiumDelegation

    grouped = _events("delegation", since_id)
    rows = {str(d.pk): d for d in OstiumDelegation.objects.filter(pk__in=[int(k) for k in grouped if k.isdigit()])}
    _missing_rows(out, "delegation", grouped, rows)
    for key, events in grouped.items():
        if key not in rows:
            continue
        derived: dict = {}
        for event in events:
            if "status" in (event.payload or {}):
                derived["status"] = event.payload["status"]
        _compare(out, "delegation", key, derived, rows[key])
    return len(grouped)


CHECKS = {
    "order": _orders,
    "trade": _trades,
    "position": _positions,
    "control_state": _control_states,
    "trading_state": _trading_states,
    "delegation": _delegations,
}


def ledger_verify(*, since: datetime | None = None) -> Report:
    """Replay the ledger (every aggregate, or those with an event since `since`) and compare."""
    since_id = ulid_floor(since) if since is not None else None
    mismatches: list[Mismatch] = []
    checked = {kind: check(mismatches, since_id, since) for kind, check in CHECKS.items()}
    return Report(checked=checked, mismatches=mismatches)


def ledger_verify_record(*, since: datetime | None = None) -> Report:
    """`ledger_verify`, its result set on the metrics and logged (the Beat job's door)."""
    import time

    from config import metrics

    report = ledger_verify(since=since)
    metrics.LEDGER_MISMATCHES.set(len(report.mismatches))
    metrics.LEDGER_VERIFIED_AT.set(time.time())
    if report.ok:
        logger.info("ledger verified", extra={"event": "ledger.verified", "checked": report.checked})
    else:
        logger.error(
            "ledger mismatch",
            extra={
                "event": "ledger.mismatch",
                "mismatches": len(report.mismatches),
                "first": [str(m) for m in report.mismatches[:20]],
            },
        )
    return report
