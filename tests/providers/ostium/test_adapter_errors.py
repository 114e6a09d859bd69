"""The Ostium adapter against the localnet: every error class normalised, reverted
receipts, the kill switch and mainnet safeguards, and a timed-out write whose unknown
outcome is resolved from the chain without sending it twice."""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal as D

import pytest
from web3 import Web3

from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    OpenTradeRequest,
    Side,
    VenueException,
)
from providers.models import OstiumOrder

pytestmark = pytest.mark.django_db


def _open(key="k-1", **kw):
    values = {
        "idempotency_key": key,
        "account": "user:1",
        "symbol": "BTC-USD",
        "side": Side.LONG,
        "collateral": D("100"),
        "leverage": D("10"),
        "max_slippage": D("0.02"),
    }
    values.update(kw)
    return OpenTradeRequest(**values)


@pytest.fixture
def venue(ostium):
    from providers.ostium.adapter import OstiumVenue

    ostium.set_price("BTC-USD", "65000")
    return OstiumVenue()


def _send(net, fn, sender):
    params = {"from": sender, "maxPriorityFeePerGas": 0, "maxFeePerGas": 10**9}
    return net.w3.eth.wait_for_transaction_receipt(fn.transact(params))


def _signer_nonce(net):
    return net.w3.eth.get_transaction_count(net.traders[0].address)


def _settle(venue, key):
    return venue.get_order_status(idempotency_key=key)


# --- the happy path at adapter level (fills, positions, balances) ----------------------------------


def test_open_is_pending_then_filled_and_positions_and_balances_read_back(venue, ostium):
    result = venue.open_trade(_open(stop_loss=D("60000"), take_profit=D("70000")))
    assert result.status == ExecStatus.PENDING and result.venue_order_id and result.transaction_hash
    assert _settle(venue, "k-1").status == ExecStatus.PENDING
    ostium.run_keeper()
    filled = _settle(venue, "k-1")
    assert filled.status == ExecStatus.FILLED
    assert filled.fill.price == D("65000") and filled.pair_id == "0" and filled.trade_index == "0"
    assert filled.fill.size == D("15384615384615384") / D(10) ** 18
    [position] = venue.get_positions(account=ostium.traders[0].address)
    assert (position.symbol, position.side, position.collateral, position.leverage) == ("BTC-USD", Side.LONG, 100, 10)
    assert position.stop_loss == D("60000") and position.take_profit == D("70000")
    balances = venue.get_balances(account=ostium.traders[0].address)
    assert balances["USDC"] == ostium.usdc_balance(ostium.traders[0].address)
    markets = {m.symbol: m for m in venue.get_pairs()}
    assert markets["BTC-USD"].pair_id == "0" and markets["BTC-USD"].max_leverage > 0
    assert venue.get_price("BTC-USD").price == D("65000")


# --- error classes --------------------------------------------------------------------------------


def test_invalid_market(venue):
    result = venue.open_trade(_open(symbol="NOPE-USD"))
    assert result.status == ExecStatus.REJECTED and result.error.code == ErrorCode.INVALID_MARKET
    assert not OstiumOrder.objects.exists()


def test_market_closed(venue, ostium):
    ostium.prices.set_market_open("BTC-USD", False)
    result = venue.open_trade(_open())
    assert result.error.code == ErrorCode.MARKET_CLOSED and not result.error.retryable


def test_insufficient_balance(venue, ostium):
    balance = ostium.usdc_balance(ostium.traders[0].address)
    result = venue.open_trade(_open(collateral=balance + 1))
    assert result.error.code == ErrorCode.INSUFFICIENT_BALANCE


def test_insufficient_gas(ostium, settings, tmp_path):
    from providers.ostium.adapter import OstiumVenue

    account = Web3().eth.account.create()
    ostium.fund(account.address, usdc=500)  # USDC, but no ETH
    key = tmp_path / "poor.key"
    key.write_text(account.key.hex())
    settings.OSTIUM_TRADER_KEY_FILE = str(key)
    result = OstiumVenue().open_trade(_open())
    assert result.error.code == ErrorCode.INSUFFICIENT_GAS


