"""Reads that are more than a one-line queryset."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from configuration.runtime import config_refresh, config_value
from trading.models import ControlState, Event, Order, Position, RiskLimit, Trade, TradingState
from trading.risk import RiskLimits, RiskSnapshot
from trading.services.control import executor_component
from trading.services.idempotency import (
    idempotency_claim_deferred_now,
    idempotency_claim_settle,
    idempotency_claim_sql,
)

_limits_cache: dict[str, tuple[float, RiskLimits]] = {}


def _dec(value) -> Decimal | None:
    if value in (None, ""):
        return None
    return Decimal(str(value))


def risk_limits_for(asset: str) -> RiskLimits:
    """Runtime defaults (configuration/registry.py), overridden by the global RiskLimit row,
    overridden by the instrument's. Cached per process for RISK_LIMITS_CACHE_SECONDS (0 disables the cache)."""
    ttl = settings.RISK_LIMITS_CACHE_SECONDS
    config_refresh()  # a configuration change drops this cache (trading.apps registers the listener)
    hit = _limits_cache.get(asset)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        return hit[1]
    values = {  # runtime configuration (database → environment → code default), then the rows
        "max_notional": _dec(config_value("RISK_MAX_NOTIONAL")),
        "max_leverage": _dec(config_value("RISK_MAX_LEVERAGE")),
        "max_open_positions": int(config_value("RISK_MAX_OPEN_POSITIONS")),
        "max_slippage": _dec(config_value("RISK_MAX_SLIPPAGE")),
        "price_band": _dec(config_value("RISK_PRICE_BAND")),
        "daily_loss_cap": _dec(config_value("RISK_DAILY_LOSS_CAP")),
        "max_orders_per_minute": int(config_value("RISK_MAX_ORDERS_PER_MINUTE")),
    }
    rows = sorted(RiskLimit.objects.filter(instrument__in=["", asset]), key=lambda r: r.instrument != "")
    for row in rows:  # global first, then the instrument's override
        for name in values:
            value = getattr(row, name)
            if value is not None:
                values[name] = value
    limits = RiskLimits(**values)
    if ttl > 0:
        _limits_cache[asset] = (time.monotonic() + ttl, limits)
    return limits


def risk_limits_cache_clear() -> None:
    _limits_cache.clear()


# The order rate is counted only up to the limit (a user at or over it is denied either way), so
# a user who floods orders costs each check at most `limit` index entries, not one per order of
# the minute (each a heap visit: recent rows of many users share no page).
_USER_STATS_SQL = """
SELECT
  (SELECT COUNT(*) FROM (SELECT 1 FROM trading_order WHERE user_id = %(user)s AND created_at >= %(minute_ago)s
     AND origin IN ('user', 'protective') LIMIT %(rate_limit)s) AS recent),
  (SELECT COALESCE(SUM(realized_pnl - fee - funding), 0) FROM trading_fill
     WHERE user_id = %(user)s AND occurred_at >= %(day_start)s),
  (SELECT COALESCE(json_agg(json_build_array(provider, asset, side)), '[]'::json) FROM trading_position
     WHERE user_id = %(user)s AND status = 'open'),
  (SELECT draining FROM trading_controlstate WHERE component = %(component)s),
  (SELECT paused FROM trading_controlstate WHERE component = %(component)s),
  (SELECT COALESCE(json_agg(json_build_array(scope_type, scope_key, state, previous_state, expires_at)), '[]'::json)
     FROM trading_tradingstate
     WHERE scope_type = 'global' OR (scope_type = 'venue' AND scope_key = %(venue)s)
        OR (scope_type = 'instrument' AND scope_key = %(asset)s))
"""


