"""Every route of the project, every method, every kind of credential: the expected answer of
each is written down here, and a route (or a method) without an entry fails.

Authorisation is deny by default (trading/permissions.py): safe methods need the `read`
scope, writes `trade`, account management `account`, operator endpoints staff. The columns:

- `none`:  no credential at all;
- `read`:  the owner's service key with the `read` scope only;
- `trade`: the owner's service key with `read` and `trade`;
- `other`: another (non-staff) user's JWT, on the owner's objects;
- `user`:  the owner's own JWT and session (a non-staff person);
- `staff`: an operator's (a superuser: every operator role) JWT and session.

Writes send `{}`, so a request that passes authorisation mostly ends in a 400 (validation) or
404 (no such object); the point is which answer is 401 (no credential), 403 (not allowed) and
which passes (`*`: open, whatever it answers). Object routes use the owner's objects where the
owner has one, so `other` shows that another user's id is a 404, never a 403 that would confirm
it exists.

Django's admin (everything under `admin/`) is session-only and staff-only as a whole: every
route of it redirects a non-staff caller to the login page (ADMIN_OPEN lists the routes that
are open by design). Websocket routes (config/routing.py) take a JWT or a session, never a
service key."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from config.routing import websocket_urlpatterns
from tests.conftest import ledger_events_for
from tests.realtime.conftest import ORIGIN, close_code, recv_until

COLUMNS = ("none", "read", "trade", "other", "user", "staff")

# route (as Django spells it)                         method  none read trade other user staff
EXPECTED_TEXT = """
health                                                GET     200  200  200   200   200  200
metrics                                               GET     404  404  404   404   404  404
ready                                                 GET     *     *     *     *     *     *
api/schema/                                           GET     200  200  200   200   200  200
api/docs/                                             GET     200  200  200   200   200  200
api/redoc/                                            GET     200  200  200   200   200  200
api/v1/auth/register                                  POST    400  400  400   400   400  400
api/v1/auth/login                                     POST    400  400  400   400   400  400
api/v1/auth/refresh                                   POST    400  400  400   400   400  400
api/v1/auth/logout                                    POST    400  400  400   400   400  400
api/v1/auth/wallet/nonce                              POST    400  400  400   400   400  400
api/v1/auth/wallet/connect                            POST    400  400  400   400   400  400
api/v1/me                                             GET     401  200  200   200   200  200
api/v1/wallets                                        GET     401  200  200   200   200  200
api/v1/wallets                                        POST    401  403  403   400   400  400
api/v1/wallets/<int:pk>/deactivate                    POST    401  403  403   404   200  404
api/v1/webhooks                                       GET     401  200  200   200   200  200
api/v1/webhooks                                       POST    401  403  400   400   400  400
api/v1/webhooks/<int:pk>                              GET     401  200  200   404   200  404
api/v1/webhooks/<int:pk>                              PUT     401  403  400   404   400  404
api/v1/webhooks/<int:pk>                              PATCH   401  403  200   404   200  404
api/v1/webhooks/<int:pk>                              DELETE  401  403  204   404   204  404
api/v1/webhooks/<int:pk>/rotate-secret                POST    401  403  200   404   200  404
api/v1/webhooks/<int:pk>/test                         POST    401  403  202   404   202  404
api/v1/webhooks/<int:pk>/deliveries                   GET     401  200  200   404   200  404
api/v1/trading/trades                                 POST    401  403  400   400   400  400
api/v1/trading/trades/<str:pair_id>/<str:index>       PATCH   401   403   400   404   400   404
api/v1/trading/trades/<str:pair_id>/<str:index>       DELETE  401  403  202   404   202  404
api/v1/trading/positions                              GET     401  200  200   200   200  200
api/v1/trading/orders                                 GET     401  200  200   200   200  200
api/v1/trading/orders/<int:pk>                        GET     401  200  200   404   200  404
api/v1/trading/orders/<int:pk>/cancel                 POST    401  403  202   404   202  404
api/v1/prices                                         GET     200  200  200   200   200  200
api/v1/prices/<str:pair>                              GET     200  200  200   200   200  200
api/v1/ledger/events                                  GET     401  403  403   403   403  200
api/v1/ledger/events/<str:pk>                         GET     401  403  403   403   403  404
api/v1/ops/reference-prices                           GET     401  403  403   403   403  200
api/v1/ops/reference-prices/refresh                   POST    401  403  403   403   403  *
api/v1/ops/reference-prices/pause                     POST    401  403  403   403   403  400
api/v1/ops/reference-prices/resume                    POST    401  403  403   403   403  400
api/v1/ops/reference-prices/samples                   GET     401  403  403   403   403  400
api/v1/ops/reference-prices/samples/<int:pk>          GET     401  403  403   403   403  404
api/v1/treasury/inventory                             GET     401  403  403   403   403  200
api/v1/treasury/liquidity-actions                     GET     401  403  403   403   403  200
api/v1/treasury/liquidity-actions                     POST    401  403  403   403   403  400
api/v1/treasury/liquidity-actions/<int:pk>            GET     401  403  403   403   403  404
api/v1/treasury/liquidity-actions/<int:pk>/approve    POST    401  403  403   403   403  404
api/v1/treasury/liquidity-actions/<int:pk>/cancel     POST    401  403  403   403   403  400
api/v1/deposits                                       GET     401  200  200   200   200  200
api/v1/deposits                                       POST    401  403  400   400   400  400
api/v1/deposits/<int:pk>                              GET     401  404  404   404   404  404
api/v1/deposits/<int:pk>/swap-status                  GET     401  404  404   404   404  404
api/v1/deposits/<int:pk>/submitted                    POST    401  403  400   400   400  400
api/v1/deposits/<int:pk>/quote                        POST    401  403  404   404   404  404
api/v1/deposits/<int:pk>/signatures                   POST    401  403  400   400   400  400
api/v1/deposits/<int:pk>/execute                      POST    401  403  404   404   404  404
api/v1/ostium/delegations                             GET     401  200  200   200   200  200
api/v1/ostium/delegations/                            GET     401  200  200   200   200  200
api/v1/ostium/delegations/prepare                     POST    401  403  400   400   400  400
api/v1/ostium/delegations/<int:pk>                    GET     401   404   404   404   404   404
api/v1/ostium/delegations/<int:pk>/signatures         POST    401  403  400   400   400  400
api/v1/ostium/delegations/<int:pk>/execute            POST    401  403  404   404   404  404
api/v1/ostium/delegations/<int:pk>/revoke             POST    401  403  404   404   404  404
api/v1/admin/config/app-configs                       GET     401   403   403   403   403   200
api/v1/admin/config/app-configs                       POST    401   403   403   403   403   400
api/v1/admin/config/app-configs/<int:pk>              GET     401   403   403   403   403   404
api/v1/admin/config/app-configs/<int:pk>              PUT     401   403   403   403   403   400
api/v1/admin/config/app-configs/<int:pk>/rollback     POST    401   403   403   403   403   400
api/v1/admin/config/app-configs/<int:pk>/versions     GET     401   403   403   403   403   404
api/v1/admin/config/keys                              GET     401   403   403   403   403   200
api/v1/admin/config/provider-configs                  GET     401   403   403   403   403   200
api/v1/admin/config/provider-configs/<int:pk>         GET     401   403   403   403   403   404
api/v1/admin/config/provider-configs/<int:pk>         PUT     401   403   403   403   403   400
api/v1/admin/config/provider-configs/<int:pk>/rollback POST   401   403   403   403   403   400
api/v1/admin/config/provider-configs/<int:pk>/versions GET    401   403   403   403   403   404
api/v1/ops/near-intents                               GET     401  403  403   403   403  200
api/v1/ops/near-intents/components/<str:component>/<str:action> POST 401 403 403 403 403 404
api/v1/ops/near-intents/limits                        PUT     401  403  403   403   403  400
api/v1/ops/near-intents/pair-filter                   GET     401  403  403   403   403  200
api/v1/ops/near-intents/pair-filter                   PUT     401  403  403   403   403  400
api/v1/ops/near-intents/pair-filter/reset             POST    401  403  403   403   403  400
api/v1/ops/near-intents/quotes/<str:quote_id>         GET     401  403  403   403   403  404
api/v1/ops/near-intents/skip-reasons                  GET     401  403  403   403   403  200
api/v1/ops/near-intents/threshold                     PUT     401  403  403   403   403  400
internal/ostium/v1/health                             GET     200  200  200   200   200  200
internal/ostium/v1/ready                              GET     *     *     *     *     *     *
internal/ostium/v1/markets/list                       POST    401  401  401   401   401  401
internal/ostium/v1/accounts/balance                   POST    401  401  401   401   401  401
internal/ostium/v1/positions/list                     POST    401  401  401   401   401  401
internal/ostium/v1/positions/open                     POST    401  401  401   401   401  401
internal/ostium/v1/positions/close                    POST    401  401  401   401   401  401
internal/ostium/v1/positions/update-sl                POST    401  401  401   401   401  401
internal/ostium/v1/positions/update-tp                POST    401  401  401   401   401  401
internal/ostium/v1/prices/get                         POST    401  401  401   401   401  401
internal/ostium/v1/orders/status                      POST    401  401  401   401   401  401
internal/ostium/v1/orders/cancel                      POST    401  401  401   401   401  401
internal/ostium/v1/orders/sync                        POST    401  401  401   401   401  401
"""

# Websocket routes: "open" (the connection is accepted and answers a subscribe) or the close
# code it ends with. Service keys are not websocket credentials.
# route      none  read  trade other user staff
WEBSOCKET_TEXT = """
^ws/?$       4401  4401  4401  open  open open
^stream/?$   4401  4401  4401  open  open open
"""

# Admin routes open by design (route → expected status for every column, GET).
ADMIN_OPEN = {
    "admin/login/": 200,  # the sign-in page itself (staff: redirected to the index)
    "admin/logout/": 302,  # signing out: back to the admin index (which sends to the sign-in page)
}
ADMIN_METHODS = ("GET", "POST")


def _table(text: str) -> dict:
    rows = {}
    for line in text.strip().splitlines():
        route, method, *answers = line.split()
        assert len(answers) == len(COLUMNS), line
        assert (route, method) not in rows, f"duplicate entry {route} {method}"
        rows[route, method] = dict(zip(COLUMNS, answers, strict=True))
    return rows


EXPECTED = _table(EXPECTED_TEXT)
WEBSOCKET = {
    row[0]: dict(zip(COLUMNS, row[1:], strict=True))
    for row in (ln.split() for ln in WEBSOCKET_TEXT.strip().splitlines())
}


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def _methods(pattern: URLPattern) -> list[str]:
    """The methods a route serves: a class-based view's handlers; for a function view, what it
    declares (`require_http_methods`) or, for the Ostium service, POST."""
    view = pattern.callback
    cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if cls is not None:
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
    return ["POST"] if view.__name__ == "view" else ["GET"]


HTTP_ROUTES = [(route, pattern) for route, pattern in _walk(get_resolver().url_patterns)]
API_CASES = [
    (route, method) for route, pattern in HTTP_ROUTES if not route.startswith("admin/") for method in _methods(pattern)
]
ADMIN_ROUTES = sorted(route for route, _ in HTTP_ROUTES if route.startswith("admin/"))


def test_every_route_and_method_has_an_entry_and_every_entry_a_route():
    assert sorted(set(API_CASES) - set(EXPECTED)) == [], "routes without an expected answer: add them to EXPECTED"
    assert sorted(set(EXPECTED) - set(API_CASES)) == [], "entries for routes that no longer exist"
    ws_routes = sorted(str(p.pattern) for p in websocket_urlpatterns)
    assert ws_routes == sorted(WEBSOCKET), "websocket routes without an expected answer: add them to WEBSOCKET"
    assert set(ADMIN_OPEN) <= set(ADMIN_ROUTES)


# --- the credentials and the owner's objects -------------------------------------------------


class World:
    """Three people (the owner, another user, an operator), the owner's two service keys and one
    object of each kind the owner can have."""

    def __init__(self):
        from django.utils import timezone

        from trading.models import Order, Position, Trade, User, Wallet
        from trading.services.accounts import api_key_create
        from trading.tokens import access_encode
        from webhooks.models import WebhookAllowlist
        from webhooks.services import endpoint_create

        self.owner = User.objects.create_user(username="owner", email="owner@example.com", password=None)
        other = User.objects.create_user(username="other", email="other@example.com", password=None)
        staff = User.objects.create_superuser(username="staff", email="staff@example.com", password=None)
        _, read_raw = api_key_create(name="reader", user=self.owner, scopes=["read"], created_by=None)
        _, trade_raw = api_key_create(name="trader", user=self.owner, scopes=["read", "trade"], created_by=None)
        self.clients = {
            "none": APIClient(),
            "read": _client(f"Api-Key {read_raw}"),
            "trade": _client(f"Api-Key {trade_raw}"),
            "other": _client(f"Bearer {access_encode(user=other)[0]}"),
            "user": _client(f"Bearer {access_encode(user=self.owner)[0]}", session=self.owner),
            "staff": _client(f"Bearer {access_encode(user=staff)[0]}", session=staff),
        }
        self.tokens = {"other": access_encode(user=other)[0], "user": access_encode(user=self.owner)[0]}
        self.tokens["staff"] = access_encode(user=staff)[0]
        self.raw_keys = {"read": read_raw, "trade": trade_raw}
        WebhookAllowlist.objects.create(cidr="127.0.0.1/32", allow_http=True, note="test")
        endpoint, _ = endpoint_create(user=self.owner, url="http://127.0.0.1:9/hook", event_types=["*"])
        wallet = Wallet.objects.create(
            user=self.owner, wallet_address="0x" + "ab" * 20, verified_at=timezone.now(), provider="external"
        )
        position = Position.objects.create(user=self.owner, provider="paper", asset="BTC-USD", side="long")
        trade = Trade.objects.create(
            user=self.owner,
            position=position,
            provider="paper",
            asset="BTC-USD",
            pair_id="BTC-USD",
            trade_index="7",
            side="long",
            collateral=Decimal(100),
            leverage=Decimal(10),
            size=Decimal("0.0166"),
            initial_size=Decimal("0.0166"),
            entry_price=Decimal(60000),
            current_price=Decimal(60000),
            margin=Decimal(100),
        )
        order = Order.objects.create(
            user=self.owner,
            provider="paper",
            asset="BTC-USD",
            asset_type="crypto",
            order_type=Order.Type.LIMIT,
            side="long",
            collateral=Decimal(100),
            leverage=Decimal(10),
            price=Decimal(50000),
            pair_id="BTC-USD",
        )
        ledger_events_for(position, trade, order)
        self.values = {
            "api/v1/webhooks/<int:pk>": endpoint.pk,
            "api/v1/wallets/<int:pk>": wallet.pk,
            "api/v1/trading/orders/<int:pk>": order.pk,
            "<str:pair_id>": trade.pair_id,
            "<str:index>": trade.trade_index,
            "<str:pair>": "BTC-USD",
        }

    def path(self, route: str) -> str:
        """The route with its parameters filled in: the owner's object where there is one, an id
        nobody has otherwise."""

        def fill(match):
            token = match.group(0)
            head = route[: match.start()] + token
            for key, value in self.values.items():
                if head.endswith(key):
                    return str(value)
            return "999999"

        path = re.sub(r"<[^>]+>", fill, route)
        path = re.sub(r"\(\?P<\w+>([^|)]*)[^)]*\)", r"\1", path)  # a regex group: its first alternative
        return "/" + path.replace("^", "").replace("$", "")


def _client(authorization: str, session=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)
    if session is not None:
        client.force_login(session)
    return client


@pytest.fixture
def world(db, settings):
    from providers.markets import markets_cache_clear
    from providers.paper.seed import seed_paper_demo
    from providers.prices import price_cache_clear, price_set

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed_paper_demo()
    markets_cache_clear()
    price_cache_clear()
    price_set("BTC-USD", Decimal("60000"))
    return World()


def _request(client: APIClient, method: str, path: str):
    if method in ("GET", "HEAD"):
        return client.generic(method, path)
    return client.generic(method, path, data="{}", content_type="application/json")


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize(("route", "method"), sorted(EXPECTED))
def test_api_route(world, route, method, column):
    if (route, method) not in API_CASES:
        pytest.fail(f"{method} {route}: no such route")
    response = _request(world.clients[column], method, world.path(route))
    expected = EXPECTED[route, method][column]
    if expected == "*":  # open by design; its answer depends on the desk's state, not the caller
        assert response.status_code not in (401, 403), response.status_code
        return
    expected = int(expected)
    assert response.status_code == expected, (response.status_code, response.content[:500])
    if expected in (401, 403) and route.startswith("api/"):
        code = response.json()["error"]["code"]
        assert code == ("NOT_AUTHENTICATED" if expected == 401 else "PERMISSION_DENIED"), code


@pytest.mark.parametrize("column", COLUMNS)
def test_admin_routes(world, column):
    """Every admin route, GET and POST: a non-staff caller (whatever credential it brings: the
    admin reads only the session) is sent to the login page; an operator is not."""
    wrong = []
    for route in ADMIN_ROUTES:
        path = world.path(route)
        for method in ADMIN_METHODS:
            if column == "staff" and method != "GET":
                continue  # an operator's writes are the admin tests' business
            response = _request(world.clients[column], method, path)
            if route in ADMIN_OPEN:
                if method == "GET" and column != "staff" and response.status_code != ADMIN_OPEN[route]:
                    wrong.append((method, route, response.status_code))
                continue
            to_login = response.status_code == 302 and response["Location"].startswith("/admin/login/")
            if to_login == (column == "staff") or response.status_code >= 500:
                wrong.append((method, route, response.status_code, response.get("Location")))
    assert wrong == []


# --- websockets ------------------------------------------------------------------------------


@pytest.fixture
def ws_world(ws_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    world = World()
    world.ws_server = ws_server
    return world


@pytest.mark.parametrize("route", sorted(WEBSOCKET))
def test_websocket_route(ws_world, route):
    from websockets.sync.client import connect

    path = "/" + route.strip("^$").replace("/?", "")
    for column in COLUMNS:
        headers, subprotocols = {}, None
        if column in ("read", "trade"):
            headers["Authorization"] = f"Api-Key {ws_world.raw_keys[column]}"
        elif column != "none":
            subprotocols = ["bearer", ws_world.tokens[column]]
        expected = WEBSOCKET[route][column]
        with connect(
            ws_world.ws_server.url(path),
            origin=ORIGIN,
            subprotocols=subprotocols,
            additional_headers=headers,
            open_timeout=10,
        ) as ws:
            if expected == "open":
                ws.send('{"type": "ping"}')
                assert recv_until(ws, lambda m: m["type"] in ("pong", "error"))["type"] == "pong", column
            else:
                assert close_code(ws) == int(expected), column