def test_delegate_not_set_and_insufficient_allowance(venue, ostium):
    stranger = ostium.traders[5]
    result = venue.open_trade(_open(account=stranger.address, delegated=True))
    assert result.error.code == ErrorCode.DELEGATE_NOT_SET
    # delegated, but no USDC allowance for Ostium
    trading = ostium.contract("trading")
    _send(ostium, trading.functions.setDelegate(ostium.traders[0].address), stranger.address)
    _send(ostium, ostium.contract("usdc").functions.approve(ostium.addresses.tradingStorage, 0), stranger.address)
    result = venue.open_trade(_open(key="k-2", account=stranger.address, delegated=True))
    assert result.error.code == ErrorCode.INSUFFICIENT_ALLOWANCE


def test_position_not_found_and_already_closed(venue, ostium):
    me = ostium.traders[0].address
    missing = venue.close_trade(
        CloseTradeRequest(idempotency_key="c-0", account=me, symbol="BTC-USD", pair_id="0", trade_index="7")
    )
    assert missing.error.code == ErrorCode.POSITION_NOT_FOUND
    venue.open_trade(_open())
    ostium.run_keeper()
    assert _settle(venue, "k-1").status == ExecStatus.FILLED
    close = CloseTradeRequest(idempotency_key="c-1", account=me, symbol="BTC-USD", pair_id="0", trade_index="0")
    assert venue.close_trade(close).status == ExecStatus.PENDING
    ostium.run_keeper()
    assert _settle(venue, "c-1").status == ExecStatus.FILLED
    again = venue.close_trade(
        CloseTradeRequest(idempotency_key="c-2", account=me, symbol="BTC-USD", pair_id="0", trade_index="0")
    )
    assert again.error.code == ErrorCode.POSITION_NOT_FOUND
    sl = venue.update_sl(account=me, pair_id="0", trade_index="0", price=D("60000"))
    assert sl.error.code == ErrorCode.POSITION_NOT_FOUND


def test_slippage_exceeded_cancels_the_order(venue, ostium):
    assert venue.open_trade(_open()).status == ExecStatus.PENDING
    ostium.set_price("BTC-USD", "67000")  # +3% against a 2% tolerance
    ostium.run_keeper()
    result = _settle(venue, "k-1")
    assert result.status == ExecStatus.CANCELLED and result.error.code == ErrorCode.SLIPPAGE_EXCEEDED


def test_a_reverted_receipt_is_rejected_with_the_decoded_reason_and_never_resent(venue, ostium):
    before = _signer_nonce(ostium)
    result = venue.open_trade(_open(leverage=D("500")))  # above the pair's maximum: WrongLeverage
    assert result.status == ExecStatus.REJECTED, result
    assert result.error.code == ErrorCode.LEVERAGE_OUT_OF_RANGE, result.error
    assert result.error.details["reverted"] is True and result.error.details["reason"] == "WrongLeverage"
    assert result.error.details["args"] == {"leverage": "50000"}
    assert result.transaction_hash.startswith("0x")
    sent = _signer_nonce(ostium)
    assert sent > before
    again = venue.open_trade(_open(leverage=D("500")))  # same key: the recorded answer
    assert again.status == ExecStatus.REJECTED and again.error.code == ErrorCode.LEVERAGE_OUT_OF_RANGE
    assert _signer_nonce(ostium) == sent


def test_a_revert_without_a_known_mapping_is_reverted(venue, ostium):
    from providers.ostium.errors import error_from_revert

    error = error_from_revert("IsDone", {}, tx_hash="0xabc")
    assert error.code == ErrorCode.REVERTED and error.details["reason"] == "IsDone" and not error.retryable


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def blackhole():
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _fresh_venue():
    from providers.ostium.adapter import OstiumVenue
    from providers.ostium.client import clients_reset

    clients_reset()
    return OstiumVenue()


def test_rpc_unavailable_and_timeout(ostium, settings, blackhole):
    settings.OSTIUM_READ_RETRIES = 0
    settings.OSTIUM_RPC_URL = _closed_port()
    with pytest.raises(VenueException) as down:
        _fresh_venue().get_balances(account=ostium.traders[0].address)
    assert down.value.error.code == ErrorCode.RPC_UNAVAILABLE and down.value.error.retryable

    settings.OSTIUM_RPC_URL = blackhole
    settings.OSTIUM_READ_TIMEOUT = 0.5
    with pytest.raises(VenueException) as slow:
        _fresh_venue().get_balances(account=ostium.traders[0].address)
    assert slow.value.error.code == ErrorCode.RPC_TIMEOUT and slow.value.error.retryable


