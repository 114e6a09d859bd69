"""The protective engine's SQL: set-based statements over pending orders of one asset at one
venue (`%(venue)s`: orders are evaluated at the price of the venue holding them).

Every pending order is reduced (by generated columns, see migration `protective_engine`) to
at most two trigger levels: it fires when the price is at or below `trigger_below` or at or
above `trigger_above` (long stop: below = stop; long take-profit: above = tp; OCO: both
legs; held LIMIT entries: below/above = limit). Partial indexes on (asset, level) over
PENDING_TRIGGER rows make one tick's work two index range scans whose cost grows with the
orders that fire. Trailing stops likewise carry `ratchet_above`/`ratchet_below`: the price
beyond which an active stop moves, so only stops that actually move are read and written.

The ledger events of an evaluation (`order.trailing_started`, `order.triggered`) and their
outbox messages are written by the same statement that changes the orders, from its RETURNING
rows: ids come from a block of ULIDs reserved by the caller (`%(ulid_prefix)s`, row `n` gets
`prefix + ulid_suffix(n)`), the payload's shared part comes encoded (`%(shared)s`: a JSON
object's members and its closing brace), the handlers matching the topic as `%(handlers)s`.
Only what the caller acts on comes back.

Parameters are named (`%(asset)s`, `%(price)s`, ...); statuses and types are literals so the
planner can match the partial-index predicates.
"""

from __future__ import annotations

from trading.models import Order
from trading.ulid import ulid_suffix_sql

_CORRELATION = f"'{Order.CORRELATION_PREFIX}'"  # an order's events: correlation id `order-<id>`


def _events(source: str, topic: str, payload: str) -> str:
    """CTEs `ev` and `ev_outbox`: one `topic` event per row of CTE `source` (columns `id`, the
    order, and `n`, the row's number from 0), as `order_event` writes it: correlation
    `order-<id>`, causation the order's latest event before this statement; then one outbox
    message per handler. `payload` is JSON text (cast once per row, as COPY would)."""
    return f"""
ev_last AS (
    SELECT e.correlation_id, max(e.id) AS id
      FROM trading_event e
     WHERE e.correlation_id = ANY(ARRAY(SELECT {_CORRELATION} || id FROM {source}))
     GROUP BY e.correlation_id
), ev AS (
    INSERT INTO trading_event (id, occurred_at, topic, aggregate_type, aggregate_id, correlation_id, causation_id,
                               actor, payload, version)
    SELECT %(ulid_prefix)s || {ulid_suffix_sql("r.n")}, %(now)s, '{topic}', 'order', r.id::text, {_CORRELATION} || r.id,
           COALESCE(l.id, ''), 'system', ({payload})::jsonb, 1
      FROM {source} r LEFT JOIN ev_last l ON l.correlation_id = {_CORRELATION} || r.id
    RETURNING id
), ev_outbox AS (
    INSERT INTO trading_outboxmessage (event_id, handler, status, attempts, next_attempt_at, last_error, created_at)
    SELECT ev.id, h.handler, 'pending', 0, %(now)s, '', %(now)s
      FROM ev CROSS JOIN unnest(%(handlers)s::text[]) AS h(handler)
)"""


# Per venue and asset, one evaluation at a time (tick listener, Beat, another worker): siblings of a trade
# are then judged against a consistent view. Triggering itself does not rely on it: the status
# guard in the UPDATE makes an order trigger once whatever races.
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('protective:' || %(venue)s || ':' || %(asset)s, 0))"

# A trailing stop's candidate level at this price (distance or percentage), rounded to the
# column's scale the way the column stores it.
_CAND_LONG = (
    "CASE WHEN o.trailing_stop_distance IS NOT NULL THEN %(price)s - o.trailing_stop_distance "
    "ELSE round(%(price)s * (1 - o.trailing_stop_percentage / 100), 18) END"
)
_CAND_SHORT = (
    "CASE WHEN o.trailing_stop_distance IS NOT NULL THEN %(price)s + o.trailing_stop_distance "
    "ELSE round(%(price)s * (1 + o.trailing_stop_percentage / 100), 18) END"
)

