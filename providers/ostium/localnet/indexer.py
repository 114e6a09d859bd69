"""Event indexer behind the localnet subgraph.

Entities are re-derived from the chain's logs (Trading, TradingCallbacks and
TradingStorage events). ``sync()`` is called before every query; it detects
``evm_revert`` (the last indexed block vanished or changed hash) and then
rebuilds the index from block 0, so the subgraph is always consistent with
the chain. Values keep the subgraph's raw units: prices 1e18, USDC 1e6,
leverage 1e2, percentages 1e2, OI 1e18 asset units."""

from __future__ import annotations

import threading

from web3 import Web3

from .artifacts import abi
from .config import LIQ_MARGIN_THRESHOLD_P, PairSpec

ZERO_HASH = "0x" + "00" * 32
ORDER_TYPE_NAMES = {0: "TakeProfit", 1: "StopLoss", 2: "Liquidation"}
LIMIT_TYPE_NAMES = {1: "LIMIT", 2: "STOP"}
OPEN_ORDER_TYPE_NAMES = {1: "Limit", 2: "Stop"}
CANCEL_REASONS = {
    0: "None",
    1: "MarketClosed",
    2: "SlippageExceeded",
    3: "TpReached",
    4: "SlReached",
    5: "MaxTradesReached",
    6: "NoTrade",
    7: "NotHit",
    8: "NoLimit",
    9: "ClosePending",
    10: "BadPrice",
    100: "Timeout",
}


def _hex(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value).lower()


