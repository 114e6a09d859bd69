"""Seed 003 (the MarqetFi API) §4 and §4.6, replayed as written against a live server.

Every request example of the seed's §4 (auth, positions, prices, deposits, admin config,
websockets, webhooks) is sent to a real uvicorn server over HTTP and `/ws`, with the real Celery
worker, the paper venue, the LI.FI loopback double and a loopback webhook receiver. Request
bodies are the seed's, copied below as literals under the section that shows them; every
response field the seed shows is checked.

Trade open and close (§4.2.1, §4.2.2) are in `test_seed_003_trades.py`; a trade is opened here
only as setup (`Prefer: respond-async`), for positions, `trade_update` and the webhook.

Where we answer differently from the seed on purpose, the test says so (`DIFFERENCE:`) and
docs/api.md ("Seed 003 contract test") lists it:
- amounts and prices are decimal strings, never binary floats;
- a position's `asset` is our market name (`BTC-USD`), not the base symbol;
- a webhook `secret` under 24 bytes (the seed's `webhook_secret_key`) is refused: WEAK_SECRET;
- a deposit needing a swap is quoted for the user's wallet to sign (`pending`, in detail
  `awaiting_signature`), not swapped by the desk (`processing`), so it takes no
  `transaction_hash` up front;
- an admin configuration change carries a `reason` (the audit trail).
Placeholders the seed leaves open (`0x...`, `{config_id}`) are filled with real values, and the
seed's example hosts (example.com) are replaced by the loopback receiver: nothing resolves here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal as D

import httpx
import jwt
import pytest
from eth_account import Account

from tests.conftest import wait_for
from tests.deposits.conftest import chain_env, eoa, lifi, localnet, localnet_session  # noqa: F401  (fixtures)
from tests.realtime.conftest import recv_until, send, ws_connect
from tests.trading.accounts_helpers import sign
from tests.webhooks.conftest import beat  # noqa: F401  (fixture)

pytestmark = [pytest.mark.celery]

NATIVE = "0x0000000000000000000000000000000000000000"
TX_HASH = "0x" + "ab" * 32

# --- the seed's request bodies, as written --------------------------------------------------------

# §4.1.1 Register
SEED_REGISTER = {"email": "user@example.com", "username": "user123", "password": "securepassword"}
# §4.1.2 Login
SEED_LOGIN = {"email": "user@example.com", "password": "securepassword"}
# §4.1.3 Wallet Connect ("0x..." and "verification_message" filled with a signed SIWE message)
SEED_WALLET_CONNECT = {"wallet_address": "0x...", "signature": "0x...", "message": "verification_message"}
# §4.2.1 Open Trade, the MARKET part (setup only; the rest is test_seed_003_trades.py's)
SEED_OPEN_MARKET = {
    "collateral": 1000.0,
    "leverage": 10,
    "asset_type": 0,
    "asset": "BTC",
    "direction": True,
    "order_type": "MARKET",
}
# §4.3.1 Get Price
SEED_PRICE_PATH = "/api/v1/prices/{pair}?use_cache=true"
# §4.3.2 Get Prices (Bulk)
SEED_PRICES_PATH = "/api/v1/prices?pairs=BTCUSDT,EURUSD,ETHUSDT&use_cache=true"
# §4.4.1 Create Deposit
SEED_DEPOSIT = {
    "token_address": "0x...",  # Any token address on any chain
    "token_symbol": "ETH",  # Any token symbol (ETH, USDT, DAI, etc.)
    "chain": "ethereum",  # Any supported chain
    "amount": "1.0",
    "transaction_hash": "0x...",  # Optional: deposit transaction hash
}
# §4.5.1 List App Configurations
SEED_APP_CONFIGS_PATH = "/api/v1/admin/config/app-configs?category=security&skip=0&limit=100"
# §4.5.2 Update Provider Configuration
SEED_PROVIDER_CONFIG = {
    "config_data": {"enabled": True, "api_url": "https://api.example.com", "timeout": 30},
    "activate": True,
}
# §4.6.1 WebSocket Connection: the message format (all channels in one)
SEED_WS_MESSAGE = {
    "type": "subscribe",
    "channel": "prices",
    "data": {"pairs": ["BTCUSDT", "ETHUSDT"], "trade_ids": [1, 2, 3]},
}
# §4.6.2 WebSocket Channels: the subscribe messages
SEED_WS_PRICES = {"type": "subscribe", "channel": "prices", "data": {"pairs": ["BTCUSDT", "ETHUSDT", "EURUSD"]}}
SEED_WS_TRADES = {"type": "subscribe", "channel": "trades"}
SEED_WS_POSITIONS = {"type": "subscribe", "channel": "positions"}
SEED_WS_DEPOSITS = {"type": "subscribe", "channel": "deposits"}
# §4.7.1 Create Webhook Configuration
SEED_WEBHOOK_CREATE = {
    "url": "https://example.com/webhook",
    "secret": "webhook_secret_key",
    "event_types": ["trade.executed", "trade.closed", "position.updated", "deposit.completed", "swap.completed"],
}
# §4.7.3 Update Webhook Configuration
SEED_WEBHOOK_UPDATE = {
    "url": "https://new-url.com/webhook",
    "event_types": ["trade.executed", "position.updated"],
    "is_active": True,
}

# the seed's token answer (§4.1)
TOKEN_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}


def number(value) -> D:
    """DIFFERENCE: the seed shows binary floats (45000.0); we answer decimal strings ("45000")."""
    assert isinstance(value, str), value
    return D(value)


def iso_z(value) -> str:
    """An ISO 8601 time in UTC, written "…Z" as the seed writes it."""
    assert isinstance(value, str) and "T" in value and value.endswith("Z"), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(0), value
    return value


def fill(body: dict, **values) -> dict:
    """The seed's body with its placeholders filled: only keys the seed has."""
    assert set(values) <= set(body), set(values) - set(body)
    return {**body, **values}


