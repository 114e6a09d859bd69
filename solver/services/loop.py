"""The quotes through the loop (sync code; the `near_solver` process runs it on threads of its
own). The quotes waiting are decided together, a batch in one transaction of three round trips
whatever its size (BEGIN, the INSERT that reads, the statement that writes sent with its COMMIT;
group commit; docs/near-intents.md, "The hot path"):

1. **Ingest** (`quotes_receive`): the raw requests are stored once per quote_id (a duplicate is
   dropped); a pair outside the filter or an unreadable request stops there. The multi-row
   INSERT reads, in the same statement, what the batch is decided on (`State`).
2. **Strategy**, each quote in arrival order on what the earlier ones left: the fair rate of the
   pair (`fair_rate`: `reference_rate_use`, a pinned sample, kept NEAR_SOLVER_FAIR_RATE_MS) and
   the desk's price under it by the spread give the answer's amounts, its implied rate and its
   gross edge; freshness, edge threshold, notional caps and credited inventory of the asset the
   desk gives are checked. Every quote of a filtered pair gets one `QuoteDecision`.
3. **Gate and executor**, in the same transaction: the strategy's and the executor's control
   states and the trading states *now*, the signed `token_diff`s, then one statement writes the
   decisions, the holds' rows, the commands and the events, and takes the holds last (row-locked,
   until the intents' deadlines; they re-check the arm and trading states), the COMMIT sent with
   it — committed before the responses are sent. A refused hold fails that statement (so its
   COMMIT is not run) and rolls the batch back; it is decided again on a fresh read.
4. `responses_ok` / `response_record` write the relay's answers; `status_apply` a `quote_status`;
   `reconcile` settles (`get_status`, the verifier's `is_nonce_used`) or expires what is open.

Each step writes its ledger event (correlation `near-quote-<quote_id>`) and a log line with the
stable fields (`solver.log`)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Sum
from django.db.models.base import ModelState
from django.utils import timezone
from psycopg import RawCursor
from psycopg import errors as psycopg_errors

from config import metrics
from config.clock import seconds_since
from providers.interface import VenueException
from providers.near_intents.client import near_intents_client
from providers.near_intents.config import network_config
from providers.near_intents.intents import intent_message
from providers.near_intents.signing import Nep413Signer, intent_hash, versioned_nonce
from providers.near_intents.solver_keys import solver_seed
from providers.near_intents.tokens import KNOWN, TokenIdError, to_raw, to_units, token_id_parse
from providers.reference.service import FairRate, ReferenceUnavailable, ReferenceUnknownPair, reference_rate_use
from solver.models import EXECUTOR, STRATEGY, QuoteCommand, QuoteDecision, RelayQuote
from solver.services.config import CACHE_SECONDS as CONFIG_SECONDS
from solver.services.config import config_cached, config_forget
from trading import outbox
from trading.models import ControlState, TradingState
from trading.services.control import control_gate
from trading.services.ledger import event_record, event_rows_sql
from trading.ulid import new_ulid
from treasury.models import InventoryBalance, InventorySnapshot, Reservation
from treasury.services.inventory import inventory_consume, inventory_hold_parts, inventory_holds_sql, inventory_release

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
    if logger.isEnabledFor(level):  # the record made directly: no stack walk for the caller's
        # file and line (`logger.log` looks them up for every line; the JSON lines do not print them)
        logger.handle(
            logger.makeRecord(logger.name, level, "(unknown file)", 0, message or event, None, None, extra=extra)
        )


def _corr(quote_id: str) -> str:
    return f"near-quote-{quote_id}"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


# --- per-process caches ------------------------------------------------------------------------------
CACHE_SECONDS = 1.0  # the settings and the notional of the hour, re-read at most this often
REFRESH_AT = 0.75  # a cached fair rate or hour's notional this far into its window is read again ahead
_cache_lock = threading.Lock()
_hour: list = [Decimal(0), 0.0]  # committed notional of the last hour (as read) + this process's since
_hour_added: list = [Decimal(0)]  # all this process's batches have added to the hour's, as they committed
_pending: list = [Decimal(0)]  # the notional of this process's batches decided and not committed yet
_decide_lock = threading.Lock()  # a batch's quotes are decided in memory one batch at a time


def hour_notional_cached(now) -> Decimal:
    """The hour's notional as read at most CACHE_SECONDS ago, plus what this process's batches
    have committed since (`caches_refresh` reads it again ahead of time: the read, a sum over
    the hour's commands, is not paid by a batch, under the lock every batch decides under)."""
    with _cache_lock:
        if time.monotonic() - _hour[1] <= CACHE_SECONDS:
            return _hour[0]
    return hour_notional_refresh(now)


def hour_notional_refresh(now=None) -> Decimal:
    """Read the hour's notional into the cache. What this process's batches committed while it
    was read is added to it: a batch the read saw too is counted twice until the next read
    (more, never less: the cap holds)."""
    with _cache_lock:
        added_before = _hour_added[0]
    value = hour_notional(now or timezone.now())
    with _cache_lock:
        value += _hour_added[0] - added_before
        _hour[0], _hour[1] = value, time.monotonic()
    return value


def _hour_add(amount: Decimal) -> None:
    with _cache_lock:
        _hour[0] += amount
        _hour_added[0] += amount


def caches_forget() -> None:
    config_forget()
    _hour[0], _hour[1] = Decimal(0), 0.0
    _pending[0] = Decimal(0)
    tokens_forget()
    salt_forget()
    with _cache_lock:
        _seed.clear()
        _fair.clear()
        _net.clear()


_net: list = []  # (the network's configuration, when read)


def net_cached(max_age: float = CACHE_SECONDS):
    """`network_config()` as read at most `max_age` seconds ago (the sandbox's is a file read and
    parsed: three times per quote)."""
    with _cache_lock:
        hit = _net[0] if _net else None
    if hit is not None and time.monotonic() - hit[1] <= max_age:
        return hit[0]
    net = network_config()
    with _cache_lock:
        _net[:] = [(net, time.monotonic())]
    return net


# The solver key's seed, decrypted once and kept in this process's memory for SEED_SECONDS as a
# ready signer (it was read and decrypted per quote): a key replaced in custody is signed with
# from at most that long after (the verifier refuses the old key's signatures once it is removed
# there: the relay rejects the response, the hold is released; nothing is lost).
SEED_SECONDS = 30.0
_seed: dict[str, tuple[Nep413Signer, float]] = {}


def signer_cached(network: str, max_age: float = SEED_SECONDS) -> Nep413Signer:
    with _cache_lock:
        hit = _seed.get(network)
    if hit is not None and time.monotonic() - hit[1] <= max_age:
        return hit[0]
    signer = Nep413Signer(solver_seed(network))
    with _cache_lock:
        _seed[network] = (signer, time.monotonic())
    return signer


# The fair rate of a pair (or the refusal), evaluated at most every NEAR_SOLVER_FAIR_RATE_MS
# (it was evaluated per quote: the policy's reads and the pair's last sample, three round trips).
# A cached rate's freshness is its age when evaluated plus the time since, so the staleness limit
# holds exactly; a source that conflicts or fails is seen at most that long later.
# `caches_refresh` evaluates it again ahead of time, past REFRESH_AT of that window, so that while
# quotes keep coming none waits for the evaluation (several ms: it went into the p99).
_fair: dict[str, tuple[object, float]] = {}


def _fair_evaluate(pair: str, window: float) -> tuple[object, float]:
    now = time.monotonic()
    try:
        value = reference_rate_use(pair, purpose="decision")
    except (ReferenceUnavailable, ReferenceUnknownPair) as exc:
        value = exc
    hit = (value, now)
    if window > 0:
        with _cache_lock:
            if pair not in _fair or _fair[pair][1] < now:
                _fair[pair] = hit
    return hit


def fair_rate_refresh(pair: str) -> None:
    """Evaluate the pair's fair rate ahead of time, into the cache."""
    _fair_evaluate(pair, settings.NEAR_SOLVER_FAIR_RATE_MS / 1000)


def fair_rate(pair: str) -> FairRate:
    window = settings.NEAR_SOLVER_FAIR_RATE_MS / 1000
    now = time.monotonic()
    with _cache_lock:
        hit = _fair.get(pair)
    if hit is None or now - hit[1] > window:
        hit = _fair_evaluate(pair, window)
    value, at = hit
    if isinstance(value, Exception):
        raise value
    elapsed_ms = int((now - at) * 1000)
    if elapsed_ms and value.age_ms is not None:
        value = dataclasses.replace(value, age_ms=value.age_ms + elapsed_ms)
    return value


def caches_refresh(*, fair_rates: bool = True) -> None:
    """Read again, ahead of time, what a batch reads from this process's caches and is past
    REFRESH_AT of its window: the settings, the network's configuration, the hour's notional, the
    solver key's seed, the verifier's salt and (with `fair_rates`) the configured pairs' fair
    rates. The runner calls it before it connects (without the fair rates: a quote sees a rate at
    most NEAR_SOLVER_FAIR_RATE_MS after it was evaluated), so that the first batch does not pay
    for them, then every few tens of ms on a worker thread, quotes or none: the first quote after
    a quiet second paid for all of them (35-65 ms of its latency). What cannot be read (no key
    yet, the verifier not reachable) is read by the quote that needs it, which says what is wrong."""
    now = time.monotonic()
    steps = [
        lambda: config_cached(max_age=CONFIG_SECONDS * REFRESH_AT),
        lambda: net_cached(max_age=CACHE_SECONDS * REFRESH_AT),
        lambda: signer_cached(net_cached().name, max_age=SEED_SECONDS * REFRESH_AT),
        lambda: salt_current(near_intents_client(net_cached()), max_age=SALT_TTL * REFRESH_AT),
    ]
    if now - _hour[1] > CACHE_SECONDS * REFRESH_AT:
        steps.append(hour_notional_refresh)
    window = settings.NEAR_SOLVER_FAIR_RATE_MS / 1000
    if fair_rates and window > 0:
        for pair in config_cached().pairs:
            with _cache_lock:
                hit = _fair.get(pair)
            if hit is None or now - hit[1] > window * REFRESH_AT:
                steps.append(functools.partial(fair_rate_refresh, pair))
    for step in steps:
        try:
            step()
        except Exception:  # the quote that needs it reads it again, and says what is wrong
            logger.info("a solver cache was not refreshed", exc_info=True, extra={"venue": VENUE, "event": "warm"})


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


def salt_current(client, max_age: float = SALT_TTL) -> bytes:
    key = client.net.name
    hit = _salt.get(key)
    if hit is None or time.monotonic() - hit[1] > max_age:
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
    return signer_cached(net.name).sign(message=message, nonce=nonce, recipient=net.verifier)


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

    status: str  # duplicate | filtered | invalid | dropped | skip | quote | error (not recorded)
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


class _HoldRefused(Exception):
    """The holds, the last part of a batch's statement, were refused (a concurrent hold took the
    inventory, the balance went stale, or a component was disarmed or trading halted meanwhile):
    the transaction is rolled back whole and the batch decided again on a fresh read."""


HOLD_ATTEMPTS = 3  # a batch whose holds are refused this many times records its fired quotes as skips


@dataclass
class Received:
    """One `quote` event as the process received it."""

    data: dict
    metadata: dict | None = None
    received_at: datetime | None = None


@dataclass
class _Item:
    """One quote of a batch on its way through the loop."""

    data: dict
    metadata: dict | None
    received_at: datetime
    parsed: dict
    fair: FairRate | Exception | None = None
    quote: RelayQuote | None = None
    outcome: Outcome | None = None


def quote_receive(
    data: dict, metadata: dict | None = None, *, received_at: datetime | None = None, ingest_open: bool = True
) -> Outcome:
    """Handle one `quote` event end to end up to the signed response (`quotes_receive` of one)."""
    return quotes_receive([Received(data, metadata, received_at)], ingest_open=ingest_open)[0]


def quotes_receive(
    batch: list[Received], *, ingest_open: bool = True, logs_later: list[Callable[[], None]] | None = None
) -> list[Outcome]:
    """Handle the `quote` events waiting to be decided, together (group commit, see the module
    doc): one transaction, three round trips whatever their number; an Outcome each, in order.

    The batch's log lines (a decision each, a submit each answered one) are written once it has
    committed; with `logs_later` they are appended to it as callables instead, for the caller to
    write once the responses are sent (the runner does: they are not on a quote's way out)."""
    logs: list[Callable[[], None]] = [] if logs_later is None else logs_later
    config = config_cached()
    pairs = list(config.pairs)
    items: list[_Item] = []
    outcomes: list[Outcome | None] = []
    seen: set[str] = set()
    for r in batch:
        parsed = _parse(r.data if isinstance(r.data, dict) else {}, pairs)
        quote_id = parsed["quote_id"]
        if not quote_id:
            outcomes.append(Outcome("invalid", reason="no quote_id"))
            continue
        if quote_id in seen:  # the same quote_id twice in one batch: the second is a duplicate
            log(logging.INFO, "ingest", "duplicate", "raw.near_intents.quote", quote_id=quote_id)
            metrics.NEAR_QUOTES.labels(parsed.get("pair", "") or "other", "duplicate").inc()
            outcomes.append(Outcome("duplicate", pair=parsed.get("pair", "")))
            continue
        seen.add(quote_id)
        item = _Item(r.data, r.metadata, r.received_at or timezone.now(), parsed)
        if ingest_open and parsed["status"] == RelayQuote.Status.ACCEPTED:
            # outside the batch's transaction: a sample it writes is committed whatever the quotes' fate
            item.fair = _fair_or_refusal(parsed["pair"])
        items.append(item)
        outcomes.append(None)
    if len(items) == 1:
        logs.append(_batch_attempts(items, config, ingest_open))
    elif items:
        try:
            logs.append(_batch_attempts(items, config, ingest_open))
        except Exception:  # one quote the database refuses must not lose the others: one by one
            logger.warning(
                "a batch of quotes failed: deciding them one by one",
                exc_info=True,
                extra={"venue": VENUE, "event": "batch_failed", "count": len(items)},
            )
            for item in items:
                try:
                    logs.append(_batch_attempts([item], config, ingest_open))
                except Exception as exc:
                    logger.exception(
                        "quote handling failed",
                        extra={"venue": VENUE, "event": "quote_failed", "quote_id": item.parsed["quote_id"]},
                    )
                    item.outcome = Outcome("error", pair=item.parsed.get("pair", ""), reason=str(exc)[:300])
    if logs_later is None:
        for write in logs:
            write()
    done = iter(item.outcome for item in items)
    return [outcome if outcome is not None else next(done) for outcome in outcomes]


def _batch_attempts(items: list[_Item], config, ingest_open: bool) -> Callable[[], None]:
    """`_batch` in a transaction of its own, again on a fresh read while its holds are refused.
    Returns what writes the committed batch's log lines."""
    pending: list[Decimal] = []  # the batch's notional while it is written
    for attempt in range(1, HOLD_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                logs = _batch(items, config, ingest_open, pending, hold_refused=attempt == HOLD_ATTEMPTS)
            return logs
        except _HoldRefused:
            continue
        finally:  # committed (and added to the hour's as it did) or rolled back
            with _cache_lock:
                _pending[0] -= sum(pending, Decimal(0))
            pending.clear()
    return lambda: None  # not reached: the last attempt takes no hold, so none is refused


_STATE_SQL = """
    (SELECT coalesce(json_agg(json_build_array(quote_id, id)), '[]') FROM q)::text,
    (SELECT coalesce(json_agg(json_build_array(component, armed, paused, draining, expires_at)), '[]')
     FROM {control} WHERE component IN (%s, %s))::text,
    (SELECT coalesce(json_agg(json_build_array(scope_type, scope_key, state, previous_state, expires_at)), '[]')
     FROM {trading} WHERE scope_type = 'global' OR (scope_type = 'venue' AND scope_key = %s)
        OR (scope_type = 'instrument' AND scope_key = ANY(%s::text[]))
        OR (scope_type = 'strategy' AND scope_key = %s))::text,
    (SELECT coalesce(json_agg(b), '[]') FROM (
        SELECT bal.*, (SELECT s.id FROM {snapshot} s WHERE s.balance_id = bal.id ORDER BY s.id DESC LIMIT 1)
            AS last_snapshot_id
        FROM {balance} bal WHERE venue = %s AND account = %s AND asset = ANY(%s::text[])) b)::text,
    (SELECT coalesce(array_agg(nextval(pg_get_serial_sequence('{reservation}', 'id'))), '{{}}')
     FROM generate_series(1, %s))
"""


@dataclass
class State:
    """What a batch is decided on, read with its raw rows' INSERT: the strategy's and the
    executor's control rows, the trading states over its pairs, the given assets' balances (with
    their last snapshot's id) by asset, and ids for the holds' rows should its quotes be answered."""

    controls: dict[str, ControlState]
    trading: list[TradingState]
    balances: dict[str, InventoryBalance]
    reservation_ids: list[int]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


_DEFAULTS: dict[type, tuple[dict, list]] = {}


def _new(model: type, **values):
    """`model(**values)` for one of the batch's new rows, without Django's constructor (its
    keyword path looks every field up and calls its default: about 25 µs a decision or a command,
    a few a quote): the fields' defaults, a callable one called, then `values` by attname
    (`relay_quote_id`, not `relay_quote`)."""
    hit = _DEFAULTS.get(model)
    if hit is None:
        static, dynamic = {}, []
        for field in model._meta.concrete_fields:
            if field.has_default() and callable(field.default):
                dynamic.append((field.attname, field.default))
            else:
                static[field.attname] = field.get_default()
        hit = _DEFAULTS[model] = (static, dynamic)
    static, dynamic = hit
    instance = model.__new__(model)
    instance._state = ModelState()
    attrs = instance.__dict__
    attrs.update(static)
    for attname, default in dynamic:
        if attname not in values:
            attrs[attname] = default()
    attrs.update(values)
    return instance


_COLUMNS: dict[tuple[type, bool], tuple[list, str]] = {}


def _rows_insert(instances: list, suffix: str = "") -> tuple[str, list]:
    """One multi-row `INSERT INTO <table> (<every column>) VALUES (...), (...)` of new rows of one
    model, their primary keys set (an auto one left to its sequence when unset). The values are
    the attributes as they are (what Django's preparation gives on PostgreSQL for these models'
    field types), JSON ones wrapped and `auto_now` ones set as Django's `pre_save` does."""
    model = type(instances[0])
    with_pk = instances[0].pk is not None
    hit = _COLUMNS.get((model, with_pk))
    if hit is None:
        conn = connections[DEFAULT_DB_ALIAS]
        fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        quote = conn.ops.quote_name
        hit = _COLUMNS[model, with_pk] = (
            [
                (
                    f.attname,
                    f
                    if f.get_internal_type() == "JSONField"
                    or getattr(f, "auto_now", False)
                    or getattr(f, "auto_now_add", False)
                    else None,
                )
                for f in fields
            ],
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES ",
        )
    columns, head = hit
    conn = connections[DEFAULT_DB_ALIAS]
    values = operator.attrgetter(*(attname for attname, _ in columns))  # every column's at once
    prepared = [(i, field) for i, (_, field) in enumerate(columns) if field is not None]
    params: list = []
    for instance in instances:
        cells = list(values(instance))
        for i, field in prepared:
            cells[i] = field.get_db_prep_save(field.pre_save(instance, True), connection=conn)
        params += cells
    row = f"({', '.join(['%s'] * len(columns))})"
    return head + ", ".join([row] * len(instances)) + suffix, params


def _insert_and_read(items: list[_Item], ingest_open: bool, account: str) -> State:
    """INSERT the batch's raw quotes (a quote_id stored already is a duplicate: no `quote.pk`) and
    read the `State` to decide them on, in one statement."""
    for item in items:
        parsed = item.parsed
        item.quote = _new(
            RelayQuote,
            quote_id=parsed["quote_id"],
            received_at=item.received_at,
            raw={"data": item.data, "metadata": item.metadata or {}},
            asset_in=parsed["asset_in"],
            asset_out=parsed["asset_out"],
            exact_amount_in=parsed["exact_amount_in"],
            exact_amount_out=parsed["exact_amount_out"],
            min_deadline_ms=parsed["min_deadline_ms"],
            pair=parsed.get("pair", ""),
            direction=parsed.get("direction", ""),
            amount=parsed.get("amount"),
            status=parsed["status"] if ingest_open else RelayQuote.Status.DROPPED,
            note=parsed["note"] if ingest_open else "ingest closed (paused, draining or disarmed)",
        )
    insert, params = _rows_insert(
        [item.quote for item in items], " ON CONFLICT (quote_id) DO NOTHING RETURNING id, quote_id"
    )
    accepted = [i.quote for i in items if i.quote.status == RelayQuote.Status.ACCEPTED]
    columns = _STATE_SQL.format(
        control=ControlState._meta.db_table,
        trading=TradingState._meta.db_table,
        snapshot=InventorySnapshot._meta.db_table,
        balance=InventoryBalance._meta.db_table,
        reservation=Reservation._meta.db_table,
    )
    params += [STRATEGY, EXECUTOR, VENUE, sorted({q.pair for q in accepted}), VENUE, VENUE, account]
    params += [sorted({q.asset_out for q in accepted}), len(accepted)]
    ids_json, control_json, trading_json, balances_json, reservation_ids = _execute(
        f"WITH q AS ({insert}) SELECT {columns}", params
    )
    ids = dict(json.loads(ids_json))
    for item in items:
        item.quote.pk = ids.get(item.quote.quote_id)
        item.quote._state.adding = False
    controls = {
        key: _new(ControlState, component=key, armed=armed, paused=paused, draining=draining, expires_at=_when(expires))
        for key, armed, paused, draining, expires in json.loads(control_json)
    }
    trading = [
        _new(
            TradingState,
            scope_type=scope_type,
            scope_key=scope_key,
            state=state,
            previous_state=previous,
            expires_at=_when(expires),
        )
        for scope_type, scope_key, state, previous, expires in json.loads(trading_json)
    ]
    balances = {}
    for row in json.loads(balances_json, parse_float=Decimal):
        fields = {}
        for attname, column, kind in _BALANCE_FIELDS:
            value = row.get(column)
            if value is not None and kind == "DecimalField":
                value = Decimal(value) if not isinstance(value, Decimal) else value
            elif value is not None and kind == "DateTimeField":
                value = _when(value)
            fields[attname] = value
        balance = _new(InventoryBalance, **fields)
        balance._state.adding = False
        balance.last_snapshot_id = row.get("last_snapshot_id")
        balances[balance.asset] = balance
    return State(controls, trading, balances, list(reservation_ids or []))


_BALANCE_FIELDS = [(f.attname, f.column, f.get_internal_type()) for f in InventoryBalance._meta.concrete_fields]


_DOLLARS: dict[str, str] = {}
_PLACEHOLDERS: list[str] = []  # "$1", "$2", …: as many as the longest statement has needed (only added to)


def _execute(sql: str, params: list, *, commit: bool = False):
    """Run one of the batch's statements on the connection's psycopg cursor without the query
    conversion: the `%s` placeholders become PostgreSQL's `$1, $2, …` here by a plain split (the
    driver's conversion parses the whole text in Python, and caches no text longer than 4 KB or
    with more than 50 parameters: a batch's statements are both). Returns its first row, if any.

    `commit`: the transaction (the outermost `atomic` block, whose exit then finds nothing to
    commit) is committed with the statement, in one round trip (psycopg's pipeline mode: the
    statement, the COMMIT and a sync sent together). The server runs the COMMIT as the statement
    ends, without waiting for the client; when the statement fails, the COMMIT is not run (the
    pipeline is aborted up to its sync) and the error is raised: the `atomic` block rolls back."""
    dollars = _DOLLARS.get(sql)
    if dollars is None:
        head, *rest = sql.split("%s")
        if len(_PLACEHOLDERS) < len(rest):
            with _cache_lock:
                _PLACEHOLDERS.extend(f"${i}" for i in range(len(_PLACEHOLDERS) + 1, len(rest) + 1))
        dollars = head + "".join(itertools.chain.from_iterable(zip(_PLACEHOLDERS, rest, strict=False)))
        if len(sql) <= 8192 and len(_DOLLARS) < 256:
            _DOLLARS[sql] = dollars
    connection.ensure_connection()
    pg = connection.connection
    if not commit:
        with RawCursor(pg) as cur:
            cur.execute(dollars, params)
            return cur.fetchone() if cur.description else None
    with pg.pipeline(), RawCursor(pg) as cur:
        cur.execute(dollars, params)
        pg.commit()
        return cur.fetchone() if cur.description else None


def _one_statement(parts: list[tuple[str, list]]) -> tuple[str, list]:
    """Statements as one: every part but the last a CTE of the last (each runs once, in order of
    need; foreign keys between them are checked at the end of the statement)."""
    parts = [(sql, params) for sql, params in parts if sql]
    *ctes, (last, last_params) = parts
    head = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(ctes))
    params = [p for _, ps in ctes for p in ps] + list(last_params)
    return (f"WITH {head} {last}" if ctes else last), params


def _trading_states(rows: list[TradingState], now, pair: str) -> None:
    for row in rows:
        if row.scope_type == "instrument" and row.scope_key != pair:
            continue
        state = row.effective_state(now)
        if state != TradingState.State.ACTIVE:  # a quote always adds exposure: REDUCE_ONLY refuses it too
            label = "global" if row.scope_type == "global" else f"{row.scope_type}:{row.scope_key}"
            raise Skip("TRADING_HALTED" if state == "HALTED" else "TRADING_REDUCE_ONLY", f"{state} ({label})")


def _inventory_view(balance: InventoryBalance | None, now, taken: Decimal = Decimal(0)) -> dict:
    """The given asset's balance as the quote is decided on it: `taken` is what the batch's
    earlier quotes hold of it (in `reserved` and `spendable`)."""
    if balance is None:
        return {"status": "unknown"}
    return {
        "balance_id": balance.pk,
        "asset": balance.asset,
        "symbol": balance.symbol,
        "credited": _text(balance.credited),
        "reserved": _text(balance.reserved + taken),
        "spendable": _text(max(balance.spendable - taken, Decimal(0))),
        "pending_in": _text(balance.pending_in),
        "status": balance.effective_status(now),
        "synced_at": balance.synced_at.isoformat() if balance.synced_at else None,
        "age_ms": int(seconds_since(balance.synced_at, now) * 1000) if balance.synced_at else None,
    }


@dataclass
class _Fired:
    """A quote that fires: its rows and events, written with the batch's."""

    item: _Item
    decision: QuoteDecision
    reservation: Reservation
    command: QuoteCommand
    events: list[dict]
    plan: Plan


def _batch(items: list[_Item], config, ingest_open: bool, pending: list, *, hold_refused: bool) -> Callable[[], None]:
    """One attempt at the batch, in the caller's transaction: its raw rows and state (one
    statement), every quote decided in order in memory (the inventory each gives and the hour's
    notional counted on as the batch goes), then one statement writing every decision, hold row,
    command and event, the holds last (`_HoldRefused` when one is refused). Returns what writes
    its log lines (not written here: the balance rows stay locked until the commit)."""
    net = net_cached()
    state = _insert_and_read(items, ingest_open, net.solver_account)
    # decided one batch at a time in the process (the batches' statements and commits overlap):
    # the hour's notional counts what the batches not committed yet will add
    with _decide_lock:
        now = timezone.now()
        taken: dict[int, Decimal] = {}  # balance id → what the batch's earlier quotes hold of it
        # the hour's notional (as read, and what batches being written hold of it), and this batch's
        hour = [hour_notional_cached(now) + _pending[0], Decimal(0)]
        reservation_ids = iter(state.reservation_ids)
        decisions: list[QuoteDecision] = []
        events: list[dict] = []
        fired: list[_Fired] = []
        for item in items:
            quote, parsed = item.quote, item.parsed
            if quote.pk is None:
                item.outcome = Outcome("duplicate", pair=parsed.get("pair", ""))
                continue
            if quote.status != RelayQuote.Status.ACCEPTED:
                item.outcome = Outcome(str(quote.status), pair=parsed.get("pair", ""), reason=parsed["note"])
                continue
            events.append(
                _event(
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
                        "received_at": item.received_at,
                    },
                )
            )
            decision = _new(
                QuoteDecision,
                relay_quote_id=quote.pk,
                quote_id=quote.quote_id,
                pair=quote.pair,
                direction=quote.direction,
            )
            decisions.append(decision)
            done = _decide(
                decision, item, config, state, taken, hour, reservation_ids, now, net, hold_refused=hold_refused
            )
            if done is None:
                events.append(_decision_event(decision))
                item.outcome = Outcome("skip", pair=quote.pair, reason=decision.decision_reason)
            else:
                events += done.events
                fired.append(done)
                item.outcome = Outcome("quote", pair=quote.pair, reason="QUOTED", plan=done.plan)
        with _cache_lock:
            _pending[0] += hour[1]
        pending.append(hour[1])
    if decisions:
        returning = " RETURNING 1" if fired else ""  # the holds run them to the end first
        parts = [_rows_insert(decisions, returning)]
        if fired:
            parts += [
                _rows_insert([f.reservation for f in fired], returning),
                _rows_insert([f.command for f in fired], returning),
            ]
        events_sql, events_params, outbox_sql, outbox_params, _ = event_rows_sql(events)
        parts += [
            (events_sql + returning, events_params),
            (outbox_sql + returning if outbox_sql else "", outbox_params),
        ]
        parts = [part for part in parts if part[0]]
        if fired:
            parts.append(_holds(fired, now, after=tuple(f"w{i}" for i in range(len(parts)))))
            # a hold refused fails the statement (so that the COMMIT sent with it does not commit)
            held = len({f.reservation.balance_id for f in fired})
            parts.append((_HELD_ALL_SQL.format(w=f"w{len(parts) - 1}", refused=_REFUSED), [held]))
        statement, params = _one_statement(parts)
        try:
            _execute(statement, params, commit=len(connection.atomic_blocks) == 1)
        except psycopg_errors.InvalidTextRepresentation as exc:
            if _REFUSED in str(exc):
                raise _HoldRefused from None
            raise
        if outbox_sql:
            outbox.kick_soon_after_commit()
    _batch_done(items, decisions, hour[1])
    return functools.partial(_batch_logs, items, decisions, fired)


