"""Channel-layer group names and the messages sent to them (one place for both).

Publishers (`trading.realtime.publish`) send these messages; consumers
(`trading.realtime.consumers`) receive them through the handler named after `type`
(`ledger.event` → `ledger_event`). Messages cross Redis as msgpack, so money and prices
travel as strings, never floats or Decimals.
"""

from __future__ import annotations

import re
from typing import Literal, TypedDict

LEDGER_ALL = "ledger.all"  # every committed ledger event (staff streams)

_PAIR_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")


def user_group(user_id: int | str) -> str:
    """Committed ledger events about one user's objects, and their position marks."""
    return f"user.{int(user_id)}"


def normalise_pair(pair: str) -> str | None:
    """`btc/usd`, `BTC_USD`, `BTC-USD` → `BTC-USD`; None when it is not a pair name."""
    if not isinstance(pair, str):
        return None
    candidate = pair.strip().upper().replace("/", "-").replace("_", "-")
    return candidate if _PAIR_RE.match(candidate) else None


_NAME_RE = re.compile(r"^[A-Z0-9]{1,20}(-[A-Z0-9]{1,20})?$")


def normalise_pair_name(pair: str) -> str | None:
    """A pair name as a client may write it: `btc/usd` → `BTC-USD`, and names without a
    separator (`BTCUSDT`, `EURUSD`) as they are, upper-cased; None when it is not a name."""
    if not isinstance(pair, str):
        return None
    candidate = pair.strip().upper().replace("/", "-").replace("_", "-")
    return candidate if _NAME_RE.match(candidate) else None


def price_group(pair: str) -> str:
    """Price ticks of one pair (`prices.BTC-USD`)."""
    normalised = normalise_pair(pair)
    if normalised is None:
        raise ValueError(f"not a pair name: {pair!r}")
    return f"prices.{normalised}"


class EventEnvelope(TypedDict):
    """A ledger event as `/stream` clients receive it."""

    eventId: str
    timestamp: str  # ISO 8601 UTC
    topic: str
    correlationId: str
    causationId: str
    payload: dict
    version: int


class LedgerEventMessage(TypedDict):
    type: Literal["ledger.event"]
    event: EventEnvelope
    aggregate_type: str
    aggregate_id: str
    user_id: int | None  # payload["user_id"] when the event is about a user's object


class PriceTickMessage(TypedDict):
    type: Literal["price.tick"]
    pair: str
    # the client-facing `price_update` frame, serialised once by the publisher so that
    # fanning out to thousands of connections does not encode JSON thousands of times
    text: str


class PositionMarksMessage(TypedDict):
    type: Literal["position.marks"]
    user_id: int
    # finished `position_update` frames, one per position (see publish.publish_position_marks)
    frames: list[str]
