// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";

interface IOstiumTradingStorage {
    function usdc() external view returns (address);
    function maxTradesPerPair() external view returns (uint8);
    function maxPendingMarketOrders() external view returns (uint8);
    function pairsCount() external view returns (uint256);
    function getPair(uint16 pairIndex) external view returns (Pair memory);
    function transferUsdc(address from, address to, uint256 amount) external;
    function firstEmptyTradeIndex(address trader, uint16 pairIndex) external view returns (uint8);
    function getOpenTrade(address trader, uint16 pairIndex, uint8 index) external view returns (Trade memory);
    function getOpenTradeInfo(address trader, uint16 pairIndex, uint8 index) external view returns (TradeInfo memory);
    function openTradesCount(address trader, uint16 pairIndex) external view returns (uint32);
    function storeTrade(Trade memory t, TradeInfo memory info) external;
    function updateTrade(Trade memory t) external;
    function updateTradeInfo(address trader, uint16 pairIndex, uint8 index, TradeInfo memory info) external;
    function updateTp(address trader, uint16 pairIndex, uint8 index, uint256 newTp) external;
    function updateSl(address trader, uint16 pairIndex, uint8 index, uint256 newSl) external;
    function unregisterTrade(address trader, uint16 pairIndex, uint8 index) external;
    function firstEmptyOpenLimitIndex(address trader, uint16 pairIndex) external view returns (uint8);
    function hasOpenLimitOrder(address trader, uint16 pairIndex, uint8 index) external view returns (bool);
    function getOpenLimitOrder(address trader, uint16 pairIndex, uint8 index)
        external
        view
        returns (OpenLimitOrder memory);
    function openLimitOrdersCount(address trader, uint16 pairIndex) external view returns (uint8);
    function storeOpenLimitOrder(OpenLimitOrder memory o, BuilderFee memory bf) external;
    function updateOpenLimitOrder(OpenLimitOrder memory o) external;
    function unregisterOpenLimitOrder(address trader, uint16 pairIndex, uint8 index) external;
    function pendingOrderIdsCount(address trader) external view returns (uint256);
    function pendingMarketOpenCount(address trader, uint16 pairIndex) external view returns (uint8);
    function getPendingMarketOrder(uint256 orderId) external view returns (PendingMarketOrderV2 memory);
    function pendingMarketOrderIsOpen(uint256 orderId) external view returns (bool);
    function storePendingMarketOrder(PendingMarketOrderV2 memory o, uint256 id, bool open, BuilderFee memory bf)
        external;
    function unregisterPendingMarketOrder(uint256 id, bool open) external;
    function pendingOrderFor(address trader, uint16 pairIndex, uint8 index) external view returns (uint256);
    function pendingOrderForLimit(address trader, uint16 pairIndex, uint8 index) external view returns (uint256);
    function getPendingAutomationOrder(uint256 orderId) external view returns (PendingAutomationOrder memory);
    function storePendingAutomationOrder(PendingAutomationOrder memory o, uint256 orderId) external;
    function unregisterPendingAutomationOrder(uint256 orderId) external;
    function getPendingRemoveCollateral(uint256 orderId) external view returns (PendingRemoveCollateral memory);
    function storePendingRemoveCollateral(PendingRemoveCollateral memory o, uint256 orderId) external;
    function unregisterPendingRemoveCollateral(uint256 orderId) external;
}

interface IOstiumPriceUpKeep {
    function requestPrice(uint8 kind, uint16 pairIndex, bytes32 feedId) external returns (uint256);
    function cancelRequest(uint256 orderId) external;
}