# An `order.trailing_started` payload: the first level, then price, source and door.
_STARTED_PAYLOAD = """'{"stop_price": "' || r.stop_price || '", ' || %(shared)s"""

# Activate (once the activation price is reached) and ratchet trailing stops, only in the
# favourable direction (GREATEST for longs, LEAST for shorts: the stop never loosens). On
# venues holding SL/TP natively the new level is marked for a push when it moved at least
# `min_step` (fraction) from the level last pushed. Stops starting now get their
# `order.trailing_started` event. Returns one row: how many stops moved, how many started, which to push.
TRAILING_RATCHET = f"""
WITH cand AS (
    SELECT o.id FROM trading_order o
     WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.ratchet_above IS NOT NULL AND o.ratchet_above <= %(price)s
    UNION ALL
    SELECT o.id FROM trading_order o
     WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.ratchet_below IS NOT NULL AND o.ratchet_below >= %(price)s
    UNION ALL
    SELECT o.id FROM trading_order o
     WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.order_type = 'TRAILING_STOP'
       AND (o.stop_price IS NULL OR (o.trailing_activated_at IS NULL AND o.trailing_activation_price IS NOT NULL))
), calc AS (
    SELECT o.id,
           o.trailing_activated_at IS NULL AS starting,
           CASE WHEN o.side = 'long' THEN GREATEST(o.stop_price, {_CAND_LONG})
                ELSE LEAST(o.stop_price, {_CAND_SHORT}) END AS new_stop,
           o.provider = ANY(%(native)s) AS native,
           o.venue_stop_price AS pushed_stop
      FROM trading_order o JOIN (SELECT DISTINCT id FROM cand) c ON c.id = o.id
     WHERE o.status = 'PENDING_TRIGGER'
       AND (o.trailing_activated_at IS NOT NULL OR o.trailing_activation_price IS NULL
            OR (o.side = 'long' AND %(price)s >= o.trailing_activation_price)
            OR (o.side = 'short' AND %(price)s <= o.trailing_activation_price))
), moved AS (
    SELECT calc.*,
           native AND (pushed_stop IS NULL OR abs(new_stop - pushed_stop) >= %(min_step)s * pushed_stop) AS push
      FROM calc
), done AS (
    UPDATE trading_order o
       SET stop_price = m.new_stop,
           trailing_activated_at = COALESCE(o.trailing_activated_at, now()),
           venue_stop_price = CASE WHEN m.push THEN m.new_stop ELSE o.venue_stop_price END,
           updated_at = now()
      FROM moved m
     WHERE o.id = m.id AND o.status = 'PENDING_TRIGGER'
       AND (o.stop_price IS DISTINCT FROM m.new_stop OR o.trailing_activated_at IS NULL)
    RETURNING o.id, o.stop_price, m.starting, m.push
), started AS (
    SELECT id, stop_price, row_number() OVER (ORDER BY id) - 1 AS n FROM done WHERE starting
), {_events("started", "order.trailing_started", _STARTED_PAYLOAD)}
SELECT count(*), count(*) FILTER (WHERE starting), COALESCE(array_agg(id ORDER BY id) FILTER (WHERE push), '{{}}')
  FROM done
"""

# Is any trailing stop of the asset due to start or move at this price? TRAILING_RATCHET's
# candidates (and its activation condition), stopping at the first: most ticks move no trailing
# stop, and this costs a fraction of planning the ratchet.
TRAILING_DUE = """
SELECT EXISTS (SELECT 1 FROM trading_order o
                WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
                  AND o.ratchet_above IS NOT NULL AND o.ratchet_above <= %(price)s)
    OR EXISTS (SELECT 1 FROM trading_order o
                WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
                  AND o.ratchet_below IS NOT NULL AND o.ratchet_below >= %(price)s)
    OR EXISTS (SELECT 1 FROM trading_order o
                WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.order_type = 'TRAILING_STOP'
                  AND (o.stop_price IS NULL
                       OR (o.trailing_activated_at IS NULL AND o.trailing_activation_price IS NOT NULL))
                  AND (o.trailing_activated_at IS NOT NULL OR o.trailing_activation_price IS NULL
                       OR (o.side = 'long' AND %(price)s >= o.trailing_activation_price)
                       OR (o.side = 'short' AND %(price)s <= o.trailing_activation_price)))
"""