def test_price_unavailable(ostium, settings):
    settings.OSTIUM_READ_RETRIES = 0
    settings.OSTIUM_PRICE_URL = _closed_port()
    venue = _fresh_venue()
    with pytest.raises(VenueException) as exc:
        venue.get_price("BTC-USD")
    assert exc.value.error.code == ErrorCode.PRICE_UNAVAILABLE
    result = venue.open_trade(_open())
    assert result.status == ExecStatus.REJECTED and result.error.code == ErrorCode.PRICE_UNAVAILABLE


def test_error_catalog_maps_sdk_and_transport_failures():
    import httpx
    import requests

    from providers.ostium.errors import error_from_exception

    cases = {
        ErrorCode.INSUFFICIENT_ALLOWANCE: Exception("Sufficient allowance for 0xabc not present."),
        ErrorCode.INSUFFICIENT_GAS: ValueError({"message": "insufficient funds for gas * price + value"}),
        ErrorCode.INSUFFICIENT_BALANCE: Exception("execution reverted: ERC20: transfer amount exceeds balance"),
        ErrorCode.RPC_TIMEOUT: requests.exceptions.ReadTimeout("read timed out"),
        ErrorCode.RPC_UNAVAILABLE: requests.exceptions.ConnectionError("Connection refused"),
        ErrorCode.PRICE_UNAVAILABLE: Exception("Error fetching prices: 503"),
        ErrorCode.POSITION_NOT_FOUND: Exception("NoTradeFound(0xabc, 0, 3)"),
        ErrorCode.DELEGATE_NOT_SET: Exception("NotDelegate"),
        ErrorCode.INTERNAL: Exception("something else"),
    }
    for code, exc in cases.items():
        assert error_from_exception(exc).code == code, exc
    assert error_from_exception(httpx.ConnectError("refused"), during="prices").code == ErrorCode.PRICE_UNAVAILABLE
    assert error_from_exception(requests.exceptions.ReadTimeout("x")).retryable is True


# --- safeguards -------------------------------------------------------------------------------------


def test_kill_switch_refuses_every_write_and_sends_nothing(venue, ostium, settings):
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": False}
    before = _signer_nonce(ostium)
    me = ostium.traders[0].address
    results = [
        venue.open_trade(_open()),
        venue.close_trade(
            CloseTradeRequest(idempotency_key="c", account=me, symbol="BTC-USD", pair_id="0", trade_index="0")
        ),
        venue.update_sl(account=me, pair_id="0", trade_index="0", price=D("1")),
        venue.update_tp(account=me, pair_id="0", trade_index="0", price=D("1")),
        venue.cancel_order(account=me, venue_order_id="1"),
    ]
    assert {r.error.code for r in results} == {ErrorCode.VENUE_DISABLED}
    assert all(r.status == ExecStatus.REJECTED for r in results)
    assert _signer_nonce(ostium) == before and not OstiumOrder.objects.exists()


def test_mainnet_writes_need_an_allowlisted_trader_and_stay_under_the_cap(settings, tmp_path):
    """Offline: the guard refuses before any network access."""
    from providers.ostium.adapter import OstiumVenue

    account = Web3().eth.account.create()
    key = tmp_path / "k"
    key.write_text(account.key.hex())
    settings.OSTIUM_TRADER_KEY_FILE = str(key)
    settings.OSTIUM_RPC_URL = _closed_port()
    settings.OSTIUM_MAINNET_TRADER_ALLOWLIST = []
    venue = OstiumVenue("mainnet")
    refused = venue.open_trade(_open())
    assert refused.error.code == ErrorCode.VENUE_DISABLED and "allowlisted" in refused.error.message
    settings.OSTIUM_MAINNET_TRADER_ALLOWLIST = [account.address.lower()]
    settings.OSTIUM_MAINNET_MAX_NOTIONAL = "500"
    capped = venue.open_trade(_open(collateral=D("100"), leverage=D("10")))
    assert capped.error.code == ErrorCode.INVALID_REQUEST and "cap" in capped.error.message


# --- unknown outcome --------------------------------------------------------------------------------


