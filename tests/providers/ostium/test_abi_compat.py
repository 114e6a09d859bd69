"""Our contracts must be ABI-compatible with everything ostium-python-sdk
calls, decodes or filters on."""

from __future__ import annotations

import pytest
from ostium_python_sdk.abi.callbacks_abi import callbacks_abi
from ostium_python_sdk.abi.faucet_testnet_abi import faucet_abi
from ostium_python_sdk.abi.trading_abi import trading_abi
from ostium_python_sdk.abi.trading_storage_abi import trading_storage_abi
from ostium_python_sdk.abi.usdc_abi import usdc_abi
from ostium_python_sdk.ostium import ORDER_SETTLED_EVENTS, PRICE_REQUESTED_V2_TOPIC, REGISTRY_ABI
from ostium_python_sdk.utils import fromErrorCodeToMessage
from web3 import Web3

from providers.ostium.localnet.artifacts import abi

TRADING_FUNCTIONS = [
    "openTrade",
    "closeTradeMarket",
    "updateTp",
    "updateSl",
    "cancelOpenLimitOrder",
    "updateOpenLimitOrder",
    "topUpCollateral",
    "removeCollateral",
    "openTradeMarketTimeout",
    "closeTradeMarketTimeout",
    "setDelegate",
    "removeDelegate",
    "delegations",
    "delegatedAction",
    "registry",
    "executeAutomationOrder",
    "_msgSender",
    "marketOrdersTimeout",
    "maxAllowedCollateral",
]
TRADING_EVENTS = [
    "MarketOpenOrderInitiated",
    "MarketCloseOrderInitiatedV2",
    "AutomationOpenOrderInitiated",
    "AutomationCloseOrderInitiated",
    "DelegateAdded",
    "DelegateRemoved",
    "OpenLimitPlacedV2",
    "OpenLimitCanceled",
    "OpenLimitUpdated",
    "TpUpdated",
    "SlUpdated",
    "TopUpCollateralExecuted",
    "RemoveCollateralInitiated",
    "MarketOpenTimeoutExecutedV2",
    "MarketCloseTimeoutExecutedV2",
]
# MarketCloseExecuted (V1) is only decoded for old deployments; we emit V2.
CALLBACK_EVENTS = [e for e in ORDER_SETTLED_EVENTS if e != "MarketCloseExecuted"] + [
    "RemoveCollateralExecuted",
    "RemoveCollateralRejected",
]
CALLBACK_FUNCTIONS = [
    "openTradeMarketCallback",
    "closeTradeMarketCallback",
    "executeAutomationOpenOrderCallback",
    "executeAutomationCloseOrderCallback",
    "handleRemoveCollateral",
]
STORAGE_FUNCTIONS = [
    "getOpenLimitOrder",
    "getOpenTrade",
    "getOpenTradeInfo",
    "getPendingOrderIds",
    "reqID_pendingMarketOrder",
    "usdc",
    "registry",
    "hasOpenLimitOrder",
    "openTradesCount",
    "openLimitOrdersCount",
    "totalOpenTradesCount",
    "firstEmptyTradeIndex",
    "firstEmptyOpenLimitIndex",
    "maxTradesPerPair",
    "maxPendingMarketOrders",
]
USDC_FUNCTIONS = ["allowance", "approve", "transfer", "transferFrom", "balanceOf", "decimals", "mint", "totalSupply"]
FAUCET_FUNCTIONS = ["requestTokens", "tokenAmount", "nextRequestTime", "token", "waitTime", "amount"]


def _type(item) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


def _sig(item) -> str:
    return f"{item['name']}({','.join(_type(i) for i in item['inputs'])})"


def _find(entries, kind, name):
    found = [e for e in entries if e["type"] == kind and e.get("name") == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} entries"
    return found[0]


def _check_function(sdk_abi, ours, name):
    theirs, mine = _find(sdk_abi, "function", name), _find(ours, "function", name)
    assert _sig(mine) == _sig(theirs)
    assert Web3.keccak(text=_sig(mine))[:4] == Web3.keccak(text=_sig(theirs))[:4]
    assert [_type(o) for o in mine["outputs"]] == [_type(o) for o in theirs["outputs"]], name
    view = {"view", "pure"}
    assert (mine["stateMutability"] in view) == (theirs["stateMutability"] in view), name