# Statuses in which a protective close of a trade is under way: a sibling must not fire too.
CLOSING = "('TRIGGERED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN')"
PROTECTIVE = "('STOP_LOSS', 'TAKE_PROFIT', 'TRAILING_STOP', 'OCO')"

# The leg that fired: for a long, the lower level is the stop (or a held LIMIT entry); the
# upper the take-profit. Mirrored for shorts.
_LEG = """
CASE
    WHEN o.order_type = 'LIMIT' THEN 'limit'
    WHEN o.order_type IN ('STOP_LOSS', 'TRAILING_STOP') THEN 'stop'
    WHEN o.order_type = 'TAKE_PROFIT' THEN 'take_profit'
    WHEN o.side = 'long' AND o.trigger_below >= %(price)s THEN 'stop'
    WHEN o.side = 'short' AND o.trigger_above <= %(price)s THEN 'stop'
    ELSE 'take_profit'
END
"""

# An `order.triggered` payload: the order's own part (an OCO names the leg it cancels), then
# the part every order of the evaluation shares (from/to, price, price_at, source, door).
# Every value spelled here is an id, an enum word or a number: safe to write into JSON directly.
_TRIGGERED_PAYLOAD = """
'{"order_id": ' || r.id || ', "order_type": "' || r.order_type || '", "side": "' || r.side
|| '", "trade_id": ' || COALESCE(r.trade_id::text, 'null') || ', "leg": "' || r.leg || '", "level": "' || r.level
|| CASE WHEN r.order_type = 'OCO'
        THEN '", "cancelled_leg": "' || CASE WHEN r.leg = 'stop' THEN 'take_profit' ELSE 'stop' END
        ELSE '' END
|| '", ' || %(shared)s
"""

# Fire every pending order of the asset whose level the price reached: at most one per trade
# (stops before take-profits), none for a trade whose protective close is already under way,
# none for SL/TP orders a native-SL/TP venue holds itself, nor for trailing stops there whose
# level was pushed as the venue's SL (the venue fires it; one not pushed yet fires here).
# `status = 'PENDING_TRIGGER'` in the UPDATE is re-checked on the locked row, so two racing
# evaluations trigger an order once.
# Each order fired gets its `order.triggered` event; returns the ids fired.
TRIGGER = f"""
WITH cand AS (
    SELECT o.id, o.trade_id, o.order_type, o.side, o.trigger_below, o.trigger_above, o.provider, o.venue_stop_price
      FROM trading_order o
     WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.trigger_below IS NOT NULL AND o.trigger_below >= %(price)s
    UNION
    SELECT o.id, o.trade_id, o.order_type, o.side, o.trigger_below, o.trigger_above, o.provider, o.venue_stop_price
      FROM trading_order o
     WHERE o.asset = %(asset)s AND o.provider = %(venue)s AND o.status = 'PENDING_TRIGGER'
       AND o.trigger_above IS NOT NULL AND o.trigger_above <= %(price)s
), pick AS (
    SELECT DISTINCT ON (COALESCE(o.trade_id, -o.id)) o.id, {_LEG} AS leg
      FROM cand o
     WHERE NOT (o.provider = ANY(%(native)s)
                AND (o.order_type IN ('STOP_LOSS', 'TAKE_PROFIT')
                     OR (o.order_type = 'TRAILING_STOP' AND o.venue_stop_price IS NOT NULL)))
       AND (o.trade_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM trading_order s
             WHERE s.trade_id = o.trade_id AND s.id <> o.id
               AND s.order_type IN {PROTECTIVE} AND s.status IN {CLOSING}))
     ORDER BY COALESCE(o.trade_id, -o.id),
              CASE WHEN o.order_type = 'TAKE_PROFIT' THEN 1 ELSE 0 END,
              o.id
), fired AS (
    UPDATE trading_order o
       SET status = 'TRIGGERED', triggered_at = now(), updated_at = now(),
           trigger_price = %(price)s, triggered_leg = pick.leg
      FROM pick
     WHERE o.id = pick.id AND o.status = 'PENDING_TRIGGER'
    RETURNING o.id, o.order_type, o.side, o.trade_id, pick.leg,
              CASE WHEN o.side = 'long' THEN
                       CASE WHEN pick.leg IN ('stop', 'limit') THEN o.trigger_below ELSE o.trigger_above END
                   ELSE CASE WHEN pick.leg IN ('stop', 'limit') THEN o.trigger_above ELSE o.trigger_below END
              END AS level
), numbered AS (
    SELECT fired.*, row_number() OVER (ORDER BY id) - 1 AS n FROM fired
), {_events("numbered", "order.triggered", _TRIGGERED_PAYLOAD)}
SELECT id FROM fired ORDER BY id
"""