def _batch_done(items: list[_Item], decisions: list[QuoteDecision], notional: Decimal) -> None:
    """The batch's counters, and its notional added to the hour's, once it commits."""
    if notional:
        transaction.on_commit(lambda: _hour_add(notional))
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        accepted = item.quote.status == RelayQuote.Status.ACCEPTED
        key = (
            (item.quote.pair if accepted else "") or "other",
            "duplicate" if item.outcome.status == "duplicate" else str(item.quote.status),
        )
        counts[key] = counts.get(key, 0) + 1
    for (pair, status), n in counts.items():
        metrics.after_commit(lambda pair=pair, status=status, n=n: metrics.NEAR_QUOTES.labels(pair, status).inc(n))
    decided: dict[tuple[str, str], int] = {}
    for decision in decisions:
        key = (str(decision.decision), str(decision.decision_reason or "none"))
        decided[key] = decided.get(key, 0) + 1
    for (what, reason), n in decided.items():
        metrics.after_commit(lambda what=what, reason=reason, n=n: metrics.NEAR_DECISIONS.labels(what, reason).inc(n))


def _batch_logs(items: list[_Item], decisions: list[QuoteDecision], fired: list[_Fired]) -> None:
    """The committed batch's log lines: a duplicate, a decision, a submit."""
    for item in items:
        if item.outcome.status == "duplicate":
            log(logging.INFO, "ingest", "duplicate", "raw.near_intents.quote", quote_id=item.quote.quote_id)
    for decision in decisions:
        _decision_log(decision)
    for f in fired:
        log(
            logging.INFO,
            "executor",
            "submit",
            "cmd.execute_trade",
            pair=f.command.pair,
            quote_id=f.command.quote_id,
            decision_id=f.decision.decision_id,
            command_id=f.command.command_id,
        )