class Http:
    """The live server over HTTP, as an outside client sees it (closed by `desk` at teardown)."""

    opened: list[httpx.Client] = []

    def __init__(self, server, token: str | None = None):
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30)
        self.token = token
        Http.opened.append(self.client)

    def __call__(self, method: str, path: str, expected: int | tuple, body=None, **headers) -> dict:
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = self.client.request(method, path, json=body, headers=headers)
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert response.status_code in allowed, (method, path, response.status_code, response.text)
        return response.json() if response.content else {}


def ws_send(ws, message: dict) -> dict:
    """Send a seed message as written; the server's acknowledgement of its channel."""
    send(ws, message)
    return recv_until(ws, lambda m: m["type"] in ("subscribed", "error") and m.get("channel") == message["channel"])


@pytest.fixture
def desk(transactional_db, settings):
    """The paper venue armed with BTC-USD at 60000, ETH-USD at 3000 and EUR-USD at 1.085; the
    webhook receiver's loopback address allowlisted."""
    from providers.markets import markets_cache_clear
    from providers.paper.seed import seed_paper_demo
    from providers.prices import price_cache_clear, price_set
    from trading.selectors import risk_limits_cache_clear
    from trading.services.control import control_arm
    from trading.services.orders import venue_market_cache_clear
    from webhooks.models import WebhookAllowlist

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.RISK_LIMITS_CACHE_SECONDS = 0
    settings.TRADING_MARKET_CACHE_SECONDS = 0
    settings.REALTIME_MARKS_INTERVAL_MS = 0
    risk_limits_cache_clear()
    venue_market_cache_clear()
    seed_paper_demo()
    markets_cache_clear()
    price_cache_clear()
    price_set("BTC-USD", D("60000"))
    price_set("ETH-USD", D("3000"))
    price_set("EUR-USD", D("1.085"))
    control_arm(component="executor:paper", actor="test", reason="the contract test trades on paper")
    WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="contract test receiver")
    yield
    while Http.opened:
        Http.opened.pop().close()
    price_cache_clear()
    markets_cache_clear()


