"""Funding through the bridge service double: pending is never spendable; credited exactly once;
credited less is a drift (alerted, shown); the same tx hash twice is counted once; overdue is
delayed."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import ApplicationError
from tests.treasury.conftest import SOLVER, USDC, balance, sync
from trading.models import Event
from treasury.models import LiquidityAction
from treasury.services.inventory import inventory_reserve, inventory_spendable
from treasury.services.liquidity import liquidity_action_request, liquidity_delays_mark

pytestmark = pytest.mark.django_db
E6 = 10**6


def test_a_deposit_seen_but_not_credited_stays_pending_and_is_never_spendable(near):
    sync()
    near.world.deposit_script(account_id=SOLVER, token_id=USDC, amount_raw=10_000 * E6, tx_hash="0xdep1")
    sync()
    action = LiquidityAction.objects.get(tx_hash="0xdep1")
    assert (action.kind, action.status, action.origin, action.amount) == ("funding", "seen", "bridge", Decimal(10_000))
    row = balance(USDC)
    assert (row.credited, row.pending_in) == (Decimal(50_000), Decimal(10_000))
    assert inventory_spendable(venue="near_intents", account=SOLVER, asset=USDC) == Decimal(50_000)
    with pytest.raises(ApplicationError) as caught:
        inventory_reserve(venue="near_intents", account=SOLVER, asset=USDC, amount=Decimal(55_000), ref="quote:1")
    assert caught.value.code == "INSUFFICIENT_INVENTORY"  # the pending 10,000 does not count
    sync()
    assert LiquidityAction.objects.get(tx_hash="0xdep1").status == "seen"
    assert list(Event.objects.filter(correlation_id=action.correlation_id).values_list("topic", flat=True)) == [
        "liquidity.requested",
        "liquidity.submitted",
        "liquidity.seen",
    ]


def test_a_deposit_credited_late_moves_from_pending_to_credited_exactly_once(near, operators):
    alice, _ = operators
    sync()
    recorded = liquidity_action_request(actor=alice, kind="funding", asset=USDC, amount=Decimal(1000))
    assert recorded.status == "requested" and balance(USDC).pending_in == Decimal(1000)
    near.world.deposit_script(account_id=SOLVER, token_id=USDC, amount_raw=1000 * E6, tx_hash="0xlate")
    sync()
    recorded.refresh_from_db()
    assert (recorded.status, recorded.tx_hash) == ("seen", "0xlate")  # matched by asset and amount
    near.world.deposit_credit("0xlate")
    sync()
    sync()  # a second sync sees the same CREDITED deposit: nothing moves twice
    recorded.refresh_from_db()
    assert (recorded.status, recorded.amount_credited, recorded.drift) == ("credited", Decimal(1000), Decimal(0))
    row = balance(USDC)
    assert (row.credited, row.pending_in, row.status) == (Decimal(51_000), Decimal(0), "ok")
    assert Event.objects.filter(correlation_id=recorded.correlation_id, topic="liquidity.credited").count() == 1
    assert LiquidityAction.objects.filter(kind="funding").count() == 1


def test_a_credit_lower_than_expected_is_a_drift_alerted_and_shown(near, operators, client):
    alice, _ = operators
    sync()
    liquidity_action_request(actor=alice, kind="funding", asset=USDC, amount=Decimal(1000), tx_hash="0xless")
    near.world.deposit_script(
        account_id=SOLVER, token_id=USDC, amount_raw=1000 * E6, credit_raw=990 * E6, tx_hash="0xless", credit_after=0
    )
    sync()
    action = LiquidityAction.objects.get(tx_hash="0xless")
    assert (action.status, action.amount_credited, action.drift) == ("credited", Decimal(990), Decimal(10))
    row = balance(USDC)
    assert (row.status, row.drift, row.credited) == ("drift", Decimal(10), Decimal(50_990))
    assert Event.objects.filter(topic="inventory.drift", aggregate_id=str(row.pk)).count() == 1
    from treasury.health import treasury_health

    drift_item = next(i for i in treasury_health() if i.name == "Treasury drift")
    assert drift_item.status == "warn" and drift_item.value == "1"
    assert drift_item.detail.startswith("credited less than expected: near_intents USDC 10 short")
    client.force_login(alice)
    page = client.get("/admin/treasury/inventorybalance/").content.decode()
    assert "−10" in page and "acknowledge" in page
    sync()  # still drift until acknowledged
    assert balance(USDC).status == "drift"
    from treasury.services.inventory import inventory_drift_acknowledge

    inventory_drift_acknowledge(balance_id=row.pk, actor="test", reason="bridge fee")
    assert (balance(USDC).status, balance(USDC).drift) == ("ok", 0)
    drift_item = next(i for i in treasury_health() if i.name == "Treasury drift")
    assert (drift_item.status, drift_item.detail) == ("ok", "no balance credited less than expected")


def test_the_same_tx_hash_twice_is_flagged_and_counted_once(near, operators):
    alice, _ = operators
    sync()
    d = near.world.deposit_script(
        account_id=SOLVER, token_id=USDC, amount_raw=500 * E6, tx_hash="0xtwice", credit_after=0
    )
    near.world.deposits.append(d)  # the bridge lists the same transaction twice
    sync()
    sync()
    original = LiquidityAction.objects.get(tx_hash="0xtwice", duplicate_of__isnull=True)
    flagged = LiquidityAction.objects.get(tx_hash="0xtwice", duplicate_of__isnull=False)
    assert original.status == "credited" and original.amount_credited == Decimal(500)
    assert (flagged.status, flagged.error_code, flagged.duplicate_of_id) == ("failed", "DUPLICATE_TX_HASH", original.pk)
    assert Event.objects.filter(topic="liquidity.duplicate").count() == 1
    assert balance(USDC).pending_in == 0
    with pytest.raises(ApplicationError) as caught:  # an operator recording it again is refused
        liquidity_action_request(actor=alice, kind="funding", asset=USDC, amount=Decimal(500), tx_hash="0xtwice")
    assert caught.value.code == "DUPLICATE_TX_HASH" and caught.value.details["duplicate_of"] == original.pk


def test_a_funding_not_credited_in_time_is_delayed_and_shown_on_top(near, operators, settings, client):
    alice, _ = operators
    sync()
    old = liquidity_action_request(actor=alice, kind="funding", asset=USDC, amount=Decimal(7), tx_hash="0xold")
    fresh = liquidity_action_request(actor=alice, kind="funding", asset=USDC, amount=Decimal(8))
    LiquidityAction.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(minutes=settings.FUNDING_DELAY_ALERT_MINUTES + 1)
    )
    delayed = ("near_intents", "funding", "delayed")
    assert delayed not in _liquidity_scraped()
    assert liquidity_delays_mark() == 1
    assert liquidity_delays_mark() == 0
    assert _liquidity_scraped()[delayed] == 1  # /metrics: alert TradedeskFundingDelayed
    old.refresh_from_db()
    assert (old.status, old.delayed_from) == ("delayed", "submitted")
    assert balance(USDC).pending_in == Decimal(15)  # still pending
    from treasury.selectors import pipeline

    assert [a.pk for a in pipeline()] == [old.pk, fresh.pk]
    client.force_login(alice)
    page = client.get("/admin/treasury/inventorybalance/").content.decode()
    assert page.index(f'data-action="{old.pk}"') < page.index(f'data-action="{fresh.pk}"')
    near.world.deposit_script(account_id=SOLVER, token_id=USDC, amount_raw=7 * E6, tx_hash="0xold", credit_after=0)
    sync()
    old.refresh_from_db()
    assert old.status == "credited"  # a delayed funding still completes
    assert delayed not in _liquidity_scraped()


def _liquidity_scraped() -> dict[tuple[str, str, str], float]:
    """The open liquidity actions /metrics shows, by (venue, kind, status)."""
    from prometheus_client.parser import text_string_to_metric_families

    from config.metrics import exposition

    return {
        (s.labels["venue"], s.labels["kind"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(exposition().decode())
        if family.name == "tradedesk_liquidity_actions_open"
        for s in family.samples
    }


def test_a_failed_deposit_fails_the_funding(near):
    sync()
    near.world.deposit_script(account_id=SOLVER, token_id=USDC, amount_raw=3 * E6, tx_hash="0xbad")
    near.world.deposit_fail("0xbad")
    sync()
    action = LiquidityAction.objects.get(tx_hash="0xbad")
    assert (action.status, action.error_code) == ("failed", "DEPOSIT_FAILED")
    assert balance(USDC).pending_in == 0


def test_deposit_address_from_the_bridge_service(near, operators):
    alice, _ = operators
    action = liquidity_action_request(actor=alice, kind="deposit_address", chain="eth:42161")
    assert action.status == "credited" and action.address.startswith("0x")
    from treasury.models import DepositAddress

    assert DepositAddress.objects.get().address == action.address
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_request(actor=alice, kind="deposit_address", chain="doge:mainnet")
    assert caught.value.code == "UNSUPPORTED_CHAIN" and "chain" in caught.value.details
    near.world.down.add("bridge")
    with pytest.raises(ApplicationError) as caught:
        liquidity_action_request(actor=alice, kind="deposit_address", chain="eth:42161")
    assert caught.value.code == "VENUE_UNAVAILABLE" and caught.value.status_code == 502
