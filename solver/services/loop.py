"""One quote through the loop (sync code; the `near_solver` process runs it on worker threads).
The hot path is four round trips (docs/near-intents.md, "The hot path"):

1. **Ingest** (`quote_receive`): the raw request is stored once per quote_id (a duplicate is
   dropped); a pair outside the filter or an unreadable request stops here. The INSERT of an
   accepted one reads, in the same statement, what it is decided on (`State`).
2. **Strategy**: the fair rate of the pair (`fair_rate`: `reference_rate_use`, a pinned sample,
   kept NEAR_SOLVER_FAIR_RATE_MS) and the desk's price under it by the spread give the answer's
   amounts, its implied rate and its gross edge; freshness, edge threshold, notional caps and
   credited inventory of the asset the desk gives are checked. Every quote of a filtered pair
   gets one `QuoteDecision`.
3. **Gate and executor**, in the same transaction: the strategy's and the executor's control
   states and the trading states *now*, the signed `token_diff`, then one statement writes the
   decision, the hold's row, the command and the quote's events, and takes the hold last
   (row-locked, until the intent's deadline; it re-checks the arm and trading states) — committed before the
   response is sent. A refused hold rolls everything back; the quote is recorded again as a skip.
4. `response_ok` / `response_record` write the relay's answer; `status_apply` a `quote_status`;
   `reconcile` settles (`get_status`, the verifier's `is_nonce_used`) or expires what is open.

Each step writes its ledger event (correlation `near-quote-<quote_id>`) and a log line with the
stable fields (`solver.log`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Sum
from django.utils import timezone

from config import metrics
from providers.interface import VenueException
from providers.near_intents.client import near_intents_client
from providers.near_intents.config import network_config
from providers.near_intents.intents import intent_message
from providers.near_intents.signing import intent_hash, sign_nep413, versioned_nonce
from providers.near_intents.solver_keys import solver_seed
from providers.near_intents.tokens import KNOWN, TokenIdError, to_raw, to_units, token_id_parse
from providers.reference.service import FairRate, ReferenceUnavailable, ReferenceUnknownPair, reference_rate_use
from solver.models import EXECUTOR, STRATEGY, QuoteCommand, QuoteDecision, RelayQuote
from solver.services.config import config_cached, config_forget
from trading import outbox
from trading.models import ControlState, TradingState
from trading.services.control import control_gate
from trading.services.ledger import _insert_returning_id, event_record, event_rows_sql
from trading.ulid import new_ulid
from treasury.models import InventoryBalance, InventorySnapshot, Reservation
from treasury.services.inventory import inventory_consume, inventory_hold_parts, inventory_release

logger = logging.getLogger("tradedesk.near_intents.solver")
VENUE = "near_intents"
HUNDRED = Decimal(100)
HOLD_GRACE_SECONDS = 120
C = QuoteCommand.Status


def log(level: int, component: str, event: str, topic: str, message: str = "", **fields) -> None:
    """A log line with seed 004's stable fields (`service` and `namespace`, the process and the
    deployment, are the formatter's, as on every other line)."""
    extra = {
        "component": component,
        "event": event,
        "venue": VENUE,
        "topic": topic,
    }
    extra.update({k: v for k, v in fields.items() if v not in (None, "")})
    logger.log(level, message or event, extra=extra)


def _corr(quote_id: str) -> str:
    return f"near-quote-{quote_id}"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


# --- per-process caches ------------------------------------------------------------------------------
CACHE_SECONDS = 1.0  # the settings and the notional of the hour, re-read at most this often
_cache_lock = threading.Lock()
_hour: list = [Decimal(0), 0.0]  # committed notional of the last hour (as read) + this process's since


def hour_notional_cached(now) -> Decimal:
    with _cache_lock:
        if time.monotonic() - _hour[1] <= CACHE_SECONDS:
            return _hour[0]
    value = hour_notional(now)
    with _cache_lock:
        _hour[0], _hour[1] = value, time.monotonic()
    return value


def _hour_add(amount: Decimal) -> None:
    with _cache_lock:
        _hour[0] += amount


def caches_forget() -> None:
    config_forget()
    _hour[0], _hour[1] = Decimal(0), 0.0
    tokens_forget()
    salt_forget()
    with _cache_lock:
        _seed.clear()
        _fair.clear()
        _net.clear()


_net: list = []  # (the network's configuration, when read)


def net_cached():
    """`network_config()` as read at most CACHE_SECONDS ago (the sandbox's is a file read and
    parsed: three times per quote)."""
    with _cache_lock:
        hit = _net[0] if _net else None
    if hit is not None and time.monotonic() - hit[1] <= CACHE_SECONDS:
        return hit[0]
    net = network_config()
    with _cache_lock:
        _net[:] = [(net, time.monotonic())]
    return net


# The solver key's seed, decrypted once and kept in this process's memory for SEED_SECONDS (it
# was read and decrypted per quote): a key replaced in custody is signed with from at most that
# long after (the verifier refuses the old key's signatures once it is removed there: the relay
# rejects the response, the hold is released; nothing is lost).
SEED_SECONDS = 30.0
_seed: dict[str, tuple[bytes, float]] = {}


def seed_cached(network: str) -> bytes:
    with _cache_lock:
        hit = _seed.get(network)
    if hit is not None and time.monotonic() - hit[1] <= SEED_SECONDS:
        return hit[0]
    seed = solver_seed(network)
    with _cache_lock:
        _seed[network] = (seed, time.monotonic())
    return seed


# The fair rate of a pair (or the refusal), evaluated at most every NEAR_SOLVER_FAIR_RATE_MS
# (it was evaluated per quote: the policy's reads and the pair's last sample, three round trips).
# A cached rate's freshness is its age when evaluated plus the time since, so the staleness limit
# holds exactly; a source that conflicts or fails is seen at most that long later.
_fair: dict[str, tuple[object, float]] = {}