class Indexer:
    def __init__(self, w3: Web3, addresses, pairs: tuple[PairSpec, ...]):
        self.w3 = w3
        self.addresses = addresses
        self.pair_specs = {p.symbol: p for p in pairs}
        self._contracts = {
            Web3.to_checksum_address(addresses.trading): w3.eth.contract(
                address=addresses.trading, abi=abi("OstiumTrading")
            ),
            Web3.to_checksum_address(addresses.callbacks): w3.eth.contract(
                address=addresses.callbacks, abi=abi("OstiumTradingCallbacks")
            ),
            Web3.to_checksum_address(addresses.tradingStorage): w3.eth.contract(
                address=addresses.tradingStorage, abi=abi("OstiumTradingStorage")
            ),
        }
        self.storage = self._contracts[Web3.to_checksum_address(addresses.tradingStorage)]
        # topic0 -> (contract, event name) per address
        self._events: dict[tuple[str, bytes], tuple] = {}
        for address, contract in self._contracts.items():
            for item in contract.abi:
                if item["type"] != "event":
                    continue
                sig = f"{item['name']}({','.join(self._abi_type(i) for i in item['inputs'])})"
                self._events[(address, bytes(Web3.keccak(text=sig)))] = (contract, item["name"])
        self._lock = threading.RLock()
        self.reset()

    @staticmethod
    def _abi_type(item) -> str:
        if item["type"].startswith("tuple"):
            return "(" + ",".join(Indexer._abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
        return item["type"]

    # ----- state -----

    def reset(self) -> None:
        with self._lock:
            self.last_block = -1
            self.last_hash = None
            self.pairs: dict[str, dict] = {}
            self.groups: dict[str, dict] = {}
            self.trades: dict[str, dict] = {}
            self.orders: dict[str, dict] = {}
            self.limits: dict[str, dict] = {}
            self.open_trade_keys: dict[tuple, str] = {}
            self._block_ts: dict[int, int] = {}
            self.meta = {
                "id": "1",
                "liqMarginThresholdP": LIQ_MARGIN_THRESHOLD_P,
                "liqThresholdP": 90,
                "maxNegativePnlOnOpenP": 0,
                "totalOpenTrades": 0,
                "totalOpenLimitOrders": 0,
            }

    def sync(self) -> None:
        with self._lock:
            latest = self.w3.eth.block_number
            if self.last_block >= 0:
                if latest < self.last_block:
                    self.reset()
                else:
                    block = self.w3.eth.get_block(self.last_block)
                    if block["hash"].to_0x_hex() != self.last_hash:
                        self.reset()
            if latest <= self.last_block:
                return
            logs = self.w3.eth.get_logs(
                {
                    "fromBlock": self.last_block + 1,
                    "toBlock": latest,
                    "address": list(self._contracts),
                }
            )
            for entry in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
                self._handle(entry)
            self.last_block = latest
            self.last_hash = self.w3.eth.get_block(latest)["hash"].to_0x_hex()
            self._refresh_aggregates()

    def _timestamp(self, block_number: int) -> int:
        ts = self._block_ts.get(block_number)
        if ts is None:
            ts = self.w3.eth.get_block(block_number)["timestamp"]
            self._block_ts[block_number] = ts
        return ts

    def _handle(self, entry) -> None:
        topics = entry["topics"]
        if not topics:
            return
        key = (Web3.to_checksum_address(entry["address"]), bytes(topics[0]))
        found = self._events.get(key)
        if not found:
            return
        contract, name = found
        event = contract.events[name]().process_log(entry)
        handler = getattr(self, f"_on_{name}", None)
        if handler:
            ctx = {
                "block": entry["blockNumber"],
                "tx": entry["transactionHash"].to_0x_hex(),
                "ts": self._timestamp(entry["blockNumber"]),
            }
            handler(event["args"], ctx)

    def _refresh_aggregates(self) -> None:
        for pair in self.pairs.values():
            pair["longOI"] = 0
            pair["shortOI"] = 0
            pair["totalOpenTrades"] = 0
            pair["totalOpenLimitOrders"] = 0
            pair["group"]["longCollateral"] = 0
            pair["group"]["shortCollateral"] = 0
        for trade in self.trades.values():
            if not trade["isOpen"]:
                continue
            pair = trade["pair"]
            side = "longOI" if trade["isBuy"] else "shortOI"
            pair[side] += trade["tradeNotional"]
            pair["totalOpenTrades"] += 1
            pair["group"]["longCollateral" if trade["isBuy"] else "shortCollateral"] += trade["collateral"]
        for limit in self.limits.values():
            if limit["isActive"]:
                limit["pair"]["totalOpenLimitOrders"] += 1
        self.meta["totalOpenTrades"] = sum(1 for t in self.trades.values() if t["isOpen"])
        self.meta["totalOpenLimitOrders"] = sum(1 for lim in self.limits.values() if lim["isActive"])

    # ----- entity helpers -----

    def _pair(self, index) -> dict:
        return self.pairs[str(int(index))]

    def _new_order(self, order_id, trader, pair_index, ctx, **fields) -> dict:
        order = {
            "id": str(order_id),
            "trader": _hex(trader),
            "pair": self._pair(pair_index),
            "tradeID": None,
            "limitID": None,
            "orderType": "Market",
            "orderAction": "Open",
            "price": 0,
            "priceAfterImpact": 0,
            "priceImpactP": 0,
            "collateral": 0,
            "notional": 0,
            "tradeNotional": 0,
            "profitPercent": None,
            "totalProfitPercent": None,
            "amountSentToTrader": None,
            "isBuy": False,
            "leverage": 0,
            "initiatedAt": ctx["ts"],
            "initiatedTx": ctx["tx"],
            "initiatedBlock": ctx["block"],
            "executedAt": None,
            "executedTx": None,
            "executedBlock": None,
            "isPending": True,
            "isCancelled": False,
            "cancelReason": None,
            "devFee": 0,
            "vaultFee": 0,
            "oracleFee": 0,
            "liquidationFee": 0,
            "fundingFee": 0,
            "rolloverFee": 0,
            "closePercent": None,
        }
        order.update(fields)
        self.orders[order["id"]] = order
        return order

    def _execute_order(self, order_id, ctx, **fields) -> dict | None:
        order = self.orders.get(str(order_id))
        if order is None:
            return None
        order.update(isPending=False, executedAt=ctx["ts"], executedTx=ctx["tx"], executedBlock=ctx["block"])
        order.update(fields)
        return order

    def _cancel_order(self, order_id, reason, ctx) -> None:
        self._execute_order(order_id, ctx, isCancelled=True, cancelReason=CANCEL_REASONS.get(int(reason), str(reason)))

    def _open_trade(self, trade_id, t, trade_notional, trade_type, ctx) -> dict:
        trader = _hex(t["trader"])
        trade = {
            "id": str(trade_id),
            "tradeID": str(trade_id),
            "trader": trader,
            "pair": self._pair(t["pairIndex"]),
            "index": int(t["index"]),
            "tradeType": trade_type,
            "openPrice": int(t["openPrice"]),
            "closePrice": 0,
            "takeProfitPrice": int(t["tp"]),
            "stopLossPrice": int(t["sl"]),
            "collateral": int(t["collateral"]),
            "notional": int(t["collateral"]) * int(t["leverage"]) // 100,
            "tradeNotional": int(trade_notional),
            "highestLeverage": int(t["leverage"]),
            "leverage": int(t["leverage"]),
            "isBuy": bool(t["buy"]),
            "isOpen": True,
            "closeInitiated": False,
            "funding": 0,
            "rollover": 0,
            "timestamp": ctx["ts"],
            "isDayTrade": bool(t["isDayTrade"]),
        }
        self.trades[trade["id"]] = trade
        self.open_trade_keys[(trader, int(t["pairIndex"]), int(t["index"]))] = trade["id"]
        trade["pair"]["lastTradePrice"] = int(t["openPrice"])
        return trade

    def _close_trade(self, trade_id, price, percentage) -> dict | None:
        trade = self.trades.get(str(trade_id))
        if trade is None:
            return None
        trade["pair"]["lastTradePrice"] = int(price)
        trade["closeInitiated"] = False
        if int(percentage) >= 10000:
            trade["isOpen"] = False
            trade["closePrice"] = int(price)
            self.open_trade_keys.pop((trade["trader"], int(trade["pair"]["id"]), trade["index"]), None)
        else:
            remaining = trade["collateral"] - trade["collateral"] * int(percentage) // 10000
            trade["collateral"] = remaining
            trade["notional"] = remaining * trade["leverage"] // 100
            trade["tradeNotional"] = trade["tradeNotional"] * (10000 - int(percentage)) // 10000
        return trade

    def _trade_by_key(self, trader, pair_index, index) -> dict | None:
        trade_id = self.open_trade_keys.get((_hex(trader), int(pair_index), int(index)))
        return self.trades.get(trade_id) if trade_id else None

    # ----- storage events -----

    def _on_PairListed(self, a, ctx) -> None:
        symbol = f"{a['from']}-{a['to']}"
        spec = self.pair_specs.get(symbol)
        group_spec = spec.group if spec else None
        group_id = str(group_spec.id) if group_spec else "0"
        group = self.groups.setdefault(
            group_id,
            {
                "id": group_id,
                "name": group_spec.name if group_spec else "default",
                "minLeverage": group_spec.min_leverage if group_spec else int(a["minLeverage"]),
                "maxLeverage": group_spec.max_leverage if group_spec else int(a["maxLeverage"]),
                "maxCollateralP": group_spec.max_collateral_p if group_spec else 1000,
                "longCollateral": 0,
                "shortCollateral": 0,
            },
        )
        index = str(int(a["pairIndex"]))
        self.pairs[index] = {
            "id": index,
            "from": a["from"],
            "to": a["to"],
            "feed": _hex(a["feed"]),
            "group": group,
            "fee": {"id": index, "minLevPos": int(a["minLevPos"]), "openFeeP": 0, "closeFeeP": 0},
            "minLeverage": int(a["minLeverage"]),
            "maxLeverage": int(a["maxLeverage"]),
            "makerMaxLeverage": int(a["maxLeverage"]),
            "overnightMaxLeverage": 0,
            "longOI": 0,
            "shortOI": 0,
            "maxOI": spec.max_oi if spec else 10**15,
            "makerFeeP": 0,
            "takerFeeP": 0,
            "spreadP": spec.spread_p if spec else 0,
            "curFundingLong": 0,
            "curFundingShort": 0,
            "curRollover": 0,
            "totalOpenTrades": 0,
            "totalOpenLimitOrders": 0,
            "accRollover": 0,
            "lastRolloverBlock": ctx["block"],
            "rolloverFeePerBlock": 0,
            "accFundingLong": 0,
            "accFundingShort": 0,
            "lastFundingBlock": ctx["block"],
            "maxFundingFeePerBlock": 0,
            "lastFundingRate": 0,
            "hillInflectionPoint": 0,
            "hillPosScale": 100,
            "hillNegScale": 100,
            "springFactor": 10**14,
            "sFactorUpScaleP": 100,
            "sFactorDownScaleP": 100,
            "lastTradePrice": int(spec.price * 10**18) if spec else 0,
        }

    # ----- trading events -----

    def _on_MarketOpenOrderInitiated(self, a, ctx) -> None:
        # The event carries no trade details: read the pending order as of
        # the initiating block (the fill/cancel event completes it anyway).
        try:
            pending = self.storage.functions.getPendingMarketOrder(a["orderId"]).call(block_identifier=ctx["block"])
            wanted, t = int(pending[1]), pending[3]
            collateral, leverage, buy = int(t[0]), int(t[5]), bool(t[8])
        except Exception:  # historical state unavailable
            wanted, collateral, leverage, buy = 0, 0, 0, False
        self._new_order(
            a["orderId"],
            a["trader"],
            a["pairIndex"],
            ctx,
            price=wanted,
            collateral=collateral,
            leverage=leverage,
            isBuy=buy,
            notional=collateral * leverage // 100,
        )

    def _on_MarketCloseOrderInitiatedV2(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]))
        fields = {"orderAction": "Close", "tradeID": str(a["tradeId"]), "closePercent": int(a["closePercentage"])}
        if trade:
            trade["closeInitiated"] = True
            fields.update(
                isBuy=trade["isBuy"],
                leverage=trade["leverage"],
                collateral=trade["collateral"] * int(a["closePercentage"]) // 10000,
                notional=trade["notional"] * int(a["closePercentage"]) // 10000,
                tradeNotional=trade["tradeNotional"] * int(a["closePercentage"]) // 10000,
            )
        self._new_order(a["orderId"], a["trader"], a["pairIndex"], ctx, **fields)

    def _on_AutomationOpenOrderInitiated(self, a, ctx) -> None:
        limit_id = f"{_hex(a['trader'])}_{int(a['pairIndex'])}_{int(a['index'])}"
        limit = self.limits.get(limit_id, {})
        self._new_order(
            a["orderId"],
            a["trader"],
            a["pairIndex"],
            ctx,
            orderType=OPEN_ORDER_TYPE_NAMES.get(limit.get("orderTypeCode"), "Limit"),
            limitID=limit_id,
            price=limit.get("openPrice", 0),
            collateral=limit.get("collateral", 0),
            leverage=limit.get("leverage", 0),
            isBuy=limit.get("isBuy", False),
            notional=limit.get("collateral", 0) * limit.get("leverage", 0) // 100,
        )

    def _on_AutomationCloseOrderInitiated(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]), {})
        self._new_order(
            a["orderId"],
            a["trader"],
            a["pairIndex"],
            ctx,
            orderType=ORDER_TYPE_NAMES.get(int(a["orderType"]), "Automation"),
            orderAction="Close",
            tradeID=str(a["tradeId"]),
            isBuy=trade.get("isBuy", False),
            leverage=trade.get("leverage", 0),
            collateral=trade.get("collateral", 0),
            notional=trade.get("notional", 0),
            tradeNotional=trade.get("tradeNotional", 0),
            closePercent=10000,
        )

    def _on_OpenLimitPlacedV2(self, a, ctx) -> None:
        t = a["trade"]
        limit_id = f"{_hex(a['trader'])}_{int(a['pairIndex'])}_{int(a['index'])}"
        self.limits[limit_id] = {
            "id": limit_id,
            "trader": _hex(a["trader"]),
            "pair": self._pair(a["pairIndex"]),
            "collateral": int(t["collateral"]),
            "leverage": int(t["leverage"]),
            "isBuy": bool(t["buy"]),
            "isActive": True,
            "openPrice": int(t["openPrice"]),
            "takeProfitPrice": int(t["tp"]),
            "stopLossPrice": int(t["sl"]),
            "initiatedAt": ctx["ts"],
            "updatedAt": ctx["ts"],
            "limitType": LIMIT_TYPE_NAMES.get(int(a["orderType"]), str(a["orderType"])),
            "orderTypeCode": int(a["orderType"]),
        }

    def _on_OpenLimitCanceled(self, a, ctx) -> None:
        limit = self.limits.get(f"{_hex(a['trader'])}_{int(a['pairIndex'])}_{int(a['index'])}")
        if limit:
            limit.update(isActive=False, updatedAt=ctx["ts"])

    def _on_OpenLimitUpdated(self, a, ctx) -> None:
        limit = self.limits.get(f"{_hex(a['trader'])}_{int(a['pairIndex'])}_{int(a['index'])}")
        if limit:
            limit.update(
                openPrice=int(a["newPrice"]),
                takeProfitPrice=int(a["newTp"]),
                stopLossPrice=int(a["newSl"]),
                updatedAt=ctx["ts"],
            )

    def _on_TpUpdated(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["takeProfitPrice"] = int(a["newTp"])

    def _on_SlUpdated(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["stopLossPrice"] = int(a["newSl"])

    def _on_TopUpCollateralExecuted(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["collateral"] += int(a["topUpAmount"])
            trade["leverage"] = int(a["newLeverage"])
            trade["notional"] = trade["collateral"] * trade["leverage"] // 100

    def _on_RemoveCollateralInitiated(self, a, ctx) -> None:
        self._new_order(
            a["orderId"],
            a["trader"],
            a["pairIndex"],
            ctx,
            orderType="RemoveCollateral",
            orderAction="RemoveCollateral",
            tradeID=str(a["tradeId"]),
            collateral=int(a["removeAmount"]),
        )

    def _on_MarketOpenTimeoutExecutedV2(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], 100, ctx)

    def _on_MarketCloseTimeoutExecutedV2(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], 100, ctx)
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["closeInitiated"] = False

    # ----- callbacks events -----

    def _on_MarketOpenExecuted(self, a, ctx) -> None:
        t = a["t"]
        self._open_trade(a["orderId"], t, a["tradeNotional"], "Market", ctx)
        self._execute_order(
            a["orderId"],
            ctx,
            tradeID=str(a["orderId"]),
            price=int(t["openPrice"]),
            priceAfterImpact=int(t["openPrice"]),
            priceImpactP=int(a["priceImpactP"]) // 10**16,
            tradeNotional=int(a["tradeNotional"]),
            collateral=int(t["collateral"]),
            leverage=int(t["leverage"]),
            isBuy=bool(t["buy"]),
            notional=int(t["collateral"]) * int(t["leverage"]) // 100,
        )

    def _on_MarketOpenCanceled(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], a["cancelReason"], ctx)

    def _close_fields(self, a) -> dict:
        return {
            "price": int(a["price"]),
            "priceAfterImpact": int(a["price"]),
            "priceImpactP": int(a["priceImpactP"]) // 10**16,
            "profitPercent": int(a["percentProfit"]) // 10**4
            if a["percentProfit"] >= 0
            else -((-int(a["percentProfit"])) // 10**4),
            "totalProfitPercent": int(a["percentProfit"]) // 10**4
            if a["percentProfit"] >= 0
            else -((-int(a["percentProfit"])) // 10**4),
            "amountSentToTrader": int(a["usdcSentToTrader"]),
            "tradeID": str(a["tradeId"]),
        }

    def _on_MarketCloseExecutedV2(self, a, ctx) -> None:
        self._close_trade(a["tradeId"], a["price"], a["percentageClosed"])
        self._execute_order(a["orderId"], ctx, closePercent=int(a["percentageClosed"]), **self._close_fields(a))

    def _on_MarketCloseCanceled(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], a["cancelReason"], ctx)
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["closeInitiated"] = False

    def _on_LimitOpenExecuted(self, a, ctx) -> None:
        t = a["t"]
        order = self.orders.get(str(a["orderId"]), {})
        limit = self.limits.get(order.get("limitID") or "")
        trade_type = OPEN_ORDER_TYPE_NAMES.get(limit.get("orderTypeCode") if limit else None, "Limit")
        self._open_trade(a["orderId"], t, a["tradeNotional"], trade_type, ctx)
        if limit:
            limit["isActive"] = False
        self._execute_order(
            a["orderId"],
            ctx,
            tradeID=str(a["orderId"]),
            price=int(t["openPrice"]),
            priceAfterImpact=int(t["openPrice"]),
            priceImpactP=int(a["priceImpactP"]) // 10**16,
            tradeNotional=int(a["tradeNotional"]),
        )

    def _on_AutomationOpenOrderCanceled(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], a["cancelReason"], ctx)

    def _on_LimitCloseExecuted(self, a, ctx) -> None:
        self._close_trade(a["tradeId"], a["price"], 10000)
        self._execute_order(a["orderId"], ctx, closePercent=10000, **self._close_fields(a))

    def _on_AutomationCloseOrderCanceled(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], a["cancelReason"], ctx)

    def _on_RemoveCollateralExecuted(self, a, ctx) -> None:
        trade = self.trades.get(str(a["tradeId"]))
        if trade:
            trade["collateral"] -= int(a["removeAmount"])
            trade["leverage"] = int(a["leverage"])
            trade["highestLeverage"] = max(trade["highestLeverage"], int(a["leverage"]))
            trade["notional"] = trade["collateral"] * trade["leverage"] // 100
        self._execute_order(a["orderId"], ctx, amountSentToTrader=int(a["removeAmount"]))

    def _on_RemoveCollateralRejected(self, a, ctx) -> None:
        self._cancel_order(a["orderId"], a["reason"], ctx)