def test_a_timed_out_write_is_unknown_then_reconciled_from_the_chain_without_resending(venue, ostium, settings):
    settings.OSTIUM_WRITE_TIMEOUT = 1.0
    w3 = ostium.w3
    # give the SDK its allowance first, so the one write under test is the openTrade
    usdc = ostium.contract("usdc")
    _send(ostium, usdc.functions.approve(ostium.addresses.tradingStorage, 10**12), ostium.traders[0].address)
    before = _signer_nonce(ostium)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        result = venue.open_trade(_open(key="t-1"))
        assert result.status == ExecStatus.UNKNOWN and result.error.code == ErrorCode.UNKNOWN_OUTCOME
        row = OstiumOrder.objects.get(idempotency_key="t-1")
        assert row.status == "unknown" and row.nonce == before
        # still in the mempool: still unknown; and the same key is never sent again
        assert _settle(venue, "t-1").status == ExecStatus.UNKNOWN
        assert venue.open_trade(_open(key="t-1")).status == ExecStatus.UNKNOWN
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    w3.provider.make_request("evm_mine", [])
    deadline = time.monotonic() + 30
    while w3.eth.get_transaction_count(ostium.traders[0].address) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    pending = _settle(venue, "t-1")
    assert pending.status == ExecStatus.PENDING and pending.venue_order_id
    ostium.run_keeper()
    assert _settle(venue, "t-1").status == ExecStatus.FILLED
    assert _signer_nonce(ostium) == before + 1  # exactly one transaction was ever sent
    assert len(venue.get_positions(account=ostium.traders[0].address)) == 1


def test_a_write_that_never_left_is_not_found(venue, ostium):
    """A command recorded before sending whose nonce never got used: the venue never saw it."""
    row = OstiumOrder.objects.create(
        idempotency_key="n-1",
        network="localnet",
        action="open",
        account=ostium.traders[0].address,
        signer=ostium.traders[0].address,
        symbol="BTC-USD",
        status="unknown",
        nonce=_signer_nonce(ostium),
        from_block=ostium.w3.eth.block_number,
    )
    assert _settle(venue, "n-1").status == ExecStatus.NOT_FOUND
    row.refresh_from_db()
    assert row.status == "not_sent"
    assert venue.get_order_status(idempotency_key="never").status == ExecStatus.NOT_FOUND


@pytest.fixture
def lagging_subgraph(ostium, http_sandbox):
    """A subgraph that has not indexed any order yet: order look-ups come back empty,
    everything else is forwarded."""
    return http_sandbox(ostium.subgraph_url, lambda body: {"data": {"orders": []}} if b"GetOrder" in body else None)


def test_subgraph_lagging_when_the_chain_settled_but_the_index_has_not(ostium, settings, lagging_subgraph):
    settings.OSTIUM_SUBGRAPH_URL = lagging_subgraph
    venue = _fresh_venue()
    ostium.set_price("BTC-USD", "65000")
    assert venue.open_trade(_open()).status == ExecStatus.PENDING
    assert _settle(venue, "k-1").status == ExecStatus.PENDING  # not settled anywhere yet
    ostium.run_keeper()
    result = _settle(venue, "k-1")
    assert result.status == ExecStatus.PENDING and result.error.code == ErrorCode.SUBGRAPH_LAGGING
    assert result.error.retryable
    settings.OSTIUM_SUBGRAPH_URL = ""
    assert _settle(_fresh_venue(), "k-1").status == ExecStatus.FILLED  # once indexed, the fill


def test_an_open_breaker_refuses_writes_and_reads(venue, ostium, settings):
    from providers.ostium.resilience import breaker_record, breaker_state

    settings.OSTIUM_BREAKER_THRESHOLD = 2
    settings.OSTIUM_BREAKER_COOLDOWN = 60
    breaker_record("localnet", ok=False)
    breaker_record("localnet", ok=False)
    assert breaker_state("localnet")["state"] == "open"
    result = venue.open_trade(_open())
    assert (
        result.status == ExecStatus.REJECTED and result.error.code == ErrorCode.CIRCUIT_OPEN and result.error.retryable
    )
    with pytest.raises(VenueException) as exc:
        venue.get_positions(account=ostium.traders[0].address)
    assert exc.value.error.code == ErrorCode.CIRCUIT_OPEN
    assert not OstiumOrder.objects.exists()
