// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Data types shared by the localnet contracts. Field order and widths follow
// the structs in Ostium's published ABIs so that encoded calls and events are
// byte-compatible with the ostium-python-sdk.

struct Trade {
    uint256 collateral; // USDC, 1e6
    uint192 openPrice; // 1e18
    uint192 tp; // 1e18, 0 = none
    uint192 sl; // 1e18, 0 = none
    address trader;
    uint32 leverage; // 1e2 (1000 = 10x)
    uint16 pairIndex;
    uint8 index;
    bool buy;
    bool isDayTrade;
}

struct BuilderFee {
    address builder;
    uint32 builderFee; // 1e6 percent
}

struct TradeInfo {
    uint256 tradeId;
    uint256 oiNotional; // asset units, 1e18
    uint32 initialLeverage;
    uint32 tpLastUpdated;
    uint32 slLastUpdated;
    uint32 createdAt;
    bool deprecatedBeingMarketClosed;
}

struct OpenLimitOrder {
    uint256 collateral;
    uint192 targetPrice;
    uint192 tp;
    uint192 sl;
    address trader;
    uint32 leverage;
    uint32 createdAt;
    uint32 lastUpdated;
    uint16 pairIndex;
    uint8 orderType; // 1 = LIMIT, 2 = STOP
    uint8 index;
    bool buy;
    bool isDayTrade;
}

struct PendingMarketOrderV2 {
    uint256 block;
    uint192 wantedPrice;
    uint32 slippageP; // 1e2 percent (200 = 2%)
    Trade trade;
    uint16 percentage; // close percentage, 1e2 (10000 = 100%)
}

struct PendingAutomationOrder {
    address trader;
    uint16 pairIndex;
    uint8 index;
    uint8 orderType; // 0 TP, 1 SL, 2 LIQ, 3 OPEN
    uint256 priceTimestamp;
}

struct PendingRemoveCollateral {
    uint256 removeAmount;
    address trader;
    uint16 pairIndex;
    uint8 index;
    uint256 block;
}

struct PriceUpKeepAnswer {
    uint256 orderId;
    int192 price;
    int192 bid;
    int192 ask;
    bool isDayTradingClosed;
}

struct Pair {
    string from;
    string to;
    bytes32 feed;
    uint32 minLeverage; // 1e2
    uint32 maxLeverage; // 1e2
    uint256 minLevPos; // minimum position size, USDC 1e6
}

// Automation order types (executeAutomationOrder / LimitCloseExecuted)
uint8 constant AUTOMATION_TP = 0;
uint8 constant AUTOMATION_SL = 1;
uint8 constant AUTOMATION_LIQ = 2;
uint8 constant AUTOMATION_OPEN = 3;

// Price request kinds (PriceRequestedV2.orderType)
uint8 constant REQ_MARKET_OPEN = 0;
uint8 constant REQ_MARKET_CLOSE = 1;
uint8 constant REQ_AUTOMATION_OPEN = 2;
uint8 constant REQ_AUTOMATION_CLOSE = 3;
uint8 constant REQ_REMOVE_COLLATERAL = 4;

// Cancel reasons used in *Canceled events
uint8 constant CANCEL_NONE = 0;
uint8 constant CANCEL_MARKET_CLOSED = 1;
uint8 constant CANCEL_SLIPPAGE = 2;
uint8 constant CANCEL_TP_REACHED = 3;
uint8 constant CANCEL_SL_REACHED = 4;
uint8 constant CANCEL_MAX_TRADES = 5;
uint8 constant CANCEL_NO_TRADE = 6;
uint8 constant CANCEL_NOT_HIT = 7;
uint8 constant CANCEL_NO_LIMIT = 8;
uint8 constant CANCEL_CLOSE_PENDING = 9;
uint8 constant CANCEL_BAD_PRICE = 10;

bytes32 constant NAME_TRADING = "trading";
bytes32 constant NAME_STORAGE = "tradingStorage";
bytes32 constant NAME_CALLBACKS = "callbacks";
bytes32 constant NAME_PRICE_UPKEEP = "priceUpKeep";
bytes32 constant NAME_TRADES_UPKEEP = "tradesUpKeep";
bytes32 constant NAME_PRICE_KEEPER = "priceKeeper";
bytes32 constant NAME_USDC = "usdc";

uint256 constant PRECISION_6 = 1e6;
uint256 constant PRECISION_18 = 1e18;
int256 constant MAX_PROFIT_P = 900e6; // +900%, 1e6 percent
int256 constant LIQ_THRESHOLD_P = 90e6; // -90% of collateral, 1e6 percent

interface IRegistry {
    function gov() external view returns (address);
    function getContractAddress(bytes32 name) external view returns (address);
}

interface IERC20Min {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address a) external view returns (uint256);
}

interface IMintable {
    function mint(address to, uint256 amount) external returns (bool);
}