# (venue, asset) with pending orders and how many each.
PENDING_ASSETS = """
SELECT provider, asset, count(*) FROM trading_order WHERE status = 'PENDING_TRIGGER'
 GROUP BY provider, asset ORDER BY provider, asset
"""

# --- staleness ----------------------------------------------------------------------------------

# Enter (or stay in) staleness; STALE_WAS first tells whether it is entered now (event once).
STALE_ENTER = """
INSERT INTO trading_protectiveassetstate AS s (venue, asset, stale, stale_since, last_price, last_price_at,
                                                last_source, evaluated_at)
VALUES (%(venue)s, %(asset)s, true, now(), %(price)s, %(price_at)s, %(source)s, now())
ON CONFLICT (venue, asset) DO UPDATE
   SET stale = true, stale_since = COALESCE(s.stale_since, now()), evaluated_at = now(),
       last_price = COALESCE(EXCLUDED.last_price, s.last_price),
       last_price_at = COALESCE(EXCLUDED.last_price_at, s.last_price_at),
       last_source = COALESCE(NULLIF(EXCLUDED.last_source, ''), s.last_source)
"""

STALE_WAS = "SELECT stale FROM trading_protectiveassetstate WHERE venue = %(venue)s AND asset = %(asset)s FOR UPDATE"

FRESH_MARK = """
INSERT INTO trading_protectiveassetstate AS s (venue, asset, stale, stale_since, last_price, last_price_at,
                                                last_source, evaluated_at)
VALUES (%(venue)s, %(asset)s, false, NULL, %(price)s, %(price_at)s, %(source)s, now())
ON CONFLICT (venue, asset) DO UPDATE
   SET stale = false, stale_since = NULL, last_price = EXCLUDED.last_price, last_price_at = EXCLUDED.last_price_at,
       last_source = EXCLUDED.last_source, evaluated_at = now()
"""

# Only leaves staleness (the tick path: no write at all while the asset is fresh).
FRESH_LEAVE = """
UPDATE trading_protectiveassetstate SET stale = false, stale_since = NULL, evaluated_at = now()
 WHERE venue = %(venue)s AND asset = %(asset)s AND stale
RETURNING asset
"""

# --- heartbeat ------------------------------------------------------------------------------------

# Add what a door did since its last heartbeat: runs and total triggered accumulate, the rest is
# the latest interval's (one statement, so writers in several processes never lose counts).
HEARTBEAT_ADD = """
INSERT INTO trading_engineheartbeat AS h (name, last_run_at, runs, assets_evaluated, orders_evaluated, triggered,
                                          trailing_moved, duration_ms, stale_assets, near_liquidation, stop_missing,
                                          total_triggered, last_error)
VALUES (%(name)s, %(at)s, %(runs)s, %(assets)s, 0, %(triggered)s, %(moved)s, %(duration_ms)s, %(stale)s::jsonb, 0, 0,
        %(triggered)s, %(error)s)
ON CONFLICT (name) DO UPDATE
   SET last_run_at = GREATEST(h.last_run_at, EXCLUDED.last_run_at), runs = h.runs + EXCLUDED.runs,
       assets_evaluated = EXCLUDED.assets_evaluated, triggered = EXCLUDED.triggered,
       trailing_moved = EXCLUDED.trailing_moved, duration_ms = EXCLUDED.duration_ms,
       stale_assets = EXCLUDED.stale_assets, total_triggered = h.total_triggered + EXCLUDED.total_triggered,
       last_error = EXCLUDED.last_error
"""