def check_tokens(body: dict) -> dict:
    """§4.1's answer: {access_token, refresh_token, token_type: "bearer", expires_in: 1800}; the
    access token's claims as §6.1.1 shows them. Returns the claims."""
    assert set(body) >= TOKEN_FIELDS, body
    assert body["token_type"] == "bearer" and body["expires_in"] == 1800
    assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert {"sub", "email", "exp", "iat", "auth_method", "permissions"} <= set(claims), claims
    assert claims["exp"] - claims["iat"] == 1800
    return claims


# --- §4.1 Authentication ---------------------------------------------------------------------------


def test_4_1_auth_register_login_and_wallet_connect(desk, ws_server):
    http = Http(ws_server)
    # §4.1.1
    registered = check_tokens(http("POST", "/api/v1/auth/register", 201, SEED_REGISTER))
    assert registered["email"] == "user@example.com" and registered["auth_method"] == "password"
    # §4.1.2
    logged_in = check_tokens(http("POST", "/api/v1/auth/login", 200, SEED_LOGIN))
    assert logged_in["sub"] == registered["sub"]
    # §4.1.3: the message is a Sign-In with Ethereum message (EIP-4361) the server issued for the
    # address (POST /auth/wallet/nonce, ours); the seed's three fields as it names them
    account = Account.create()
    issued = http("POST", "/api/v1/auth/wallet/nonce", 200, {"wallet_address": account.address})
    body = fill(
        SEED_WALLET_CONNECT,
        wallet_address=account.address,
        signature=sign(account, issued["message"]),
        message=issued["message"],
    )
    wallet = check_tokens(http("POST", "/api/v1/auth/wallet/connect", 200, body))
    assert wallet["auth_method"] == "wallet" and wallet["sub"] != registered["sub"]
    # the wallet_address, when given, must be the message's signer
    other = Account.create()
    issued = http("POST", "/api/v1/auth/wallet/nonce", 200, {"wallet_address": other.address})
    mismatch = fill(body, signature=sign(other, issued["message"]), message=issued["message"])
    refused = http("POST", "/api/v1/auth/wallet/connect", 401, mismatch)
    assert refused["error"]["code"] == "SIWE_INVALID"


# --- §4.3 Prices -----------------------------------------------------------------------------------


def test_4_3_prices_single_and_bulk_by_the_seeds_pair_names(desk, ws_server):
    http = Http(ws_server)
    for pair, asset, quote, price in (
        ("BTCUSDT", "BTC", "USD", "60000"),
        ("BTC-USD", "BTC", "USD", "60000"),
        ("BTCUSD", "BTC", "USD", "60000"),
        ("EURUSD", "EUR", "USD", "1.085"),
        ("ETHUSDT", "ETH", "USD", "3000"),
    ):
        body = http("GET", SEED_PRICE_PATH.format(pair=pair), 200)  # §4.3.1
        assert number(body["price"]) == D(price), (pair, body)
        iso_z(body["timestamp"])
        assert body["source"] and (body["asset"], body["quote"]) == (asset, quote), (pair, body)
    unknown = http("GET", SEED_PRICE_PATH.format(pair="NOPEUSDT"), 404)
    assert unknown["error"]["code"] == "INVALID_MARKET"

    bulk = http("GET", SEED_PRICES_PATH, 200)  # §4.3.2
    assert [p["pair"] for p in bulk["prices"]] == ["BTCUSDT", "EURUSD", "ETHUSDT"]
    for entry, price in zip(bulk["prices"], ("60000", "1.085", "3000"), strict=True):
        assert {"pair", "price", "timestamp", "source"} <= set(entry)
        assert number(entry["price"]) == D(price) and entry["source"]
        iso_z(entry["timestamp"])