def risk_snapshot_load(*, user, venue: str, asset: str, market_max_leverage: Decimal, reference_price: Decimal):
    """Everything the risk engine needs, in one query (plus the limits, usually cached). The
    orders of the last minute are counted up to the limit."""
    limits = risk_limits_for(asset)
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    params = {
        "user": user.pk,
        "minute_ago": now - timedelta(minutes=1),
        "rate_limit": limits.max_orders_per_minute,
        "day_start": day_start,
        "component": executor_component(venue),
        "venue": venue,
        "asset": asset,
    }
    # A request's deferred Idempotency-Key claim rides this read (services/idempotency.py): it is
    # made before the risk engine runs, with no round trip of its own.
    claim = idempotency_claim_sql()
    with connection.cursor() as cur:
        if claim is None:
            cur.execute(_USER_STATS_SQL, params)
            recent, net_today, open_positions, draining, paused, states = cur.fetchone()
        else:
            cte, claim_params = claim
            cur.execute(f"WITH {cte}\n{_USER_STATS_SQL}, (SELECT id FROM claim)", params | claim_params)
            recent, net_today, open_positions, draining, paused, states, claimed = cur.fetchone()
    if claim is not None:
        idempotency_claim_settle(claimed)  # ClaimTaken when the key was held: nothing else ran
    else:
        idempotency_claim_deferred_now()  # one this read could not carry (inside a transaction)
    if isinstance(open_positions, str):
        open_positions = json.loads(open_positions)
    if isinstance(states, str):
        states = json.loads(states)
    net_today = Decimal(net_today)
    trading_states = {}
    for scope_type, scope_key, state, previous, expires_at in states:
        row = TradingState(scope_type=scope_type, scope_key=scope_key, state=state, previous_state=previous or "")
        if expires_at:
            row.expires_at = datetime.fromisoformat(expires_at)
        label = "global" if scope_type == "global" else f"{scope_type}:{scope_key}"
        trading_states[label] = row.effective_state(now)
    return RiskSnapshot(
        limits=limits,
        trading_states=trading_states,
        market_max_leverage=market_max_leverage,
        open_positions=frozenset(tuple(p) for p in open_positions),
        realized_loss_today=max(Decimal(0), -net_today),
        orders_last_minute=int(recent),
        reference_price=reference_price,
        venue_draining=bool(draining),
        venue_paused=bool(paused),
    )


def orders_for_user(
    *,
    user,
    status: str | None = None,
    asset: str | None = None,
    order_type: str | None = None,
    origin: str | None = None,
):
    qs = Order.objects.filter(user=user).order_by("-id")
    if origin:
        qs = qs.filter(origin=origin)
    if status:
        qs = qs.filter(status=status)
    if asset:
        qs = qs.filter(asset=asset)
    if order_type:
        qs = qs.filter(order_type=order_type)
    return qs


def order_timeline(*, order: Order):
    return Event.objects.filter(correlation_id=order.correlation_id).order_by("id")


def positions_for_user(*, user, status: str | None = Position.Status.OPEN):
    qs = Position.objects.filter(user=user).order_by("-id")
    if status:
        qs = qs.filter(status=status)
    return qs.prefetch_related("trades")


def trade_open_for_user(*, user, pair_id: str, trade_index: str, provider: str | None = None) -> Trade | None:
    """The open trade by the venue's pair id (a number) and trade index; a market name
    (BTC-USD, BTCUSDT...) in place of the pair id is taken too."""
    pair_id = str(pair_id).strip()
    qs = Trade.objects.filter(user=user, trade_index=trade_index, status=Trade.Status.OPEN)
    if pair_id.isdigit():
        qs = qs.filter(pair_id=pair_id)
    else:
        from providers.interface import VenueException
        from providers.markets import market_resolve

        try:
            qs = qs.filter(asset=market_resolve(pair_id))
        except VenueException:
            return None
    if provider:
        qs = qs.filter(provider=provider)
    return qs.order_by("-id").first()


def control_states():
    return ControlState.objects.order_by("component")


def venue_assets_held() -> set[tuple[str, str]]:
    """(venue, asset) of the open trades and live orders at venues other than paper (whose walk
    prices every paper market anyway): each venue keeps being priced for them whatever the
    asset routes to now (registered with `providers.prices`)."""
    live = [s for s in Order.Status.values if s not in Order.TERMINAL]
    trades = Trade.objects.filter(status=Trade.Status.OPEN).exclude(provider="paper")
    orders = Order.objects.filter(status__in=live).exclude(provider="paper")
    return set(trades.values_list("provider", "asset").distinct()) | set(
        orders.values_list("provider", "asset").distinct()
    )