def fair_rate(pair: str) -> FairRate:
    window = settings.NEAR_SOLVER_FAIR_RATE_MS / 1000
    now = time.monotonic()
    with _cache_lock:
        hit = _fair.get(pair)
    if hit is None or now - hit[1] > window:
        try:
            value = reference_rate_use(pair, purpose="decision")
        except (ReferenceUnavailable, ReferenceUnknownPair) as exc:
            value = exc
        hit = (value, now)
        if window > 0:
            with _cache_lock:
                _fair[pair] = hit
    value, at = hit
    if isinstance(value, Exception):
        raise value
    elapsed_ms = int((now - at) * 1000)
    if elapsed_ms and value.age_ms is not None:
        value = dataclasses.replace(value, age_ms=value.age_ms + elapsed_ms)
    return value


# --- tokens -----------------------------------------------------------------------------------------
_tokens: dict[str, tuple[str, int]] = {}
_tokens_lock = threading.Lock()


def token_info(token_id: str) -> tuple[str, int] | None:
    """(symbol in upper case, decimals) of a token id, from the synced balances or the well-known list."""
    with _tokens_lock:
        hit = _tokens.get(token_id)
    if hit is not None:
        return hit
    row = InventoryBalance.objects.filter(venue=VENUE, asset=token_id).exclude(symbol="").first()
    if row is not None:
        info = (row.symbol.upper(), row.decimals)
    elif token_id in KNOWN:
        info = (KNOWN[token_id].symbol.upper(), KNOWN[token_id].decimals)
    else:
        return None
    with _tokens_lock:
        _tokens[token_id] = info
    return info


def tokens_forget() -> None:
    with _tokens_lock:
        _tokens.clear()


# --- signing --------------------------------------------------------------------------------------
_salt: dict[str, tuple[bytes, float]] = {}
SALT_TTL = 30.0  # seconds the verifier's current_salt is reused (as the official SDK does)


def salt_current(client) -> bytes:
    key = client.net.name
    hit = _salt.get(key)
    if hit is None or time.monotonic() - hit[1] > SALT_TTL:
        hit = _salt[key] = (client.current_salt(), time.monotonic())
    return hit[0]


def salt_forget() -> None:
    _salt.clear()


def quote_sign(*, asset_in: str, raw_in: int, asset_out: str, raw_out: int, deadline: datetime) -> dict:
    """The NEP-413 signed `token_diff`: the desk receives `raw_in` of asset_in and gives `raw_out`
    of asset_out, valid until `deadline` (versioned nonce with the verifier's current salt)."""
    client = near_intents_client(net_cached())
    net = client.net
    diff = {asset_in: str(raw_in), asset_out: str(-raw_out)}
    message = intent_message(
        signer_id=net.solver_account, deadline=deadline, intents=[{"intent": "token_diff", "diff": diff}]
    )
    nonce = versioned_nonce(salt=salt_current(client), deadline=deadline)
    return sign_nep413(seed_cached(net.name), message=message, nonce=nonce, recipient=net.verifier)


# --- ingest -----------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What the loop sends after the commit."""

    command_id: str
    quote_id: str
    response: dict
    decision_id: str
    pair: str = ""


@dataclass
class Outcome:
    """What happened to one quote request (for the process's counters)."""

    status: str  # duplicate | filtered | invalid | dropped | skip | quote
    pair: str = ""
    reason: str = ""
    plan: Plan | None = None


def _amount(text) -> int | None:
    try:
        value = int(str(text))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _parse(data: dict, pairs: list[str]) -> dict:
    """The request's fields, its pair and direction, or `status` invalid / filtered with a note."""
    out = {
        "quote_id": str(data.get("quote_id") or "")[:100],
        "asset_in": str(data.get("defuse_asset_identifier_in") or "")[:200],
        "asset_out": str(data.get("defuse_asset_identifier_out") or "")[:200],
        "exact_amount_in": str(data.get("exact_amount_in") or "")[:80],
        "exact_amount_out": str(data.get("exact_amount_out") or "")[:80],
        "min_deadline_ms": 0,
        "status": RelayQuote.Status.ACCEPTED,
        "note": "",
    }
    try:
        out["min_deadline_ms"] = int(data.get("min_deadline_ms") or 0)
    except (TypeError, ValueError):
        return {**out, "status": RelayQuote.Status.INVALID, "note": "min_deadline_ms is not a number"}
    try:
        token_id_parse(out["asset_in"])
        token_id_parse(out["asset_out"])
    except TokenIdError as exc:
        return {**out, "status": RelayQuote.Status.INVALID, "note": str(exc)[:300]}
    if bool(out["exact_amount_in"]) == bool(out["exact_amount_out"]):
        return {**out, "status": RelayQuote.Status.INVALID, "note": "exactly one of exact_amount_in/out"}
    raw = _amount(out["exact_amount_in"] or out["exact_amount_out"])
    if raw is None:
        return {**out, "status": RelayQuote.Status.INVALID, "note": "the exact amount is not a positive integer"}
    info_in, info_out = token_info(out["asset_in"]), token_info(out["asset_out"])
    if info_in is None or info_out is None:
        return {**out, "status": RelayQuote.Status.FILTERED, "note": "a token the desk does not know"}
    (sym_in, dec_in), (sym_out, dec_out) = info_in, info_out
    if f"{sym_out}/{sym_in}" in pairs:  # the desk gives the base
        out.update(pair=f"{sym_out}/{sym_in}", direction="sell")
    elif f"{sym_in}/{sym_out}" in pairs:  # the desk gives the quote asset
        out.update(pair=f"{sym_in}/{sym_out}", direction="buy")
    else:
        return {**out, "status": RelayQuote.Status.FILTERED, "pair": f"{sym_in}/{sym_out}", "note": "pair filter"}
    out["raw_amount"] = raw
    out["amount"] = to_units(raw, dec_in if out["exact_amount_in"] else dec_out)
    out["decimals"] = (dec_in, dec_out)
    return out


