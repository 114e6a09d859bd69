"""Requests in the seed API's shapes (seed 003 §4.2, §4.3): `direction` as a bool, the asset as a
base symbol plus `asset_type` or as one of its pair names, amounts as JSON numbers; the pair
names the seed uses for prices; and what is refused (odd amounts, unknown fields)."""

from decimal import Decimal as D

import pytest

from tests.conftest import ledger_events_for
from trading.models import Order

pytestmark = pytest.mark.django_db

SEED_OPEN = {"collateral": 1000.0, "leverage": 10, "asset_type": 0, "asset": "BTC", "direction": True}


def _open(api, **body):
    return api.post("/api/v1/trading/trades", body, format="json")


def test_the_seed_example_opens_a_long_on_btc_usd(markets, api):
    response = _open(api, **SEED_OPEN, order_type="MARKET")
    assert response.status_code == 202, response.content
    order = Order.objects.get(pk=response.json()["order_id"])
    assert (order.asset, order.side, order.asset_type) == ("BTC-USD", "long", "crypto")
    assert (order.collateral, order.leverage) == (D("1000"), D("10"))


@pytest.mark.parametrize(
    ("direction", "side"), [(True, "long"), (False, "short"), ("long", "long"), ("short", "short")]
)
def test_direction_is_a_bool_or_a_word(markets, api, direction, side):
    response = _open(api, **(SEED_OPEN | {"direction": direction}))
    assert response.status_code == 202, response.content
    assert Order.objects.get(pk=response.json()["order_id"]).side == side


@pytest.mark.parametrize("direction", ["LONG", "buy", 1, 0, None, "true"])
def test_other_directions_are_refused(markets, api, direction):
    response = _open(api, **(SEED_OPEN | {"direction": direction}))
    assert response.status_code == 400 and "direction" in response.json()["error"]["details"], response.content


@pytest.mark.parametrize(
    ("asset", "asset_type", "symbol"),
    [
        ("BTC", 0, "BTC-USD"),
        ("BTC", "crypto", "BTC-USD"),
        ("BTC", None, "BTC-USD"),
        ("BTCUSDT", None, "BTC-USD"),
        ("BTCUSD", None, "BTC-USD"),
        ("BTC-USD", None, "BTC-USD"),
        ("btc/usd", None, "BTC-USD"),
        ("ETHUSDT", 0, "ETH-USD"),
        ("EURUSD", 1, "EUR-USD"),
        ("EUR", 1, "EUR-USD"),
        ("XAU", "2", "XAU-USD"),
    ],
)
def test_assets_by_base_symbol_alias_or_name(markets, api, asset, asset_type, symbol):
    body = {"asset": asset, "direction": "long", "collateral": "10", "leverage": "2"}
    if asset_type is not None:
        body["asset_type"] = asset_type
    response = _open(api, **body)
    assert response.status_code == 202, response.content
    assert Order.objects.get(pk=response.json()["order_id"]).asset == symbol


