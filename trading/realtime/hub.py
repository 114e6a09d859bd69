"""Price fan-out inside one web process.

channels-redis delivers a group message to every member consumer by waking each one's
receive: with a thousand consumers on a pair, every tick wakes a thousand receivers that
contend for the process's one Redis pop (the bench measured seconds per tick at 1,000
clients, for the raw channel layer as much as for consumers). Instead, each web process has
one `PriceHub` per event loop: it joins `prices.<PAIR>` once with its own channel, receives
each tick once, and hands the pre-serialised frame to the local subscribers' send queues —
a plain function call each, with the usual drop-oldest backpressure.
"""

from __future__ import annotations

import asyncio
import logging

from trading.realtime import groups

logger = logging.getLogger("tradedesk.realtime")

GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day)

_hubs: dict[asyncio.AbstractEventLoop, PriceHub] = {}


def price_hub(layer) -> PriceHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = PriceHub(layer)
    return hub


class PriceHub:
    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.subscribers: dict[str, set] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task] = []

    async def subscribe(self, consumer, pairs) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self.tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._refresh())]
            for pair in pairs:
                members = self.subscribers.setdefault(pair, set())
                if not members:
                    await self.layer.group_add(groups.price_group(pair), self.channel)
                members.add(consumer)

    async def unsubscribe(self, consumer, pairs) -> None:
        async with self.lock:
            for pair in pairs:
                members = self.subscribers.get(pair)
                if members is None:
                    continue
                members.discard(consumer)
                if not members:
                    del self.subscribers[pair]
                    if self.channel is not None:
                        await self.layer.group_discard(groups.price_group(pair), self.channel)

    def fan_out(self, message: dict) -> None:
        pair = message.get("pair")
        for consumer in tuple(self.subscribers.get(pair, ())):
            consumer.push_price(pair, message["text"])

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("price hub could not receive; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message.get("type") == "price.tick":
                self.fan_out(message)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            try:
                for pair in list(self.subscribers):
                    await self.layer.group_add(groups.price_group(pair), self.channel)
            except Exception:
                logger.warning("price hub could not refresh its groups", exc_info=True)
