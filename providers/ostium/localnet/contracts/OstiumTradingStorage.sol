// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";

/// Holds all trading state and custody of traders' USDC (traders approve
/// this contract). Only Trading and TradingCallbacks may mutate it.
contract OstiumTradingStorage {
    error NotGov(address a);
    error NotTrading(address a);
    error NotCallbacks(address a);
    error NotTradingOrCallbacks(address a);
    error NullAddr();
    error WrongParams();
    error NoOpenLimitOrder(address trader, uint16 pairIndex, uint8 index);
    error NotEmptyIndex();

    event PairListed(
        uint16 indexed pairIndex, string from, string to, bytes32 feed, uint32 minLeverage, uint32 maxLeverage,
        uint256 minLevPos
    );
    event MaxTradesPerPairUpdated(uint256 value);
    event MaxPendingMarketOrdersUpdated(uint256 value);

    struct Key {
        address trader;
        uint16 pairIndex;
        uint8 index;
    }

    IRegistry public immutable registry;
    address public immutable usdc;

    uint8 public maxTradesPerPair = 10;
    uint8 public maxPendingMarketOrders = 10;
    uint32 public totalOpenTradesCount;

    Pair[] private _pairs;

    mapping(address => mapping(uint16 => mapping(uint8 => Trade))) public openTrades;
    mapping(address => mapping(uint16 => mapping(uint8 => TradeInfo))) internal openTradesInfo;
    mapping(address => mapping(uint16 => uint32)) public openTradesCount;

    mapping(address => mapping(uint16 => mapping(uint8 => OpenLimitOrder))) private _limits;
    mapping(address => mapping(uint16 => mapping(uint8 => bool))) private _hasLimit;
    mapping(address => mapping(uint16 => uint8)) public openLimitOrdersCount;
    mapping(uint16 => uint256) public totalOpenLimitOrders;

    mapping(uint256 => PendingMarketOrderV2) public reqID_pendingMarketOrder;
    mapping(uint256 => bool) public pendingMarketOrderIsOpen;
    mapping(uint256 => PendingAutomationOrder) internal reqID_pendingAutomationOrder;
    mapping(uint256 => PendingRemoveCollateral) internal reqID_pendingRemoveCollateral;
    mapping(uint256 => uint256) public pendingMarketCloseTradeIds;
    mapping(address => mapping(uint16 => uint8)) public pendingMarketOpenCount;
    mapping(address => mapping(uint16 => uint8)) public pendingMarketCloseCount;
    mapping(address => uint256[]) private _pendingOrderIds;
    // trade/limit key => pending order id (close or automation), 0 = none
    mapping(bytes32 => uint256) public pendingOrderOf;

    Key[] private _tradeKeys;
    mapping(bytes32 => uint256) private _tradeKeyPos; // 1-based
    Key[] private _limitKeys;
    mapping(bytes32 => uint256) private _limitKeyPos; // 1-based

    constructor(address _registry, address _usdc) {
        if (_registry == address(0) || _usdc == address(0)) revert NullAddr();
        registry = IRegistry(_registry);
        usdc = _usdc;
    }

    // ----- access control -----

    modifier onlyGov() {
        if (msg.sender != registry.gov()) revert NotGov(msg.sender);
        _;
    }

    modifier onlyTrading() {
        if (msg.sender != registry.getContractAddress(NAME_TRADING)) revert NotTrading(msg.sender);
        _;
    }

    modifier onlyTradingOrCallbacks() {
        if (
            msg.sender != registry.getContractAddress(NAME_TRADING)
                && msg.sender != registry.getContractAddress(NAME_CALLBACKS)
        ) revert NotTradingOrCallbacks(msg.sender);
        _;
    }

    // ----- governance -----

    function addPair(
        string calldata from,
        string calldata to,
        bytes32 feed,
        uint32 minLeverage,
        uint32 maxLeverage,
        uint256 minLevPos
    ) external onlyGov {
        if (minLeverage == 0 || maxLeverage < minLeverage) revert WrongParams();
        _pairs.push(Pair(from, to, feed, minLeverage, maxLeverage, minLevPos));
        emit PairListed(uint16(_pairs.length - 1), from, to, feed, minLeverage, maxLeverage, minLevPos);
    }

    function setMaxTradesPerPair(uint256 value) external onlyGov {
        if (value == 0 || value > 255) revert WrongParams();
        maxTradesPerPair = uint8(value);
        emit MaxTradesPerPairUpdated(value);
    }

    function setMaxPendingMarketOrders(uint256 value) external onlyGov {
        if (value == 0 || value > 255) revert WrongParams();
        maxPendingMarketOrders = uint8(value);
        emit MaxPendingMarketOrdersUpdated(value);
    }

    // ----- pairs -----

    function pairsCount() external view returns (uint256) {
        return _pairs.length;
    }

    function getPair(uint16 pairIndex) external view returns (Pair memory) {
        return _pairs[pairIndex];
    }

    // ----- USDC custody -----

    function transferUsdc(address from, address to, uint256 amount) external onlyTradingOrCallbacks {
        if (amount == 0) return;
        if (from == address(this)) {
            require(IERC20Min(usdc).transfer(to, amount), "USDC transfer failed");
        } else {
            require(IERC20Min(usdc).transferFrom(from, to, amount), "USDC transferFrom failed");
        }
    }

    // ----- trades -----

    function _key(address trader, uint16 pairIndex, uint8 index) internal pure returns (bytes32) {
        return keccak256(abi.encode(trader, pairIndex, index));
    }

    function firstEmptyTradeIndex(address trader, uint16 pairIndex) public view returns (uint8) {
        for (uint8 i = 0; i < maxTradesPerPair; i++) {
            if (openTrades[trader][pairIndex][i].leverage == 0) return i;
        }
        return 0;
    }

    function getOpenTrade(address _trader, uint16 _pairIndex, uint8 _index) external view returns (Trade memory) {
        return openTrades[_trader][_pairIndex][_index];
    }

    function getOpenTradeInfo(address _trader, uint16 _pairIndex, uint8 _index)
        external
        view
        returns (TradeInfo memory)
    {
        return openTradesInfo[_trader][_pairIndex][_index];
    }

    function storeTrade(Trade memory t, TradeInfo memory info) external onlyTradingOrCallbacks {
        if (openTrades[t.trader][t.pairIndex][t.index].leverage != 0) revert NotEmptyIndex();
        openTrades[t.trader][t.pairIndex][t.index] = t;
        openTradesInfo[t.trader][t.pairIndex][t.index] = info;
        openTradesCount[t.trader][t.pairIndex]++;
        totalOpenTradesCount++;
        _tradeKeys.push(Key(t.trader, t.pairIndex, t.index));
        _tradeKeyPos[_key(t.trader, t.pairIndex, t.index)] = _tradeKeys.length;
    }

    function updateTrade(Trade memory t) external onlyTradingOrCallbacks {
        if (openTrades[t.trader][t.pairIndex][t.index].leverage == 0) revert WrongParams();
        openTrades[t.trader][t.pairIndex][t.index] = t;
    }

    function updateTradeInfo(address trader, uint16 pairIndex, uint8 index, TradeInfo memory info)
        external
        onlyTradingOrCallbacks
    {
        openTradesInfo[trader][pairIndex][index] = info;
    }

    function updateTp(address trader, uint16 pairIndex, uint8 index, uint256 newTp) external onlyTradingOrCallbacks {
        openTrades[trader][pairIndex][index].tp = uint192(newTp);
        openTradesInfo[trader][pairIndex][index].tpLastUpdated = uint32(block.number);
    }

    function updateSl(address trader, uint16 pairIndex, uint8 index, uint256 newSl) external onlyTradingOrCallbacks {
        openTrades[trader][pairIndex][index].sl = uint192(newSl);
        openTradesInfo[trader][pairIndex][index].slLastUpdated = uint32(block.number);
    }

    function unregisterTrade(address trader, uint16 pairIndex, uint8 index) external onlyTradingOrCallbacks {
        if (openTrades[trader][pairIndex][index].leverage == 0) return;
        delete openTrades[trader][pairIndex][index];
        delete openTradesInfo[trader][pairIndex][index];
        openTradesCount[trader][pairIndex]--;
        totalOpenTradesCount--;
        bytes32 k = _key(trader, pairIndex, index);
        uint256 pos = _tradeKeyPos[k];
        uint256 last = _tradeKeys.length;
        if (pos != last) {
            Key memory moved = _tradeKeys[last - 1];
            _tradeKeys[pos - 1] = moved;
            _tradeKeyPos[_key(moved.trader, moved.pairIndex, moved.index)] = pos;
        }
        _tradeKeys.pop();
        delete _tradeKeyPos[k];
    }

    /// All open trades (for keepers; the localnet is small).
    function getAllOpenTrades() external view returns (Trade[] memory trades) {
        trades = new Trade[](_tradeKeys.length);
        for (uint256 i = 0; i < _tradeKeys.length; i++) {
            Key memory k = _tradeKeys[i];
            trades[i] = openTrades[k.trader][k.pairIndex][k.index];
        }
    }

    // ----- limit orders -----

    function firstEmptyOpenLimitIndex(address trader, uint16 pairIndex) public view returns (uint8) {
        for (uint8 i = 0; i < maxTradesPerPair; i++) {
            if (!_hasLimit[trader][pairIndex][i]) return i;
        }
        return 0;
    }

    function hasOpenLimitOrder(address _trader, uint16 _pairIndex, uint8 _index) external view returns (bool) {
        return _hasLimit[_trader][_pairIndex][_index];
    }

    function getOpenLimitOrder(address _trader, uint16 _pairIndex, uint8 _index)
        external
        view
        returns (OpenLimitOrder memory)
    {
        if (!_hasLimit[_trader][_pairIndex][_index]) revert NoOpenLimitOrder(_trader, _pairIndex, _index);
        return _limits[_trader][_pairIndex][_index];
    }

    function storeOpenLimitOrder(OpenLimitOrder memory o, BuilderFee memory) external onlyTrading {
        if (_hasLimit[o.trader][o.pairIndex][o.index]) revert NotEmptyIndex();
        _limits[o.trader][o.pairIndex][o.index] = o;
        _hasLimit[o.trader][o.pairIndex][o.index] = true;
        openLimitOrdersCount[o.trader][o.pairIndex]++;
        totalOpenLimitOrders[o.pairIndex]++;
        _limitKeys.push(Key(o.trader, o.pairIndex, o.index));
        _limitKeyPos[_key(o.trader, o.pairIndex, o.index)] = _limitKeys.length;
    }

    function updateOpenLimitOrder(OpenLimitOrder memory o) external onlyTrading {
        if (!_hasLimit[o.trader][o.pairIndex][o.index]) revert NoOpenLimitOrder(o.trader, o.pairIndex, o.index);
        _limits[o.trader][o.pairIndex][o.index] = o;
    }

    function unregisterOpenLimitOrder(address _trader, uint16 _pairIndex, uint8 _index)
        external
        onlyTradingOrCallbacks
    {
        if (!_hasLimit[_trader][_pairIndex][_index]) revert NoOpenLimitOrder(_trader, _pairIndex, _index);
        delete _limits[_trader][_pairIndex][_index];
        delete _hasLimit[_trader][_pairIndex][_index];
        openLimitOrdersCount[_trader][_pairIndex]--;
        totalOpenLimitOrders[_pairIndex]--;
        bytes32 k = _key(_trader, _pairIndex, _index);
        uint256 pos = _limitKeyPos[k];
        uint256 last = _limitKeys.length;
        if (pos != last) {
            Key memory moved = _limitKeys[last - 1];
            _limitKeys[pos - 1] = moved;
            _limitKeyPos[_key(moved.trader, moved.pairIndex, moved.index)] = pos;
        }
        _limitKeys.pop();
        delete _limitKeyPos[k];
    }

    function getAllOpenLimitOrders() external view returns (OpenLimitOrder[] memory orders) {
        orders = new OpenLimitOrder[](_limitKeys.length);
        for (uint256 i = 0; i < _limitKeys.length; i++) {
            Key memory k = _limitKeys[i];
            orders[i] = _limits[k.trader][k.pairIndex][k.index];
        }
    }

    // ----- pending orders -----

    function getPendingOrderIds(address _trader) external view returns (uint256[] memory) {
        return _pendingOrderIds[_trader];
    }

    function pendingOrderIdsCount(address _trader) external view returns (uint256) {
        return _pendingOrderIds[_trader].length;
    }

    function _addPendingId(address trader, uint256 id) internal {
        _pendingOrderIds[trader].push(id);
    }

    function _removePendingId(address trader, uint256 id) internal {
        uint256[] storage ids = _pendingOrderIds[trader];
        for (uint256 i = 0; i < ids.length; i++) {
            if (ids[i] == id) {
                ids[i] = ids[ids.length - 1];
                ids.pop();
                return;
            }
        }
    }

    function getPendingMarketOrder(uint256 orderId) external view returns (PendingMarketOrderV2 memory) {
        return reqID_pendingMarketOrder[orderId];
    }

    function storePendingMarketOrder(PendingMarketOrderV2 memory o, uint256 _id, bool _open, BuilderFee memory)
        external
        onlyTrading
    {
        reqID_pendingMarketOrder[_id] = o;
        pendingMarketOrderIsOpen[_id] = _open;
        _addPendingId(o.trade.trader, _id);
        if (_open) {
            pendingMarketOpenCount[o.trade.trader][o.trade.pairIndex]++;
        } else {
            pendingMarketCloseCount[o.trade.trader][o.trade.pairIndex]++;
            pendingOrderOf[_key(o.trade.trader, o.trade.pairIndex, o.trade.index)] = _id;
            pendingMarketCloseTradeIds[_id] =
                openTradesInfo[o.trade.trader][o.trade.pairIndex][o.trade.index].tradeId;
        }
    }

    function unregisterPendingMarketOrder(uint256 _id, bool _open) external onlyTradingOrCallbacks {
        PendingMarketOrderV2 memory o = reqID_pendingMarketOrder[_id];
        if (o.block == 0) return;
        _removePendingId(o.trade.trader, _id);
        if (_open) {
            pendingMarketOpenCount[o.trade.trader][o.trade.pairIndex]--;
        } else {
            pendingMarketCloseCount[o.trade.trader][o.trade.pairIndex]--;
            delete pendingOrderOf[_key(o.trade.trader, o.trade.pairIndex, o.trade.index)];
            delete pendingMarketCloseTradeIds[_id];
        }
        delete reqID_pendingMarketOrder[_id];
        delete pendingMarketOrderIsOpen[_id];
    }

    function pendingOrderFor(address trader, uint16 pairIndex, uint8 index) external view returns (uint256) {
        return pendingOrderOf[_key(trader, pairIndex, index)];
    }

    function getPendingAutomationOrder(uint256 orderId) external view returns (PendingAutomationOrder memory) {
        return reqID_pendingAutomationOrder[orderId];
    }

    function _automationKey(PendingAutomationOrder memory o) internal pure returns (bytes32) {
        // limit orders and trades have separate index spaces
        return o.orderType == AUTOMATION_OPEN
            ? keccak256(abi.encode(o.trader, o.pairIndex, o.index, "limit"))
            : _key(o.trader, o.pairIndex, o.index);
    }

    function pendingOrderForLimit(address trader, uint16 pairIndex, uint8 index) external view returns (uint256) {
        return pendingOrderOf[keccak256(abi.encode(trader, pairIndex, index, "limit"))];
    }

    function storePendingAutomationOrder(PendingAutomationOrder memory o, uint256 orderId) external onlyTrading {
        reqID_pendingAutomationOrder[orderId] = o;
        pendingOrderOf[_automationKey(o)] = orderId;
    }

    function unregisterPendingAutomationOrder(uint256 orderId) external onlyTradingOrCallbacks {
        PendingAutomationOrder memory o = reqID_pendingAutomationOrder[orderId];
        if (o.trader == address(0)) return;
        delete pendingOrderOf[_automationKey(o)];
        delete reqID_pendingAutomationOrder[orderId];
    }

    function getPendingRemoveCollateral(uint256 orderId) external view returns (PendingRemoveCollateral memory) {
        return reqID_pendingRemoveCollateral[orderId];
    }

    function storePendingRemoveCollateral(PendingRemoveCollateral memory o, uint256 orderId) external onlyTrading {
        reqID_pendingRemoveCollateral[orderId] = o;
        pendingOrderOf[_key(o.trader, o.pairIndex, o.index)] = orderId;
    }

    function unregisterPendingRemoveCollateral(uint256 orderId) external onlyTradingOrCallbacks {
        PendingRemoveCollateral memory o = reqID_pendingRemoveCollateral[orderId];
        if (o.trader == address(0)) return;
        delete pendingOrderOf[_key(o.trader, o.pairIndex, o.index)];
        delete reqID_pendingRemoveCollateral[orderId];
    }
}
