"""Withdrawals: signed `ft_withdraw` intents published through the relay double and tracked with
`get_status` and the bridge's withdrawal status; guarded by the `treasury:withdrawals`
component (checked at the side effect), the allowlist and four eyes above the threshold."""

from decimal import Decimal

import pytest

from config.errors import ApplicationError
from tests.treasury.conftest import BTC, SOLVER, USDC, allow, arm_withdrawals, balance, sync
from trading.models import ControlState, Event
from treasury.models import LiquidityAction, Reservation
from treasury.services.liquidity import (
    liquidity_action_approve,
    liquidity_action_cancel,
    liquidity_action_request,
    liquidity_track,
    withdrawal_submit,
    withdrawals_freeze,
)

pytestmark = pytest.mark.django_db
DEST = "0x1111111111111111111111111111111111111111"


def request_usdc(actor, amount="100", **extra):
    fields = {"asset": USDC, "amount": Decimal(amount), "chain": "eth:42161", "address": DEST, **extra}
    return liquidity_action_request(actor=actor, kind="withdrawal", **fields)


def topics(action):
    return list(Event.objects.filter(correlation_id=action.correlation_id).values_list("topic", flat=True))


def test_a_withdrawal_is_signed_published_settled_and_completed(near, operators, django_capture_on_commit_callbacks):
    alice, _ = operators
    sync()
    allow(DEST)
    arm_withdrawals()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        action = request_usdc(alice)
    assert len(callbacks) == 1  # the submit task, after commit
    assert (action.status, action.needs_approval) == ("requested", False)
    assert balance(USDC).reserved == Decimal(100)
    action = withdrawal_submit(action_id=action.pk)
    assert action.status == "submitted" and action.relay_response["status"] == "OK"
    from trading.admin_panel.panel import component_views

    shown = next(c for c in component_views() if c.component == "treasury:withdrawals")  # the panel's last activity
    assert (shown.last_activity, shown.activity) == (action.submitted_at, "withdrawal or rebalance sent")
    payload = action.signed_intent
    assert payload["standard"] == "nep413" and payload["payload"]["recipient"] == "intents.near"
    import base64

    from providers.near_intents.signing import versioned_nonce_parse

    assert versioned_nonce_parse(base64.b64decode(payload["payload"]["nonce"]))[0] in near.world.salts
    assert balance(USDC).pending_out == Decimal(100)
    liquidity_track()  # get_status: SETTLED on the verifier → seen; the hold is consumed
    action.refresh_from_db()
    assert action.status == "seen" and action.tx_hash
    row = balance(USDC)
    assert (row.reserved, row.credited, row.pending_out) == (0, Decimal(49_900), Decimal(100))
    assert near.world.balance(SOLVER, USDC) == 49_900 * 10**6  # the verifier executed the signed intent
    liquidity_track()  # the bridge: COMPLETED on the destination chain → credited
    action.refresh_from_db()
    assert action.status == "credited" and action.transfer_tx_hash
    assert balance(USDC).pending_out == 0
    assert topics(action) == [
        "liquidity.requested",
        "liquidity.submitted",
        "liquidity.published",
        "liquidity.seen",
        "liquidity.credited",
    ]
    sync()
    assert balance(USDC).credited == Decimal(49_900)


def test_a_destination_not_on_the_allowlist_is_refused(near, operators):
    alice, _ = operators
    sync()
    arm_withdrawals()
    with pytest.raises(ApplicationError) as caught:
        request_usdc(alice)
    assert caught.value.code == "WITHDRAWAL_DESTINATION_NOT_ALLOWED" and caught.value.status_code == 403
    allow(DEST, asset=BTC)  # allowed for another asset only
    with pytest.raises(ApplicationError):
        request_usdc(alice)
    assert not LiquidityAction.objects.exists() and balance(USDC).reserved == 0


