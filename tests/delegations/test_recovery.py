"""Crash recovery of delegation executions, on the localnet with real Safe 1.4.1 contracts.

An execution first claims the row (activation: `submitted`; revocation: `revoking` with a
`pending` transaction mark, committed), then relays `execTransaction`. A process that dies in
between leaves the claim behind, and execute refuses a claimed row. The crash is simulated at
the chain edge: `chain.safe_tx_execute` raises `ProcessKilled` (a BaseException nothing in the
service catches, like the process dying there) either before sending or right after sending.
Recovery (the Beat job, or the next read) asks the chain and settles the row."""

from __future__ import annotations

import pytest
from hexbytes import HexBytes

from delegations import chain, services
from delegations.models import OstiumDelegation
from delegations.tasks import delegation_recovery_task
from tests.conftest import wait_for
from tests.delegations.test_lifecycle import BASE, add_signature, execute, prepare, sign_typed, topics
from trading.models import Event

NO_DELEGATE = "0x0000000000000000000000000000000000000000"


class ProcessKilled(BaseException):
    """The executor process dies here (nothing in the service catches a BaseException)."""


def crash_before_sending(monkeypatch):
    def execute(net, tx, relayer_key, **kwargs):
        raise ProcessKilled

    monkeypatch.setattr(chain, "safe_tx_execute", execute)


def crash_after_sending(monkeypatch):
    """The relayer's execTransaction leaves (the real send), then the process dies before the
    hash is recorded. Returns the list the sent hashes go to."""
    sent = []

    def execute(net, tx, relayer_key, **kwargs):
        tx_hash, _ = tx.execute(HexBytes(relayer_key).to_0x_hex(), tx_gas=1_500_000)
        sent.append(HexBytes(tx_hash).to_0x_hex())
        raise ProcessKilled

    monkeypatch.setattr(chain, "safe_tx_execute", execute)
    return sent


def receipt_not_seen_in_time(monkeypatch):
    """The relayer sends; the receipt does not come before the executor's timeout (the real
    `safe_tx_execute` outcome for that case), so the hash is recorded and the row stays claimed."""
    sent = []

    def execute(net, tx, relayer_key, **kwargs):
        tx_hash, _ = tx.execute(HexBytes(relayer_key).to_0x_hex(), tx_gas=1_500_000)
        sent.append(HexBytes(tx_hash).to_0x_hex())
        return chain.ExecOutcome(sent[-1], mined=False, success=False, error="receipt not seen in time")

    monkeypatch.setattr(chain, "safe_tx_execute", execute)
    return sent


@pytest.fixture
def manual_mining(chain_env):
    """Call it to stop automining: blocks then come only from `net.mine()` and sent
    transactions wait in the mempool. Automining is back after the test."""
    w3 = chain_env.net.w3
    try:
        yield lambda: w3.provider.make_request("evm_setAutomine", [False])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])


def signed(client, owner, safe) -> dict:
    body = prepare(client, safe)
    add_signature(client, body["id"], sign_typed(owner, body))
    return body


def active_delegation(net, client, owner, safe) -> int:
    body = signed(client, owner, safe)
    assert execute(client, body["id"])["status"] == "active"
    return body["id"]


def signed_revocation(net, client, owner, safe) -> tuple[int, dict]:
    """An active delegation whose revocation is prepared and signed: (id, the revoke SafeTx)."""
    d_id = active_delegation(net, client, owner, safe)
    revoke = client.post(f"{BASE}/{d_id}/revoke", format="json").json()
    add_signature(client, d_id, sign_typed(owner, revoke))
    return d_id, revoke


def executor_dies(monkeypatch, user, d_id) -> None:
    """Execute; the process dies where the patched send says; the next process runs unpatched."""
    with pytest.raises(ProcessKilled):
        services.delegation_execute(user=user, delegation_id=d_id)
    monkeypatch.undo()


def row(pk) -> OstiumDelegation:
    return OstiumDelegation.objects.get(pk=pk)


def delegate_on_chain(net, safe) -> str:
    return net.contract("trading").functions.delegations(safe).call()


def allowance(net, safe) -> int:
    return net.contract("usdc").functions.allowance(safe, net.addresses.tradingStorage).call()