def _decide(
    decision: QuoteDecision,
    item: _Item,
    config,
    state: State,
    taken: dict[int, Decimal],
    hour: list[Decimal],
    reservation_ids,
    now: datetime,
    net,
    *,
    hold_refused: bool,
) -> _Fired | None:
    """Decide one quote of the batch on `state` less what the batch's earlier quotes took (`taken`
    of each balance, `hour[1]` of the hour's notional): None when it is skipped (the reason on
    `decision`), else its rows to write."""
    quote, parsed = item.quote, item.parsed
    balance = state.balances.get(quote.asset_out)
    spent = taken.get(balance.pk, Decimal(0)) if balance is not None else Decimal(0)
    decision.inventory_snapshot = _inventory_view(balance, now, spent)
    if balance is not None:
        decision.inventory_snapshot_row_id = balance.last_snapshot_id
    try:
        _gate(STRATEGY, state.controls.get(STRATEGY))
        if quote.min_deadline_ms > settings.NEAR_SOLVER_MAX_DEADLINE_MS:
            raise Skip(
                "DEADLINE_TOO_LONG", f"min_deadline_ms {quote.min_deadline_ms} > {settings.NEAR_SOLVER_MAX_DEADLINE_MS}"
            )
        late_ms = int((now - item.received_at).total_seconds() * 1000)
        if late_ms > settings.NEAR_SOLVER_ANSWER_WINDOW_MS:
            raise Skip("QUOTE_EXPIRED", f"decided {late_ms} ms after it arrived (the relay waits about 3 s)")
        _price(decision, quote, parsed, config, item.fair)
        _limits(decision, config, balance, now, spent=spent, hour_used=hour[0] + hour[1])
        _gate(EXECUTOR, state.controls.get(EXECUTOR))
        _trading_states(state.trading, now, quote.pair)
        if hold_refused:  # the batch's holds lost to concurrent ones every time
            raise Skip("INSUFFICIENT_INVENTORY", "the hold was refused: concurrent holds took the inventory")
        deadline = now + timedelta(milliseconds=quote.min_deadline_ms + settings.NEAR_SOLVER_DEADLINE_EXTRA_MS)
        fired = _command(decision, item, deadline, net, balance, next(reservation_ids), now)
    except Skip as skip:
        decision.decision, decision.decision_reason, decision.detail = "skip", skip.reason, skip.detail[:500]
        return None
    taken[balance.pk] = spent + decision.amount_out
    hour[1] += decision.notional
    return fired


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


