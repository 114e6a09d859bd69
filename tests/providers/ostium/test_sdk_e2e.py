"""Drive the unmodified ostium-python-sdk against the localnet."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from ostium_python_sdk import NetworkConfig, OstiumSDK
from web3 import Web3

from providers.ostium.localnet.errors import revert_reason

BTC = 0


def _market_long(collateral=100, leverage=10, **extra):
    params = {
        "collateral": collateral,
        "leverage": leverage,
        "asset_type": BTC,
        "direction": True,
        "order_type": "MARKET",
    }
    params.update(extra)
    return params


def test_market_open_tp_and_history(localnet):
    trader = localnet.traders[0]
    # constructed by hand here (Localnet.sdk() does the same)
    sdk = OstiumSDK(
        NetworkConfig(
            graph_url=localnet.subgraph_url,
            contracts={
                "usdc": localnet.addresses.usdc,
                "trading": localnet.addresses.trading,
                "tradingStorage": localnet.addresses.tradingStorage,
            },
            is_testnet=True,
        ),
        private_key=trader.private_key,
        rpc_url=localnet.rpc_url,
        submit_rpc_url=localnet.rpc_url,
    )
    sdk.price.base_url = localnet.price_url  # Price has no URL parameter
    address = trader.address

    async def flow():
        # faucet (the SDK's own Faucet class, at its hard-coded address)
        before = localnet.usdc_balance(address)
        assert sdk.faucet.can_request_tokens(address)
        receipt = sdk.faucet.request_tokens()
        assert receipt["status"] == 1
        assert localnet.usdc_balance(address) == before + 10_000
        start_balance = localnet.usdc_balance(address)

        # market open: the SDK approves TradingStorage itself, then opens
        localnet.set_price("BTC-USD", Decimal("65000"))
        sent = sdk.ostium.perform_trade(_market_long(), at_price=65000)
        assert sent["receipt"]["status"] == 1
        order_id = sent["order_id"]
        assert order_id is not None
        usdc = localnet.contract("usdc")
        assert usdc.functions.allowance(address, localnet.addresses.tradingStorage).call() > 0
        assert localnet.usdc_balance(address) == start_balance - 100

        actions = localnet.run_keeper()
        assert [a.ok for a in actions] == [True]
        tracked = await sdk.ostium.track_order_and_trade(sdk.subgraph, order_id)
        assert "source" not in tracked["order"]  # enriched from the subgraph, not the chain fallback
        assert tracked["order"]["isPending"] is False
        assert tracked["order"]["isCancelled"] is False
        assert tracked["trade"]["openPrice"] == pytest.approx(65000)
        order = await sdk.subgraph.get_order_by_id(order_id)
        assert order["orderAction"] == "Open" and order["trader"] == address.lower()
        assert int(order["collateral"]) == 100 * 10**6 and int(order["leverage"]) == 1000
        assert order["initiatedTx"] == sent["receipt"]["transactionHash"].to_0x_hex()
        trade_by_id = await sdk.subgraph.get_trade_by_id(order["tradeID"])
        assert trade_by_id["isOpen"] is True and trade_by_id["tradeType"] == "Market"
        assert int(trade_by_id["tradeNotional"]) == 100 * 10 * 10**18 // 65000

        open_trades, trader_address = await sdk.get_open_trades()
        assert trader_address == address
        assert len(open_trades) == 1
        trade = open_trades[0]
        assert trade["trader"] == address.lower()
        assert int(trade["pair"]["id"]) == BTC
        assert int(trade["collateral"]) == 100 * 10**6
        assert int(trade["leverage"]) == 1000
        assert int(trade["openPrice"]) == 65000 * 10**18
        assert trade["isBuy"] is True
        index = int(trade["index"])

        # metrics computed by the SDK from subgraph + price API
        metrics = await sdk.get_open_trade_metrics(BTC, index)
        assert metrics["pnl"] == pytest.approx(0, abs=1e-6)
        assert metrics["liquidation_price"] > 0

        # update SL / TP
        assert sdk.ostium.update_sl(BTC, index, 60000)["status"] == 1
        assert sdk.ostium.update_tp(BTC, index, 70000)["status"] == 1
        open_trades, _ = await sdk.get_open_trades()
        # the SDK scales these through float, so allow float rounding
        assert int(open_trades[0]["stopLossPrice"]) / 1e18 == pytest.approx(60000, rel=1e-12)
        assert int(open_trades[0]["takeProfitPrice"]) / 1e18 == pytest.approx(70000, rel=1e-12)

        # price moves through TP: keeper triggers and executes it
        localnet.set_price("BTC-USD", Decimal("71000"))
        actions = localnet.run_keeper()
        assert [a.kind for a in actions] == ["trigger", "fulfill"]
        assert all(a.ok for a in actions)
        open_trades, _ = await sdk.get_open_trades()
        assert open_trades == []

        history = await sdk.subgraph.get_recent_history(address)
        assert [(o["orderAction"], o["orderType"]) for o in history] == [("Open", "Market"), ("Close", "TakeProfit")]
        close = history[-1]
        # +5000 on 65000 at 10x = +76.92%
        assert int(close["profitPercent"]) == 7692
        assert int(close["price"]) / 1e18 == pytest.approx(70000, rel=1e-12)
        # 100 USDC collateral + 76.923076% profit
        assert abs(int(close["amountSentToTrader"]) - 176_923_076) <= 1
        assert localnet.usdc_balance(address) == start_balance - 100 + Decimal(int(close["amountSentToTrader"])) / 10**6

    asyncio.run(flow())


def test_market_close_with_loss(localnet):
    trader = localnet.traders[1]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        start = localnet.usdc_balance(trader.address)
        localnet.set_price("ETH-USD", Decimal("3200"))
        sent = sdk.ostium.perform_trade(
            {"collateral": 50, "leverage": 5, "asset_type": 1, "direction": False, "order_type": "MARKET"},
            at_price=3200,
        )
        localnet.run_keeper()
        opened = await sdk.ostium.track_order_and_trade(sdk.subgraph, sent["order_id"])
        index = int(opened["trade"]["index"])

        # short loses when price rises 10%: -50% at 5x
        localnet.set_price("ETH-USD", Decimal("3520"))
        closing = sdk.ostium.close_trade(1, index, market_price=3520)
        assert closing["receipt"]["status"] == 1
        localnet.run_keeper()
        result = await sdk.ostium.track_order_and_trade(sdk.subgraph, closing["order_id"])
        assert result["order"]["orderAction"] == "Close"
        assert result["order"]["profitPercent"] == pytest.approx(-50.0)
        assert result["order"]["amountSentToTrader"] == pytest.approx(25.0)
        assert result["trade"]["isOpen"] is False
        assert localnet.usdc_balance(trader.address) == start - 25
        history = await sdk.subgraph.get_recent_history(trader.address)
        assert history[-1]["orderAction"] == "Close"
        assert int(history[-1]["profitPercent"]) == -5000

    asyncio.run(flow())


def test_market_open_cancelled_on_slippage(localnet):
    trader = localnet.traders[2]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        start = localnet.usdc_balance(trader.address)
        sent = sdk.ostium.perform_trade(_market_long(), at_price=65000)
        localnet.set_price("BTC-USD", Decimal("67000"))  # +3% > 2% slippage
        localnet.run_keeper()
        result = await sdk.ostium.track_order_and_trade(sdk.subgraph, sent["order_id"])
        assert result["order"]["isCancelled"] is True
        assert result["order"]["cancelReason"] == "SlippageExceeded"
        assert localnet.usdc_balance(trader.address) == start
        open_trades, _ = await sdk.get_open_trades()
        assert open_trades == []

    asyncio.run(flow())


def test_limit_order_placed_and_cancelled(localnet):
    trader = localnet.traders[3]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        start = localnet.usdc_balance(trader.address)
        sent = sdk.ostium.perform_trade(_market_long(order_type="LIMIT"), at_price=60000)
        assert sent["receipt"]["status"] == 1
        assert sent["order_id"] is None  # limit orders wait for the keeper
        localnet.run_keeper()  # price 65000: a buy limit at 60000 is not hit
        limits = await sdk.subgraph.get_orders(trader.address)
        assert len(limits) == 1
        limit = limits[0]
        assert limit["limitType"] == "LIMIT"
        assert int(limit["openPrice"]) == 60000 * 10**18
        assert localnet.usdc_balance(trader.address) == start - 100

        pair_id, index = limit["id"].split("_")[1:]
        receipt = sdk.ostium.update_limit_order(int(pair_id), int(index), trader.private_key, price=61000)
        assert receipt["status"] == 1
        limits = await sdk.subgraph.get_orders(trader.address)
        assert int(limits[0]["openPrice"]) == 61000 * 10**18

        receipt = sdk.ostium.cancel_limit_order(int(pair_id), int(index))
        assert receipt["status"] == 1
        assert await sdk.subgraph.get_orders(trader.address) == []
        assert localnet.usdc_balance(trader.address) == start

    asyncio.run(flow())


def test_limit_order_executes_when_price_reaches_it(localnet):
    trader = localnet.traders[3]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        sdk.ostium.perform_trade(_market_long(order_type="LIMIT", tp=64000), at_price=60000)
        localnet.set_price("BTC-USD", Decimal("59500"))
        actions = localnet.run_keeper()
        assert [a.kind for a in actions] == ["trigger", "fulfill"]
        assert await sdk.subgraph.get_orders(trader.address) == []
        open_trades, _ = await sdk.get_open_trades()
        assert len(open_trades) == 1
        assert int(open_trades[0]["openPrice"]) == 59500 * 10**18
        history = await sdk.subgraph.get_recent_history(trader.address)
        assert history[-1]["orderType"] == "Limit"

    asyncio.run(flow())


def test_stop_loss_and_liquidation(localnet):
    trader = localnet.traders[4]
    sdk = localnet.sdk(trader.private_key)

    async def flow():
        start = localnet.usdc_balance(trader.address)
        sdk.ostium.perform_trade(_market_long(sl=64000), at_price=65000)
        sdk.ostium.perform_trade(_market_long(leverage=50), at_price=65000)
        localnet.run_keeper()
        open_trades, _ = await sdk.get_open_trades()
        assert len(open_trades) == 2
        # -2.3% : SL on the 10x trade; the 50x trade loses > 90% -> liquidated
        localnet.set_price("BTC-USD", Decimal("63500"))
        actions = localnet.run_keeper()
        assert all(a.ok for a in actions) and len(actions) == 4
        assert (await sdk.get_open_trades())[0] == []
        history = await sdk.subgraph.get_recent_history(trader.address)
        closes = {o["orderType"]: o for o in history if o["orderAction"] == "Close"}
        assert set(closes) == {"StopLoss", "Liquidation"}
        assert int(closes["Liquidation"]["amountSentToTrader"]) == 0
        assert int(closes["StopLoss"]["price"]) == 64000 * 10**18
        sl_payout = Decimal(int(closes["StopLoss"]["amountSentToTrader"])) / 10**6
        assert localnet.usdc_balance(trader.address) == start - 200 + sl_payout

    asyncio.run(flow())


def test_reverted_call_surfaces_as_failed_receipt_with_decoded_error(localnet):
    trader = localnet.traders[5]
    sdk = localnet.sdk(trader.private_key)
    # no trade at index 3: the SDK sends the tx (fixed gas, no estimate) and it reverts
    receipt = sdk.ostium.update_tp(BTC, 3, 70000)
    assert receipt["status"] == 0
    err = revert_reason(localnet.w3, receipt["transactionHash"])
    assert err is not None and err.name == "NoTradeFound"
    assert err.args == {"trader": trader.address, "pairIndex": BTC, "index": 3}
    # wrong leverage on open
    sent = sdk.ostium.perform_trade(_market_long(leverage=500), at_price=65000)
    assert sent["receipt"]["status"] == 0 and sent["order_id"] is None
    err = revert_reason(localnet.w3, sent["receipt"]["transactionHash"])
    assert err.name == "WrongLeverage" and err.args == {"leverage": 50000}


def test_delegated_trading_for_a_safe(localnet):
    owner, delegate = localnet.traders[6], localnet.traders[7]
    safe = localnet.create_safe([owner.address], threshold=1)
    assert localnet.w3.eth.get_code(safe)
    localnet.fund(safe, usdc=1000)
    usdc = localnet.contract("usdc")
    trading = localnet.contract("trading")

    # the Safe approves TradingStorage and names the delegate, via SafeTxs
    approve = usdc.encode_abi("approve", [localnet.addresses.tradingStorage, 2**256 - 1])
    localnet.exec_safe_tx(safe, usdc.address, approve, [owner.private_key])
    set_delegate = trading.encode_abi("setDelegate", [delegate.address])
    localnet.exec_safe_tx(safe, trading.address, set_delegate, [owner.private_key])
    assert trading.functions.delegations(safe).call() == delegate.address

    sdk = localnet.sdk(delegate.private_key, use_delegation=True)
    delegate_usdc = localnet.usdc_balance(delegate.address)

    async def flow():
        sent = sdk.ostium.perform_trade(_market_long(trader_address=safe), at_price=65000)
        assert sent["receipt"]["status"] == 1
        localnet.run_keeper()
        await sdk.ostium.track_order_and_trade(sdk.subgraph, sent["order_id"])
        open_trades, who = await sdk.get_open_trades(trader_address=safe)
        assert who == safe and len(open_trades) == 1
        assert open_trades[0]["trader"] == safe.lower()
        assert localnet.usdc_balance(safe) == 900

        index = int(open_trades[0]["index"])
        assert sdk.ostium.update_tp(BTC, index, 90000, trader_address=safe)["status"] == 1
        localnet.set_price("BTC-USD", Decimal("66300"))  # +2% at 10x = +20%
        closing = sdk.ostium.close_trade(BTC, index, market_price=66300, trader_address=safe)
        assert closing["receipt"]["status"] == 1
        localnet.run_keeper()
        result = await sdk.ostium.track_order_and_trade(sdk.subgraph, closing["order_id"])
        assert result["trade"]["isOpen"] is False
        assert (await sdk.get_open_trades(trader_address=safe))[0] == []
        assert localnet.usdc_balance(safe) == 1020
        assert localnet.usdc_balance(delegate.address) == delegate_usdc  # delegate's funds untouched

    asyncio.run(flow())

    # a non-delegate cannot act for the Safe
    stranger = localnet.sdk(localnet.traders[0].private_key, use_delegation=True)
    receipt = stranger.ostium.update_tp(BTC, 0, 90000, trader_address=safe)
    assert receipt["status"] == 0
    err = revert_reason(localnet.w3, receipt["transactionHash"])
    assert err.name == "NotDelegate"
    assert err.args["delegate"] == Web3.to_checksum_address(localnet.traders[0].address)