# --- §4.2.3 positions, §4.6 websockets, §4.7 webhooks ----------------------------------------------


def test_4_2_3_positions_4_6_websockets_and_4_7_webhooks(desk, ws_server, celery_worker, beat):  # noqa: F811
    from django.core.cache import cache

    from providers.prices import price_set
    from webhooks.sandbox import Receiver

    tokens = Http(ws_server)("POST", "/api/v1/auth/register", 201, SEED_REGISTER)
    http = Http(ws_server, tokens["access_token"])

    with Receiver() as receiver:
        # §4.7.1 as written: DIFFERENCE, the seed's secret is 18 bytes, refused (>= 24 needed)
        weak = http("POST", "/api/v1/webhooks", 400, fill(SEED_WEBHOOK_CREATE, url=receiver.url("/webhook")))
        assert weak["error"]["code"] == "WEAK_SECRET"
        secret = "webhook_secret_key_of_32_bytes__"
        created = http(
            "POST", "/api/v1/webhooks", 201, fill(SEED_WEBHOOK_CREATE, url=receiver.url("/webhook"), secret=secret)
        )
        assert isinstance(created["id"], int) and created["url"] == receiver.url("/webhook")
        # the seed's answer lists two of the five types asked for: its example contradicts itself
        assert sorted(created["event_types"]) == sorted(SEED_WEBHOOK_CREATE["event_types"])
        assert created["is_active"] is True and iso_z(created["created_at"])
        hook = created["id"]

        # §4.7.3 (the seed's new-url.com is the receiver under another path)
        updated = http("PUT", f"/api/v1/webhooks/{hook}", 200, fill(SEED_WEBHOOK_UPDATE, url=receiver.url("/new")))
        assert (updated["id"], updated["url"], updated["is_active"]) == (hook, receiver.url("/new"), True)
        assert sorted(updated["event_types"]) == ["position.updated", "trade.executed"]

        # §4.7.2
        (listed,) = http("GET", "/api/v1/webhooks", 200)["webhooks"]
        assert (listed["id"], listed["url"], listed["is_active"]) == (hook, receiver.url("/new"), True)
        assert sorted(listed["event_types"]) == ["position.updated", "trade.executed"]
        assert listed["last_delivery_at"] is None and listed["retry_count"] == 0

        # §4.6.1: Bearer on the upgrade request, no Origin (a token client)
        with ws_connect(ws_server, token=tokens["access_token"], via="header", origin=None) as ws:
            send(ws, {"type": "ping"})
            assert recv_until(ws, lambda m: m["type"] in ("pong", "error"))["type"] == "pong"
            # the §4.6.1 message as written: pairs for prices (trade_ids are the trades channel's)
            ack = ws_send(ws, SEED_WS_MESSAGE)
            assert ack["type"] == "subscribed" and ack["data"]["pairs"] == ["BTCUSDT", "ETHUSDT"], ack
            # ... and on the trades channel, whose filter the trade_ids are (a second connection:
            # this one follows all of the user's trades)
            with ws_connect(ws_server, token=tokens["access_token"], via="header", origin=None) as other:
                ack = ws_send(other, {**SEED_WS_MESSAGE, "channel": "trades"})
                # (the acknowledgement is ours, not the seed's: the ids it now filters on, as text)
                assert ack["type"] == "subscribed" and ack["data"]["trade_ids"] == ["1", "2", "3"], ack
                send(other, {"type": "unsubscribe", "channel": "trades"})
                assert recv_until(other, lambda m: m.get("channel") == "trades")["type"] == "unsubscribed"
            # §4.6.2, each channel's subscribe as written
            for message in (SEED_WS_PRICES, SEED_WS_TRADES, SEED_WS_POSITIONS, SEED_WS_DEPOSITS):
                ack = ws_send(ws, message)
                assert ack["type"] == "subscribed", (message, ack)

            # a price moves: §4.6.2 price_update under the seed's pair name
            price_set("EUR-USD", D("1.0850"))
            update = recv_until(ws, lambda m: m["type"] == "price_update" and m["data"]["pair"] == "EURUSD")
            assert update["channel"] == "prices" and number(update["data"]["price"]) == D("1.085")
            assert update["data"]["source"] and iso_z(update["data"]["timestamp"]) and iso_z(update["timestamp"])

            # setup: a trade opened (§4.2.1's MARKET body; the answer is test_seed_003_trades.py's)
            opened = http("POST", "/api/v1/trading/trades", (201, 202), SEED_OPEN_MARKET, Prefer="respond-async")
            trade = recv_until(
                ws,
                lambda m: m["type"] == "trade_update" and m["data"]["status"] == "executed" and m["data"]["trade_id"],
                timeout=30,
            )
            assert trade["channel"] == "trades" and iso_z(trade["timestamp"])
            data = trade["data"]  # §4.6.2 trade_update
            assert {"trade_id", "status", "transaction_hash", "entry_price"} <= set(data)
            assert isinstance(data["trade_id"], int) and data["status"] == "executed"
            trade_id, entry = data["trade_id"], number(data["entry_price"])
            assert D("59000") < entry < D("61000")  # 60000 and the paper venue's spread

            # §4.2.3
            body = http("GET", "/api/v1/trading/positions", 200)
            (position,) = body["positions"]
            assert isinstance(position["id"], int)
            assert position["asset"] == "BTC-USD"  # DIFFERENCE: our market name, the seed's "BTC"
            assert position["side"] == "long" and position["leverage"] in (10, "10")
            size = number(position["size"])
            assert abs(size * entry - D("10000")) < D("50")  # 1000 collateral x 10 (less the fee)
            assert number(position["entry_price"]) == entry
            current = number(position["current_price"])
            assert D("59000") < current < D("61000")
            assert abs(number(position["unrealized_pnl"]) - (current - entry) * size) < D("0.01")

            # the price moves: §4.6.2 price_update (BTCUSDT) and position_update with the mark
            cache.delete("trading:marks:paper:BTC-USD")  # the setup's ticks claimed the marks window
            price_set("BTC-USD", D("61000"))
            tick = recv_until(ws, lambda m: m["type"] == "price_update" and m["data"]["pair"] == "BTCUSDT")
            assert number(tick["data"]["price"]) == D("61000")
            mark = recv_until(ws, lambda m: m["type"] == "position_update" and "current_price" in m["data"])
            assert mark["channel"] == "positions" and iso_z(mark["timestamp"])
            assert {"position_id", "current_price", "unrealized_pnl", "updated_at"} <= set(mark["data"])
            assert mark["data"]["position_id"] == position["id"]
            assert number(mark["data"]["current_price"]) == D("61000")
            expected_pnl = (D("61000") - entry) * size
            assert abs(number(mark["data"]["unrealized_pnl"]) - expected_pnl) < D("0.01")
            iso_z(mark["data"]["updated_at"])
            marked = http("GET", "/api/v1/trading/positions", 200)["positions"][0]
            assert number(marked["current_price"]) == D("61000")
            assert abs(number(marked["unrealized_pnl"]) - expected_pnl) < D("0.01")

        # §4.7.4: the trade.executed delivery, signed as the seed shows
        wait_for(lambda: any(r.path == "/new" for r in receiver.requests), timeout=30, what="trade.executed")
        request = next(r for r in receiver.requests if r.path == "/new")
        headers = {k.lower(): v for k, v in request.headers.items()}
        import hashlib
        import hmac

        signature = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-webhook-signature"], signature)
        assert headers["x-webhook-event-type"] == "trade.executed"
        assert headers["x-webhook-delivery-id"] and int(headers["x-webhook-timestamp"]) > 0
        payload = json.loads(request.body)
        assert payload["event_type"] == "trade.executed" and iso_z(payload["timestamp"])
        data = payload["data"]
        seed_data = {"trade_id", "user_id", "asset", "direction", "entry_price", "collateral", "leverage"}
        assert seed_data | {"transaction_hash"} <= set(data), data
        assert data["trade_id"] == trade_id and data["user_id"] == int(
            jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
        )
        assert data["direction"] == "long" and number(data["entry_price"]) == entry
        assert number(data["collateral"]) == D("1000") and D(str(data["leverage"])) == 10

        # §4.7.2 again: the delivery is shown
        (listed,) = http("GET", "/api/v1/webhooks", 200)["webhooks"]
        wait_for(
            lambda: http("GET", "/api/v1/webhooks", 200)["webhooks"][0]["last_delivery_at"],
            timeout=10,
            what="last_delivery_at",
        )
        # ours beside the seed's: the test ping and delete
        http("POST", f"/api/v1/webhooks/{hook}/test", 202)
        http("DELETE", f"/api/v1/webhooks/{hook}", 204)
        assert http("GET", "/api/v1/webhooks", 200)["webhooks"] == []
    assert opened.get("order_id")