def _limits(
    decision: QuoteDecision, config, balance: InventoryBalance | None, now, *, spent: Decimal, hour_used: Decimal
) -> None:
    if decision.notional > config.max_notional_quote:
        raise Skip("NOTIONAL_CAP_QUOTE", f"{_text(decision.notional)} > {_text(config.max_notional_quote)} per quote")
    if hour_used + decision.notional > config.max_notional_hour:
        raise Skip(
            "NOTIONAL_CAP_HOUR",
            f"{_text(hour_used)} answered in the last hour + {_text(decision.notional)} > "
            f"{_text(config.max_notional_hour)}",
        )
    if balance is None:
        raise Skip("INVENTORY_UNKNOWN", "no credited inventory of the given asset has been synced")
    if balance.effective_status(now) == InventoryBalance.Status.STALE:
        raise Skip("INVENTORY_STALE", f"inventory is stale: {balance.why_stale(now)}")
    spendable = balance.spendable - spent
    if spendable < decision.amount_out:
        raise Skip(
            "INSUFFICIENT_INVENTORY",
            f"{_text(max(spendable, Decimal(0)))} {balance.symbol} credited and spendable; "
            f"{_text(decision.amount_out)} asked",
        )


# The holds are taken only while the strategy and the executor are armed (not expired), unpaused
# and not draining, and every trading state over the batch's pairs is ACTIVE (an expired one counts
# as its previous state): `_gate` and `_trading_states` again, in SQL, as the balance rows are locked.
_GATE_AT_HOLD = (
    " AND (SELECT count(*) FROM {control} WHERE component IN (%s, %s) AND armed AND NOT paused AND NOT draining"
    " AND (expires_at IS NULL OR expires_at > %s)) = 2"
    " AND NOT EXISTS (SELECT 1 FROM {trading} t WHERE (t.scope_type = 'global'"
    " OR (t.scope_type = 'venue' AND t.scope_key = %s)"
    " OR (t.scope_type = 'instrument' AND t.scope_key = ANY(%s::text[]))"
    " OR (t.scope_type = 'strategy' AND t.scope_key = %s))"
    " AND CASE WHEN t.expires_at IS NOT NULL AND t.expires_at <= %s"
    " THEN coalesce(nullif(t.previous_state, ''), 'ACTIVE') ELSE t.state END <> 'ACTIVE')"
)