def _insert_new(quote: RelayQuote) -> bool:
    """INSERT the raw quote unless its quote_id is stored already (one statement, no savepoint)."""
    statement, params = _insert_returning_id(quote)
    head, sep, tail = statement.rpartition(" RETURNING ")
    with connection.cursor() as cur:
        cur.execute(f"{head} ON CONFLICT (quote_id) DO NOTHING{sep}{tail}", params)
        row = cur.fetchone()
    if row is None:
        return False
    quote.pk = row[0]
    quote._state.adding = False
    return True


class _HoldRefused(Exception):
    """The hold, the quote transaction's last statement, was refused (a concurrent quote took the
    inventory, or the balance went stale): the transaction is rolled back whole and the quote
    recorded again, as a skip."""


def quote_receive(
    data: dict, metadata: dict | None = None, *, received_at: datetime | None = None, ingest_open: bool = True
) -> Outcome:
    """Handle one `quote` event end to end up to the signed response (see the module doc)."""
    received_at = received_at or timezone.now()
    config = config_cached()
    parsed = _parse(data if isinstance(data, dict) else {}, list(config.pairs))
    if not parsed["quote_id"]:
        return Outcome("invalid", reason="no quote_id")
    fair = None
    if ingest_open and parsed["status"] == RelayQuote.Status.ACCEPTED:
        # outside the quote's transaction: a sample it writes is committed whatever the quote's fate
        fair = _fair_or_refusal(parsed["pair"])
    args = (data, metadata, parsed, config, received_at, ingest_open, fair)
    try:
        with transaction.atomic():
            return _receive(*args, hold_refused=False)
    except _HoldRefused:
        with transaction.atomic():
            return _receive(*args, hold_refused=True)


def _receive(data, metadata, parsed, config, received_at, ingest_open, fair, *, hold_refused: bool) -> Outcome:
    status = parsed["status"] if ingest_open else RelayQuote.Status.DROPPED
    quote = RelayQuote(
        quote_id=parsed["quote_id"],
        received_at=received_at,
        raw={"data": data, "metadata": metadata or {}},
        asset_in=parsed["asset_in"],
        asset_out=parsed["asset_out"],
        exact_amount_in=parsed["exact_amount_in"],
        exact_amount_out=parsed["exact_amount_out"],
        min_deadline_ms=parsed["min_deadline_ms"],
        pair=parsed.get("pair", ""),
        direction=parsed.get("direction", ""),
        amount=parsed.get("amount"),
        status=status,
        note=parsed["note"] if ingest_open else "ingest closed (paused, draining or disarmed)",
    )
    known = parsed.get("pair", "") if status == RelayQuote.Status.ACCEPTED else "other"
    state = None
    if status == RelayQuote.Status.ACCEPTED:
        state = _insert_and_read(quote, net_cached().solver_account)
        inserted = state is not None
    else:
        inserted = _insert_new(quote)
    if not inserted:
        log(logging.INFO, "ingest", "duplicate", "raw.near_intents.quote", quote_id=parsed["quote_id"])
        metrics.after_commit(metrics.NEAR_QUOTES.labels(known or "other", "duplicate").inc)
        return Outcome("duplicate", pair=parsed.get("pair", ""))
    metrics.after_commit(metrics.NEAR_QUOTES.labels(known or "other", str(status)).inc)
    if status != RelayQuote.Status.ACCEPTED:
        return Outcome(str(status), pair=parsed.get("pair", ""), reason=parsed["note"])
    received = _event(
        quote.quote_id,
        "near_intents.quote.received",
        {
            "quote_id": quote.quote_id,
            "pair": quote.pair,
            "direction": quote.direction,
            "asset_in": quote.asset_in,
            "asset_out": quote.asset_out,
            "exact_amount_in": quote.exact_amount_in,
            "exact_amount_out": quote.exact_amount_out,
            "amount": _text(quote.amount),
            "min_deadline_ms": quote.min_deadline_ms,
            "received_at": received_at,
        },
    )
    return _decide(quote, parsed, config, received_at, fair, state, [received], hold_refused=hold_refused)


def _event(quote_id: str, topic: str, payload: dict) -> dict:
    """One of the quote's events, for `event_rows_sql` (its events go in one statement)."""
    return {
        "id": new_ulid(),  # taken now: the ledger orders the quote's timeline by id
        "occurred_at": timezone.now(),
        "topic": topic,
        "aggregate_type": "near_quote",
        "aggregate_id": quote_id,
        "correlation_id": _corr(quote_id),
        "actor": "solver",
        "payload": payload,
    }


# --- strategy, gate, executor ----------------------------------------------------------------------
class Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail or reason


def _gate(component: str, state: ControlState | None) -> None:
    gate = control_gate(state, component=component)
    if not gate.ok:
        prefix = "STRATEGY" if component == STRATEGY else "EXECUTOR"
        reason = {"VENUE_DISARMED": "DISARMED", "VENUE_PAUSED": "PAUSED", "VENUE_DISABLED": "DISABLED"}.get(
            gate.code, gate.code
        )
        raise Skip(f"{prefix}_{reason}", gate.message)
    if state.draining:
        raise Skip(f"{'STRATEGY' if component == STRATEGY else 'EXECUTOR'}_DRAINING", f"{component} is draining.")


_STATE_COLUMNS = """
    (SELECT coalesce(json_agg(json_build_array(component, armed, paused, draining, expires_at)), '[]')
     FROM {control} WHERE component IN (%s, %s))::text,
    (SELECT coalesce(json_agg(json_build_array(scope_type, scope_key, state, previous_state, expires_at)), '[]')
     FROM {trading} WHERE scope_type = 'global' OR (scope_type = 'venue' AND scope_key = %s)
        OR (scope_type = 'instrument' AND scope_key = %s) OR (scope_type = 'strategy' AND scope_key = %s))::text,
    (SELECT row_to_json(b)::text FROM (
        SELECT bal.*, (SELECT s.id FROM {snapshot} s WHERE s.balance_id = bal.id ORDER BY s.id DESC LIMIT 1)
            AS last_snapshot_id
        FROM {balance} bal WHERE venue = %s AND account = %s AND asset = %s LIMIT 1) b),
    nextval(pg_get_serial_sequence('{reservation}', 'id'))
"""


