// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";
import "./IOstiumTradingStorage.sol";

/// Trader entry point. Market orders are two-phase: this contract records a
/// pending order and requests a price (PriceRequestedV2); the keeper answers
/// and TradingCallbacks fills or cancels. Delegates act for a trader through
/// delegatedAction(), which runs the call with the trader as _msgSender().
contract OstiumTrading {
    error AboveMaxAllowedCollateral();
    error AlreadyMarketClosed(address trader, uint16 pairIndex, uint8 index);
    error BelowFees();
    error BelowMinLevPos();
    error DelegateForbidden();
    error DelegateReentrant();
    error DelegatedActionFailed();
    error ExposureLimits();
    error InvalidCallData();
    error IsContract(address a);
    error IsDone();
    error IsPaused();
    error MaxPendingMarketOrdersReached(address trader);
    error MaxTradesPerPairReached(address trader, uint16 pairIndex);
    error NoDelegate(address trader);
    error NoLimitFound(address trader, uint16 pairIndex, uint8 index);
    error NoTradeFound(address trader, uint16 pairIndex, uint8 index);
    error NoTradeToTimeoutFound(uint256 orderId);
    error NotCloseMarketTimeoutOrder(uint256 orderId);
    error NotDelegate(address delegator, address delegate);
    error NotGov(address a);
    error NotOpenMarketTimeoutOrder(uint256 orderId);
    error NotTradesUpKeep(address a);
    error NotYourOrder(uint256 orderId, address trader);
    error NullAddr();
    error PairNotListed(uint16 pairIndex);
    error TriggerPending(address trader, uint16 pairIndex, uint8 index);
    error WaitTimeout(uint256 orderId);
    error WrongLeverage(uint32 leverage);
    error WrongParams();
    error WrongSL();
    error WrongTP();

    event AutomationCloseOrderInitiated(
        uint256 indexed orderId, uint256 indexed tradeId, address indexed trader, uint16 pairIndex, uint8 orderType
    );
    event AutomationOpenOrderInitiated(
        uint256 indexed orderId, address indexed trader, uint16 indexed pairIndex, uint8 index
    );
    event DelegateAdded(address indexed delegator, address indexed delegate);
    event DelegateRemoved(address indexed delegator, address indexed delegate);
    event MarketCloseOrderInitiatedV2(
        uint256 indexed orderId, uint256 indexed tradeId, address indexed trader, uint16 pairIndex, uint16 closePercentage
    );
    event MarketCloseTimeoutExecutedV2(uint256 indexed orderId, uint256 indexed tradeId, PendingMarketOrderV2 order);
    event MarketOpenOrderInitiated(uint256 indexed orderId, address indexed trader, uint16 indexed pairIndex);
    event MarketOpenTimeoutExecutedV2(uint256 indexed orderId, PendingMarketOrderV2 order);
    event MarketOrdersTimeoutUpdated(uint16 value);
    event MaxAllowedCollateralUpdated(uint256 value);
    event OpenLimitCanceled(address indexed trader, uint16 indexed pairIndex, uint8 index);
    event OpenLimitPlacedV2(
        address indexed trader, uint16 indexed pairIndex, uint8 index, Trade trade, uint8 orderType, BuilderFee builderFee
    );
    event OpenLimitUpdated(
        address indexed trader, uint16 indexed pairIndex, uint8 index, uint192 newPrice, uint192 newTp, uint192 newSl
    );
    event Paused(bool paused);
    event RemoveCollateralInitiated(
        uint256 indexed tradeId, uint256 indexed orderId, address indexed trader, uint16 pairIndex, uint256 removeAmount
    );
    event SlUpdated(uint256 indexed tradeId, address indexed trader, uint16 indexed pairIndex, uint8 index, uint192 newSl);
    event TopUpCollateralExecuted(
        uint256 indexed tradeId, address indexed trader, uint16 indexed pairIndex, uint256 topUpAmount, uint32 newLeverage
    );
    event TpUpdated(uint256 indexed tradeId, address indexed trader, uint16 indexed pairIndex, uint8 index, uint192 newTp);
    event TriggerTimeoutUpdated(uint16 value);

    IRegistry public immutable registry;
    uint256 public maxAllowedCollateral;
    uint16 public marketOrdersTimeout; // blocks
    uint16 public triggerTimeout; // blocks
    bool public isPaused;
    bool public isDone;

    mapping(address => address) public delegations;
    mapping(address => uint256) public delegatableNonces;
    address private _delegatedTrader;

    constructor(address _registry, uint256 _maxAllowedCollateral, uint16 _marketOrdersTimeout, uint16 _triggerTimeout) {
        if (_registry == address(0)) revert NullAddr();
        registry = IRegistry(_registry);
        maxAllowedCollateral = _maxAllowedCollateral;
        marketOrdersTimeout = _marketOrdersTimeout;
        triggerTimeout = _triggerTimeout;
    }

    // ----- helpers -----

    modifier notPaused() {
        if (isPaused) revert IsPaused();
        if (isDone) revert IsDone();
        _;
    }

    modifier onlyGov() {
        if (msg.sender != registry.gov()) revert NotGov(msg.sender);
        _;
    }

    function _storage() internal view returns (IOstiumTradingStorage) {
        return IOstiumTradingStorage(registry.getContractAddress(NAME_STORAGE));
    }

    function _oracle() internal view returns (IOstiumPriceUpKeep) {
        return IOstiumPriceUpKeep(registry.getContractAddress(NAME_PRICE_UPKEEP));
    }

    /// The effective sender: the trader while a delegate runs delegatedAction.
    function _msgSender() public view returns (address) {
        address delegated = _delegatedTrader;
        return delegated != address(0) ? delegated : msg.sender;
    }

    function _pair(IOstiumTradingStorage s, uint16 pairIndex) internal view returns (Pair memory) {
        if (pairIndex >= s.pairsCount()) revert PairNotListed(pairIndex);
        return s.getPair(pairIndex);
    }

    function _openTradeOf(IOstiumTradingStorage s, address trader, uint16 pairIndex, uint8 index)
        internal
        view
        returns (Trade memory t)
    {
        t = s.getOpenTrade(trader, pairIndex, index);
        if (t.leverage == 0) revert NoTradeFound(trader, pairIndex, index);
    }

    function _checkTpSl(bool buy, uint256 price, uint256 tp, uint256 sl) internal pure {
        if (tp != 0 && (buy ? tp <= price : tp >= price)) revert WrongTP();
        if (sl != 0 && (buy ? sl >= price : sl <= price)) revert WrongSL();
    }

    // ----- governance -----

    function pause() external onlyGov {
        isPaused = !isPaused;
        emit Paused(isPaused);
    }

    function setMaxAllowedCollateral(uint256 value) external onlyGov {
        maxAllowedCollateral = value;
        emit MaxAllowedCollateralUpdated(value);
    }

    function setMarketOrdersTimeout(uint256 value) external onlyGov {
        if (value == 0 || value > type(uint16).max) revert WrongParams();
        marketOrdersTimeout = uint16(value);
        emit MarketOrdersTimeoutUpdated(uint16(value));
    }

    function setTriggerTimeout(uint256 value) external onlyGov {
        if (value == 0 || value > type(uint16).max) revert WrongParams();
        triggerTimeout = uint16(value);
        emit TriggerTimeoutUpdated(uint16(value));
    }

    // ----- delegation -----

    function setDelegate(address delegate) external {
        if (_delegatedTrader != address(0)) revert DelegateForbidden();
        if (delegate == address(0)) revert NullAddr();
        delegations[msg.sender] = delegate;
        emit DelegateAdded(msg.sender, delegate);
    }

    function removeDelegate() external {
        if (_delegatedTrader != address(0)) revert DelegateForbidden();
        address delegate = delegations[msg.sender];
        if (delegate == address(0)) revert NoDelegate(msg.sender);
        delete delegations[msg.sender];
        emit DelegateRemoved(msg.sender, delegate);
    }

    function delegatedAction(address trader, bytes calldata call_data) external returns (bytes memory) {
        if (_delegatedTrader != address(0)) revert DelegateReentrant();
        address delegate = delegations[trader];
        if (delegate == address(0)) revert NoDelegate(trader);
        if (delegate != msg.sender) revert NotDelegate(trader, msg.sender);
        if (call_data.length < 4) revert InvalidCallData();
        bytes4 selector = bytes4(call_data[:4]);
        if (
            selector == this.setDelegate.selector || selector == this.removeDelegate.selector
                || selector == this.delegatedAction.selector
        ) revert DelegateForbidden();

        _delegatedTrader = trader;
        (bool ok, bytes memory result) = address(this).delegatecall(call_data);
        _delegatedTrader = address(0);
        if (!ok) {
            if (result.length > 0) {
                assembly {
                    revert(add(result, 32), mload(result))
                }
            }
            revert DelegatedActionFailed();
        }
        return result;
    }

    // ----- opening -----

    function openTrade(Trade memory t, BuilderFee calldata bf, uint8 orderType, uint256 slippageP) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Pair memory p = _pair(s, t.pairIndex);

        if (orderType > 2) revert WrongParams();
        if (t.openPrice == 0 || t.collateral == 0) revert WrongParams();
        if (t.collateral > maxAllowedCollateral) revert AboveMaxAllowedCollateral();
        if (t.leverage < p.minLeverage || t.leverage > p.maxLeverage) revert WrongLeverage(t.leverage);
        if (t.collateral * t.leverage / 100 < p.minLevPos) revert BelowMinLevPos();
        if (bf.builderFee > 500000) revert WrongParams();
        _checkTpSl(t.buy, t.openPrice, t.tp, t.sl);
        if (
            s.openTradesCount(sender, t.pairIndex) + s.pendingMarketOpenCount(sender, t.pairIndex)
                + s.openLimitOrdersCount(sender, t.pairIndex) >= s.maxTradesPerPair()
        ) revert MaxTradesPerPairReached(sender, t.pairIndex);

        t.trader = sender;
        s.transferUsdc(sender, address(s), t.collateral);

        if (orderType == 0) {
            if (s.pendingOrderIdsCount(sender) >= s.maxPendingMarketOrders()) {
                revert MaxPendingMarketOrdersReached(sender);
            }
            t.index = 0;
            uint256 orderId = _oracle().requestPrice(REQ_MARKET_OPEN, t.pairIndex, p.feed);
            s.storePendingMarketOrder(
                PendingMarketOrderV2(block.number, t.openPrice, uint32(slippageP), t, 0), orderId, true, bf
            );
            emit MarketOpenOrderInitiated(orderId, sender, t.pairIndex);
        } else {
            uint8 index = s.firstEmptyOpenLimitIndex(sender, t.pairIndex);
            t.index = index;
            s.storeOpenLimitOrder(
                OpenLimitOrder(
                    t.collateral,
                    t.openPrice,
                    t.tp,
                    t.sl,
                    sender,
                    t.leverage,
                    uint32(block.timestamp),
                    uint32(block.timestamp),
                    t.pairIndex,
                    orderType,
                    index,
                    t.buy,
                    t.isDayTrade
                ),
                bf
            );
            emit OpenLimitPlacedV2(sender, t.pairIndex, index, t, orderType, bf);
        }
    }

    function openTradeMarketTimeout(uint256 _order) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        PendingMarketOrderV2 memory o = s.getPendingMarketOrder(_order);
        if (o.block == 0) revert NoTradeToTimeoutFound(_order);
        if (!s.pendingMarketOrderIsOpen(_order)) revert NotOpenMarketTimeoutOrder(_order);
        if (o.trade.trader != sender) revert NotYourOrder(_order, sender);
        if (block.number < o.block + marketOrdersTimeout) revert WaitTimeout(_order);

        s.unregisterPendingMarketOrder(_order, true);
        _oracle().cancelRequest(_order);
        s.transferUsdc(address(s), sender, o.trade.collateral);
        emit MarketOpenTimeoutExecutedV2(_order, o);
    }

    // ----- limit orders -----

    function cancelOpenLimitOrder(uint16 pairIndex, uint8 index) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        if (!s.hasOpenLimitOrder(sender, pairIndex, index)) revert NoLimitFound(sender, pairIndex, index);
        if (s.pendingOrderForLimit(sender, pairIndex, index) != 0) revert TriggerPending(sender, pairIndex, index);
        OpenLimitOrder memory o = s.getOpenLimitOrder(sender, pairIndex, index);
        s.unregisterOpenLimitOrder(sender, pairIndex, index);
        s.transferUsdc(address(s), sender, o.collateral);
        emit OpenLimitCanceled(sender, pairIndex, index);
    }

    function updateOpenLimitOrder(uint16 pairIndex, uint8 index, uint192 price, uint192 tp, uint192 sl)
        external
        notPaused
    {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        if (!s.hasOpenLimitOrder(sender, pairIndex, index)) revert NoLimitFound(sender, pairIndex, index);
        if (s.pendingOrderForLimit(sender, pairIndex, index) != 0) revert TriggerPending(sender, pairIndex, index);
        OpenLimitOrder memory o = s.getOpenLimitOrder(sender, pairIndex, index);
        if (price == 0) revert WrongParams();
        _checkTpSl(o.buy, price, tp, sl);
        o.targetPrice = price;
        o.tp = tp;
        o.sl = sl;
        o.lastUpdated = uint32(block.timestamp);
        s.updateOpenLimitOrder(o);
        emit OpenLimitUpdated(sender, pairIndex, index, price, tp, sl);
    }

    // ----- open trade management -----

    function updateTp(uint16 pairIndex, uint8 index, uint192 newTp) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Trade memory t = _openTradeOf(s, sender, pairIndex, index);
        if (newTp != 0 && (t.buy ? newTp <= t.openPrice : newTp >= t.openPrice)) revert WrongTP();
        s.updateTp(sender, pairIndex, index, newTp);
        emit TpUpdated(s.getOpenTradeInfo(sender, pairIndex, index).tradeId, sender, pairIndex, index, newTp);
    }

    function updateSl(uint16 pairIndex, uint8 index, uint192 newSl) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Trade memory t = _openTradeOf(s, sender, pairIndex, index);
        if (newSl != 0 && t.tp != 0 && (t.buy ? newSl >= t.tp : newSl <= t.tp)) revert WrongSL();
        s.updateSl(sender, pairIndex, index, newSl);
        emit SlUpdated(s.getOpenTradeInfo(sender, pairIndex, index).tradeId, sender, pairIndex, index, newSl);
    }

    function topUpCollateral(uint16 pairIndex, uint8 index, uint256 topUpAmount) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Trade memory t = _openTradeOf(s, sender, pairIndex, index);
        if (topUpAmount == 0) revert WrongParams();
        if (t.collateral + topUpAmount > maxAllowedCollateral) revert AboveMaxAllowedCollateral();
        Pair memory p = s.getPair(pairIndex);
        uint256 newCollateral = t.collateral + topUpAmount;
        uint32 newLeverage = uint32(t.collateral * t.leverage / newCollateral);
        if (newLeverage < p.minLeverage) revert WrongLeverage(newLeverage);
        s.transferUsdc(sender, address(s), topUpAmount);
        t.collateral = newCollateral;
        t.leverage = newLeverage;
        s.updateTrade(t);
        emit TopUpCollateralExecuted(
            s.getOpenTradeInfo(sender, pairIndex, index).tradeId, sender, pairIndex, topUpAmount, newLeverage
        );
    }

    function removeCollateral(uint16 pairIndex, uint8 index, uint256 removeAmount) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Trade memory t = _openTradeOf(s, sender, pairIndex, index);
        if (removeAmount == 0 || removeAmount >= t.collateral) revert WrongParams();
        if (s.pendingOrderFor(sender, pairIndex, index) != 0) revert AlreadyMarketClosed(sender, pairIndex, index);
        Pair memory p = s.getPair(pairIndex);
        uint256 newLeverage = t.collateral * t.leverage / (t.collateral - removeAmount);
        if (newLeverage > p.maxLeverage) revert WrongLeverage(uint32(newLeverage));
        uint256 orderId = _oracle().requestPrice(REQ_REMOVE_COLLATERAL, pairIndex, p.feed);
        s.storePendingRemoveCollateral(PendingRemoveCollateral(removeAmount, sender, pairIndex, index, block.number), orderId);
        emit RemoveCollateralInitiated(
            s.getOpenTradeInfo(sender, pairIndex, index).tradeId, orderId, sender, pairIndex, removeAmount
        );
    }

    // ----- closing -----

    function closeTradeMarket(uint16 pairIndex, uint8 index, uint16 closePercentage, uint192 marketPrice, uint32 slippageP)
        external
        notPaused
    {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        Trade memory t = _openTradeOf(s, sender, pairIndex, index);
        if (closePercentage == 0 || closePercentage > 10000) revert WrongParams();
        if (s.pendingOrderFor(sender, pairIndex, index) != 0) revert AlreadyMarketClosed(sender, pairIndex, index);
        _requestClose(s, t, closePercentage, marketPrice, slippageP);
    }

    function _requestClose(
        IOstiumTradingStorage s,
        Trade memory t,
        uint16 closePercentage,
        uint192 marketPrice,
        uint32 slippageP
    ) internal {
        Pair memory p = s.getPair(t.pairIndex);
        uint256 orderId = _oracle().requestPrice(REQ_MARKET_CLOSE, t.pairIndex, p.feed);
        s.storePendingMarketOrder(
            PendingMarketOrderV2(block.number, marketPrice, slippageP, t, closePercentage),
            orderId,
            false,
            BuilderFee(address(0), 0)
        );
        emit MarketCloseOrderInitiatedV2(
            orderId, s.getOpenTradeInfo(t.trader, t.pairIndex, t.index).tradeId, t.trader, t.pairIndex, closePercentage
        );
    }

    function closeTradeMarketTimeout(uint256 _order, bool retry) external notPaused {
        IOstiumTradingStorage s = _storage();
        address sender = _msgSender();
        PendingMarketOrderV2 memory o = s.getPendingMarketOrder(_order);
        if (o.block == 0) revert NoTradeToTimeoutFound(_order);
        if (s.pendingMarketOrderIsOpen(_order)) revert NotCloseMarketTimeoutOrder(_order);
        if (o.trade.trader != sender) revert NotYourOrder(_order, sender);
        if (block.number < o.block + marketOrdersTimeout) revert WaitTimeout(_order);

        uint256 tradeId = s.getOpenTradeInfo(sender, o.trade.pairIndex, o.trade.index).tradeId;
        s.unregisterPendingMarketOrder(_order, false);
        _oracle().cancelRequest(_order);
        emit MarketCloseTimeoutExecutedV2(_order, tradeId, o);
        if (retry) {
            Trade memory t = _openTradeOf(s, sender, o.trade.pairIndex, o.trade.index);
            _requestClose(s, t, o.percentage, o.wantedPrice, o.slippageP);
        }
    }

    // ----- keeper -----

    /// Called by the trades keeper when a limit/stop, TP, SL or liquidation
    /// condition is met; the callbacks re-check it at the oracle price.
    function executeAutomationOrder(uint8 orderType, address trader, uint16 pairIndex, uint8 index, uint256 priceTimestamp)
        external
        notPaused
        returns (uint8)
    {
        if (msg.sender != registry.getContractAddress(NAME_TRADES_UPKEEP)) revert NotTradesUpKeep(msg.sender);
        if (orderType > AUTOMATION_OPEN) revert WrongParams();
        IOstiumTradingStorage s = _storage();
        Pair memory p = _pair(s, pairIndex);
        PendingAutomationOrder memory ao = PendingAutomationOrder(trader, pairIndex, index, orderType, priceTimestamp);

        if (orderType == AUTOMATION_OPEN) {
            if (!s.hasOpenLimitOrder(trader, pairIndex, index)) revert NoLimitFound(trader, pairIndex, index);
            if (s.pendingOrderForLimit(trader, pairIndex, index) != 0) revert TriggerPending(trader, pairIndex, index);
            uint256 orderId = _oracle().requestPrice(REQ_AUTOMATION_OPEN, pairIndex, p.feed);
            s.storePendingAutomationOrder(ao, orderId);
            emit AutomationOpenOrderInitiated(orderId, trader, pairIndex, index);
        } else {
            Trade memory t = _openTradeOf(s, trader, pairIndex, index);
            if (s.pendingOrderFor(trader, pairIndex, index) != 0) revert TriggerPending(trader, pairIndex, index);
            if ((orderType == AUTOMATION_TP && t.tp == 0) || (orderType == AUTOMATION_SL && t.sl == 0)) {
                revert WrongParams();
            }
            uint256 orderId = _oracle().requestPrice(REQ_AUTOMATION_CLOSE, pairIndex, p.feed);
            s.storePendingAutomationOrder(ao, orderId);
            emit AutomationCloseOrderInitiated(
                orderId, s.getOpenTradeInfo(trader, pairIndex, index).tradeId, trader, pairIndex, orderType
            );
        }
        return 0;
    }
}
