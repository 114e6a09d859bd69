"""Which ledger topics become which webhook event types, and whose they are.

Convention for event producers: a ledger event that concerns a user's webhooks names its
owner in `payload["user_id"]` (the user's primary key). Only that user's endpoints receive it;
an event without `user_id` is delivered to nobody. The webhook's `data` is the event payload.
"""

from __future__ import annotations

import fnmatch

from webhooks.models import EventType

# ledger topic pattern (fnmatch) -> webhook event type. `trade.executed` comes from `order.filled`
# alone (every execution, open or close, fills an order): the `trade.opened` it causes is not
# announced again.
TOPIC_MAP: dict[str, str] = {
    "order.filled": EventType.TRADE_EXECUTED,
    "trade.closed": EventType.TRADE_CLOSED,
    "order.triggered": EventType.ORDER_TRIGGERED,
    "order.rejected": EventType.ORDER_REJECTED,
    "risk.rejected": EventType.ORDER_REJECTED,
    "position.updated": EventType.POSITION_UPDATED,
    "position.liquidated": EventType.POSITION_LIQUIDATED,
    "deposit.completed": EventType.DEPOSIT_COMPLETED,
    "swap.completed": EventType.SWAP_COMPLETED,
    "delegation.*": EventType.DELEGATION_UPDATED,
}


def event_type_for(topic: str) -> str | None:
    for pattern, event_type in TOPIC_MAP.items():
        if fnmatch.fnmatchcase(topic, pattern):
            return str(event_type)
    return None


def owner_id_of(payload: dict) -> int | None:
    try:
        return int(payload.get("user_id"))
    except (TypeError, ValueError):
        return None