@dataclass
class State:
    """What a quote is decided on, read with its raw row's INSERT: the strategy's and the
    executor's control rows, the trading states over the pair, the given asset's balance (with
    its last snapshot's id), and an id for the hold's row should the quote be answered."""

    controls: dict[str, ControlState]
    trading: list[TradingState]
    balance: InventoryBalance | None
    reservation_id: int


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _insert_and_read(quote: RelayQuote, account: str) -> State | None:
    """INSERT the raw quote unless its quote_id is stored already (None then) and read the
    `State` to decide it on, in one statement."""
    statement, params = _insert_returning_id(quote)
    head, sep, tail = statement.rpartition(" RETURNING ")
    columns = _STATE_COLUMNS.format(
        control=ControlState._meta.db_table,
        trading=TradingState._meta.db_table,
        snapshot=InventorySnapshot._meta.db_table,
        balance=InventoryBalance._meta.db_table,
        reservation=Reservation._meta.db_table,
    )
    sql = f"WITH q AS ({head} ON CONFLICT (quote_id) DO NOTHING{sep}{tail}) SELECT (SELECT id FROM q), {columns}"
    with connection.cursor() as cur:
        cur.execute(sql, [*params, STRATEGY, EXECUTOR, VENUE, quote.pair, VENUE, VENUE, account, quote.asset_out])
        pk, control_json, trading_json, balance_json, reservation_id = cur.fetchone()
    if pk is None:
        return None
    quote.pk = pk
    quote._state.adding = False
    controls = {
        key: ControlState(component=key, armed=armed, paused=paused, draining=draining, expires_at=_when(expires))
        for key, armed, paused, draining, expires in json.loads(control_json)
    }
    trading = [
        TradingState(
            scope_type=scope_type,
            scope_key=scope_key,
            state=state,
            previous_state=previous,
            expires_at=_when(expires),
        )
        for scope_type, scope_key, state, previous, expires in json.loads(trading_json)
    ]
    balance = None
    if balance_json:
        row = json.loads(balance_json, parse_float=Decimal)
        fields = {}
        for field in InventoryBalance._meta.concrete_fields:
            value = row.get(field.column)
            if value is not None and field.get_internal_type() == "DecimalField":
                value = Decimal(value) if not isinstance(value, Decimal) else value
            elif value is not None and field.get_internal_type() == "DateTimeField":
                value = _when(value)
            fields[field.attname] = value
        balance = InventoryBalance(**fields)
        balance._state.adding = False
        balance.last_snapshot_id = row.get("last_snapshot_id")
    return State(controls, trading, balance, reservation_id)


_ROW_SQL: dict[tuple[type, tuple[bool, ...]], str] = {}


def _row_insert(instance) -> tuple[str, list]:
    """`INSERT INTO <table> (<every column>) VALUES (...)` of a new row, its primary key set
    (compiled once per model and pattern of NULL columns, as `_insert_returning_id` does)."""
    model = type(instance)
    conn = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection=conn) for f in fields]
    nulls = tuple(v is None for v in values)
    sql = _ROW_SQL.get((model, nulls))
    if sql is None:
        quote = conn.ops.quote_name
        sql = _ROW_SQL[model, nulls] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join('NULL' if null else '%s' for null in nulls)})"
        )
    instance._state.adding = False
    return sql, [v for v in values if v is not None]


def _one_statement(parts: list[tuple[str, list]]) -> tuple[str, list]:
    """Statements as one: every part but the last a CTE of the last (each runs once, in order of
    need; foreign keys between them are checked at the end of the statement)."""
    parts = [(sql, params) for sql, params in parts if sql]
    *ctes, (last, last_params) = parts
    head = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(ctes))
    params = [p for _, ps in ctes for p in ps] + list(last_params)
    return (f"WITH {head} {last}" if ctes else last), params


def _trading_states(rows: list[TradingState], now) -> None:
    for row in rows:
        state = row.effective_state(now)
        if state != TradingState.State.ACTIVE:  # a quote always adds exposure: REDUCE_ONLY refuses it too
            label = "global" if row.scope_type == "global" else f"{row.scope_type}:{row.scope_key}"
            raise Skip("TRADING_HALTED" if state == "HALTED" else "TRADING_REDUCE_ONLY", f"{state} ({label})")


def _inventory_view(balance: InventoryBalance | None, now) -> dict:
    if balance is None:
        return {"status": "unknown"}
    return {
        "balance_id": balance.pk,
        "asset": balance.asset,
        "symbol": balance.symbol,
        "credited": _text(balance.credited),
        "reserved": _text(balance.reserved),
        "spendable": _text(balance.spendable),
        "pending_in": _text(balance.pending_in),
        "status": balance.effective_status(now),
        "synced_at": balance.synced_at.isoformat() if balance.synced_at else None,
        "age_ms": int((now - balance.synced_at).total_seconds() * 1000) if balance.synced_at else None,
    }


