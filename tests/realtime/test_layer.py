"""The channel layer settings that keep consumers alive: idle receivers and connect bursts."""

import asyncio

import pytest
from channels.layers import channel_layers


def fresh_layer():
    """A layer instance of our own: the live server in this process receives on the shared one."""
    return channel_layers.make_backend("default")


@pytest.mark.slow
def test_an_idle_receiver_outlives_the_blocking_pop_and_still_gets_its_message():
    layer = fresh_layer()

    async def scenario():
        name = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(name))
        await asyncio.sleep(layer.brpop_timeout + 1.5)  # one empty BZPOPMIN round, no traffic
        assert not waiting.done()  # (with redis-py's default 5 s socket timeout it died here)
        await layer.send(name, {"type": "hello"})
        return await asyncio.wait_for(waiting, 10)

    assert asyncio.run(scenario()) == {"type": "hello"}


def test_more_concurrent_commands_than_pool_connections_wait_instead_of_failing():
    layer = fresh_layer()

    async def scenario():
        layer.max_connections = 3
        names = [await layer.new_channel() for _ in range(30)]
        await asyncio.gather(*(layer.group_add("burst", n) for n in names))
        await asyncio.gather(*(layer.group_discard("burst", n) for n in names))
        return len(names)

    assert asyncio.run(scenario()) == 30


def test_the_layer_works_over_the_embedded_unix_socket_redis(monkeypatch):
    """`make run`'s default: Redis on a unix socket (no TCP-only connection options)."""
    import shutil
    import uuid

    from config import embedded
    from trading.realtime.layer import RedisChannelLayer

    monkeypatch.setattr(embedded, "_started", [])
    var = embedded.VAR_DIR / f"test-layer-{uuid.uuid4().hex[:8]}"
    try:
        url = embedded.redis_url(var)
        assert url.startswith("unix://")
        layer = RedisChannelLayer(hosts=[url], prefix="td-test-unix")

        async def scenario():
            name = await layer.new_channel()
            await layer.group_add("prices.BTC-USD", name)
            await layer.group_send("prices.BTC-USD", {"type": "price.update", "price": "1"})
            return await asyncio.wait_for(layer.receive(name), 10)

        assert asyncio.run(scenario()) == {"type": "price.update", "price": "1"}
    finally:
        embedded.stop_started(var)
        shutil.rmtree(var, ignore_errors=True)


def test_a_receiver_and_its_groups_come_back_after_a_redis_restart(monkeypatch, settings):
    """The embedded Redis restarted under a receiver: its receive waits instead of raising, its
    group membership is added again by the layer's watcher, and a group message reaches it; a
    group joined while Redis was away is added too. Until then the layer says its memberships
    are not intact (/ready's `realtime` check)."""
    import shutil
    import uuid

    from config import embedded
    from trading.realtime.layer import RedisChannelLayer

    settings.REALTIME_LAYER_CHECK_SECONDS = 0.2
    monkeypatch.setattr(embedded, "_started", [])
    var = embedded.VAR_DIR / f"test-layer-{uuid.uuid4().hex[:8]}"
    try:
        layer = RedisChannelLayer(hosts=[embedded.redis_url(var)], prefix="td-test-restart")

        async def scenario():
            name = await layer.new_channel()
            await layer.group_add("prices.BTC-USD", name)
            waiting = asyncio.ensure_future(layer.receive(name))
            await asyncio.sleep(0.5)  # the watcher has checked once
            assert layer.memberships_intact() == (True, "")

            embedded.stop_redis(var)
            other = await layer.new_channel()
            await layer.group_add("user.7", other)  # while Redis is away: deferred, not raised
            embedded.redis_url(var)  # a new, empty Redis on the same socket
            assert layer.memberships_intact()[0] is False

            for _ in range(50):
                await asyncio.sleep(0.2)
                if layer.memberships_intact()[0]:
                    break
            assert layer.memberships_intact() == (True, "")
            await layer.group_send("user.7", {"type": "ledger.event", "text": "joined while away"})
            assert await asyncio.wait_for(layer.receive(other), 10) == {
                "type": "ledger.event",
                "text": "joined while away",
            }
            await layer.group_send("prices.BTC-USD", {"type": "price.tick", "text": "after"})
            return await asyncio.wait_for(waiting, 10)

        assert asyncio.run(scenario()) == {"type": "price.tick", "text": "after"}
    finally:
        embedded.stop_started(var)
        shutil.rmtree(var, ignore_errors=True)
