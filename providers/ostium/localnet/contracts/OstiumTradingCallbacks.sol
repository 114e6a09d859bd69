// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";
import "./IOstiumTradingStorage.sol";

/// Settles orders with the price the keeper supplied through the
/// PriceUpKeep contract. Every settlement event indexes orderId as topic 1.
/// Prices are 1e18; PnL percentages are 1e6 percent (12.5% = 12_500_000).
contract OstiumTradingCallbacks {
    error IsDone();
    error IsPaused();
    error NotGov(address a);
    error NotPriceUpKeep(address a);
    error WrongParams();

    event AutomationCloseOrderCanceled(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        address indexed trader,
        uint256 pairIndex,
        uint8 orderType,
        uint8 cancelReason
    );
    event AutomationOpenOrderCanceled(
        uint256 indexed orderId, address indexed trader, uint256 indexed pairIndex, uint8 cancelReason
    );
    event LimitCloseExecuted(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        uint8 orderType,
        uint256 price,
        uint256 priceImpactP,
        int256 percentProfit,
        uint256 usdcSentToTrader
    );
    event LimitOpenExecuted(
        uint256 indexed orderId, uint256 limitIndex, Trade t, uint256 priceImpactP, uint256 tradeNotional
    );
    event MarketCloseCanceled(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        address indexed trader,
        uint256 pairIndex,
        uint256 index,
        uint8 cancelReason
    );
    event MarketCloseExecutedV2(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        uint256 price,
        uint256 priceImpactP,
        int256 percentProfit,
        uint256 usdcSentToTrader,
        uint256 percentageClosed
    );
    event MarketOpenCanceled(
        uint256 indexed orderId, address indexed trader, uint256 indexed pairIndex, uint8 cancelReason
    );
    event MarketOpenExecuted(uint256 indexed orderId, Trade t, uint256 priceImpactP, uint256 tradeNotional);
    event RemoveCollateralExecuted(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        address indexed trader,
        uint16 pairIndex,
        uint256 removeAmount,
        uint32 leverage,
        uint192 tp,
        uint192 sl
    );
    event RemoveCollateralRejected(
        uint256 indexed orderId,
        uint256 indexed tradeId,
        address indexed trader,
        uint16 pairIndex,
        uint256 removeAmount,
        uint8 reason
    );

    IRegistry public immutable registry;

    constructor(address _registry) {
        registry = IRegistry(_registry);
    }

    modifier onlyPriceUpKeep() {
        if (msg.sender != registry.getContractAddress(NAME_PRICE_UPKEEP)) revert NotPriceUpKeep(msg.sender);
        _;
    }

    function _storage() internal view returns (IOstiumTradingStorage) {
        return IOstiumTradingStorage(registry.getContractAddress(NAME_STORAGE));
    }

    function isPaused() external pure returns (bool) {
        return false;
    }

    function isDone() external pure returns (bool) {
        return false;
    }

    // ----- maths -----

    /// Leveraged PnL in 1e6 percent, capped at +900% and floored at -100%.
    function currentPercentProfit(uint256 openPrice, uint256 currentPrice, bool buy, uint32 leverage)
        public
        pure
        returns (int256 p)
    {
        int256 diff = buy ? int256(currentPrice) - int256(openPrice) : int256(openPrice) - int256(currentPrice);
        p = diff * int256(PRECISION_6) * int256(uint256(leverage)) / int256(openPrice);
        if (p > MAX_PROFIT_P) p = MAX_PROFIT_P;
        if (p < -100e6) p = -100e6;
    }

    function tradeNotional(uint256 collateral, uint32 leverage, uint256 price) public pure returns (uint256) {
        // USDC (1e6) * leverage (1e2) -> asset units (1e18) at price (1e18)
        return collateral * leverage * 1e28 / price;
    }

    function _validPrice(PriceUpKeepAnswer calldata a) internal pure returns (bool) {
        return a.price > 0;
    }

    function _slippageOk(bool buyingSide, uint256 price, uint256 wanted, uint256 slippageP)
        internal
        pure
        returns (bool)
    {
        if (wanted == 0) return true;
        uint256 maxDev = wanted * slippageP / 10000;
        return buyingSide ? price <= wanted + maxDev : price + maxDev >= wanted;
    }

    /// Close (part of) a trade at price and pay the trader. Returns the PnL
    /// percentage and the USDC sent.
    function _closeTrade(IOstiumTradingStorage s, Trade memory t, uint256 price, uint16 percentage, bool liquidation)
        internal
        returns (int256 pct, uint256 sent)
    {
        uint256 closedCollateral = t.collateral * percentage / 10000;
        pct = currentPercentProfit(t.openPrice, price, t.buy, t.leverage);
        if (!liquidation && pct > -LIQ_THRESHOLD_P) {
            int256 value = int256(closedCollateral) + int256(closedCollateral) * pct / 100e6;
            sent = value > 0 ? uint256(value) : 0;
        }
        if (percentage >= 10000 || closedCollateral >= t.collateral) {
            s.unregisterTrade(t.trader, t.pairIndex, t.index);
        } else {
            TradeInfo memory info = s.getOpenTradeInfo(t.trader, t.pairIndex, t.index);
            t.collateral -= closedCollateral;
            info.oiNotional = tradeNotional(t.collateral, t.leverage, t.openPrice);
            s.updateTrade(t);
            s.updateTradeInfo(t.trader, t.pairIndex, t.index, info);
        }
        if (sent > 0) s.transferUsdc(address(s), t.trader, sent);
    }

    function _storeNewTrade(IOstiumTradingStorage s, Trade memory t, uint256 tradeId) internal returns (uint256 notional) {
        notional = tradeNotional(t.collateral, t.leverage, t.openPrice);
        uint32 nowBlock = uint32(block.number);
        s.storeTrade(t, TradeInfo(tradeId, notional, t.leverage, nowBlock, nowBlock, uint32(block.timestamp), false));
    }

    // ----- market orders -----

    function openTradeMarketCallback(PriceUpKeepAnswer calldata a) external onlyPriceUpKeep {
        IOstiumTradingStorage s = _storage();
        PendingMarketOrderV2 memory o = s.getPendingMarketOrder(a.orderId);
        if (o.block == 0) return;
        s.unregisterPendingMarketOrder(a.orderId, true);
        Trade memory t = o.trade;
        uint256 price = uint256(int256(a.price));

        uint8 reason = CANCEL_NONE;
        if (!_validPrice(a)) reason = CANCEL_BAD_PRICE;
        else if (a.isDayTradingClosed && t.isDayTrade) reason = CANCEL_MARKET_CLOSED;
        else if (!_slippageOk(t.buy, price, o.wantedPrice, o.slippageP)) reason = CANCEL_SLIPPAGE;
        else if (t.tp != 0 && (t.buy ? price >= t.tp : price <= t.tp)) reason = CANCEL_TP_REACHED;
        else if (t.sl != 0 && (t.buy ? price <= t.sl : price >= t.sl)) reason = CANCEL_SL_REACHED;
        else if (s.openTradesCount(t.trader, t.pairIndex) >= s.maxTradesPerPair()) reason = CANCEL_MAX_TRADES;

        if (reason != CANCEL_NONE) {
            s.transferUsdc(address(s), t.trader, t.collateral);
            emit MarketOpenCanceled(a.orderId, t.trader, t.pairIndex, reason);
            return;
        }

        t.openPrice = uint192(price);
        t.index = s.firstEmptyTradeIndex(t.trader, t.pairIndex);
        uint256 notional = _storeNewTrade(s, t, a.orderId);
        emit MarketOpenExecuted(a.orderId, t, 0, notional);
    }

    function closeTradeMarketCallback(PriceUpKeepAnswer calldata a) external onlyPriceUpKeep {
        IOstiumTradingStorage s = _storage();
        PendingMarketOrderV2 memory o = s.getPendingMarketOrder(a.orderId);
        if (o.block == 0) return;
        Trade memory t = s.getOpenTrade(o.trade.trader, o.trade.pairIndex, o.trade.index);
        uint256 tradeId = s.getOpenTradeInfo(o.trade.trader, o.trade.pairIndex, o.trade.index).tradeId;
        s.unregisterPendingMarketOrder(a.orderId, false);
        uint256 price = uint256(int256(a.price));

        uint8 reason = CANCEL_NONE;
        if (t.leverage == 0) reason = CANCEL_NO_TRADE;
        else if (!_validPrice(a)) reason = CANCEL_BAD_PRICE;
        else if (!_slippageOk(!t.buy, price, o.wantedPrice, o.slippageP)) reason = CANCEL_SLIPPAGE;

        if (reason != CANCEL_NONE) {
            emit MarketCloseCanceled(a.orderId, tradeId, o.trade.trader, o.trade.pairIndex, o.trade.index, reason);
            return;
        }
        (int256 pct, uint256 sent) = _closeTrade(s, t, price, o.percentage, false);
        emit MarketCloseExecutedV2(a.orderId, tradeId, price, 0, pct, sent, o.percentage);
    }

    // ----- automation (limit/stop opens, TP, SL, liquidation) -----

    function executeAutomationOpenOrderCallback(PriceUpKeepAnswer calldata a) external onlyPriceUpKeep {
        IOstiumTradingStorage s = _storage();
        PendingAutomationOrder memory ao = s.getPendingAutomationOrder(a.orderId);
        if (ao.trader == address(0)) return;
        s.unregisterPendingAutomationOrder(a.orderId);
        uint256 price = uint256(int256(a.price));

        if (!s.hasOpenLimitOrder(ao.trader, ao.pairIndex, ao.index)) {
            emit AutomationOpenOrderCanceled(a.orderId, ao.trader, ao.pairIndex, CANCEL_NO_LIMIT);
            return;
        }
        OpenLimitOrder memory l = s.getOpenLimitOrder(ao.trader, ao.pairIndex, ao.index);
        bool hit;
        if (l.orderType == 1) hit = l.buy ? price <= l.targetPrice : price >= l.targetPrice;
        else hit = l.buy ? price >= l.targetPrice : price <= l.targetPrice;

        uint8 reason = CANCEL_NONE;
        if (!_validPrice(a)) reason = CANCEL_BAD_PRICE;
        else if (!hit) reason = CANCEL_NOT_HIT;
        else if (a.isDayTradingClosed && l.isDayTrade) reason = CANCEL_MARKET_CLOSED;
        else if (s.openTradesCount(l.trader, l.pairIndex) >= s.maxTradesPerPair()) reason = CANCEL_MAX_TRADES;
        if (reason != CANCEL_NONE) {
            emit AutomationOpenOrderCanceled(a.orderId, ao.trader, ao.pairIndex, reason);
            return;
        }

        s.unregisterOpenLimitOrder(l.trader, l.pairIndex, l.index);
        Trade memory t = Trade(
            l.collateral,
            uint192(price),
            l.tp,
            l.sl,
            l.trader,
            l.leverage,
            l.pairIndex,
            s.firstEmptyTradeIndex(l.trader, l.pairIndex),
            l.buy,
            l.isDayTrade
        );
        uint256 notional = _storeNewTrade(s, t, a.orderId);
        emit LimitOpenExecuted(a.orderId, l.index, t, 0, notional);
    }

    function executeAutomationCloseOrderCallback(PriceUpKeepAnswer calldata a) external onlyPriceUpKeep {
        IOstiumTradingStorage s = _storage();
        PendingAutomationOrder memory ao = s.getPendingAutomationOrder(a.orderId);
        if (ao.trader == address(0)) return;
        s.unregisterPendingAutomationOrder(a.orderId);
        uint256 price = uint256(int256(a.price));
        Trade memory t = s.getOpenTrade(ao.trader, ao.pairIndex, ao.index);
        uint256 tradeId = s.getOpenTradeInfo(ao.trader, ao.pairIndex, ao.index).tradeId;

        bool hit;
        uint256 execPrice = price;
        if (t.leverage != 0 && _validPrice(a)) {
            if (ao.orderType == AUTOMATION_TP) {
                hit = t.tp != 0 && (t.buy ? price >= t.tp : price <= t.tp);
                execPrice = t.tp;
            } else if (ao.orderType == AUTOMATION_SL) {
                hit = t.sl != 0 && (t.buy ? price <= t.sl : price >= t.sl);
                execPrice = t.sl;
            } else {
                hit = currentPercentProfit(t.openPrice, price, t.buy, t.leverage) <= -LIQ_THRESHOLD_P;
            }
        }
        if (!hit) {
            uint8 reason = t.leverage == 0 ? CANCEL_NO_TRADE : (_validPrice(a) ? CANCEL_NOT_HIT : CANCEL_BAD_PRICE);
            emit AutomationCloseOrderCanceled(a.orderId, tradeId, ao.trader, ao.pairIndex, ao.orderType, reason);
            return;
        }
        (int256 pct, uint256 sent) = _closeTrade(s, t, execPrice, 10000, ao.orderType == AUTOMATION_LIQ);
        emit LimitCloseExecuted(a.orderId, tradeId, ao.orderType, execPrice, 0, pct, sent);
    }

    // ----- collateral removal -----

    function handleRemoveCollateral(PriceUpKeepAnswer calldata a) external onlyPriceUpKeep {
        IOstiumTradingStorage s = _storage();
        PendingRemoveCollateral memory r = s.getPendingRemoveCollateral(a.orderId);
        if (r.trader == address(0)) return;
        s.unregisterPendingRemoveCollateral(a.orderId);
        Trade memory t = s.getOpenTrade(r.trader, r.pairIndex, r.index);
        uint256 tradeId = s.getOpenTradeInfo(r.trader, r.pairIndex, r.index).tradeId;
        if (t.leverage == 0 || r.removeAmount >= t.collateral) {
            emit RemoveCollateralRejected(a.orderId, tradeId, r.trader, r.pairIndex, r.removeAmount, CANCEL_NO_TRADE);
            return;
        }
        uint256 newCollateral = t.collateral - r.removeAmount;
        uint32 newLeverage = uint32(t.collateral * t.leverage / newCollateral);
        Pair memory p = s.getPair(r.pairIndex);
        if (
            !_validPrice(a) || newLeverage > p.maxLeverage
                || currentPercentProfit(t.openPrice, uint256(int256(a.price)), t.buy, newLeverage) <= -LIQ_THRESHOLD_P
        ) {
            emit RemoveCollateralRejected(a.orderId, tradeId, r.trader, r.pairIndex, r.removeAmount, CANCEL_NOT_HIT);
            return;
        }
        t.collateral = newCollateral;
        t.leverage = newLeverage;
        s.updateTrade(t);
        s.transferUsdc(address(s), r.trader, r.removeAmount);
        emit RemoveCollateralExecuted(
            a.orderId, tradeId, r.trader, r.pairIndex, r.removeAmount, newLeverage, t.tp, t.sl
        );
    }
}
