"""Reads behind the control panel: components and their states, trading states, health,
prices, counts that need attention, exposure and today's PnL per venue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, F, Max, OuterRef, Q, Sum
from django.utils import timezone

from config.clock import seconds_since
from configuration.services import scheduled_changes
from trading.admin_panel.activity import activity_read
from trading.admin_panel.formatting import plural
from trading.admin_panel.health import HealthItem, health_collect
from trading.models import ControlState, ExecutionCommand, Fill, Order, Position, Trade, TradingState
from trading.services.control import EXECUTOR_PREFIX, kill_switch_venue, venue_enabled

ZERO = Decimal(0)
NEAR_LIQUIDATION = Decimal("0.05")  # within 5 % of the liquidation price
IN_FLIGHT = (
    Order.Status.ACCEPTED,
    Order.Status.TRIGGERED,
    Order.Status.SUBMITTING,
    Order.Status.SUBMITTED,
    Order.Status.PARTIALLY_FILLED,
    Order.Status.UNKNOWN,
)
WORKING_STOP_TYPES = (Order.Type.STOP_LOSS, Order.Type.TRAILING_STOP, Order.Type.OCO)
WORKING_STATUSES = (
    Order.Status.PENDING_TRIGGER,
    Order.Status.TRIGGERED,
    Order.Status.SUBMITTING,
    Order.Status.SUBMITTED,
)
KILL_SWITCH_VARS = {"paper": "PAPER_ENABLED", "ostium": "OSTIUM_ENABLED", "near_intents": "NEAR_INTENTS_ENABLED"}


@dataclass
class ComponentView:
    state: ControlState
    status: str  # armed / disarmed / paused / draining / drained / disabled / lapsed
    badge: str  # ok / warn / down
    last_activity: datetime | None  # when the component last did something (`activity`: what)
    waiting_on: str
    in_flight: int = 0
    activity: str = ""

    @property
    def component(self) -> str:
        return self.state.component

    def as_dict(self) -> dict:
        s = self.state
        return {
            "component": s.component,
            "status": self.status,
            "armed": s.armed,
            "paused": s.paused,
            "draining": s.draining,
            "in_flight": self.in_flight,
            "reason": s.reason,
            "changed_by": s.changed_by,
            "changed_at": s.changed_at.isoformat(),
            "expires_at": s.expires_at.isoformat() if s.expires_at else None,
            "paused_until": s.paused_until.isoformat() if s.paused_until else None,
            "last_activity": self.last_activity.isoformat() if self.last_activity else None,
            "activity": self.activity,
            "waiting_on": self.waiting_on,
        }


def actor_display(actor: str) -> str:
    """An actor as a person reads it: `user:3:alice` → `alice (user 3)`; others as they are."""
    parts = (actor or "").split(":", 2)
    if len(parts) == 3 and parts[0] == "user":
        return f"{parts[2]} (user {parts[1]})"
    if len(parts) == 2 and parts[0] == "user":
        return f"user {parts[1]}"
    return actor or "system"


def restrictions(now=None) -> list[dict]:
    """Every scope not ACTIVE now (the admin's banner): scope, state, who, when, why."""
    now = now or timezone.now()
    out = []
    rows = TradingState.objects.exclude(state="ACTIVE", expires_at__isnull=True)
    for row in rows.order_by("scope_type", "scope_key"):
        state = row.effective_state(now)
        if state == "ACTIVE":
            continue
        out.append(
            {
                "scope": "global" if row.scope_type == "global" else f"{row.scope_type}:{row.scope_key}",
                "state": state,
                "by": actor_display(row.changed_by),
                "at": row.changed_at,
                "reason": row.reason,
                "until": row.expires_at if row.expires_at and row.expires_at > now else None,
            }
        )
    return out


def component_views(now=None) -> list[ComponentView]:
    now = now or timezone.now()
    states = list(ControlState.objects.order_by("component"))
    venues = [s.component[len(EXECUTOR_PREFIX) :] for s in states if s.component.startswith(EXECUTOR_PREFIX)]
    commands_sent = dict(
        ExecutionCommand.objects.filter(provider__in=venues)
        .values("provider")
        .annotate(last=Max("sent_at"))
        .values_list("provider", "last")
    )
    in_flight = {
        row["provider"]: row["n"]
        for row in Order.objects.filter(provider__in=venues, status__in=IN_FLIGHT)
        .values("provider")
        .annotate(n=Count("id"))
    }
    out = []
    for s in states:
        venue = s.component[len(EXECUTOR_PREFIX) :] if s.component.startswith(EXECUTOR_PREFIX) else None
        busy = in_flight.get(venue, 0) if venue else 0
        activity = activity_read(s.component)
        if activity is None:
            activity = (commands_sent.get(venue), "command sent to the venue") if venue else (None, "")
        lapsed = s.armed and not s.armed_at(now)
        killed = kill_switch_venue(s.component)
        if killed and not venue_enabled(killed):
            status, badge = "disabled", "down"
            waiting = f"environment kill switch {KILL_SWITCH_VARS.get(killed, killed.upper() + '_ENABLED')}=false"
        elif not s.armed or lapsed:
            status, badge = ("lapsed" if s.armed else "disarmed"), "down"
            waiting = "an operator to arm it" + (f"; {plural(busy, 'order')} will be refused" if busy else "")
        elif s.paused:
            status, badge = "paused", "warn"
            waiting = "resume" + (f" (until {s.paused_until:%Y-%m-%d %H:%M} UTC)" if s.paused_until else "")
        elif s.draining:
            status, badge = ("draining", "warn") if busy else ("drained", "warn")
            waiting = (
                f"{plural(busy, 'in-flight order')} to finish" if busy else "nothing: drained; resume to take new work"
            )
        else:
            status, badge = "armed", "ok"
            waiting = f"{plural(busy, 'order')} in flight" if busy else ("new orders" if venue else "work")
        out.append(ComponentView(s, status, badge, activity[0], waiting, busy, activity[1]))
    return out


def trading_state_rows(now=None) -> list[dict]:
    """The global scope, then every restriction: a scope back to ACTIVE with no expiry pending
    drops off (its history stays in the ledger)."""
    now = now or timezone.now()
    rows = []
    for row in TradingState.objects.order_by("scope_type", "scope_key"):
        effective = row.effective_state(now)
        if row.scope_type != "global" and effective == "ACTIVE" and not (row.expires_at and row.expires_at > now):
            continue
        rows.append(
            {
                "row": row,
                "scope": "global" if row.scope_type == "global" else f"{row.scope_type}:{row.scope_key}",
                "state": effective,
                "badge": {"ACTIVE": "ok", "REDUCE_ONLY": "warn", "HALTED": "down"}[effective],
            }
        )
    if not any(r["scope"] == "global" for r in rows):
        rows.insert(0, {"row": None, "scope": "global", "state": "ACTIVE", "badge": "ok"})
    return rows


def price_rows(now=None) -> list[dict]:
    """Price freshness per venue and asset: each market at the venue it routes to, and each
    asset held open at the venue holding it (a position is marked at its own venue's price)."""
    from providers.models import PaperMarket
    from providers.prices import price_cached, price_venue

    now = now or timezone.now()
    pairs = {(price_venue(symbol), symbol) for symbol in PaperMarket.objects.values_list("symbol", flat=True)}
    pairs |= set(Trade.objects.filter(status=Trade.Status.OPEN).values_list("provider", "asset"))
    rows = []
    for venue, symbol in sorted(pairs, key=lambda p: (p[1], p[0])):
        tick = price_cached(symbol, venue=venue)
        age = seconds_since(tick.timestamp, now) if tick else None
        stale = age is None or age > settings.PRICE_MAX_AGE
        rows.append(
            {
                "symbol": symbol,
                "venue": venue,
                "price": tick.price if tick else None,
                "source": tick.source if tick else "",
                "age": round(age, 1) if age is not None else None,
                "badge": "down" if tick is None else "warn" if stale else "ok",
            }
        )
    return rows


@dataclass
class Attention:
    unknown_orders: int
    near_liquidation: int
    without_stop: int
    items: list[HealthItem] = field(default_factory=list)


def near_liquidation_trade_ids() -> list[int]:
    """Open trades within NEAR_LIQUIDATION of their liquidation price at the latest mark (as
    the API marks them; no mark: the mark of the last fill)."""
    from trading.services.marks import marks_latest

    rows = list(
        Trade.objects.filter(status=Trade.Status.OPEN, liquidation_price__isnull=False).values_list(
            "id", "provider", "asset", "current_price", "liquidation_price"
        )
    )
    marks = marks_latest((venue, asset) for _, venue, asset, *_ in rows)
    near = []
    for pk, venue, asset, stored, liq in rows:
        current = marks.get((venue, asset), stored)
        if current and abs(current - liq) / current <= NEAR_LIQUIDATION:
            near.append(pk)
    return near


def trades_without_stop():
    """Open trades with no working stop-loss, trailing stop or OCO."""
    protected = Order.objects.filter(
        trade_id=OuterRef("pk"), order_type__in=WORKING_STOP_TYPES, status__in=WORKING_STATUSES
    )
    return Trade.objects.filter(status=Trade.Status.OPEN).filter(~Exists(protected))


def attention_counts() -> Attention:
    return Attention(
        unknown_orders=Order.objects.filter(status=Order.Status.UNKNOWN).count(),
        near_liquidation=len(near_liquidation_trade_ids()),
        without_stop=trades_without_stop().count(),
    )


def venue_figures(now=None, instruments: list | None = None) -> list[dict]:
    """Open exposure (|quantity| × mark) and today's PnL (realised net of fees and funding
    since 00:00 UTC, plus open unrealised) per venue. Open positions are marked as the API
    marks them (trading.services.marks.marks_latest: the venue's latest price of the asset;
    none: the mark of the position's last fill). `instruments`, when given, receives the open
    exposure per instrument as (asset, USD)."""
    from trading.services.marks import marks_latest
    from trading.services.positions import unrealized_pnl

    now = now or timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    money = DecimalField(max_digits=38, decimal_places=8)
    open_rows = list(
        Position.objects.filter(status=Position.Status.OPEN).values_list(
            "provider", "asset", "side", "quantity", "avg_entry_price", "current_price", "unrealized_pnl"
        )
    )
    marks = marks_latest((venue, asset) for venue, asset, *_ in open_rows)
    exposure: dict[str, Decimal] = {}
    unrealized: dict[str, Decimal] = {}
    by_instrument: dict[str, Decimal] = {}
    for venue, asset, side, quantity, entry, stored_price, stored_pnl in open_rows:
        mark = marks.get((venue, asset))
        if mark is None:
            price, pnl = stored_price or ZERO, stored_pnl or ZERO
        else:
            price, pnl = mark, unrealized_pnl(side=side, entry_price=entry, price=mark, size=quantity)
        exposure[venue] = exposure.get(venue, ZERO) + abs(quantity) * price
        by_instrument[asset] = by_instrument.get(asset, ZERO) + abs(quantity) * price
        unrealized[venue] = unrealized.get(venue, ZERO) + pnl
    realized = dict(
        Fill.objects.filter(occurred_at__gte=day_start)
        .values("trade__provider")
        .annotate(net=Sum(ExpressionWrapper(F("realized_pnl") - F("fee") - F("funding"), output_field=money)))
        .values_list("trade__provider", "net")
    )
    venues = sorted(set(settings.VENUE_ENABLED) | set(exposure) | set(realized))
    cent = Decimal("0.01")
    rows = []
    for venue in venues:
        realized_today = realized.get(venue) or ZERO
        open_pnl = unrealized.get(venue, ZERO)
        rows.append(
            {
                "venue": venue,
                "exposure": exposure.get(venue, ZERO).quantize(cent),
                "realized_today": realized_today.quantize(cent),
                "unrealized": open_pnl.quantize(cent),
                "pnl_today": (realized_today + open_pnl).quantize(cent),
            }
        )
    if instruments is not None:
        instruments.extend((asset, value.quantize(cent)) for asset, value in sorted(by_instrument.items()))
    return rows


def pnl_over_time(*, days: int = 14, user=None, now=None) -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    """Cumulative realised PnL (net of fees and funding) per UTC day over the last `days` days:
    the desk's line and one per venue (only `user`'s fills when given). Returns (day labels,
    [(name, values)])."""
    from datetime import timedelta

    from django.db.models.functions import TruncDate

    now = now or timezone.now()
    first = (now - timedelta(days=days - 1)).date()
    money = DecimalField(max_digits=38, decimal_places=8)
    fills = Fill.objects.filter(occurred_at__date__gte=first)
    if user is not None:
        fills = fills.filter(user=user)
    rows = (
        fills.annotate(day=TruncDate("occurred_at"))
        .values("day", "trade__provider")
        .annotate(net=Sum(ExpressionWrapper(F("realized_pnl") - F("fee") - F("funding"), output_field=money)))
    )
    per_day: dict[str, dict] = {}
    for r in rows:
        per_day.setdefault(r["trade__provider"], {})[r["day"]] = r["net"] or ZERO
    dates = [first + timedelta(days=i) for i in range(days)]
    series = []
    desk = [ZERO] * days
    for venue in sorted(per_day):
        running, values = ZERO, []
        for i, d in enumerate(dates):
            running += per_day[venue].get(d, ZERO)
            values.append(running)
            desk[i] += running
        series.append((venue, values))
    return [d.isoformat() for d in dates], [("desk", desk), *series]


def panel_snapshot(now=None) -> dict:
    now = now or timezone.now()
    attention = attention_counts()
    health = health_collect()
    instruments: list[tuple[str, Decimal]] = []
    return {
        "now": now,
        "components": component_views(now),
        "trading_states": trading_state_rows(now),
        "health": health,
        "prices": price_rows(now),
        "attention": attention,
        "venues": venue_figures(now, instruments),
        "instrument_exposure": instruments,
        "open_orders": Order.objects.filter(Q(status__in=IN_FLIGHT)).count(),
        "scheduled_config": scheduled_changes(),
    }


def panel_json(snapshot: dict) -> dict:
    a = snapshot["attention"]
    return {
        "now": snapshot["now"].isoformat(),
        "components": [c.as_dict() for c in snapshot["components"]],
        "trading_states": [
            {
                "scope": r["scope"],
                "state": r["state"],
                "reason": r["row"].reason if r["row"] else "",
                "expires_at": r["row"].expires_at.isoformat() if r["row"] and r["row"].expires_at else None,
            }
            for r in snapshot["trading_states"]
        ],
        "health": [h.as_dict() for h in snapshot["health"]],
        "prices": [{**p, "price": str(p["price"]) if p["price"] is not None else None} for p in snapshot["prices"]],
        "attention": {
            "unknown_orders": a.unknown_orders,
            "near_liquidation": a.near_liquidation,
            "without_stop": a.without_stop,
        },
        "venues": [{k: str(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in snapshot["venues"]],
        "scheduled_config": [
            {**c, "effective_at": c["effective_at"].isoformat()} for c in snapshot["scheduled_config"]
        ],
    }