# The last part of a batch's statement when it holds: the number of balances held, or, when a hold
# is refused (fewer held), an error (a text that is no number cast to one; plain SQL has no RAISE):
# the statement fails, and the COMMIT sent with it is not run (`_execute`).
_REFUSED = "hold refused"
_HELD_ALL_SQL = "SELECT CASE WHEN count(*) = %s THEN count(*) ELSE ('{refused}: ' || count(*))::bigint END FROM {w}"


def _holds(fired: list[_Fired], now: datetime, *, after: tuple[str, ...]) -> tuple[str, list]:
    """The batch's holds, one per balance given (the treasury's statement for many), with the
    gate re-checked: it returns the ids of the balances held. It locks the balance rows once the
    CTEs `after` (the batch's rows) are written: the locks are held from there to the commit only,
    so that two batches' writes overlap."""
    amounts: dict[int, Decimal] = {}
    for f in fired:
        amounts[f.reservation.balance_id] = amounts.get(f.reservation.balance_id, Decimal(0)) + f.reservation.amount
    sql, params = inventory_holds_sql(amounts, now=now, after=after)
    head, sep, tail = sql.rpartition(" RETURNING ")
    gate = _GATE_AT_HOLD.format(control=ControlState._meta.db_table, trading=TradingState._meta.db_table)
    pairs = sorted({f.command.pair for f in fired})
    return head + gate + sep + tail, [*params, STRATEGY, EXECUTOR, now, VENUE, pairs, VENUE, now]


