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