# --- liquidation watch and stop coverage ----------------------------------------------------------

# Positions within `pct` of their liquidation price at the given prices (of their venue): flag
# the ones entering the condition (returned), clear the ones that left it or closed.
NEAR_LIQUIDATION = """
WITH px AS (
    SELECT * FROM unnest(%(venues)s::text[], %(assets)s::text[], %(prices)s::numeric[]) AS px(venue, asset, price)
), cur AS (
    SELECT p.id, px.price, p.liquidation_price
      FROM trading_position p JOIN px ON px.asset = p.asset AND px.venue = p.provider
     WHERE p.status = 'open' AND p.liquidation_price IS NOT NULL
       AND ((p.side = 'long' AND px.price - p.liquidation_price <= %(pct)s * px.price)
         OR (p.side = 'short' AND p.liquidation_price - px.price <= %(pct)s * px.price))
), cleared AS (
    UPDATE trading_positionriskstate r SET near_liquidation_since = NULL
      FROM trading_position p
     WHERE p.id = r.position_id AND r.near_liquidation_since IS NOT NULL
       AND r.position_id NOT IN (SELECT id FROM cur)
       AND (p.status <> 'open' OR (p.provider, p.asset) IN (SELECT venue, asset FROM px))
    RETURNING r.position_id
), entered AS (
    INSERT INTO trading_positionriskstate AS r (position_id, near_liquidation_since)
    SELECT id, now() FROM cur
    ON CONFLICT (position_id) DO UPDATE SET near_liquidation_since = now()
     WHERE r.near_liquidation_since IS NULL
    RETURNING r.position_id
)
SELECT cur.id, cur.price, cur.liquidation_price, p.user_id, p.asset, p.side, p.provider
  FROM cur JOIN entered e ON e.position_id = cur.id JOIN trading_position p ON p.id = cur.id
 ORDER BY cur.id
"""

# A working stop: a live protective order with a stop level on the trade.
_HAS_STOP = f"""
EXISTS (SELECT 1 FROM trading_order o
         WHERE o.trade_id = t.id AND o.status IN ('PENDING_TRIGGER', 'TRIGGERED', 'SUBMITTING', 'SUBMITTED', 'UNKNOWN')
           AND ((o.order_type IN ('STOP_LOSS', 'TRAILING_STOP') AND o.stop_price IS NOT NULL)
             OR (o.order_type = 'OCO' AND o.oco_stop_price IS NOT NULL))
           AND o.order_type IN {PROTECTIVE})
"""

# Open positions with an open trade lacking a working stop (users who opted out excluded):
# remember since when; flag (and return) those uncovered for longer than the grace period and
# not flagged yet; forget covered/closed ones.
STOP_COVERAGE = f"""
WITH unc AS (
    SELECT DISTINCT t.position_id AS id
      FROM trading_trade t JOIN trading_user u ON u.id = t.user_id
     WHERE t.status = 'open' AND NOT u.stop_coverage_opt_out AND NOT {_HAS_STOP}
), covered AS (
    UPDATE trading_positionriskstate r SET uncovered_since = NULL, stop_missing_flagged_at = NULL
     WHERE r.uncovered_since IS NOT NULL AND r.position_id NOT IN (SELECT id FROM unc)
    RETURNING r.position_id
), seen AS (
    INSERT INTO trading_positionriskstate AS r (position_id, uncovered_since)
    SELECT id, now() FROM unc
    ON CONFLICT (position_id) DO UPDATE SET uncovered_since = now() WHERE r.uncovered_since IS NULL
    RETURNING r.position_id
)
UPDATE trading_positionriskstate r SET stop_missing_flagged_at = now()
  FROM trading_position p
 WHERE p.id = r.position_id AND r.position_id IN (SELECT id FROM unc)
   AND r.position_id NOT IN (SELECT position_id FROM seen)
   AND r.stop_missing_flagged_at IS NULL
   AND r.uncovered_since <= now() - make_interval(secs => %(grace)s)
RETURNING r.position_id, r.uncovered_since, p.user_id, p.asset, p.side, p.provider
"""