def _decide(
    quote: RelayQuote,
    parsed: dict,
    config,
    received_at: datetime,
    fair: FairRate | Exception,
    state: State,
    events: list[dict],
    *,
    hold_refused: bool,
) -> Outcome:
    now = timezone.now()
    net = net_cached()
    decision = QuoteDecision(relay_quote=quote, quote_id=quote.quote_id, pair=quote.pair, direction=quote.direction)
    controls, trading, balance = state.controls, state.trading, state.balance
    decision.inventory_snapshot = _inventory_view(balance, now)
    if balance is not None:
        decision.inventory_snapshot_row_id = balance.last_snapshot_id
    plan = None
    try:
        _gate(STRATEGY, controls.get(STRATEGY))
        if quote.min_deadline_ms > settings.NEAR_SOLVER_MAX_DEADLINE_MS:
            raise Skip(
                "DEADLINE_TOO_LONG", f"min_deadline_ms {quote.min_deadline_ms} > {settings.NEAR_SOLVER_MAX_DEADLINE_MS}"
            )
        late_ms = int((now - received_at).total_seconds() * 1000)
        if late_ms > settings.NEAR_SOLVER_ANSWER_WINDOW_MS:
            raise Skip("QUOTE_EXPIRED", f"decided {late_ms} ms after it arrived (the relay waits about 3 s)")
        _price(decision, quote, parsed, config, fair)
        _limits(decision, config, balance, now)
        _gate(EXECUTOR, controls.get(EXECUTOR))
        _trading_states(trading, now)
        if hold_refused:  # the first attempt's hold lost to a concurrent one, or the balance went stale
            raise Skip("INSUFFICIENT_INVENTORY", "the hold was refused: a concurrent quote's hold took the inventory")
        deadline = now + timedelta(milliseconds=quote.min_deadline_ms + settings.NEAR_SOLVER_DEADLINE_EXTRA_MS)
        plan = _command(decision, quote, parsed, deadline, net, state, events, now)
    except Skip as skip:
        decision.decision, decision.decision_reason, decision.detail = "skip", skip.reason, skip.detail[:500]
    if plan is None:  # the decision and the quote's events in one statement
        decision_row = _row_insert(decision)  # first: it sets created_at, which the event shows
        events_sql, events_params, outbox_sql, outbox_params, _ = event_rows_sql([*events, _decision_event(decision)])
        statement, params = _one_statement([decision_row, (events_sql, events_params), (outbox_sql, outbox_params)])
        with connection.cursor() as cur:
            cur.execute(statement, params)
        if outbox_sql:
            outbox.kick_after_commit()
        _decision_log(decision)
        return Outcome("skip", pair=quote.pair, reason=decision.decision_reason)
    return Outcome("quote", pair=quote.pair, reason="QUOTED", plan=plan)


def _fair_or_refusal(pair: str) -> FairRate | Exception:
    try:
        return fair_rate(pair)
    except (ReferenceUnavailable, ReferenceUnknownPair) as exc:
        return exc


def _price(decision: QuoteDecision, quote: RelayQuote, parsed: dict, config, fair: FairRate | Exception) -> None:
    if isinstance(fair, ReferenceUnavailable):
        decision.reference_sample_id = fair.details.get("sample_id")
        raise Skip(fair.code, fair.message)
    if isinstance(fair, ReferenceUnknownPair):
        raise Skip("REFERENCE_UNKNOWN_PAIR", fair.message)
    decision.reference_sample_id = fair.sample_id
    decision.reference_rate = fair.rate
    decision.price_freshness_ms = fair.age_ms
    if fair.age_ms is None or fair.age_ms > config.price_max_age_ms:
        raise Skip("PRICE_STALE", f"the fair rate is {fair.age_ms} ms old (> {config.price_max_age_ms} ms)")
    dec_in, dec_out = parsed["decimals"]
    spread = config.spread_pct / HUNDRED
    sell = quote.direction == "sell"  # the desk gives the base (asset_out), receives the quote asset
    price = fair.rate * (1 + spread) if sell else fair.rate * (1 - spread)
    if price <= 0:
        raise Skip("PRICE_INVALID", "the desk's price is not positive")
    exact_in = bool(quote.exact_amount_in)
    amount = parsed["amount"]
    try:
        if exact_in:
            amount_in = amount
            out = amount / price if sell else amount * price
            amount_out = out.quantize(Decimal(1).scaleb(-dec_out), rounding=ROUND_FLOOR)
        else:
            amount_out = amount
            into = amount * price if sell else amount / price
            amount_in = into.quantize(Decimal(1).scaleb(-dec_in), rounding=ROUND_CEILING)
    except InvalidOperation:
        raise Skip("AMOUNT_INVALID", "the amounts cannot be priced") from None
    if amount_in <= 0 or amount_out <= 0:
        raise Skip("AMOUNT_TOO_SMALL", "the answer rounds to nothing")
    decision.amount_in, decision.amount_out = amount_in, amount_out
    implied = amount_in / amount_out if sell else amount_out / amount_in  # quote per base
    decision.implied_rate = implied.quantize(Decimal(1).scaleb(-18))
    edge = (implied - fair.rate) / fair.rate if sell else (fair.rate - implied) / fair.rate
    decision.gross_edge_pct = (edge * HUNDRED).quantize(Decimal("0.00000001"))
    decision.notional = amount_in if sell else amount_out
    if decision.gross_edge_pct < config.threshold_pct:
        raise Skip(
            "EDGE_BELOW_THRESHOLD",
            f"gross edge {decision.gross_edge_pct.normalize()} % < threshold {config.threshold_pct.normalize()} %",
        )


def hour_notional(now=None) -> Decimal:
    """What the commands of the last hour committed (rejected and expired ones excluded)."""
    since = (now or timezone.now()) - timedelta(hours=1)
    return QuoteCommand.objects.filter(created_at__gte=since).exclude(status__in=(C.REJECTED, C.EXPIRED)).aggregate(
        total=Sum("notional")
    )["total"] or Decimal(0)


def _limits(decision: QuoteDecision, config, balance: InventoryBalance | None, now) -> None:
    if decision.notional > config.max_notional_quote:
        raise Skip("NOTIONAL_CAP_QUOTE", f"{_text(decision.notional)} > {_text(config.max_notional_quote)} per quote")
    used = hour_notional_cached(now)
    if used + decision.notional > config.max_notional_hour:
        raise Skip(
            "NOTIONAL_CAP_HOUR",
            f"{_text(used)} answered in the last hour + {_text(decision.notional)} > {_text(config.max_notional_hour)}",
        )
    if balance is None:
        raise Skip("INVENTORY_UNKNOWN", "no credited inventory of the given asset has been synced")
    if balance.effective_status(now) == InventoryBalance.Status.STALE:
        raise Skip("INVENTORY_STALE", f"inventory is stale: {balance.why_stale(now)}")
    if balance.spendable < decision.amount_out:
        raise Skip(
            "INSUFFICIENT_INVENTORY",
            f"{_text(balance.spendable)} {balance.symbol} credited and spendable; {_text(decision.amount_out)} asked",
        )


