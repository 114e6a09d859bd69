"""The Ostium kill switch stops delegation writes (reads go on), a disarmed `delegations:relay`
(on deploy, or by Halt everything) relays nothing, and a relayed execTransaction that never left
(the relayer has no ETH for gas) does not burn the owners' signatures: against real Safe 1.4.1
contracts on the Ostium localnet, through the API."""

from __future__ import annotations

import pytest

from delegations import keys
from delegations.services import RELAY
from tests.delegations.conftest import relay_arm
from tests.delegations.test_chain_check import remove_delegate_on_chain
from tests.delegations.test_lifecycle import BASE, add_signature, execute, prepare, sign_typed, topics
from trading.services import control, operator

NULL = "0x0000000000000000000000000000000000000000"


def _kill_switch(settings, enabled: bool) -> None:
    settings.VENUE_ENABLED = {**settings.VENUE_ENABLED, "ostium": enabled}


@pytest.mark.django_db(transaction=True)
def test_ostium_enabled_false_stops_every_delegation_write_and_reads_go_on(one_owner_safe, chain_env, settings):
    net, owner, user, client, safe = one_owner_safe
    trading = net.contract("trading")
    body = prepare(client, safe)
    d_id = body["id"]
    signature = sign_typed(owner, body)

    _kill_switch(settings, False)
    refused = {
        "prepare": client.post(f"{BASE}/prepare", {"network": "localnet", "safe_address": safe}, format="json"),
        "sign": client.post(f"{BASE}/{d_id}/signatures", {"signature": signature}, format="json"),
        "execute": client.post(f"{BASE}/{d_id}/execute", format="json"),
    }
    for what, response in refused.items():
        assert response.status_code == 503, (what, response.content)
        assert response.json()["error"]["code"] == "VENUE_DISABLED", what
    assert client.get(BASE).status_code == 200
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "pending_signature"
    assert trading.functions.delegations(safe).call() == NULL  # nothing went on chain

    _kill_switch(settings, True)
    add_signature(client, d_id, signature)
    assert execute(client, d_id)["status"] == "active"

    _kill_switch(settings, False)
    revoke = client.post(f"{BASE}/{d_id}/revoke", format="json")
    assert revoke.status_code == 503 and revoke.json()["error"]["code"] == "VENUE_DISABLED"
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "active"
    assert trading.functions.delegations(safe).call() == chain_env.delegate_address


@pytest.mark.django_db(transaction=True)
def test_a_disarmed_relay_sends_nothing_and_halt_everything_disarms_it(one_owner_safe, chain_env, django_user_model):
    """The relayer pays gas for every SafeTx it sends, so it is a control component like the
    executors: disarmed, execute answers 503 VENUE_DISARMED before anything is claimed, and the
    delegation keeps its signatures; Halt everything disarms it; owners who execute the SafeTx
    themselves are never stuck (the chain check follows the Safe)."""
    from delegations.models import OstiumDelegation
    from delegations.services import delegations_chain_check
    from trading.admin_panel.panel import component_views

    net, owner, user, client, safe = one_owner_safe
    trading = net.contract("trading")
    relayer_nonce = lambda: net.w3.eth.get_transaction_count(chain_env.relayer_address)  # noqa: E731
    control.control_disarm(component=RELAY, actor="test", reason="fresh deploy")
    body = prepare(client, safe)
    d_id = body["id"]
    add_signature(client, d_id, sign_typed(owner, body))
    sent = relayer_nonce()

    refused = execute(client, d_id, expected=503)["error"]
    assert refused["code"] == "VENUE_DISARMED" and RELAY in refused["message"]
    assert refused["details"] == {"component": RELAY, "status": "pending_signature"}
    after = client.get(f"{BASE}/{d_id}").json()
    assert after["status"] == "pending_signature" and after["signers"] == [owner.address]
    assert trading.functions.delegations(safe).call() == NULL and relayer_nonce() == sent
    assert topics(d_id) == ["delegation.prepared", "delegation.signed"]  # nothing claimed

    shown = lambda: next(c for c in component_views() if c.component == RELAY)  # noqa: E731  (the panel)
    assert (shown().last_activity, shown().activity, shown().status) == (None, "SafeTx relayed", "disarmed")

    relay_arm()
    assert execute(client, d_id)["status"] == "active"  # the same signatures
    assert relayer_nonce() == sent + 1
    relayed = OstiumDelegation.objects.get(pk=d_id).submitted_at
    assert relayed and (shown().last_activity, shown().status) == (relayed, "armed")

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    halted = operator.desk_halt_all(actor=root, reason="incident")
    assert RELAY in halted["disarmed"] and RELAY in halted["was_armed"]
    revoking = client.post(f"{BASE}/{d_id}/revoke", format="json").json()  # preparing sends nothing
    add_signature(client, d_id, sign_typed(owner, revoking))
    assert execute(client, d_id, expected=503)["error"]["code"] == "VENUE_DISARMED"
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "revoking"
    assert trading.functions.delegations(safe).call() == chain_env.delegate_address and relayer_nonce() == sent + 1

    remove_delegate_on_chain(net, safe, owner)  # the owner revokes from the Safe, paying gas
    assert delegations_chain_check()["errors"] == 0
    assert client.get(f"{BASE}/{d_id}").json()["status"] == "revoked"
    assert relayer_nonce() == sent + 1


@pytest.mark.django_db(transaction=True)
def test_a_send_without_gas_keeps_the_signatures_and_executes_once_the_relayer_is_funded(one_owner_safe, chain_env):
    net, owner, user, client, safe = one_owner_safe
    broke = keys.relayer_key_create(network="localnet", replace=True)  # a relayer with no ETH at all
    body = prepare(client, safe)
    d_id = body["id"]
    add_signature(client, d_id, sign_typed(owner, body))

    failed = execute(client, d_id, expected=503)
    assert failed["error"]["code"] == "INSUFFICIENT_GAS"
    assert broke.address in failed["error"]["message"]
    assert failed["error"]["details"]["status"] == "pending_signature"
    after = client.get(f"{BASE}/{d_id}").json()
    assert after["status"] == "pending_signature" and after["signers"] == [owner.address]
    assert net.contract("trading").functions.delegations(safe).call() == NULL

    net.fund(broke.address, eth=1)
    done = execute(client, d_id)  # the same signatures: the owners do not sign again
    assert done["status"] == "active" and done["transaction_hash"].startswith("0x")
    assert topics(d_id) == [
        "delegation.prepared",
        "delegation.signed",
        "delegation.submitted",
        "delegation.pending_signature",
        "delegation.submitted",
        "delegation.active",
    ]
