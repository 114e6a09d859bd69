"""The NEAR Intents client against the loopback doubles: the real JSON-RPC on the wire."""

import pytest

from providers.interface import ErrorCode, VenueException

pytestmark = pytest.mark.django_db

BTC = "nep141:btc.omft.near"
USDC = "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near"


def client():
    from providers.near_intents.client import near_intents_client

    return near_intents_client()


def test_mt_batch_balance_of_through_query_call_function(near_sandbox):
    near_sandbox.world.balance_set("desk-solver.near", BTC, 150_000_000)
    balances, block = client().mt_batch_balance_of("desk-solver.near", [BTC, USDC])
    assert balances == [150_000_000, 0] and block > 0
    assert ("rpc", "mt_batch_balance_of") in near_sandbox.world.calls
    assert len(client().current_salt()) == 4


def test_a_node_error_is_normalised(near_sandbox):
    with pytest.raises(VenueException) as caught:
        client().view("no_such_method", {})
    assert caught.value.error.code == ErrorCode.INVALID_REQUEST and not caught.value.error.retryable
    assert "MethodNotFound" in caught.value.error.message
    with pytest.raises(VenueException) as caught:
        client().view("mt_balance_of", {}, contract="nobody.near")
    assert caught.value.error.details["cause"] == "UNKNOWN_ACCOUNT"


def test_an_endpoint_down_is_unavailable_and_the_breaker_opens(near_sandbox, settings):
    settings.NEAR_INTENTS_BREAKER_THRESHOLD = 2
    near_sandbox.world.down.add("rpc")
    for _ in range(2):
        with pytest.raises(VenueException) as caught:
            client().mt_batch_balance_of("desk-solver.near", [BTC])
        assert caught.value.error.code == ErrorCode.RPC_UNAVAILABLE and caught.value.error.retryable
    near_sandbox.world.down.clear()
    with pytest.raises(VenueException) as caught:
        client().mt_batch_balance_of("desk-solver.near", [BTC])
    assert caught.value.error.code == ErrorCode.CIRCUIT_OPEN
    # the bridge has a breaker of its own
    assert client().supported_tokens()


def test_a_stopped_server_is_unavailable(near_sandbox):
    near_sandbox.bridge.stop()
    with pytest.raises(VenueException) as caught:
        client().recent_deposits("desk-solver.near")
    assert caught.value.error.code == ErrorCode.RPC_UNAVAILABLE


def test_bridge_methods(near_sandbox):
    tokens = {t.token_id: t for t in client().supported_tokens()}
    assert tokens[USDC].decimals == 6 and tokens[USDC].chain == "eth:42161" and tokens[USDC].symbol == "USDC"
    handle = client().deposit_address("desk-solver.near", "eth:42161")
    assert (
        handle.address.startswith("0x")
        and handle.address == client().deposit_address("desk-solver.near", "eth:42161").address
    )
    with pytest.raises(VenueException) as caught:
        client().deposit_address("desk-solver.near", "doge:mainnet")
    assert "not supported" in caught.value.error.message
    near_sandbox.world.deposit_script(
        account_id="desk-solver.near", token_id=USDC, amount_raw=5_000_000, tx_hash="0xabc"
    )
    [deposit] = client().recent_deposits("desk-solver.near")
    assert (deposit.tx_hash, deposit.status, deposit.amount_raw, deposit.token_id) == (
        "0xabc",
        "PENDING",
        5_000_000,
        USDC,
    )
    assert client().withdrawal_status("nothing").status == "NOT_FOUND"


def test_a_publish_whose_answer_is_late_is_an_unknown_outcome(near_sandbox, settings):
    settings.NEAR_INTENTS_TIMEOUT = 0.3
    from providers.near_intents.client import clients_reset

    clients_reset()
    near_sandbox.world.publish_delay = 1.0
    with pytest.raises(VenueException) as caught:
        client().publish_intent({"standard": "nep413", "payload": {}})
    assert caught.value.error.code == ErrorCode.UNKNOWN_OUTCOME and not caught.value.error.retryable


def test_the_relay_sends_the_bearer_key(near_sandbox, settings):
    settings.NEAR_INTENTS_RELAY_API_KEY = "relay-key"
    from providers.near_intents.client import clients_reset, near_intents_client

    clients_reset()
    assert near_intents_client().relay._headers["authorization"] == "Bearer relay-key"
    assert near_intents_client().get_status("unknown").status == "NOT_FOUND_OR_NOT_VALID"