# The hold is taken only while the strategy and the executor are armed (not expired), unpaused and
# not draining, and every trading state over the quote is ACTIVE (an expired one counts as its
# previous state): `_gate` and `_trading_states` again, in SQL, as the balance row is locked.
_GATE_AT_HOLD = (
    " AND (SELECT count(*) FROM {control} WHERE component IN (%s, %s) AND armed AND NOT paused AND NOT draining"
    " AND (expires_at IS NULL OR expires_at > %s)) = 2"
    " AND NOT EXISTS (SELECT 1 FROM {trading} t WHERE (t.scope_type = 'global'"
    " OR (t.scope_type = 'venue' AND t.scope_key = %s) OR (t.scope_type = 'instrument' AND t.scope_key = %s)"
    " OR (t.scope_type = 'strategy' AND t.scope_key = %s))"
    " AND CASE WHEN t.expires_at IS NOT NULL AND t.expires_at <= %s"
    " THEN coalesce(nullif(t.previous_state, ''), 'ACTIVE') ELSE t.state END <> 'ACTIVE')"
)


def _command(
    decision: QuoteDecision,
    quote: RelayQuote,
    parsed: dict,
    deadline: datetime,
    net,
    state: State,
    events: list[dict],
    now: datetime,
) -> Plan:
    """Sign, then ONE statement: the decision, the hold's row, the command, the quote's events
    and, last, the hold itself (it locks the balance row until the commit, and takes it only
    while the strategy and the executor are still armed, unpaused and not draining and the
    trading states still ACTIVE). A refused hold rolls the whole transaction back
    (`_HoldRefused`)."""
    dec_in, dec_out = parsed["decimals"]
    raw_in, raw_out = to_raw(decision.amount_in, dec_in), to_raw(decision.amount_out, dec_out)
    try:
        signed = quote_sign(
            asset_in=quote.asset_in, raw_in=raw_in, asset_out=quote.asset_out, raw_out=raw_out, deadline=deadline
        )
    except VenueException as exc:
        raise Skip("SIGNER_UNAVAILABLE", f"{exc.error.code}: {exc.error.message}"[:500]) from None
    decision.decision, decision.decision_reason = "quote", "QUOTED"
    decision_row = _row_insert(decision)  # first: it sets created_at, which the event shows
    decided = _decision_event(decision)
    output = {"amount_out": str(raw_out)} if quote.exact_amount_in else {"amount_in": str(raw_in)}
    response = {"quote_id": quote.quote_id, "quote_output": output, "signed_data": signed}
    command = QuoteCommand(
        quote_id=quote.quote_id,
        decision=decision,
        reservation_id=state.reservation_id,
        pair=quote.pair,
        give_asset=quote.asset_out,
        give_amount=decision.amount_out,
        receive_asset=quote.asset_in,
        receive_amount=decision.amount_in,
        notional=decision.notional,
        deadline=deadline,
        quote_hash=intent_hash(signed),
        response=response,
    )
    created = _event(
        quote.quote_id,
        "near_intents.command.created",
        {
            "command_id": command.command_id,
            "decision_id": decision.decision_id,
            "quote_id": quote.quote_id,
            "give": {"asset": command.give_asset, "amount": _text(command.give_amount)},
            "receive": {"asset": command.receive_asset, "amount": _text(command.receive_amount)},
            "deadline": deadline,
            "quote_hash": command.quote_hash,
            "public_key": signed["public_key"],
        },
    )
    reservation, reserved, hold_sql, hold_params = inventory_hold_parts(
        state.balance,
        reservation_id=state.reservation_id,
        amount=decision.amount_out,
        ref=f"quote:{quote.quote_id}",
        actor="solver",
        reason=f"quote {quote.quote_id} until its deadline",
        # the loop releases or consumes it once the verifier says; the treasury's sweep of
        # expired holds is only the backstop of a loop that stopped
        expires_at=deadline + timedelta(seconds=HOLD_GRACE_SECONDS),
        causation_id=_corr(quote.quote_id),
        now=now,
    )
    head, sep, tail = hold_sql.rpartition(" RETURNING ")
    gate = _GATE_AT_HOLD.format(control=ControlState._meta.db_table, trading=TradingState._meta.db_table)
    hold_sql = head + gate + sep + tail
    hold_params = [*hold_params, STRATEGY, EXECUTOR, now, VENUE, quote.pair, VENUE, now]
    # no kick: the answer's event (`response_record`, always written) kicks the dispatcher
    events_sql, events_params, outbox_sql, outbox_params, _ = event_rows_sql([*events, decided, created, reserved])
    statement, params = _one_statement(
        [
            decision_row,
            _row_insert(reservation),
            _row_insert(command),
            (events_sql, events_params),
            (outbox_sql, outbox_params),
            (hold_sql, hold_params),
        ]
    )
    with connection.cursor() as cur:
        cur.execute(statement, params)
        if cur.fetchone() is None:
            raise _HoldRefused
    transaction.on_commit(lambda: _hour_add(decision.notional))
    _decision_log(decision)
    log(
        logging.INFO,
        "executor",
        "submit",
        "cmd.execute_trade",
        pair=quote.pair,
        quote_id=quote.quote_id,
        decision_id=decision.decision_id,
        command_id=command.command_id,
    )
    return Plan(
        command_id=command.command_id,
        quote_id=quote.quote_id,
        response=response,
        decision_id=decision.decision_id,
        pair=quote.pair,
    )


def _decision_event(decision: QuoteDecision) -> dict:
    """The `near_intents.quote.decided` event: the decision record."""
    return _event(decision.quote_id, "near_intents.quote.decided", decision_view(decision))