@pytest.mark.django_db(transaction=True)
def test_an_activation_claimed_before_a_crash_is_recovered_by_the_beat_job_and_executes_again(
    one_owner_safe, chain_env, monkeypatch, settings, celery_worker
):
    net, owner, user, client, safe = one_owner_safe
    body = signed(client, owner, safe)
    d_id = body["id"]

    # the executor claims the row, then dies before execTransaction leaves
    crash_before_sending(monkeypatch)
    executor_dies(monkeypatch, user, d_id)
    claimed = row(d_id)
    assert claimed.status == "submitted" and claimed.transaction_hash == "" and claimed.submitted_at
    assert execute(client, d_id, expected=409)["error"]["code"] == "DELEGATION_NOT_EXECUTABLE"

    # a fresh claim is left alone (its executor may still be sending): neither the job nor a read moves it
    assert services.delegations_recover() == {"checked": 0, "resolved": 0, "errors": 0}
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "submitted"

    # once the claim is older than any executor can be, the Beat job (in the worker) asks the
    # chain: not delegated, the Safe nonce unused, nothing in flight → back to pending_signature
    settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
    delegation_recovery_task.delay()
    recovered = wait_for(lambda: (d := row(d_id)).status == "pending_signature" and d)
    assert recovered.error_code == "EXECUTION_INTERRUPTED" and recovered.transaction_hash == ""
    event = Event.objects.get(correlation_id=f"delegation-{d_id}", topic="delegation.pending_signature")
    assert event.actor == "system:recovery"
    assert event.payload["reason"] == "execution_recovered" and event.payload["from"] == "submitted"
    assert delegate_on_chain(net, safe) == NO_DELEGATE

    # the owners' signatures still hold (same SafeTx, same nonce): execute again → active
    again = execute(client, d_id)
    assert again["status"] == "active" and again["signers"] == [owner.address]
    assert delegate_on_chain(net, safe) == chain_env.delegate_address
    assert topics(d_id) == [
        "delegation.prepared",
        "delegation.signed",
        "delegation.submitted",
        "delegation.pending_signature",
        "delegation.submitted",
        "delegation.active",
    ]
    # and the job has nothing left to do
    assert services.delegations_recover()["checked"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_revocation_claimed_before_a_crash_goes_back_to_active_on_read_and_can_be_revoked_again(
    one_owner_safe, chain_env, monkeypatch, settings
):
    net, owner, user, client, safe = one_owner_safe
    d_id, revoke = signed_revocation(net, client, owner, safe)

    crash_before_sending(monkeypatch)
    executor_dies(monkeypatch, user, d_id)
    assert (row(d_id).status, row(d_id).transaction_hash) == ("revoking", "pending")
    assert execute(client, d_id, expected=409)["error"]["code"] == "DELEGATION_NOT_EXECUTABLE"
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "revoking"  # recent claim: wait

    # the next read after the grace period recovers it: still delegated, Safe nonce unused → active
    settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
    detail = client.get(f"{BASE}/{d_id}").json()
    assert detail["status"] == "active" and detail["error_code"] == "EXECUTION_INTERRUPTED"
    assert detail["transaction_hash"] == ""
    event = Event.objects.get(correlation_id=f"delegation-{d_id}", topic="delegation.active", payload__from="revoking")
    assert event.payload["reason"] == "revoke_failed" and event.payload["error_code"] == "EXECUTION_INTERRUPTED"
    assert delegate_on_chain(net, safe) == chain_env.delegate_address

    # the revocation is retryable: prepared again at the same (unused) nonce it is the same
    # SafeTx, so the owners' stored signatures still count; execute → revoked
    again = client.post(f"{BASE}/{d_id}/revoke", format="json").json()
    assert again["status"] == "revoking" and again["safe_tx_hash"] == revoke["safe_tx_hash"]
    assert again["signers"] == [owner.address]
    assert execute(client, d_id)["status"] == "revoked"
    assert delegate_on_chain(net, safe) == NO_DELEGATE and allowance(net, safe) == 0


@pytest.mark.django_db(transaction=True)
def test_a_revocation_sent_just_before_the_crash_is_found_revoked_on_chain(one_owner_safe, monkeypatch):
    net, owner, user, client, safe = one_owner_safe
    d_id, revoke = signed_revocation(net, client, owner, safe)

    sent = crash_after_sending(monkeypatch)
    executor_dies(monkeypatch, user, d_id)
    assert len(sent) == 1 and row(d_id).transaction_hash == "pending"  # the hash was never recorded
    assert delegate_on_chain(net, safe) == NO_DELEGATE  # but it was mined

    services.delegations_recover()  # the claim is recent: the job does not pick it yet
    assert row(d_id).status == "revoking"
    detail = client.get(f"{BASE}/{d_id}").json()  # a read does, whatever its age: the chain says revoked
    assert detail["status"] == "revoked" and detail["revoked_at"]
    assert allowance(net, safe) == 0
    assert topics(d_id)[-2:] == ["delegation.submitted", "delegation.revoked"]


@pytest.mark.django_db(transaction=True)
def test_a_revocation_whose_safe_nonce_was_taken_after_the_crash_goes_back_to_active(
    one_owner_safe, chain_env, monkeypatch, settings
):
    net, owner, user, client, safe = one_owner_safe
    d_id, revoke = signed_revocation(net, client, owner, safe)
    crash_before_sending(monkeypatch)
    executor_dies(monkeypatch, user, d_id)
    usdc = net.contract("usdc")  # the owners use the Safe nonce for something else
    net.exec_safe_tx(safe, usdc.address, usdc.encode_abi("approve", [owner.address, 1]), [owner.key.to_0x_hex()])

    settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
    assert services.delegations_recover() == {"checked": 1, "resolved": 1, "errors": 0}
    after = row(d_id)
    assert after.status == "active" and after.error_code == "SAFE_NONCE_MOVED"
    assert delegate_on_chain(net, safe) == chain_env.delegate_address


@pytest.mark.django_db(transaction=True)
def test_an_activation_sent_but_unmined_when_the_executor_died_is_waited_for(
    one_owner_safe, chain_env, manual_mining, monkeypatch, settings
):
    """No hash was recorded, but our relayer has a transaction in the mempool: recovery waits."""
    net, owner, user, client, safe = one_owner_safe
    body = signed(client, owner, safe)
    manual_mining()

    sent = crash_after_sending(monkeypatch)
    executor_dies(monkeypatch, user, body["id"])
    assert len(sent) == 1 and net.w3.eth.get_transaction(sent[0])["blockNumber"] is None

    settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
    assert services.delegations_recover() == {"checked": 1, "resolved": 0, "errors": 0}
    assert row(body["id"]).status == "submitted"
    assert client.get(f"{BASE}/{body['id']}").json()["status"] == "submitted"

    net.mine()
    assert services.delegations_recover() == {"checked": 1, "resolved": 1, "errors": 0}
    assert row(body["id"]).status == "active"
    assert delegate_on_chain(net, safe) == chain_env.delegate_address


@pytest.mark.django_db(transaction=True)
def test_a_recorded_pending_transaction_is_waited_for_and_a_dropped_one_recovered(
    one_owner_safe, chain_env, manual_mining, monkeypatch, settings
):
    net, owner, user, client, safe = one_owner_safe
    body = signed(client, owner, safe)
    manual_mining()

    sent = receipt_not_seen_in_time(monkeypatch)
    out = services.delegation_execute(user=user, delegation_id=body["id"])
    monkeypatch.undo()
    assert out.status == "submitted" and out.transaction_hash == sent[0]

    # the hash is in the mempool: wait, however old the claim
    settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
    assert services.delegations_recover()["resolved"] == 0
    assert row(body["id"]).status == "submitted"

    # the node drops it: never mined, the Safe nonce unused → back to pending_signature
    net.w3.provider.make_request("anvil_dropTransaction", [sent[0]])
    assert services.delegations_recover() == {"checked": 1, "resolved": 1, "errors": 0}
    recovered = row(body["id"])
    assert recovered.status == "pending_signature" and recovered.transaction_hash == ""
    event = Event.objects.get(correlation_id=f"delegation-{body['id']}", topic="delegation.pending_signature")
    assert event.payload["abandoned_transaction_hash"] == sent[0]

    net.w3.provider.make_request("evm_setAutomine", [True])
    assert execute(client, body["id"])["status"] == "active"
    assert delegate_on_chain(net, safe) == chain_env.delegate_address


@pytest.mark.django_db(transaction=True)
def test_a_slow_executor_finishing_after_recovery_does_not_overwrite_it(
    one_owner_safe, chain_env, monkeypatch, settings
):
    """The executor outlives the grace period: recovery has already put the row back. When its
    execTransaction then lands, it records nothing of its own; the chain decides."""
    net, owner, user, client, safe = one_owner_safe
    body = signed(client, owner, safe)
    real_execute = chain.safe_tx_execute

    def slow_execute(net_, tx, relayer_key, **kwargs):
        settings.DELEGATION_RECOVERY_AFTER_SECONDS = 0
        assert services.delegations_recover()["resolved"] == 1  # meanwhile, the Beat job
        assert row(body["id"]).status == "pending_signature"
        return real_execute(net_, tx, relayer_key, **kwargs)

    monkeypatch.setattr(chain, "safe_tx_execute", slow_execute)
    out = services.delegation_execute(user=user, delegation_id=body["id"])
    assert out.status == "active"  # via reconcile: the chain shows our delegate
    assert delegate_on_chain(net, safe) == chain_env.delegate_address
    assert topics(body["id"])[-3:] == ["delegation.submitted", "delegation.pending_signature", "delegation.active"]
