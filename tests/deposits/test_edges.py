"""The edge cases of deposits: each with the LI.FI double scripted to produce it."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import minute_with_room
from tests.deposits.conftest import BASE, create, send, submitted, topics

NATIVE = "0x0000000000000000000000000000000000000000"


def poll():
    from deposits.services import deposits_poll

    return deposits_poll()


def deposit(pk):
    from deposits.models import Deposit

    return Deposit.objects.get(pk=pk)


def quoted_and_sent(lifi, eoa, chain_env, **body):
    owner, user, client = eoa
    created = create(client, token_address=NATIVE, **body)
    tx_hash = send(chain_env.net, owner, created["transaction"])
    return created, tx_hash


@pytest.mark.django_db(transaction=True)
def test_the_same_transaction_reported_twice_is_one_swap(lifi, eoa, chain_env):
    owner, user, client = eoa
    first, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, first["id"], tx_hash)
    again = submitted(client, first["id"], tx_hash.upper().replace("0X", "0x"))
    assert again["status_detail"] == "submitted" and again["transaction_hash"] == tx_hash
    # another hash for the same deposit, or the same hash for another deposit: refused
    other = submitted(client, first["id"], "0x" + "ab" * 32, expected=409)
    assert other["error"]["code"] == "DEPOSIT_ALREADY_SUBMITTED"
    second = create(client, token_address=NATIVE)
    used = submitted(client, second["id"], tx_hash.upper().replace("0X", "0x"), expected=409)  # any spelling
    assert used["error"]["code"] == "TRANSACTION_ALREADY_USED"
    assert deposit(second["id"]).status == "awaiting_signature"

    poll()
    poll()
    assert deposit(first["id"]).status == "completed"
    assert topics(first["id"]).count("deposit.submitted") == 1
    assert topics(first["id"]).count("swap.completed") == 1


@pytest.mark.django_db(transaction=True)
def test_usdc_already_on_arbitrum_needs_no_swap(lifi, eoa, chain_env):
    owner, user, client = eoa
    net = chain_env.net
    # held by the wallet that is the trading address: verified on chain, credited at once
    short = create(client, expected=422, token_address=lifi.usdc, token_symbol="USDC", amount="50")
    assert short["error"]["code"] == "INSUFFICIENT_BALANCE"
    mint = net.fund(owner.address, usdc=50)
    body = create(client, token_address=lifi.usdc, token_symbol="USDC", amount="50")
    assert body["status"] == body["status_detail"] == "completed"
    assert body["swap_needed"] is False and body["swap_provider"] is None
    assert body["credited_amount"] == "50.000000"
    status = client.get(f"{BASE}/{body['id']}/swap-status").json()
    assert status == {"deposit_id": body["id"], "swap_needed": False, "swaps": []}

    # a transfer to the trading address, reported by hash: credited once the chain shows it
    body = create(client, token_address=lifi.usdc, token_symbol="USDC", amount="50", transaction_hash=mint)
    assert (body["status"], body["status_detail"]) == ("processing", "submitted")
    poll()
    d = deposit(body["id"])
    assert d.status == "completed" and d.credited_amount == Decimal("50") and d.credit_transaction_hash == mint
    assert topics(d.pk) == ["deposit.quoted", "deposit.submitted", "deposit.completed"]
    # the same transfer cannot be credited twice
    again = create(
        client, expected=409, token_address=lifi.usdc, token_symbol="USDC", amount="50", transaction_hash=mint
    )
    assert again["error"]["code"] == "TRANSACTION_ALREADY_USED"


@pytest.mark.django_db(transaction=True)
def test_a_quote_expired_before_signing_is_quoted_again(lifi, eoa, chain_env, settings):
    owner, user, client = eoa
    settings.DEPOSIT_QUOTE_TTL_SECONDS = 0
    body = create(client, token_address=NATIVE)
    assert body["quote"]["expired"] is True
    refused = submitted(client, body["id"], "0x" + "cd" * 32, expected=409)
    assert refused["error"]["code"] == "QUOTE_EXPIRED"

    settings.DEPOSIT_QUOTE_TTL_SECONDS = 120
    response = client.post(f"{BASE}/{body['id']}/quote")
    assert response.status_code == 200, response.content
    fresh = response.json()
    assert fresh["quote"]["route_id"] != body["quote"]["route_id"] and fresh["quote"]["expired"] is False
    assert fresh["transaction"]["data"] != body["transaction"]["data"]
    tx_hash = send(chain_env.net, owner, fresh["transaction"])
    submitted(client, body["id"], tx_hash)
    poll()
    assert deposit(body["id"]).status == "completed"
    assert "deposit.requoted" in topics(body["id"])
    # once submitted, no new quote
    assert client.post(f"{BASE}/{body['id']}/quote").json()["error"]["code"] == "DEPOSIT_NOT_QUOTABLE"


@pytest.mark.django_db(transaction=True)
def test_slippage_beyond_the_limit(lifi, eoa, chain_env):
    owner, user, client = eoa
    net = chain_env.net
    # a quote whose minimum is too far below its estimate is refused before anything is signed
    lifi.world.quote_slippage = Decimal("0.05")
    refused = create(client, expected=422, token_address=NATIVE)
    assert refused["error"]["code"] == "SLIPPAGE_TOO_HIGH"
    lifi.world.quote_slippage = None

    # LI.FI reports the swap failed on slippage: failed, with its sub-status
    lifi.world.script_next(outcome="FAILED", substatus="SLIPPAGE_EXCEEDED")
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    poll()
    d = deposit(body["id"])
    assert d.status == "failed" and d.error_code == "SLIPPAGE_EXCEEDED" and d.swap.substatus == "SLIPPAGE_EXCEEDED"

    # LI.FI says COMPLETED but the chain shows less than toAmountMin arrived: never credited
    before = net.usdc_balance(owner.address)
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    lifi.world.tx_scripts[tx_hash.lower()] = lifi.world.script_next(deliver_raw=1_000_000)
    lifi.world.scripts.pop()
    submitted(client, body["id"], tx_hash)
    poll()
    d = deposit(body["id"])
    assert d.status == "failed" and d.error_code == "CREDIT_BELOW_MINIMUM"
    assert d.credited_amount == Decimal("1") and net.usdc_balance(owner.address) - before == Decimal("1")
    assert "deposit.completed" not in topics(d.pk) and "swap.completed" not in topics(d.pk)


def polling_line() -> tuple[str, str, str]:
    from deposits.health import deposits_health

    line = next(item for item in deposits_health() if item.name == "Deposits LI.FI polling")
    return line.status, line.value, line.detail


@pytest.mark.django_db(transaction=True)
def test_lifi_down_backs_off_and_the_deposit_stays_pending(lifi, eoa, chain_env, settings):
    settings.DEPOSIT_POLL_KICK = False  # this test polls itself, step by step (no worker's poll beside it)
    owner, user, client = eoa
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    settings.DEPOSIT_POLL_BACKOFF_SECONDS = 30
    lifi.world.down = True
    poll()
    d = deposit(body["id"])
    assert d.status == "submitted" and d.poll_failures == 1 and "HTTP 503" in d.poll_error
    assert polling_line()[:2] == ("warn", "1 failing") and "HTTP 503" in polling_line()[2]
    first_wait = d.next_poll_at - d.last_polled_at
    assert timedelta(seconds=29) < first_wait <= timedelta(seconds=31)
    calls = len(lifi.world.calls)
    poll()  # not due yet: LI.FI is not asked again
    assert len(lifi.world.calls) == calls
    d.next_poll_at = timezone.now()
    d.save(update_fields=["next_poll_at"])
    poll()
    d = deposit(body["id"])
    assert d.poll_failures == 2 and d.next_poll_at - d.last_polled_at > first_wait  # backing off
    shown = client.get(f"{BASE}/{d.pk}").json()
    assert shown["status_detail"] == "submitted" and shown["status"] == "processing" and shown["swap_progress"] == 10.0

    # a new deposit while LI.FI is down: 503, nothing stored
    refused = create(client, expected=503, token_address=NATIVE)
    assert refused["error"]["code"] == "LIFI_UNAVAILABLE"

    lifi.world.down = False
    d.next_poll_at = timezone.now()
    d.save(update_fields=["next_poll_at"])
    poll()
    d = deposit(body["id"])
    assert d.status == "completed" and d.poll_failures == 0 and d.poll_error == ""
    assert polling_line()[:2] == ("ok", "nothing to poll")  # none under way: LI.FI is not being asked


@pytest.mark.django_db(transaction=True)
def test_a_429_pauses_polling_until_ratelimit_reset(lifi, eoa, chain_env, settings):
    from deposits.services import rate_limited_until

    settings.DEPOSIT_POLL_KICK = False  # this test polls itself, step by step (no worker's poll beside it)

    owner, user, client = eoa
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    lifi.world.rate_limited, lifi.world.rate_limit_reset = 1, 30
    assert poll()["skipped"] == "rate_limited"
    d = deposit(body["id"])
    assert d.status == "submitted" and "429" in d.poll_error
    assert timedelta(seconds=29) < d.next_poll_at - d.last_polled_at <= timedelta(seconds=31)
    assert rate_limited_until() is not None
    calls = len(lifi.world.calls)
    d.next_poll_at = timezone.now()
    d.save(update_fields=["next_poll_at"])
    assert poll()["skipped"] == "rate_limited"  # nobody asks LI.FI before the reset
    assert len(lifi.world.calls) == calls

    lifi.world.rate_limited = 1
    from django.core.cache import cache

    cache.delete("lifi:rate_limited_until")
    refused = create(client, expected=503, token_address=NATIVE)
    assert refused["error"]["code"] == "LIFI_RATE_LIMITED" and refused["error"]["details"]["retry_after"] == 30
    cache.delete("lifi:rate_limited_until")
    poll()
    assert deposit(body["id"]).status == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_status_that_never_ends_is_flagged_after_the_alert_delay(lifi, eoa, chain_env, settings, staff_client):
    owner, user, client = eoa
    lifi.world.script_next(pending_for=None)
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    poll()
    d = deposit(body["id"])
    assert d.status == "pending" and d.delayed_at is None
    assert d.swap.substatus == "WAIT_DESTINATION_TRANSACTION" and d.swap.swap_status == "processing"

    d.submitted_at = timezone.now() - timedelta(minutes=settings.DEPOSIT_DELAY_ALERT_MINUTES + 1)
    d.save(update_fields=["submitted_at"])
    assert poll()["flagged"] == 1
    assert poll()["flagged"] == 0  # flagged once
    d = deposit(body["id"])
    assert d.status == "pending" and d.delayed_at is not None
    assert client.get(f"{BASE}/{d.pk}").json()["delayed"] is True
    assert topics(d.pk).count("deposit.delayed") == 1

    # the admin: the delayed filter lists it, its timeline shows every step; the control panel flags it
    listed = staff_client.get("/admin/deposits/deposit/", {"delayed": "yes"}).content.decode()
    assert f'href="/admin/deposits/deposit/{d.pk}/change/' in listed
    page = staff_client.get(f"/admin/deposits/deposit/{d.pk}/change/").content.decode()
    assert "deposit.delayed" in page and "WAIT_DESTINATION_TRANSACTION" in page
    panel = staff_client.get("/admin/control-panel/").content.decode()
    assert "Deposits delayed" in panel and f"#{d.pk}" in panel
    swaps = staff_client.get("/admin/deposits/tokenswap/", {"swap_status__exact": "processing"}).content.decode()
    assert f'href="/admin/deposits/tokenswap/{d.swap.pk}/change/' in swaps
    # amounts as sent ("0.1", not the column's 18 places) and times as every admin page prints them
    from trading.models import Event

    assert "0.100000000000000000" not in page + listed + swaps
    assert '<td class="field-amount_exact">0.1</td>' in listed and '<td class="field-amount_exact">0.1</td>' in swaps
    first = Event.objects.filter(correlation_id=d.correlation_id).order_by("id").first()
    assert f"{first.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC — <b>{first.topic}</b>" in page


@pytest.mark.parametrize("outcome", ["PARTIAL", "REFUNDED"])
@pytest.mark.django_db(transaction=True)
def test_partial_and_refunded_are_shown_and_never_credited(lifi, eoa, chain_env, outcome):
    owner, user, client = eoa
    before = chain_env.net.usdc_balance(owner.address)
    lifi.world.script_next(outcome=outcome)
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    poll()
    d = deposit(body["id"])
    assert d.status == outcome.lower() and d.credited_amount is None and d.error_code == outcome
    assert d.swap.swap_status == outcome.lower() and d.swap.substatus == outcome
    assert chain_env.net.usdc_balance(owner.address) == before
    seen = topics(d.pk)
    assert seen[-1] == f"deposit.{outcome.lower()}"
    assert "deposit.completed" not in seen and "swap.completed" not in seen
    swaps = client.get(f"{BASE}/{d.pk}/swap-status").json()["swaps"]
    assert swaps[0]["status_detail"] == outcome.lower() and swaps[0]["status"] == "failed"  # the seed's four
    shown = client.get(f"{BASE}/{d.pk}").json()
    assert (shown["status"], shown["status_detail"]) == ("failed", outcome.lower())
    assert (shown["swap_status"], shown["swap_status_detail"]) == ("failed", outcome.lower())
    if outcome == "PARTIAL":
        assert swaps[0]["actual_output"] is not None  # what arrived (USDC.e), shown, not credited


@pytest.mark.django_db(transaction=True)
def test_failed_records_the_substatus(lifi, eoa, chain_env):
    owner, user, client = eoa
    lifi.world.script_next(outcome="FAILED", substatus="OUT_OF_GAS")
    body, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    submitted(client, body["id"], tx_hash)
    poll()
    shown = client.get(f"{BASE}/{body['id']}").json()
    assert shown["status"] == "failed" and shown["error_code"] == "OUT_OF_GAS" and shown["swap_status"] == "failed"


@pytest.mark.django_db(transaction=True)
def test_another_users_deposit_is_a_404(lifi, eoa, chain_env, django_user_model):
    from tests.delegations.conftest import new_owner, user_client

    owner, user, client = eoa
    body = create(client, token_address=NATIVE)
    _, stranger = user_client(django_user_model, new_owner(chain_env.net), username="stranger")
    for method, path, data in (
        ("get", f"{BASE}/{body['id']}", None),
        ("get", f"{BASE}/{body['id']}/swap-status", None),
        ("post", f"{BASE}/{body['id']}/submitted", {"tx_hash": "0x" + "11" * 32}),
        ("post", f"{BASE}/{body['id']}/quote", None),
    ):
        response = getattr(stranger, method)(path, data, format="json")
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "DEPOSIT_NOT_FOUND"
    assert stranger.get(BASE).json() == []
    assert deposit(body["id"]).status == "awaiting_signature"


@pytest.mark.django_db(transaction=True)
def test_what_lifi_cannot_route_is_a_clear_422(lifi, eoa, chain_env, one_owner_safe):
    owner, user, client = eoa
    wrong_chain = create(client, expected=422, chain="solana")
    assert wrong_chain["error"]["code"] == "CHAIN_UNSUPPORTED"
    unknown = create(client, expected=422, token_address="0x" + "12" * 20, token_symbol="XYZ")
    assert unknown["error"]["code"] == "TOKEN_UNSUPPORTED"
    too_much = create(client, expected=422, token_address=NATIVE, amount="100000")
    assert too_much["error"]["code"] == "NO_ROUTE" and too_much["error"]["details"]["lifi_code"] == 1002
    bad = create(client, expected=400, token_address=NATIVE, amount="-1")
    assert bad["error"]["code"] == "VALIDATION_ERROR"
    # an ERC-20 from Ethereum: the wallet gets the approve to LI.FI's approvalAddress first
    body = create(
        client,
        token_address="0xdAC17F958D2ee523a2206206994597C13D831ec7",
        token_symbol="USDT",
        chain="ethereum",
        amount="25",
    )
    assert body["approval"]["to"] == "0xdAC17F958D2ee523a2206206994597C13D831ec7" and body["approval"]["chainId"] == 1
    assert body["approval"]["data"].startswith("0x095ea7b3")  # approve(address,uint256)
    assert body["transaction"]["chainId"] == 1 and body["quote"]["from_amount"] == "25000000"


@pytest.mark.django_db(transaction=True)
def test_a_token_address_that_is_not_the_named_token_is_refused_and_nothing_is_quoted(lifi, eoa, chain_env):
    from deposits.models import Deposit

    owner, user, client = eoa
    # "1 USDC" at the native address was quoted as 1 ETH for the wallet to sign
    refused = create(client, expected=422, token_address=NATIVE, token_symbol="USDC", amount="1")
    assert refused["error"]["code"] == "TOKEN_MISMATCH"
    assert refused["error"]["details"] == {"token_address": NATIVE, "token_symbol": "USDC", "listed_symbol": "ETH"}
    usdc = chain_env.net.addresses.usdc
    assert create(client, expected=422, token_address=usdc, token_symbol="ETH")["error"]["code"] == "TOKEN_MISMATCH"
    assert not Deposit.objects.filter(user=user).exists() and not lifi.world.quotes
    # the symbol is matched without regard to case, and the listed one is kept
    body = create(client, token_address=NATIVE, token_symbol="eth")
    assert body["token_symbol"] == "ETH"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("amount", ["1e-1", "١", " 0.1", "0.1 ", "0_1", "NaN", "Infinity", True, [], "0x1"])
def test_a_deposit_amount_is_plain_ascii_digits_as_for_trades(lifi, eoa, chain_env, amount):
    from deposits.models import Deposit

    owner, user, client = eoa
    refused = create(client, expected=400, token_address=NATIVE, amount=amount)
    assert refused["error"]["code"] == "VALIDATION_ERROR" and "amount" in refused["error"]["details"]
    assert not Deposit.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_a_safe_deposits_from_the_target_chain_only(lifi, one_owner_safe, chain_env):
    from delegations.models import OstiumDelegation

    net, owner, user, client, safe = one_owner_safe
    # a Safe in delegated mode (the row as an executed delegation leaves it)
    OstiumDelegation.objects.create(
        user=user,
        network="localnet",
        safe_address=safe,
        delegate_address=chain_env.delegate_address,
        status="active",
        tx_to=safe,
        tx_data="0x",
        safe_nonce=0,
        safe_tx_hash="0x" + "00" * 32,
    )
    refused = create(
        client,
        expected=422,
        token_address="0xdAC17F958D2ee523a2206206994597C13D831ec7",
        token_symbol="USDT",
        chain="ethereum",
    )
    assert refused["error"]["code"] == "WRONG_CHAIN"
    # from the wallet instead, into the Safe
    body = create(
        client,
        token_address="0xdAC17F958D2ee523a2206206994597C13D831ec7",
        token_symbol="USDT",
        chain="ethereum",
        amount="25",
        source="wallet",
    )
    assert body["from_address"] == owner.address and body["target_address"] == safe and body["safe"] is None

    # an ERC-20 in the Safe: one SafeTx batching approve(approvalAddress) and LI.FI's call
    from providers.ostium.localnet.config import MULTISEND_CALL_ONLY_ADDRESS

    weth = "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1"
    lifi.world.token_add(lifi.chain_id, weth, "WETH", 18)
    lifi.world.prices["WETH"] = Decimal("3000")
    body = create(client, token_address=weth, token_symbol="WETH", amount="0.1")
    fields = body["safe"]["safe_tx"]
    assert body["source"] == "safe" and fields["operation"] == 1 and fields["to"] == MULTISEND_CALL_ONLY_ADDRESS
    assert fields["value"] == "0" and "095ea7b3" in fields["data"]  # approve(address,uint256) inside the batch


@pytest.mark.django_db(transaction=True)
def test_deposits_are_rate_limited_at_five_a_minute(lifi, eoa, chain_env):
    owner, user, client = eoa
    minute_with_room(30)  # six deposits (each a LI-FI quote) in one window of the limit
    for _ in range(5):
        create(client, token_address=NATIVE)
    response = client.post(BASE, {"token_symbol": "ETH", "chain": "arbitrum", "amount": "0.1"}, format="json")
    assert response.status_code == 429 and response.json()["error"]["code"] == "THROTTLED"
    assert client.get(BASE).status_code == 200  # reads are not deposits


@pytest.mark.django_db(transaction=True)
def test_a_replayed_idempotency_key_creates_one_deposit(lifi, eoa, chain_env):
    from deposits.models import Deposit

    owner, user, client = eoa
    payload = {"token_symbol": "ETH", "token_address": NATIVE, "chain": "arbitrum", "amount": "0.1"}
    first = client.post(BASE, payload, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    again = client.post(BASE, payload, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Deposit.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_transaction_on_the_wrong_chain_or_from_someone_else_is_refused(lifi, eoa, chain_env):
    owner, user, client = eoa
    net = chain_env.net
    usdt = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
    from_ethereum = create(client, token_address=usdt, token_symbol="USDT", chain="ethereum", amount="25")
    on_arbitrum, tx_hash = quoted_and_sent(lifi, eoa, chain_env)
    # the wallet's arbitrum transaction reported for the deposit from ethereum
    wrong = submitted(client, from_ethereum["id"], tx_hash, expected=422)
    assert wrong["error"]["code"] == "WRONG_CHAIN"
    assert deposit(from_ethereum["id"]).status == "awaiting_signature"

    # someone else's transaction on the right chain
    stranger_tx = net.fund(net.traders[2].address, usdc=1)  # sent by the localnet's deployer
    foreign = submitted(client, on_arbitrum["id"], stranger_tx, expected=422)
    assert foreign["error"]["code"] == "TRANSACTION_NOT_FROM_SENDER"
    assert submitted(client, on_arbitrum["id"], tx_hash)["status_detail"] == "submitted"