def _decision_log(decision: QuoteDecision) -> None:
    metrics.after_commit(
        metrics.NEAR_DECISIONS.labels(str(decision.decision), str(decision.decision_reason or "none")).inc
    )
    level = logging.INFO
    if decision.decision_reason in ("PRICE_STALE", "REFERENCE_UNHEALTHY", "REFERENCE_CONFLICTED"):
        log(
            logging.WARNING,
            "strategy",
            "stale_price",
            "ref.market_price",
            pair=decision.pair,
            quote_id=decision.quote_id,
            decision_id=decision.decision_id,
            reason=decision.detail,
        )
    elif decision.decision_reason in ("INVENTORY_STALE", "INVENTORY_UNKNOWN"):
        log(
            logging.WARNING,
            "strategy",
            "stale_inventory",
            "state.intent_inventory",
            pair=decision.pair,
            quote_id=decision.quote_id,
            decision_id=decision.decision_id,
            reason=decision.detail,
        )
    log(
        level,
        "strategy",
        "decision",
        "decision.trade_decision",
        pair=decision.pair,
        quote_id=decision.quote_id,
        decision_id=decision.decision_id,
        decision=decision.decision,
        decision_reason=decision.decision_reason,
    )


def decision_view(d: QuoteDecision) -> dict:
    return {
        "decision_id": d.decision_id,
        "quote_id": d.quote_id,
        "pair": d.pair,
        "direction": d.direction,
        "implied_rate": _text(d.implied_rate),
        "reference_rate": _text(d.reference_rate),
        "gross_edge_pct": _text(d.gross_edge_pct),
        "price_freshness_ms": d.price_freshness_ms,
        "inventory_snapshot": d.inventory_snapshot,
        "decision": d.decision,
        "decision_reason": d.decision_reason,
        "detail": d.detail,
        "reference_sample_id": d.reference_sample_id,
        "inventory_snapshot_id": d.inventory_snapshot_row_id,
        "amount_in": _text(d.amount_in),
        "amount_out": _text(d.amount_out),
        "notional": _text(d.notional),
        "created_at": d.created_at,
    }


# --- after the send -------------------------------------------------------------------------------------
def _result_log(command: QuoteCommand, status: str, *, level: int = logging.INFO) -> None:
    """The executor's `exec.trade_result` line for a command's outcome."""
    log(
        level,
        "executor",
        "result",
        "exec.trade_result",
        pair=command.pair,
        quote_id=command.quote_id,
        decision_id=command.decision_id,
        command_id=command.command_id,
        status=status,
        reason=command.outcome_reason,
    )


def _command_event(command: QuoteCommand, topic: str, **payload) -> None:
    event_record(
        topic=topic,
        aggregate_type="near_quote",
        aggregate_id=command.quote_id,
        correlation_id=_corr(command.quote_id),
        actor="solver",
        payload={
            "command_id": command.command_id,
            "quote_id": command.quote_id,
            "status": command.status,
            "reason": command.outcome_reason,
            **payload,
        },
    )


def _release(command: QuoteCommand, reason: str) -> None:
    if command.reservation_id:
        reservation = Reservation.objects.get(pk=command.reservation_id)
        inventory_release(reservation=reservation, actor="solver", reason=reason)


_SENT_SQL = (
    "UPDATE {table} SET status = %s, sent_at = coalesce(sent_at, %s), relay_answer = %s::jsonb, answered_at = %s "
    "WHERE command_id = %s AND status = %s RETURNING command_id"
)


def response_ok(plan: Plan, result) -> bool:
    """The relay said OK to a quote_response (the common answer): the command is sent, with its
    `near_intents.quote.responded` event, in one statement of its own (a command that has moved on
    meanwhile, quote_status first, keeps its state and gets no event). `response_record` is the
    general way."""
    now = timezone.now()
    answer = {"result": result}
    event = _event(
        plan.quote_id,
        "near_intents.quote.responded",
        {
            "command_id": plan.command_id,
            "quote_id": plan.quote_id,
            "status": C.SENT,
            "reason": "",
            "relay_answer": answer,
        },
    )
    events_sql, events_params, outbox_sql, outbox_params, _ = event_rows_sql([event])
    update = _SENT_SQL.format(table=QuoteCommand._meta.db_table)
    update_params = [C.SENT, now, json.dumps(answer, default=str), now, plan.command_id, C.SIGNED]

    def only_if_sent(insert: str) -> str:  # the event's rows only when the UPDATE changed the command
        head, _, rows = insert.partition(" VALUES ")
        return f"{head} SELECT * FROM (VALUES {rows}) AS v WHERE EXISTS (SELECT 1 FROM w0)"

    parts = [(update, update_params), (only_if_sent(events_sql), events_params)]
    if outbox_sql:
        parts.append((only_if_sent(outbox_sql), outbox_params))
    statement, params = _one_statement([*parts, ("SELECT count(*) FROM w0", [])])
    with connection.cursor() as cur:
        cur.execute(statement, params)
        (changed,) = cur.fetchone()
    if not changed:
        return False
    if outbox_sql:
        outbox.kick_after_commit()
    metrics.after_commit(metrics.NEAR_RESPONSES.labels("responded").inc)
    command = QuoteCommand(
        command_id=plan.command_id, quote_id=plan.quote_id, pair=plan.pair, decision_id=plan.decision_id
    )
    _result_log(command, C.SENT)
    return True


@transaction.atomic
def response_record(command_id: str, *, result=None, error=None, timeout: str = "", not_sent: str = "") -> QuoteCommand:
    """The relay's answer to a quote_response: OK → sent; an error → rejected (hold released);
    no answer → unknown (reconciled, never resent); nothing sent → rejected. A command that has
    moved on (quote_status came first) keeps its state."""
    command = QuoteCommand.objects.select_for_update().get(pk=command_id)
    now = timezone.now()
    if command.status != C.SIGNED:
        return command
    command.sent_at = command.sent_at or now
    if not_sent:
        command.status, command.outcome_reason, command.closed_at = C.REJECTED, f"not sent: {not_sent}"[:300], now
        command.sent_at = None
        _release(command, command.outcome_reason)
    elif timeout:
        command.status, command.outcome_reason = C.UNKNOWN, f"no answer from the relay: {timeout}"[:300]
    elif error is not None:
        command.relay_answer, command.answered_at = {"error": error}, now
        message = error.get("message") if isinstance(error, dict) else str(error)
        command.status, command.outcome_reason, command.closed_at = C.REJECTED, f"relay: {message}"[:300], now
        _release(command, command.outcome_reason)
    else:
        command.relay_answer, command.answered_at = {"result": result}, now
        command.status = C.SENT
    command.save()
    topic = {C.SENT: "responded", C.UNKNOWN: "unknown", C.REJECTED: "rejected"}[command.status]
    metrics.after_commit(metrics.NEAR_RESPONSES.labels(topic).inc)
    _command_event(command, f"near_intents.quote.{topic}", relay_answer=command.relay_answer)
    _result_log(command, command.status, level=logging.INFO if command.status == C.SENT else logging.WARNING)
    return command


