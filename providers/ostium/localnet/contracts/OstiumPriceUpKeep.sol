// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import "./OstiumTypes.sol";

interface ICallbacks {
    function openTradeMarketCallback(PriceUpKeepAnswer calldata a) external;
    function closeTradeMarketCallback(PriceUpKeepAnswer calldata a) external;
    function executeAutomationOpenOrderCallback(PriceUpKeepAnswer calldata a) external;
    function executeAutomationCloseOrderCallback(PriceUpKeepAnswer calldata a) external;
    function handleRemoveCollateral(PriceUpKeepAnswer calldata a) external;
}

/// Oracle front: Trading requests a price for every order (PriceRequestedV2,
/// orderId indexed); the off-chain price keeper answers through fulfill(),
/// which forwards the answer to the matching TradingCallbacks function.
contract OstiumPriceUpKeep {
    error NotGov(address a);
    error NotTrading(address a);
    error NotPriceKeeper(address a);
    error UnknownOrder(uint256 orderId);

    event PriceRequestedV2(uint256 indexed orderId, uint8 orderType, bytes32 feedId, uint256 timestamp);
    event PriceRequestCanceled(uint256 indexed orderId);
    event PriceFulfilled(uint256 indexed orderId, int192 price);

    struct Request {
        uint8 kind;
        uint16 pairIndex;
        bool exists;
    }

    IRegistry public immutable registry;
    uint256 public currentOrderId;
    mapping(uint256 => Request) public requests;
    uint256[] private _pending;
    mapping(uint256 => uint256) private _pendingPos; // 1-based

    constructor(address _registry) {
        registry = IRegistry(_registry);
    }

    function requestPrice(uint8 kind, uint16 pairIndex, bytes32 feedId) external returns (uint256 orderId) {
        if (msg.sender != registry.getContractAddress(NAME_TRADING)) revert NotTrading(msg.sender);
        orderId = ++currentOrderId;
        requests[orderId] = Request(kind, pairIndex, true);
        _pending.push(orderId);
        _pendingPos[orderId] = _pending.length;
        emit PriceRequestedV2(orderId, kind, feedId, block.timestamp);
    }

    function cancelRequest(uint256 orderId) external {
        if (msg.sender != registry.getContractAddress(NAME_TRADING)) revert NotTrading(msg.sender);
        if (requests[orderId].exists) {
            _remove(orderId);
            emit PriceRequestCanceled(orderId);
        }
    }

    function fulfill(PriceUpKeepAnswer calldata a) external {
        if (msg.sender != registry.getContractAddress(NAME_PRICE_KEEPER)) revert NotPriceKeeper(msg.sender);
        Request memory r = requests[a.orderId];
        if (!r.exists) revert UnknownOrder(a.orderId);
        _remove(a.orderId);
        emit PriceFulfilled(a.orderId, a.price);
        ICallbacks cb = ICallbacks(registry.getContractAddress(NAME_CALLBACKS));
        if (r.kind == REQ_MARKET_OPEN) cb.openTradeMarketCallback(a);
        else if (r.kind == REQ_MARKET_CLOSE) cb.closeTradeMarketCallback(a);
        else if (r.kind == REQ_AUTOMATION_OPEN) cb.executeAutomationOpenOrderCallback(a);
        else if (r.kind == REQ_AUTOMATION_CLOSE) cb.executeAutomationCloseOrderCallback(a);
        else cb.handleRemoveCollateral(a);
    }

    function getPendingRequests()
        external
        view
        returns (uint256[] memory ids, uint8[] memory kinds, uint16[] memory pairIndexes)
    {
        uint256 n = _pending.length;
        ids = new uint256[](n);
        kinds = new uint8[](n);
        pairIndexes = new uint16[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 id = _pending[i];
            ids[i] = id;
            kinds[i] = requests[id].kind;
            pairIndexes[i] = requests[id].pairIndex;
        }
    }

    function _remove(uint256 orderId) internal {
        uint256 pos = _pendingPos[orderId];
        uint256 last = _pending.length;
        if (pos != last) {
            uint256 moved = _pending[last - 1];
            _pending[pos - 1] = moved;
            _pendingPos[moved] = pos;
        }
        _pending.pop();
        delete _pendingPos[orderId];
        delete requests[orderId];
    }
}