def _command(
    decision: QuoteDecision,
    item: _Item,
    deadline: datetime,
    net,
    balance: InventoryBalance,
    reservation_id: int,
    now: datetime,
) -> _Fired:
    """Sign the quote's `token_diff`; its decision, hold row, command, events and response (the
    batch writes them, the holds last: `_batch`)."""
    quote, parsed = item.quote, item.parsed
    dec_in, dec_out = parsed["decimals"]
    raw_in, raw_out = to_raw(decision.amount_in, dec_in), to_raw(decision.amount_out, dec_out)
    try:
        signed = quote_sign(
            asset_in=quote.asset_in, raw_in=raw_in, asset_out=quote.asset_out, raw_out=raw_out, deadline=deadline
        )
    except VenueException as exc:
        raise Skip("SIGNER_UNAVAILABLE", f"{exc.error.code}: {exc.error.message}"[:500]) from None
    decision.decision, decision.decision_reason = "quote", "QUOTED"
    decided = _decision_event(decision)
    output = {"amount_out": str(raw_out)} if quote.exact_amount_in else {"amount_in": str(raw_in)}
    response = {"quote_id": quote.quote_id, "quote_output": output, "signed_data": signed}
    command = _new(
        QuoteCommand,
        quote_id=quote.quote_id,
        decision_id=decision.decision_id,
        reservation_id=reservation_id,
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
    reservation, reserved, _, _ = inventory_hold_parts(
        balance,
        reservation_id=reservation_id,
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
    plan = Plan(
        command_id=command.command_id,
        quote_id=quote.quote_id,
        response=response,
        decision_id=decision.decision_id,
        pair=quote.pair,
    )
    return _Fired(item, decision, reservation, command, [decided, created, reserved], plan)


def _decision_event(decision: QuoteDecision) -> dict:
    """The `near_intents.quote.decided` event: the decision record."""
    return _event(decision.quote_id, "near_intents.quote.decided", decision_view(decision))


def _decision_log(decision: QuoteDecision) -> None:
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
def _result_log(of: QuoteCommand | Plan, status: str, *, level: int = logging.INFO, reason: str = "") -> None:
    """The executor's `exec.trade_result` line for a command's outcome (`of`: the command, or the
    plan it was sent from; both carry its ids and pair)."""
    log(
        level,
        "executor",
        "result",
        "exec.trade_result",
        pair=of.pair,
        quote_id=of.quote_id,
        decision_id=of.decision_id,
        command_id=of.command_id,
        status=status,
        reason=reason,
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


_SENT_MANY_SQL = (
    "UPDATE {table} c SET status = %s, sent_at = coalesce(c.sent_at, %s), relay_answer = v.answer, answered_at = %s "
    "FROM (VALUES {rows}) AS v (command_id, answer) WHERE c.command_id = v.command_id AND c.status = %s "
    "RETURNING c.command_id, c.quote_id"
)


def responses_ok(answered: list[tuple[Plan, object]]) -> int:
    """The relay said OK to quote_responses (the common answer; those that arrived while the last
    ones were being recorded): one statement whatever their number, the commands still `signed`
    made `sent` with their `near_intents.quote.responded` events (a command that has moved on
    meanwhile, quote_status first, keeps its state and gets no event). Returns how many changed.
    `response_record` is the general way."""
    if not answered:
        return 0
    now = timezone.now()
    events, update_params = [], [C.SENT, now, now]
    for plan, result in answered:
        answer = {"result": result}
        update_params += [plan.command_id, json.dumps(answer, default=str)]
        events.append(
            _event(
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
        )
    update_params.append(C.SIGNED)
    update = _SENT_MANY_SQL.format(
        table=QuoteCommand._meta.db_table, rows=", ".join(["(%s, %s::jsonb)"] * len(answered))
    )
    events_sql, events_params, outbox_sql, outbox_params, _ = event_rows_sql(events)
    # an event only for a command the UPDATE changed (its quote_id is the event's aggregate_id)
    head, _, rows = events_sql.partition(" VALUES ")
    parts = [
        (update, update_params),
        (
            f"{head} SELECT * FROM (VALUES {rows}) AS v WHERE v.column5 IN (SELECT quote_id FROM w0) RETURNING id",
            events_params,
        ),
    ]
    if outbox_sql:
        head, _, rows = outbox_sql.partition(" VALUES ")
        parts.append(
            (f"{head} SELECT * FROM (VALUES {rows}) AS v WHERE v.column1 IN (SELECT id FROM w1)", outbox_params)
        )
    statement, params = _one_statement([*parts, ("SELECT coalesce(array_agg(command_id), '{}') FROM w0", [])])
    # one statement: atomic on its own (no BEGIN and COMMIT round trips around it)
    (changed,) = _execute(statement, params)
    if changed and outbox_sql:
        outbox.kick_soon_after_commit()
    changed = set(changed)
    metrics.NEAR_RESPONSES.labels("responded").inc(len(changed))
    for plan, _ in answered:
        if plan.command_id in changed:
            _result_log(plan, C.SENT)
    return len(changed)


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
    level = logging.INFO if command.status == C.SENT else logging.WARNING
    _result_log(command, command.status, level=level, reason=command.outcome_reason)
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
    _result_log(command, "settled", reason=command.outcome_reason)
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
    _result_log(command, "expired", reason=command.outcome_reason)
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