@pytest.mark.parametrize("how", ["disarmed", "frozen"])
def test_disarmed_or_frozen_withdrawals_are_refused_at_the_side_effect_with_an_event(near, operators, how):
    alice, _ = operators
    sync()
    allow(DEST)
    arm_withdrawals()
    action = request_usdc(alice)
    if how == "frozen":
        withdrawals_freeze(actor=alice, reason="suspicious activity")
        assert Event.objects.filter(topic="treasury.withdrawals_frozen").count() == 1
        assert ControlState.objects.get(component="treasury:withdrawals").armed is False
    else:
        from trading.services.control import control_disarm

        control_disarm(component="treasury:withdrawals", actor="test", reason="fresh deploy")
    action = withdrawal_submit(action_id=action.pk)
    assert (action.status, action.error_code) == ("failed", "WITHDRAWALS_FROZEN")
    failed = Event.objects.get(correlation_id=action.correlation_id, topic="liquidity.failed")
    assert failed.payload["stage"] == "side_effect"
    assert Reservation.objects.get().status == "released" and balance(USDC).reserved == 0
    assert ("relay", "publish_intent") not in near.world.calls  # nothing left the desk


def test_a_fresh_deploy_has_withdrawals_disarmed(near, operators):
    alice, _ = operators
    assert ControlState.objects.get(component="treasury:withdrawals").armed is False
    sync()
    allow(DEST)
    action = withdrawal_submit(action_id=request_usdc(alice).pk)
    assert action.status == "failed" and action.error_code == "WITHDRAWALS_FROZEN"


def test_above_the_threshold_a_second_operator_approves(near, operators, settings):
    alice, bob = operators
    settings.WITHDRAWAL_APPROVAL_THRESHOLD = "500"
    sync()
    allow(DEST)
    arm_withdrawals()
    action = request_usdc(alice, amount="600")
    assert action.needs_approval
    assert withdrawal_submit(action_id=action.pk).status == "requested"  # not without approval
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_approve(actor=alice, action_id=action.pk)
    assert caught.value.code == "FOUR_EYES_REQUIRED" and caught.value.status_code == 403
    liquidity_action_approve(actor=bob, action_id=action.pk, reason="checked the destination")
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_approve(actor=bob, action_id=action.pk)
    assert caught.value.code == "ALREADY_APPROVED"
    assert withdrawal_submit(action_id=action.pk).status == "submitted"
    approved = Event.objects.get(correlation_id=action.correlation_id, topic="liquidity.approved")
    assert approved.actor.endswith(":bob") and approved.payload["reason"] == "checked the destination"


def test_per_symbol_thresholds(near, operators, settings):
    alice, _ = operators
    settings.WITHDRAWAL_APPROVAL_THRESHOLDS = {"BTC": "0.05"}
    sync()
    allow(DEST, chain="btc:mainnet")
    action = liquidity_action_request(
        actor=alice, kind="withdrawal", asset=BTC, amount=Decimal("0.1"), chain="btc:mainnet", address=DEST
    )
    assert action.needs_approval


def test_cancel_releases_the_hold_and_a_submitted_one_cannot_be_cancelled(near, operators):
    alice, _ = operators
    sync()
    allow(DEST)
    arm_withdrawals()
    first = request_usdc(alice)
    liquidity_action_cancel(actor=alice, action_id=first.pk, reason="wrong amount")
    first.refresh_from_db()
    assert first.status == "cancelled" and balance(USDC).reserved == 0
    second = withdrawal_submit(action_id=request_usdc(alice).pk)
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_cancel(actor=alice, action_id=second.pk, reason="too late")
    assert caught.value.code == "ACTION_NOT_CANCELLABLE"


def test_more_than_spendable_or_a_stale_balance_is_refused(near, operators):
    alice, _ = operators
    sync()
    allow(DEST)
    with pytest.raises(ApplicationError) as caught:
        request_usdc(alice, amount="50001")
    assert caught.value.code == "INSUFFICIENT_INVENTORY"
    near.world.down.add("rpc")
    sync()
    with pytest.raises(ApplicationError) as caught:
        request_usdc(alice)
    assert caught.value.code == "INVENTORY_STALE"
    assert not LiquidityAction.objects.exists()