# --- §4.4 deposits and their §4.6 deposit_update -----------------------------------------------------


def test_4_4_deposits_and_deposit_update(desk, ws_server, celery_worker, lifi, eoa, chain_env):  # noqa: F811
    from trading.tokens import access_encode

    owner, user, _client = eoa
    token, _ = access_encode(user=user)
    http = Http(ws_server, token)
    with ws_connect(ws_server, token=token, via="header", origin=None) as ws:
        assert ws_send(ws, SEED_WS_DEPOSITS)["type"] == "subscribed"

        # §4.4.1 as written (native ETH on Ethereum): DIFFERENCE, a swap is quoted for the
        # user's wallet to sign, so a transaction hash up front is refused
        refused = http(
            "POST", "/api/v1/deposits", 422, fill(SEED_DEPOSIT, token_address=NATIVE, transaction_hash=TX_HASH)
        )
        assert refused["error"]["code"] == "TRANSACTION_HASH_UNEXPECTED"
        # without the optional transaction_hash
        body = {k: v for k, v in fill(SEED_DEPOSIT, token_address=NATIVE).items() if k != "transaction_hash"}
        created = http("POST", "/api/v1/deposits", 201, body)
        assert isinstance(created["id"], int)
        # DIFFERENCE: the seed's "processing" (the desk swapping); here the user's wallet signs first
        assert (created["status"], created["status_detail"]) == ("pending", "awaiting_signature")
        assert (created["token_symbol"], created["chain"]) == ("ETH", "ethereum")
        assert number(created["amount"]) == D("1.0")  # DIFFERENCE: written canonically, "1"
        assert (created["target_token"], created["target_chain"]) == ("USDC", "arbitrum")
        assert (created["swap_provider"], created["swap_status"]) == ("lifi", "pending")
        iso_z(created["created_at"])
        assert created["transaction"]["chainId"] == 1  # what the wallet signs (ours)

        # §4.6.2 deposit_update
        update = recv_until(
            ws,
            lambda m: m["type"] == "deposit_update" and m["data"].get("status_detail") == "awaiting_signature",
            timeout=30,
        )
        assert update["channel"] == "deposits" and iso_z(update["timestamp"])
        data = update["data"]
        assert {"deposit_id", "status", "swap_status", "swap_progress"} <= set(data)
        assert (data["deposit_id"], data["status"], data["swap_status"]) == (created["id"], "pending", "pending")
        assert isinstance(data["swap_progress"], float)

    # §4.4.1 with its transaction_hash where it means something: USDC already on the target chain,
    # sent to the trading address (no swap; credited once the chain shows the transfer)
    sent = chain_env.net.fund(owner.address, usdc=50)
    body = fill(SEED_DEPOSIT, token_address=lifi.usdc, token_symbol="USDC", chain="arbitrum", amount="50")
    usdc = http("POST", "/api/v1/deposits", 201, fill(body, transaction_hash=sent))
    assert (usdc["status"], usdc["status_detail"]) == ("processing", "submitted")
    assert (usdc["swap_needed"], usdc["transaction_hash"]) == (False, sent.lower())
    assert (usdc["token_symbol"], usdc["chain"], usdc["target_token"]) == ("USDC", "arbitrum", "USDC")
    assert usdc["swap_provider"] is None and usdc["swap_status"] is None and iso_z(usdc["created_at"])
    none = http("GET", f"/api/v1/deposits/{usdc['id']}/swap-status", 200)
    assert none == {"deposit_id": usdc["id"], "swap_needed": False, "swaps": []}

    # §4.4.2
    status = http("GET", f"/api/v1/deposits/{created['id']}/swap-status", 200)
    assert (status["deposit_id"], status["swap_needed"]) == (created["id"], True)
    (swap,) = status["swaps"]
    assert isinstance(swap["id"], int) and swap["status"] == "pending"
    assert (swap["from_token"], swap["to_token"]) == ("ETH", "USDC")
    assert (swap["from_chain"], swap["to_chain"]) == ("ethereum", "arbitrum")
    assert number(swap["amount"]) == D("1.0") and number(swap["estimated_output"]) > 0