@pytest.mark.parametrize(("asset", "asset_type"), [("DOGE", 0), ("BTC", 1), ("BTCEUR", None), ("EURUSD", 0)])
def test_unknown_markets_and_the_wrong_asset_type_are_invalid_market(markets, api, asset, asset_type):
    body = {"asset": asset, "asset_type": asset_type, "direction": "long", "collateral": "10", "leverage": "2"}
    response = _open(api, **{k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_MARKET", response.content


def test_an_asset_type_out_of_range_is_refused(markets, api):
    response = _open(api, **(SEED_OPEN | {"asset_type": 9}))
    assert response.status_code == 400 and "asset_type" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("collateral", "amount"),
    [(100, "100"), (100.5, "100.5"), ("100", "100"), ("100.50", "100.5"), (".5", "0.5")],
)
def test_amounts_are_json_numbers_or_decimal_strings(markets, api, collateral, amount):
    response = _open(api, **(SEED_OPEN | {"collateral": collateral, "leverage": 2.5}))
    assert response.status_code == 202, response.content
    order = Order.objects.get(pk=response.json()["order_id"])
    assert (order.collateral, order.leverage) == (D(amount), D("2.5"))


@pytest.mark.parametrize("collateral", ["1_000", "١٠٠٠", "1e3", "NaN", "Infinity", True, "0x10", "", "10,5", "１０"])
def test_other_amounts_are_refused(markets, api, collateral):
    response = _open(api, **(SEED_OPEN | {"collateral": collateral}))
    assert response.status_code == 400 and "collateral" in response.json()["error"]["details"], response.content


def test_unknown_fields_are_refused_on_order_endpoints(markets, api):
    opened = _open(api, **(SEED_OPEN | {"stop_pric": 40000}))
    assert opened.status_code == 400 and opened.json()["error"]["details"] == {"stop_pric": ["Unknown field."]}
    assert not Order.objects.exists()
    patched = api.patch("/api/v1/trading/trades/BTC-USD/0", {"stop_loss": "1"}, format="json")
    assert patched.status_code == 400 and "stop_loss" in patched.json()["error"]["details"]
    closed = api.delete("/api/v1/trading/trades/BTC-USD/0", {"percent": 50}, format="json")
    assert closed.status_code == 400 and "percent" in closed.json()["error"]["details"]


# --- prices --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "symbol"),
    [("BTCUSDT", "BTC-USD"), ("BTCUSD", "BTC-USD"), ("BTC-USD", "BTC-USD"), ("ethusdt", "ETH-USD")],
)
def test_one_price_by_any_of_its_names(markets, api, pair, symbol):
    response = api.get(f"/api/v1/prices/{pair}?use_cache=true")
    assert response.status_code == 200, response.content
    body = response.json()
    base, quote = symbol.split("-")
    assert (body["pair"], body["symbol"], body["asset"], body["quote"]) == (pair, symbol, base, quote)
    assert D(body["price"]) == markets[symbol] and body["timestamp"] and body["source"]


@pytest.mark.parametrize("pair", ["NOPE-USD", "BTCEUR", "DOGE"])
def test_an_unknown_pair_is_404_invalid_market(markets, api, pair):
    response = api.get(f"/api/v1/prices/{pair}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "INVALID_MARKET", response.content


def test_bulk_prices_name_the_unknown_pairs(markets, api):
    response = api.get("/api/v1/prices?pairs=BTCUSDT,EURUSD,ETHUSDT,NOPE&use_cache=true")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(p["pair"], p["symbol"]) for p in body["prices"]] == [
        ("BTCUSDT", "BTC-USD"),
        ("EURUSD", "EUR-USD"),
        ("ETHUSDT", "ETH-USD"),
    ]
    assert body["unknown"] == ["NOPE"] and body["unavailable"] == []


def test_bulk_prices_without_pairs_are_every_market(markets, api):
    from providers.markets import markets_list

    response = api.get("/api/v1/prices")
    assert response.status_code == 200, response.content
    body = response.json()
    symbols = sorted(p["symbol"] for p in body["prices"]) + body["unavailable"]
    assert sorted(symbols) == sorted(m.symbol for m in markets_list()) and len(symbols) >= 6
    assert body["unknown"] == []


def test_bulk_prices_take_one_to_fifty_pairs(markets, api):
    assert api.get("/api/v1/prices?pairs=").status_code == 400
    assert api.get("/api/v1/prices?pairs=" + ",".join(f"P{i}" for i in range(51))).status_code == 400


# --- positions -----------------------------------------------------------------------------------


def test_positions_come_under_positions_with_the_seed_fields_and_a_page(markets, trader, api):
    from trading.models import Position

    for asset in ("BTC-USD", "ETH-USD", "SOL-USD"):
        Position.objects.create(
            user=trader,
            provider="paper",
            asset=asset,
            side="long",
            quantity=D("0.1"),
            avg_entry_price=D("45000"),
            current_price=D("46000"),
            unrealized_pnl=D("100"),
            leverage=D("10"),
        )
    ledger_events_for(*Position.objects.filter(user=trader))
    body = api.get("/api/v1/trading/positions?limit=2").json()
    assert set(body) == {"positions", "count", "limit", "offset", "next", "previous"}
    assert (body["count"], body["limit"], body["offset"], len(body["positions"])) == (3, 2, 0, 2)
    assert "offset=2" in body["next"] and body["previous"] is None
    first = body["positions"][0]
    seed = {"id", "asset", "side", "size", "entry_price", "current_price", "unrealized_pnl", "leverage"}
    assert seed <= set(first), seed - set(first)
    assert (first["side"], D(first["size"]), D(first["entry_price"]), D(first["leverage"])) == (
        "long",
        D("0.1"),
        D("45000"),
        D("10"),
    )
    rest = api.get(body["next"]).json()
    assert len(rest["positions"]) == 1 and rest["next"] is None