def test_a_lost_publish_answer_is_resolved_by_get_status_never_resent_as_a_new_intent(near, operators, settings):
    alice, _ = operators
    settings.NEAR_INTENTS_TIMEOUT = 0.3
    from providers.near_intents.client import clients_reset

    clients_reset()
    sync()
    allow(DEST)
    arm_withdrawals()
    near.world.publish_delay = 1.0  # the relay takes it but answers too late
    action = withdrawal_submit(action_id=request_usdc(alice).pk)
    assert (action.status, action.error_code, action.relay_response) == ("submitted", "UNKNOWN_OUTCOME", None)
    first_hash = action.intent_hash
    near.world.publish_delay = 0
    liquidity_track()
    action.refresh_from_db()
    assert action.status == "seen" and action.intent_hash == first_hash
    assert [m for e, m in near.world.calls if m == "publish_intent"] == ["publish_intent"]  # sent once
    assert near.world.balance(SOLVER, USDC) == 49_900 * 10**6  # executed once


def test_a_publish_refused_by_the_verifier_fails_and_releases(near, operators):
    alice, _ = operators
    sync()
    allow(DEST)
    arm_withdrawals()
    near.world.public_keys.clear()  # the solver key is not registered on the verifier
    action = withdrawal_submit(action_id=request_usdc(alice).pk)
    assert (action.status, action.error_code) == ("failed", "INTENT_REJECTED")
    assert "doesn't exist" in action.error_message and balance(USDC).reserved == 0


def test_an_intent_never_settled_before_its_deadline_fails_and_releases(near, operators, settings):
    alice, _ = operators
    settings.WITHDRAWAL_DEADLINE_SECONDS = 1
    sync()
    allow(DEST)
    arm_withdrawals()
    near.world.settle_delay = 3600  # the relay accepts, the intent never settles
    action = withdrawal_submit(action_id=request_usdc(alice).pk)
    assert action.status == "submitted"
    import time

    time.sleep(1.2)
    liquidity_track()  # the double's settlement finds the deadline passed → NOT_FOUND_OR_NOT_VALID
    action.refresh_from_db()
    assert action.status == "submitted"  # the double has not expired it yet (settle_delay)
    near.world.published[action.intent_hash].status = "NOT_FOUND_OR_NOT_VALID"
    liquidity_track()
    action.refresh_from_db()
    assert (action.status, action.error_code) == ("failed", "INTENT_EXPIRED")
    assert balance(USDC).reserved == 0 and balance(USDC).pending_out == 0


def test_a_missing_solver_key_fails_the_withdrawal(near, operators):
    from delegations.models import CustodyKey

    alice, _ = operators
    sync()
    allow(DEST)
    arm_withdrawals()
    CustodyKey.objects.update(is_active=False)
    action = withdrawal_submit(action_id=request_usdc(alice).pk)
    assert (action.status, action.error_code) == ("failed", "KEY_MISSING")


def test_withdrawal_to_a_near_account_is_credited_when_settled(near, operators):
    alice, _ = operators
    sync()
    allow("treasury.near", chain="near")
    arm_withdrawals()
    action = liquidity_action_request(
        actor=alice, kind="withdrawal", asset=BTC, amount=Decimal("0.5"), chain="near", address="treasury.near"
    )
    withdrawal_submit(action_id=action.pk)
    liquidity_track()
    action.refresh_from_db()
    assert action.status == "credited" and action.signed_intent["payload"]["message"].count("treasury.near") == 1
    assert near.world.balance(SOLVER, BTC) == 150_000_000


def test_rebalance_shows_pending_in_at_the_destination(near, operators):
    alice, _ = operators
    sync()
    ostium_account = "0x2222222222222222222222222222222222222222"
    allow(ostium_account)
    arm_withdrawals()
    action = liquidity_action_request(
        actor=alice,
        kind="rebalance",
        asset=USDC,
        amount=Decimal(250),
        chain="eth:42161",
        address=ostium_account,
        dest_venue="ostium",
        dest_account=ostium_account,
        dest_asset="USDC",
    )
    assert balance("USDC", venue="ostium", account=ostium_account).pending_in == Decimal(250)
    withdrawal_submit(action_id=action.pk)
    liquidity_track()
    liquidity_track()
    action.refresh_from_db()
    assert action.status == "credited"
    assert balance("USDC", venue="ostium", account=ostium_account).pending_in == 0
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_request(
            actor=alice, kind="rebalance", venue="paper", asset="USD", amount=Decimal(1), chain="near", address="x.near"
        )
    assert caught.value.code == "REBALANCE_SOURCE_UNSUPPORTED"