def status_apply(data: dict) -> QuoteCommand | None:
    """A `quote_status` (our response won): the intent hash and tx, then the settlement check."""
    quote_hash = str(data.get("quote_hash") or "")
    with transaction.atomic():
        command = QuoteCommand.objects.select_for_update().filter(quote_hash=quote_hash).first() if quote_hash else None
        if command is None:
            log(logging.WARNING, "executor", "status_unmatched", "exec.trade_result", quote_hash=quote_hash)
            return None
        if command.status in (C.SETTLED, C.EXECUTED):
            return command
        command.intent_hash = str(data.get("intent_hash") or "")[:64]
        command.tx_hash = str(data.get("tx_hash") or "")[:100]
        command.status, command.status_at = C.EXECUTED, timezone.now()
        command.save(update_fields=["intent_hash", "tx_hash", "status", "status_at"])
        _command_event(command, "near_intents.quote.executed", intent_hash=command.intent_hash, tx_hash=command.tx_hash)
    return settlement_check(command)


def settlement_check(command: QuoteCommand) -> QuoteCommand:
    """Ask the relay `get_status(intent_hash)` of an executed command: SETTLED settles it."""
    try:
        status = near_intents_client().get_status(command.intent_hash)
    except VenueException as exc:
        log(
            logging.WARNING,
            "executor",
            "status_check_failed",
            "exec.trade_result",
            quote_id=command.quote_id,
            command_id=command.command_id,
            reason=f"{exc.error.code}: {exc.error.message}",
        )
        QuoteCommand.objects.filter(pk=command.pk).update(checks=command.checks + 1)
        return command
    QuoteCommand.objects.filter(pk=command.pk).update(checks=command.checks + 1)
    if status.status == "SETTLED":
        return settle(
            command.pk, reason=f"get_status SETTLED (tx {status.tx_hash or command.tx_hash})", tx_hash=status.tx_hash
        )
    return command


@transaction.atomic
def settle(command_id: str, *, reason: str, tx_hash: str = "") -> QuoteCommand:
    """The intent executed: the hold is consumed (credited − given until the next sync reads the verifier)."""
    command = QuoteCommand.objects.select_for_update().get(pk=command_id)
    if command.status in QuoteCommand.FINAL and command.status != C.EXPIRED:
        return command
    command.status, command.outcome_reason, command.closed_at = C.SETTLED, reason[:300], timezone.now()
    metrics.after_commit(metrics.NEAR_SETTLEMENTS.labels("settled").inc)
    command.tx_hash = tx_hash or command.tx_hash
    command.save()
    if command.reservation_id:
        inventory_consume(reservation=Reservation.objects.get(pk=command.reservation_id), actor="solver", reason=reason)
    _command_event(
        command,
        "near_intents.quote.settled",
        tx_hash=command.tx_hash,
        intent_hash=command.intent_hash,
        give={"asset": command.give_asset, "amount": _text(command.give_amount)},
        receive={"asset": command.receive_asset, "amount": _text(command.receive_amount)},
    )
    _result_log(command, "settled")
    return command


@transaction.atomic
def expire(command_id: str, *, reason: str) -> QuoteCommand:
    command = QuoteCommand.objects.select_for_update().get(pk=command_id)
    if command.status in QuoteCommand.FINAL:
        return command
    command.status, command.outcome_reason, command.closed_at = C.EXPIRED, reason[:300], timezone.now()
    metrics.after_commit(metrics.NEAR_SETTLEMENTS.labels("expired").inc)
    command.save()
    _release(command, reason)
    _command_event(command, "near_intents.quote.expired")
    _result_log(command, "expired")
    return command


def _nonce_used(command: QuoteCommand) -> bool | None:
    """Did the verifier execute our signed intent (its nonce is used)? None when it cannot be read."""
    client = near_intents_client()
    nonce = (command.response.get("signed_data") or {}).get("payload", {}).get("nonce", "")
    try:
        value, _ = client.view("is_nonce_used", {"account_id": client.net.solver_account, "nonce": nonce})
    except VenueException:
        return None
    return bool(value)


def restart_recover() -> int:
    """At start: a command signed but without a recorded answer may have been sent: unknown
    (reconciled, never resent)."""
    count = 0
    for command_id in QuoteCommand.objects.filter(status=C.SIGNED).values_list("pk", flat=True):
        response_record(command_id, timeout="the process stopped before the relay's answer was recorded")
        count += 1
    return count


def reconcile(*, now=None) -> dict:
    """Open commands: executed → get_status; past the deadline without a winner → the verifier's
    `is_nonce_used` decides: used → settled, not used → expired (hold released)."""
    now = now or timezone.now()
    counts = {"settled": 0, "expired": 0, "checked": 0}
    # executed: get_status each round, up to 30 times (then the nonce decides after the deadline)
    for command in QuoteCommand.objects.filter(status=C.EXECUTED, checks__lt=30).order_by("created_at")[:100]:
        counts["checked"] += 1
        if settlement_check(command).status == C.SETTLED:
            counts["settled"] += 1
    due = QuoteCommand.objects.filter(status__in=(C.SENT, C.UNKNOWN, C.EXECUTED), deadline__lt=now)
    for command in due.order_by("deadline")[:100]:
        used = _nonce_used(command)
        if used is None:
            continue
        if used:
            settle(command.pk, reason="the verifier has used the intent's nonce")
            counts["settled"] += 1
        else:
            expire(command.pk, reason="the deadline passed and the intent was not executed")
            counts["expired"] += 1
    return counts