def _check_event(sdk_abi, ours, name):
    theirs, mine = _find(sdk_abi, "event", name), _find(ours, "event", name)
    assert _sig(mine) == _sig(theirs)
    assert [i["indexed"] for i in mine["inputs"]] == [i["indexed"] for i in theirs["inputs"]], name
    assert mine.get("anonymous", False) == theirs.get("anonymous", False)


@pytest.mark.parametrize("name", TRADING_FUNCTIONS)
def test_trading_functions(name):
    _check_function(trading_abi, abi("OstiumTrading"), name)


@pytest.mark.parametrize("name", TRADING_EVENTS)
def test_trading_events(name):
    _check_event(trading_abi, abi("OstiumTrading"), name)


@pytest.mark.parametrize("name", CALLBACK_EVENTS)
def test_callback_events(name):
    _check_event(callbacks_abi, abi("OstiumTradingCallbacks"), name)


@pytest.mark.parametrize("name", CALLBACK_FUNCTIONS)
def test_callback_functions(name):
    _check_function(callbacks_abi, abi("OstiumTradingCallbacks"), name)


@pytest.mark.parametrize("name", STORAGE_FUNCTIONS)
def test_storage_functions(name):
    _check_function(trading_storage_abi, abi("OstiumTradingStorage"), name)


@pytest.mark.parametrize("name", USDC_FUNCTIONS)
def test_usdc_functions(name):
    _check_function(usdc_abi, abi("MockUSDC"), name)


@pytest.mark.parametrize("name", ["Transfer", "Approval", "Mint"])
def test_usdc_events(name):
    _check_event(usdc_abi, abi("MockUSDC"), name)


@pytest.mark.parametrize("name", FAUCET_FUNCTIONS)
def test_faucet_functions(name):
    _check_function(faucet_abi, abi("OstiumFaucet"), name)


def test_registry_lookup():
    _check_function(REGISTRY_ABI, abi("OstiumRegistry"), "getContractAddress")


def test_price_requested_v2_topic():
    event = _find(abi("OstiumPriceUpKeep"), "event", "PriceRequestedV2")
    assert Web3.keccak(text=_sig(event)) == PRICE_REQUESTED_V2_TOPIC
    assert [i["indexed"] for i in event["inputs"]] == [True, False, False, False]


@pytest.mark.parametrize(
    "contract,sdk_abi",
    [
        ("OstiumTrading", trading_abi),
        ("OstiumTradingCallbacks", callbacks_abi),
        ("OstiumTradingStorage", trading_storage_abi),
        ("OstiumFaucet", faucet_abi),
    ],
)
def test_errors_match_sdk_abi(contract, sdk_abi):
    sdk_errors = {e["name"]: _sig(e) for e in sdk_abi if e["type"] == "error"}
    for err in abi(contract):
        if err["type"] == "error" and err["name"] in sdk_errors:
            assert _sig(err) == sdk_errors[err["name"]]


def test_sdk_error_decoder_knows_our_trading_errors():
    """The SDK maps revert selectors to names (utils.fromErrorCodeToMessage);
    every trading error it knows must be raised with the same selector."""
    ours = {e["name"]: _sig(e) for name in ("OstiumTrading", "OstiumFaucet") for e in abi(name) if e["type"] == "error"}
    known = [
        "AboveMaxAllowedCollateral",
        "AlreadyMarketClosed",
        "BelowMinLevPos",
        "DelegatedActionFailed",
        "ExposureLimits",
        "IsContract",
        "IsDone",
        "IsPaused",
        "MaxPendingMarketOrdersReached",
        "MaxTradesPerPairReached",
        "NoDelegate",
        "NoLimitFound",
        "NoTradeFound",
        "NoTradeToTimeoutFound",
        "NotCloseMarketTimeoutOrder",
        "NotDelegate",
        "NotGov",
        "NotOpenMarketTimeoutOrder",
        "NotTradesUpKeep",
        "NotWhitelisted",
        "NotYourOrder",
        "NullAddr",
        "PairNotListed",
        "TriggerPending",
        "WaitTimeout",
        "WrongLeverage",
        "WrongParams",
        "WrongSL",
        "WrongTP",
    ]
    for name in known:
        sig = ours[name]
        selector = Web3.keccak(text=sig)[:4].hex()
        decoded, _ = fromErrorCodeToMessage(f"execution reverted: 0x{selector}")
        assert decoded == sig, name