# --- §4.5 admin configuration --------------------------------------------------------------------------


def test_4_5_admin_configuration(desk, ws_server):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser(
        username="admin", email="admin@example.com", password="pw-Admin-12345!"
    )
    tokens = Http(ws_server)("POST", "/api/v1/auth/login", 200, {"email": admin.email, "password": "pw-Admin-12345!"})
    http = Http(ws_server, tokens["access_token"])

    # §4.5.1 as written. DIFFERENCE: the seed's SECRET_KEY (category security) is no runtime
    # setting here: it is needed before the database exists, so it stays in the environment
    page = http("GET", SEED_APP_CONFIGS_PATH, 200)
    assert page == {"items": [], "total": 0, "skip": 0, "limit": 100}
    # the same request for a category that has a row
    http(
        "POST",
        "/api/v1/admin/config/app-configs",
        201,
        {"config_key": "RISK_MAX_NOTIONAL", "config_value": "2500", "reason": "contract test"},
    )
    page = http("GET", SEED_APP_CONFIGS_PATH.replace("category=security", "category=risk"), 200)
    assert set(page) == {"items", "total", "skip", "limit"}
    assert (page["total"], page["skip"], page["limit"]) == (1, 0, 100)
    (item,) = page["items"]
    assert isinstance(item["id"], int)
    assert (item["config_key"], item["config_type"], item["category"]) == ("RISK_MAX_NOTIONAL", "string", "risk")
    assert item["is_encrypted"] is False and item["is_active"] is True

    # §4.5.2 as written: DIFFERENCE, every change needs a reason (the audit trail)
    configs = http("GET", "/api/v1/admin/config/provider-configs?provider_type=swap", 200)["items"]
    (lifi_config,) = [c for c in configs if c["provider_name"] == "lifi"]
    path = f"/api/v1/admin/config/provider-configs/{lifi_config['id']}"
    no_reason = http("PUT", path, 400, SEED_PROVIDER_CONFIG)
    assert "reason" in no_reason["error"]["details"]
    answer = http("PUT", path, 200, {**SEED_PROVIDER_CONFIG, "reason": "seed 003 §4.5.2"})
    assert answer == {
        "id": lifi_config["id"],
        "provider_name": "lifi",
        "provider_type": "swap",
        "is_active": True,
        "version": lifi_config["version"] + 1,
    }
