"""Localnet plumbing: snapshot/revert consistency, keeper loop, price API,
subgraph, Multicall3, collateral and market-timeout flows."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from web3 import Web3

from providers.ostium.localnet.config import MULTICALL3_ADDRESS, SDK_TESTNET_FAUCET_ADDRESS
from providers.ostium.localnet.errors import revert_reason

BTC = 0


def _long(collateral=100, leverage=10, pair=BTC, **extra):
    return {
        "collateral": collateral,
        "leverage": leverage,
        "asset_type": pair,
        "direction": True,
        "order_type": "MARKET",
        **extra,
    }


def _graphql(net, query, variables=None):
    response = httpx.post(net.subgraph_url, json={"query": query, "variables": variables or {}}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_price_api_serves_sdk_format(localnet):
    localnet.set_price("btc/usd", "65432.1")
    sdk = localnet.sdk(localnet.traders[0].private_key)

    async def flow():
        prices = await sdk.price.get_latest_prices()
        btc = next(p for p in prices if p["from"] == "BTC" and p["to"] == "USD")
        assert set(btc) >= {
            "feed_id",
            "bid",
            "mid",
            "ask",
            "isMarketOpen",
            "isDayTradingClosed",
            "secondsToToggleIsDayTradingClosed",
            "from",
            "to",
            "timestampSeconds",
        }
        assert btc["mid"] == 65432.1 and btc["isMarketOpen"] is True
        assert await sdk.price.get_price("BTC", "USD") == (65432.1, True, False)

    asyncio.run(flow())


def test_subgraph_pairs_via_sdk(localnet):
    sdk = localnet.sdk(localnet.traders[0].private_key)

    async def flow():
        pairs = await sdk.get_formatted_pairs_details()
        assert [p["id"] for p in pairs] == list(range(len(localnet.pairs)))
        btc = pairs[0]
        assert (btc["from"], btc["to"], btc["group"]) == ("BTC", "USD", "crypto")
        assert btc["maxLeverage"] == 50 and btc["minLeverage"] == 1
        assert btc["price"] == 65000.0 and btc["isMarketOpen"] is True
        details = await sdk.subgraph.get_pair_details(1)
        assert details["from"] == "ETH"
        assert await sdk.get_pair_max_leverage(0) == 50
        await sdk.get_funding_rate_for_pair_id(0)
        await sdk.get_rollover_rate_for_pair_id(0)
        await sdk.get_target_funding_rate(0)
        assert await sdk.subgraph.get_liq_margin_threshold_p() == "10"

    asyncio.run(flow())


def test_subgraph_filters_and_unknown_fields(localnet):
    result = _graphql(localnet, '{ pairs(where: {from_in: ["BTC", "ETH"]}, orderBy: id, orderDirection: desc) { id } }')
    assert result["data"]["pairs"] == [{"id": "1"}, {"id": "0"}]
    result = _graphql(localnet, "{ pairs { nope } }")
    assert result["errors"]


def test_revert_rolls_back_chain_and_subgraph(localnet):
    trader = localnet.traders[0]
    sdk = localnet.sdk(trader.private_key)
    snap = localnet.snapshot()
    sdk.ostium.perform_trade(_long(), at_price=65000)
    localnet.run_keeper()
    assert len(asyncio.run(sdk.get_open_trades())[0]) == 1
    localnet.revert(snap)
    assert asyncio.run(sdk.get_open_trades())[0] == []
    # the index also survives a revert followed by new, different blocks
    snap = localnet.snapshot()
    sdk.ostium.perform_trade(_long(), at_price=65000)
    localnet.run_keeper()
    localnet.w3.provider.make_request("evm_revert", [snap])  # behind the Localnet's back
    localnet.mine(3)
    assert asyncio.run(sdk.get_open_trades())[0] == []
    assert asyncio.run(sdk.subgraph.get_recent_history(trader.address)) == []


def test_keeper_polling_loop_fills_sdk_orders(localnet):
    trader = localnet.traders[1]
    sdk = localnet.sdk(trader.private_key)
    localnet.keeper.start(interval=0.1)
    try:

        async def flow():
            sent = sdk.ostium.perform_trade(_long(), at_price=65000)
            result = await sdk.ostium.track_order_and_trade(sdk.subgraph, sent["order_id"])
            assert result["trade"]["isOpen"] is True
            index = int(result["trade"]["index"])
            closing = sdk.ostium.close_trade(BTC, index, market_price=65000)
            result = await sdk.ostium.track_order_and_trade(sdk.subgraph, closing["order_id"])
            assert result["trade"]["isOpen"] is False
            assert result["order"]["amountSentToTrader"] == pytest.approx(100.0)

        asyncio.run(flow())
    finally:
        localnet.keeper.stop()


def test_collateral_top_up_and_removal(localnet):
    trader = localnet.traders[2]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        sdk.ostium.perform_trade(_long(collateral=100, leverage=10), at_price=65000)
        localnet.run_keeper()
        start = localnet.usdc_balance(trader.address)
        assert sdk.ostium.add_collateral(BTC, 0, 100)["status"] == 1
        trade = (await sdk.get_open_trades())[0][0]
        assert int(trade["collateral"]) == 200 * 10**6 and int(trade["leverage"]) == 500
        assert localnet.usdc_balance(trader.address) == start - 100

        assert sdk.ostium.remove_collateral(BTC, 0, 50)["status"] == 1
        localnet.run_keeper()
        trade = (await sdk.get_open_trades())[0][0]
        assert int(trade["collateral"]) == 150 * 10**6 and int(trade["leverage"]) == 666
        assert localnet.usdc_balance(trader.address) == start - 50

    asyncio.run(flow())


def test_market_timeouts(localnet):
    trader = localnet.traders[3]
    sdk = localnet.sdk(trader.private_key)
    start = localnet.usdc_balance(trader.address)
    sent = sdk.ostium.perform_trade(_long(), at_price=65000)
    # the keeper is down: too early to time out
    receipt = sdk.ostium.open_market_timeout(sent["order_id"])["receipt"]
    assert receipt["status"] == 0
    assert revert_reason(localnet.w3, receipt["transactionHash"]).name == "WaitTimeout"
    localnet.mine(30)
    assert sdk.ostium.open_market_timeout(sent["order_id"])["receipt"]["status"] == 1
    assert localnet.usdc_balance(trader.address) == start
    assert localnet.run_keeper() == []  # request withdrawn from the oracle

    sent = sdk.ostium.perform_trade(_long(), at_price=65000)
    localnet.run_keeper()
    closing = sdk.ostium.close_trade(BTC, 0, market_price=65000)
    localnet.mine(30)
    retried = sdk.ostium.close_market_timeout(closing["order_id"], retry=True)
    assert retried["receipt"]["status"] == 1
    history = asyncio.run(sdk.subgraph.get_recent_history(trader.address))
    assert history[-1]["isCancelled"] is True and history[-1]["cancelReason"] == "Timeout"
    localnet.run_keeper()  # fills the retried close
    assert asyncio.run(sdk.get_open_trades())[0] == []
    assert localnet.usdc_balance(trader.address) == start


def test_multicall3_and_faucet_at_fixed_addresses(localnet):
    w3 = localnet.w3
    assert w3.eth.get_code(Web3.to_checksum_address(MULTICALL3_ADDRESS))
    assert w3.eth.get_code(SDK_TESTNET_FAUCET_ADDRESS)
    mc = localnet.contract("multicall3")
    usdc = localnet.contract("usdc")
    calls = [(usdc.address, False, usdc.encode_abi("balanceOf", [t.address])) for t in localnet.traders[:3]]
    results = mc.functions.aggregate3(calls).call()
    assert [int.from_bytes(r[1], "big") for r in results] == [100_000 * 10**6] * 3
    assert mc.functions.getChainId().call() == 421614


def test_fund_and_safe_owner_threshold(localnet):
    owners = [t.address for t in localnet.traders[:3]]
    safe = localnet.create_safe(owners, threshold=2)
    from safe_eth.eth import EthereumClient
    from safe_eth.safe import Safe

    info = Safe(safe, EthereumClient(localnet.rpc_url)).retrieve_all_info()
    assert info.threshold == 2 and sorted(info.owners) == sorted(owners)
    assert info.version == "1.4.1"
    localnet.fund(safe, usdc=Decimal("12.5"), eth=1)
    assert localnet.usdc_balance(safe) == Decimal("12.5")
    assert localnet.w3.eth.get_balance(safe) == Web3.to_wei(1, "ether")
    # a 2-of-3 SafeTx needs two owner signatures
    usdc = localnet.contract("usdc")
    data = usdc.encode_abi("transfer", [owners[0], 5 * 10**6])
    keys = [t.private_key for t in localnet.traders[:2]]
    localnet.exec_safe_tx(safe, usdc.address, data, keys)
    assert localnet.usdc_balance(safe) == Decimal("7.5")


def test_random_walk_moves_prices(localnet_session):
    from providers.ostium.localnet.prices import PriceSource

    source = PriceSource(localnet_session.pairs, seed=7)
    before = source.get_price("BTC-USD")
    for _ in range(5):
        source.step()
    assert source.get_price("BTC-USD") != before
    again = PriceSource(localnet_session.pairs, seed=7)
    for _ in range(5):
        again.step()
    assert again.get_price("BTC-USD") == source.get_price("BTC-USD")


def test_partial_close(localnet):
    trader = localnet.traders[4]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        sdk.ostium.perform_trade(_long(collateral=200, leverage=5), at_price=65000)
        localnet.run_keeper()
        start = localnet.usdc_balance(trader.address)
        localnet.set_price("BTC-USD", 71500)  # +10% at 5x = +50%
        closing = sdk.ostium.close_trade(BTC, 0, market_price=71500, close_percentage=25)
        localnet.run_keeper()
        result = await sdk.ostium.track_order_and_trade(sdk.subgraph, closing["order_id"])
        assert result["order"]["closePercent"] == pytest.approx(25.0)
        assert result["order"]["amountSentToTrader"] == pytest.approx(75.0)  # 50 USDC * 1.5
        trade = (await sdk.get_open_trades())[0][0]
        assert int(trade["collateral"]) == 150 * 10**6
        assert localnet.usdc_balance(trader.address) == start + 75

    asyncio.run(flow())


def test_market_closed_orders_wait(localnet):
    trader = localnet.traders[5]
    sdk = localnet.sdk(trader.private_key)
    localnet.prices.set_market_open("BTC-USD", False)
    sent = sdk.ostium.perform_trade(_long(), at_price=65000)
    assert localnet.run_keeper() == []
    storage = localnet.contract("tradingStorage")
    assert storage.functions.getPendingOrderIds(trader.address).call() == [sent["order_id"]]
    localnet.prices.set_market_open("BTC-USD", True)
    assert [a.ok for a in localnet.run_keeper()] == [True]
    assert storage.functions.getPendingOrderIds(trader.address).call() == []


def _send(localnet, fn, sender, gas=None):
    params = {"from": sender, "maxPriorityFeePerGas": 0, "maxFeePerGas": 10**9}
    if gas:
        params["gas"] = gas  # skip estimation so reverts are mined
    return localnet.w3.eth.wait_for_transaction_receipt(fn.transact(params))


def test_remove_delegate_revokes_access(localnet):
    owner, delegate = localnet.traders[6], localnet.traders[7]
    trading = localnet.contract("trading")
    usdc = localnet.contract("usdc")
    _send(localnet, usdc.functions.approve(localnet.addresses.tradingStorage, 10**12), owner.address)
    _send(localnet, trading.functions.setDelegate(delegate.address), owner.address)
    sdk = localnet.sdk(delegate.private_key, use_delegation=True)
    sent = sdk.ostium.perform_trade(_long(trader_address=owner.address), at_price=65000)
    assert sent["receipt"]["status"] == 1
    localnet.run_keeper()
    assert len(asyncio.run(sdk.get_open_trades(trader_address=owner.address))[0]) == 1

    _send(localnet, trading.functions.removeDelegate(), owner.address)
    assert trading.functions.delegations(owner.address).call() == "0x" + "00" * 20
    receipt = sdk.ostium.update_tp(BTC, 0, 90000, trader_address=owner.address)
    assert receipt["status"] == 0
    assert revert_reason(localnet.w3, receipt["transactionHash"]).name == "NoDelegate"

    # a delegate may not change delegation on the trader's behalf
    _send(localnet, trading.functions.setDelegate(delegate.address), owner.address)
    inner = trading.encode_abi("setDelegate", [localnet.traders[0].address])
    receipt = _send(localnet, trading.functions.delegatedAction(owner.address, inner), delegate.address, gas=500_000)
    assert receipt["status"] == 0
    assert revert_reason(localnet.w3, receipt["transactionHash"]).name == "DelegateForbidden"
