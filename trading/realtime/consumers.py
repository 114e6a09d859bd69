"""The two websocket endpoints. Protocols and close codes: docs/websockets.md.

`/ws` (`WsConsumer`): channels `prices` (public market data, per pair), `trades`,
`positions`, `deposits` (the authenticated user's own objects, from committed ledger
events; positions also get live marks). `/stream` (`StreamConsumer`): ledger events by
topic pattern, with resume from a last-seen event id.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections import OrderedDict, deque

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q

from trading.realtime import groups
from trading.realtime.connection import CLOSE_REPLAY_TOO_LARGE, CLOSE_TOO_SLOW, RealtimeConsumer, logger, now_iso
from trading.realtime.hub import price_hub
from trading.realtime.publish import dumps

WS_CHANNELS = ("prices", "trades", "positions", "deposits")
USER_CHANNELS = ("trades", "positions", "deposits")
# ledger topic prefix → (/ws channel, server message type)
TOPIC_CHANNELS = {
    "order": ("trades", "trade_update"),
    "trade": ("trades", "trade_update"),
    "position": ("positions", "position_update"),
    "deposit": ("deposits", "deposit_update"),
}
MAX_TRADE_IDS = 100
DEPOSIT_UPDATE_FIELDS = ("deposit_id", "status", "status_detail", "swap_status", "swap_status_detail", "swap_progress")


def _markets_by_name(names: list[str]) -> dict[str, str]:
    """{name: our market} for the names that are markets (`providers.markets.market_resolve`)."""
    from providers.interface import VenueException
    from providers.markets import market_resolve

    found = {}
    for name in names:
        try:
            found[name] = market_resolve(name)
        except VenueException:
            continue
    return found


class WsConsumer(RealtimeConsumer):
    endpoint = "ws"

    async def connect(self):
        self.pairs: set[str] = set()  # our market names, as subscribed at the price hub
        self.pair_names: dict[str, set[str]] = {}  # market → the names the client asked for it by
        self.user_channels: set[str] = set()
        self.trade_ids: set[str] | None = None  # None: all of the user's trades
        self.in_user_group = False
        await super().connect()

    def frame(self, type_: str, channel: str | None, data, timestamp: str | None = None) -> dict:
        return {"type": type_, "channel": channel, "data": data, "timestamp": timestamp or now_iso()}

    def error_frame(self, code: str, message: str, channel: str | None = None, **extra) -> dict:
        return self.frame("error", channel, {"code": code, "message": message, **extra})

    def control_frame(self, type_: str, data: dict, channel: str | None = None) -> dict:
        return self.frame(type_, channel, data)

    # -- client messages ---------------------------------------------------------------------

    async def handle(self, message: dict) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if kind == "ping":
            self.push(self.control_frame("pong", {"stats": self.stats()}, channel=None))
            return
        if kind == "stats":
            self.push(self.control_frame("stats", self.stats()))
            return
        if kind not in ("subscribe", "unsubscribe"):
            self.push(self.error_frame("unknown_type", "type must be subscribe, unsubscribe, ping or stats."))
            return
        if channel not in WS_CHANNELS:
            self.push(self.error_frame("unknown_channel", f"channel must be one of {', '.join(WS_CHANNELS)}."))
            return
        data = message.get("data")
        data = {} if data is None else data
        if not isinstance(data, dict):
            self.push(self.error_frame("bad_message", "data must be an object.", channel))
            return
        if channel == "prices":
            await (self.subscribe_prices(data) if kind == "subscribe" else self.unsubscribe_prices(data))
        elif channel == "trades":
            await (self.subscribe_trades(data) if kind == "subscribe" else self.unsubscribe_trades(data))
        elif kind == "subscribe":
            self.user_channels.add(channel)
            await self._sync_user_group()
            self.push(self.control_frame("subscribed", {}, channel))
        else:
            self.user_channels.discard(channel)
            await self._sync_user_group()
            self.push(self.control_frame("unsubscribed", {}, channel))

    def _pairs_from(self, data: dict, *, required: bool) -> list[str] | None:
        pairs = data.get("pairs")
        if pairs is None and not required:
            return None
        if not isinstance(pairs, list) or not pairs:
            self.push(self.error_frame("invalid_pairs", "data.pairs must be a non-empty list of pairs.", "prices"))
            return []
        normalised = [groups.normalise_pair_name(p) for p in pairs]
        bad = [p for p, n in zip(pairs, normalised, strict=True) if n is None]
        if bad:
            self.push(
                self.error_frame("invalid_pairs", "Not pair names (e.g. BTC-USD, BTCUSDT).", "prices", pairs=bad[:10])
            )
            return []
        return normalised

    async def _resolved(self, names: list[str]) -> list[tuple[str, str]]:
        """(name as asked, our market) for each name: an alias (BTCUSDT, EURUSD) is our market's
        (BTC-USD, EUR-USD); a name that is no market stays as it is (it never ticks)."""
        markets = await database_sync_to_async(_markets_by_name)(names)
        return [(name, markets.get(name, name)) for name in names]

    def _names(self) -> list[str]:
        return sorted({name for names in self.pair_names.values() for name in names})

    async def subscribe_prices(self, data: dict) -> None:
        names = self._pairs_from(data, required=True)
        if not names:
            return
        asked = await self._resolved(names)
        unknown = [name for name, market in asked if groups.normalise_pair(market) is None]
        if unknown:
            self.push(self.error_frame("invalid_pairs", "No such market.", "prices", pairs=unknown[:10]))
            return
        if len(set(self._names()) | set(names)) > settings.REALTIME_MAX_PAIRS:
            self.push(
                self.error_frame(
                    "too_many_subscriptions",
                    f"At most {settings.REALTIME_MAX_PAIRS} pairs per connection.",
                    "prices",
                    limit=settings.REALTIME_MAX_PAIRS,
                )
            )
            return
        new = {market for _, market in asked} - self.pairs
        await price_hub(self.channel_layer).subscribe(self, sorted(new))
        self.pairs |= new
        for name, market in asked:
            self.pair_names.setdefault(market, set()).add(name)
        self.push(self.control_frame("subscribed", {"pairs": self._names()}, "prices"))

    async def unsubscribe_prices(self, data: dict) -> None:
        names = self._pairs_from(data, required=False)
        if names == []:
            return
        if names is None:
            gone = set(self.pairs)
            self.pair_names = {}
        else:
            gone = set()
            for name, market in await self._resolved(names):
                left = self.pair_names.get(market, set()) - {name}
                if left:
                    self.pair_names[market] = left
                elif market in self.pairs:
                    self.pair_names.pop(market, None)
                    gone.add(market)
        await price_hub(self.channel_layer).unsubscribe(self, sorted(gone))
        self.pairs -= gone
        self.push(self.control_frame("unsubscribed", {"pairs": self._names()}, "prices"))

    def push_price(self, pair: str, text: str) -> None:
        """A price frame of market `pair` (serialised once by the publisher), once under each
        name the client asked for it by: an alias gets the frame with its own name as `pair`."""
        for name in self.pair_names.get(pair, (pair,)):
            if name == pair:
                self.push_text(text, droppable=True, kind="prices")
            else:
                self.push_text(
                    text.replace(f'"pair":"{pair}"', f'"pair":{dumps(name)}', 1), droppable=True, kind="prices"
                )

    def _trade_ids_from(self, data: dict) -> set[str] | None | bool:
        ids = data.get("trade_ids")
        if ids is None:
            return None
        if not isinstance(ids, list) or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
            self.push(self.error_frame("invalid_trade_ids", "data.trade_ids must be a list of ids.", "trades"))
            return False
        return {str(i) for i in ids}

    async def subscribe_trades(self, data: dict) -> None:
        ids = self._trade_ids_from(data)
        if ids is False:
            return
        if ids is None:
            self.trade_ids = None
        elif "trades" not in self.user_channels or self.trade_ids is not None:
            merged = ids | (self.trade_ids or set())
            if len(merged) > MAX_TRADE_IDS:
                self.push(
                    self.error_frame(
                        "too_many_subscriptions", f"At most {MAX_TRADE_IDS} trade ids.", "trades", limit=MAX_TRADE_IDS
                    )
                )
                return
            self.trade_ids = merged
        self.user_channels.add("trades")
        await self._sync_user_group()
        shown = None if self.trade_ids is None else sorted(self.trade_ids)
        self.push(self.control_frame("subscribed", {"trade_ids": shown}, "trades"))

    async def unsubscribe_trades(self, data: dict) -> None:
        ids = self._trade_ids_from(data)
        if ids is False:
            return
        if ids is not None and self.trade_ids is not None:
            self.trade_ids -= ids
            if not self.trade_ids:
                self.user_channels.discard("trades")
        else:
            self.user_channels.discard("trades")
        if "trades" not in self.user_channels:
            self.trade_ids = None
        await self._sync_user_group()
        shown = None if self.trade_ids is None else sorted(self.trade_ids)
        self.push(
            self.control_frame(
                "unsubscribed", {"trade_ids": shown, "subscribed": "trades" in self.user_channels}, "trades"
            )
        )

    async def _sync_user_group(self) -> None:
        group = groups.user_group(self.user.pk)
        if self.user_channels and not self.in_user_group:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups.append(group)
            self.in_user_group = True
        elif not self.user_channels and self.in_user_group:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups.remove(group)
            self.in_user_group = False

    # -- channel-layer messages --------------------------------------------------------------

    async def disconnect(self, code):
        await super().disconnect(code)
        if self.pairs:
            pairs, self.pairs, self.pair_names = sorted(self.pairs), set(), {}
            await price_hub(self.channel_layer).unsubscribe(self, pairs)

    async def position_marks(self, message):
        if "positions" not in self.user_channels or message.get("user_id") != self.user.pk:
            return
        for text in message["frames"]:  # serialised once by the publisher
            self.push_text(text, droppable=True, kind="marks")

    async def ledger_event(self, message):
        if message.get("user_id") != self.user.pk:
            return  # only ever the user's own objects
        event = message["event"]
        route = TOPIC_CHANNELS.get(event["topic"].split(".", 1)[0])
        if route is None or route[0] not in self.user_channels:
            return
        channel, type_ = route
        if channel == "trades" and self.trade_ids is not None:
            payload = event.get("payload") or {}
            trade_id = message["aggregate_id"] if message["aggregate_type"] == "trade" else payload.get("trade_id")
            if trade_id is None or str(trade_id) not in self.trade_ids:
                return
        data = {
            **event,
            "aggregateType": message["aggregate_type"],
            "aggregateId": message["aggregate_id"],
            "reason": "event",
        }
        if channel == "deposits":  # seed 003 §4.6: the deposit's state at the top of `data`
            payload = event.get("payload") or {}
            data.update({k: payload[k] for k in DEPOSIT_UPDATE_FIELDS if k in payload})
        if channel == "trades":
            data |= trade_update_fields(event["topic"], message["aggregate_type"], message["aggregate_id"], event)
        self.push(self.frame(type_, channel, data), kind="ledger")


# The seed API's `trade_update.status` for the ledger topics the trades channel carries (other
# topics: their own last word, e.g. "accepted", "cancelled").
TRADE_STATUS = {
    "order.filled": "executed",
    "order.partially_filled": "partially_executed",
    "order.rejected": "failed",
    "trade.opened": "executed",
    "trade.closed": "closed",
    "trade.reduced": "reduced",
}


def trade_update_fields(topic: str, aggregate_type: str, aggregate_id, event: dict) -> dict:
    """The seed API's `trade_update` fields (`trade_id, status, transaction_hash,
    entry_price`), beside the ledger event's own, from the event's payload."""
    payload = event.get("payload") or {}
    trade_id = aggregate_id if aggregate_type == "trade" else payload.get("trade_id")
    return {
        "trade_id": int(trade_id) if str(trade_id).isdigit() else trade_id,
        "status": TRADE_STATUS.get(topic, topic.rsplit(".", 1)[-1]),
        "transaction_hash": payload.get("transaction_hash") or None,
        "entry_price": payload.get("entry_price"),
    }


# --- /stream ----------------------------------------------------------------------------------

_PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*?!\[\]-]{1,100}$")
_ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_REGEX_META = set(".^$+{}()|\\")


def fnmatch_to_posix(pattern: str) -> str:
    """An fnmatch pattern as a PostgreSQL regular expression body (anchored by the caller)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j == -1:
                out.append("\\[")
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c in _REGEX_META:
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


class _Seen:
    """Event ids already delivered on this connection (bounded, oldest forgotten first)."""

    def __init__(self, size: int):
        self.size = size
        self.ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True when the id is new (and remembers it)."""
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        while len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


class StreamConsumer(RealtimeConsumer):
    endpoint = "stream"
    replay_batch_size = 500

    async def connect(self):
        self.patterns: list[str] = []
        self.correlation_id: str | None = None
        self.joined = False
        self.replaying = False
        self.buffer: deque[dict] = deque()
        self.seen = _Seen(settings.REALTIME_STREAM_DEDUPE)
        await super().connect()

    def error_frame(self, code: str, message: str, **extra) -> dict:
        return {"type": "error", "code": code, "message": message, **extra, "timestamp": now_iso()}

    def control_frame(self, type_: str, data: dict, **extra) -> dict:
        return {"type": type_, **data, "timestamp": now_iso()}

    @property
    def sees_everything(self) -> bool:
        return bool(self.user.is_staff)

    # -- client messages ---------------------------------------------------------------------

    async def handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "ping":
            self.push(self.control_frame("pong", {"stats": self.stats()}))
        elif kind == "stats":
            self.push(self.control_frame("stats", {"data": self.stats()}))
        elif kind == "subscribe":
            await self.subscribe(message)
        elif kind == "unsubscribe":
            topics = self._topics_from(message)
            if topics is None:
                return
            self.patterns = [p for p in self.patterns if p not in topics]
            self.push(self.control_frame("unsubscribed", {"topics": list(self.patterns)}))
        else:
            self.push(self.error_frame("unknown_type", "type must be subscribe, unsubscribe, ping or stats."))

    def _topics_from(self, message: dict) -> list[str] | None:
        topics = message.get("topics")
        if (
            not isinstance(topics, list)
            or not topics
            or not all(isinstance(t, str) and _PATTERN_RE.match(t) for t in topics)
        ):
            self.push(
                self.error_frame("invalid_topics", "topics must be a non-empty list of patterns such as 'order.*'.")
            )
            return None
        return list(dict.fromkeys(topics))

    async def subscribe(self, message: dict) -> None:
        topics = self._topics_from(message)
        if topics is None:
            return
        correlation_id = message.get("correlationId")
        last_event_id = message.get("lastEventId")
        if correlation_id is not None and (not isinstance(correlation_id, str) or len(correlation_id) > 100):
            self.push(self.error_frame("invalid_correlation_id", "correlationId must be a string."))
            return
        if last_event_id is not None:
            if not isinstance(last_event_id, str) or not _ULID_RE.match(last_event_id.upper()):
                self.push(self.error_frame("invalid_last_event_id", "lastEventId must be an event id (ULID)."))
                return
            if self.joined:
                self.push(self.error_frame("resume_not_first", "lastEventId is only accepted on the first subscribe."))
                return
            last_event_id = last_event_id.upper()
        merged = list(dict.fromkeys([*self.patterns, *topics]))
        if len(merged) > settings.REALTIME_MAX_TOPICS:
            self.push(
                self.error_frame(
                    "too_many_subscriptions",
                    f"At most {settings.REALTIME_MAX_TOPICS} topic patterns per connection.",
                    limit=settings.REALTIME_MAX_TOPICS,
                )
            )
            return
        if not self.joined:
            # join the live group before reading the ledger: whatever commits from now on
            # arrives live, whatever committed before is in the replay (duplicates dropped)
            group = groups.LEDGER_ALL if self.sees_everything else groups.user_group(self.user.pk)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups.append(group)
            self.joined = True
        self.patterns = merged
        if correlation_id is not None:
            self.correlation_id = correlation_id or None
        self.push(
            self.control_frame(
                "subscribed",
                {"topics": list(self.patterns), "correlationId": self.correlation_id, "lastEventId": last_event_id},
            )
        )
        if last_event_id is not None:
            self.replaying = True
            self._tasks.append(asyncio.create_task(self._replay(last_event_id)))

    # -- live events -------------------------------------------------------------------------

    def wants(self, event: dict, user_id: int | None) -> bool:
        if not self.sees_everything and user_id != self.user.pk:
            return False
        if self.correlation_id is not None and event["correlationId"] != self.correlation_id:
            return False
        return any(fnmatch.fnmatchcase(event["topic"], p) for p in self.patterns)

    async def ledger_event(self, message):
        if self.closing or not self.patterns:
            return
        event = message["event"]
        if not self.wants(event, message.get("user_id")):
            return
        if self.replaying:
            self.buffer.append(event)
            if len(self.buffer) > settings.REALTIME_STREAM_BUFFER:
                logger.warning("stream client too slow during replay", extra=self._log_extra(CLOSE_TOO_SLOW))
                self.begin_close(
                    CLOSE_TOO_SLOW,
                    self.error_frame("too_slow", "Too many live events while replaying; resume again later."),
                )
            return
        if self.seen.add(event["eventId"]):
            self.push({"type": "event", **event}, kind="ledger")

    # -- resume ------------------------------------------------------------------------------

    def _replay_queryset(self, after: str, upto: str):
        from trading.models import Event

        qs = Event.objects.filter(id__gt=after, id__lte=upto)
        if not self.sees_everything:
            uid = self.user.pk
            qs = qs.filter(Q(payload__user_id=uid) | Q(payload__user_id=str(uid)))
        if self.correlation_id is not None:
            qs = qs.filter(correlation_id=self.correlation_id)
        regex = "^(?:" + "|".join(fnmatch_to_posix(p) for p in self.patterns) + ")$"
        return qs.filter(topic__regex=regex).order_by("id")

    def _replay_plan(self, after: str) -> tuple[str | None, int]:
        from trading.models import Event

        upto = Event.objects.order_by("-id").values_list("id", flat=True).first()
        if upto is None or upto <= after:
            return None, 0
        limit = settings.REALTIME_STREAM_REPLAY_LIMIT
        return upto, self._replay_queryset(after, upto)[: limit + 1].count()

    def _replay_batch(self, after: str, upto: str, size: int) -> list[dict]:
        from trading.realtime.publish import envelope, event_user_id

        rows = list(self._replay_queryset(after, upto)[:size])
        return [{"envelope": envelope(e), "user_id": event_user_id(e.payload)} for e in rows]

    async def _replay(self, after: str) -> None:
        try:
            upto, count = await database_sync_to_async(self._replay_plan)(after)
            if count > settings.REALTIME_STREAM_REPLAY_LIMIT:
                self.begin_close(
                    CLOSE_REPLAY_TOO_LARGE,
                    self.error_frame(
                        "replay_too_large",
                        f"More than {settings.REALTIME_STREAM_REPLAY_LIMIT} events to replay; "
                        "read them from /api/v1/ledger/events, then resume from the newest.",
                        limit=settings.REALTIME_STREAM_REPLAY_LIMIT,
                    ),
                )
                return
            self.seen = _Seen(max(settings.REALTIME_STREAM_DEDUPE, count + settings.REALTIME_STREAM_BUFFER))
            replayed, cursor = 0, after
            while upto is not None:
                batch = await database_sync_to_async(self._replay_batch)(cursor, upto, self.replay_batch_size)
                if not batch:
                    break
                for row in batch:
                    event = row["envelope"]
                    cursor = event["eventId"]
                    if self.closing:
                        return
                    if self.wants(event, row["user_id"]) and self.seen.add(event["eventId"]):
                        await self.queue.put(dumps({"type": "event", **event}), kind="ledger")
                        replayed += 1
            done = self.control_frame("replay_complete", {"count": replayed, "lastEventId": cursor})
            await self.queue.put(dumps(done), kind="control")
            # then what arrived live meanwhile, in arrival order, without what was replayed
            while self.buffer:
                event = self.buffer.popleft()
                if self.closing:
                    return
                if self.seen.add(event["eventId"]):
                    await self.queue.put(dumps({"type": "event", **event}), kind="ledger")
            self.replaying = False
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stream replay failed", extra=self._log_extra(None))
            self.begin_close(1011, self.error_frame("replay_failed", "Replay failed; try again."))
