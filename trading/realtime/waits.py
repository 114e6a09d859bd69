"""Waiting for an order's outcome on its events, on the event loop (no thread held, no polling).

The outbox publishes every committed event about a user's objects to the user's group
(`publish.publish_ledger_event`). A waiter joins that group on a channel of its own, then reads
the order once (an outcome committed before it joined is seen there), then reads it again only
when an event about that order arrives. At the deadline it reads it a last time: a message the
layer dropped (a full channel) costs a late answer, never a wrong one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from trading.models import Order
from trading.realtime import groups

logger = logging.getLogger("tradedesk.realtime")


def _order_read(order_id: int) -> Order | None:
    try:
        return Order.objects.filter(pk=order_id).first()
    finally:
        connection.close()  # back to the pool (the web process) at once, not kept by a loop thread


_read = sync_to_async(_order_read, thread_sensitive=False)  # a short call on the loop's shared pool


def _about(message: dict, order_id: int) -> bool:
    return (
        message.get("type") == "ledger.event"
        and message.get("aggregate_type") == "order"
        and str(message.get("aggregate_id")) == str(order_id)
    )


async def order_settled_wait(
    *, order_id: int, user_id: int, settled: Callable[[Order], bool], timeout: float
) -> Order | None:
    """The order once `settled(order)` holds, or as it stands after `timeout` seconds (None: gone)."""
    deadline = time.monotonic() + max(timeout, 0)
    layer = get_channel_layer()
    group = groups.user_group(user_id)
    channel = await layer.new_channel("wait")
    await layer.group_add(group, channel)
    try:
        order = await _read(order_id)
        while order is not None and not settled(order):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return await _read(order_id)
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                return await _read(order_id)
            if _about(message, order_id):
                order = await _read(order_id)
        return order
    finally:
        try:
            await layer.group_discard(group, channel)
        except Exception:  # Redis gone: the membership expires with the group (group_expiry)
            logger.warning("could not leave %s after an order wait", group, exc_info=True)
