"""Websocket authentication and origin checks against the real server."""

import pytest
from websockets.exceptions import InvalidStatus

from tests.realtime.conftest import close_code, make_token, recv, subscribe, ws_connect


@pytest.mark.parametrize(
    ("token_of", "error"),
    [
        (lambda u: None, "unauthenticated"),
        (lambda u: make_token(u, expires_in=-5), "token_expired"),
        (lambda u: make_token(u, key="not-the-signing-key"), "token_invalid"),
        (lambda u: make_token(u, kind="refresh"), "token_invalid"),
        (lambda u: "not-a-jwt", "token_invalid"),
    ],
    ids=["no-credentials", "expired", "bad-signature", "refresh-token", "garbage"],
)
@pytest.mark.parametrize("path", ["/ws", "/stream"])
def test_connections_without_valid_credentials_are_closed_with_4401(ws_server, make_user, token_of, error, path):
    user = make_user()
    with ws_connect(ws_server, path, token=token_of(user)) as ws:
        refusal = recv(ws)
        assert refusal["type"] == "error"
        assert (refusal.get("data") or refusal)["code"] == error
        assert close_code(ws) == 4401


def test_inactive_user_is_refused(ws_server, make_user):
    user = make_user(is_active=False)
    with ws_connect(ws_server, token=make_token(user), via="subprotocol") as ws:
        assert recv(ws)["data"]["code"] == "user_inactive"
        assert close_code(ws) == 4401


def test_token_that_expires_during_the_connection_ends_it(ws_server, make_user):
    user = make_user()
    with ws_connect(ws_server, token=make_token(user, expires_in=2)) as ws:
        assert subscribe(ws, "trades")["type"] == "subscribed"  # valid at first
        final = recv(ws)
        assert final["type"] == "error" and final["data"]["code"] == "token_expired"
        assert close_code(ws) == 4401


def test_admin_session_cookie_authenticates(ws_server, client, operator_user):
    client.force_login(operator_user)
    cookie = client.cookies["sessionid"].value
    with ws_connect(ws_server, "/stream", cookie=cookie) as ws:
        ws.send('{"type": "subscribe", "topics": ["order.*"]}')
        assert recv(ws)["type"] == "subscribed"


def test_logged_out_session_is_refused(ws_server, client, operator_user):
    client.force_login(operator_user)
    cookie = client.cookies["sessionid"].value
    client.logout()
    with ws_connect(ws_server, cookie=cookie) as ws:
        assert recv(ws)["data"]["code"] == "unauthenticated"
        assert close_code(ws) == 4401


@pytest.mark.parametrize("origin", ["http://evil.example.com", None])
def test_a_cookie_session_from_a_foreign_or_missing_origin_is_refused_before_the_handshake(
    ws_server, client, operator_user, origin
):
    client.force_login(operator_user)
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ws_server, "/stream", cookie=client.cookies["sessionid"].value, origin=origin)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("origin", ["http://evil.example.com", None])
@pytest.mark.parametrize("path", ["/ws", "/stream"])
def test_a_client_with_no_credential_at_all_is_told_so_whatever_its_origin(ws_server, origin, path):
    """The Origin check guards the session cookie; a bot that forgot its token sends neither, and
    is answered `unauthenticated` and 4401 (it was refused with a bare HTTP 403, as if its
    origin were the problem)."""
    with ws_connect(ws_server, path, origin=origin) as ws:
        refusal = recv(ws)
        assert (refusal.get("data") or refusal)["code"] == "unauthenticated"
        assert close_code(ws) == 4401


@pytest.mark.parametrize("origin", ["http://evil.example.com", None])
@pytest.mark.parametrize("via", ["query", "subprotocol", "header"])
def test_token_clients_need_no_origin(ws_server, make_user, origin, via):
    """A bot with a JWT sends no Origin; a page on another site cannot read the token, so the
    Origin check (which guards the cookie) does not apply."""
    with ws_connect(ws_server, token=make_token(make_user()), origin=origin, via=via) as ws:
        assert subscribe(ws, "trades")["type"] == "subscribed"


def test_a_bad_bearer_header_is_refused_and_does_not_fall_back_to_the_session(ws_server, client, operator_user):
    client.force_login(operator_user)
    cookie = client.cookies["sessionid"].value
    with ws_connect(ws_server, token="not-a-jwt", via="header", cookie=cookie) as ws:
        assert recv(ws)["data"]["code"] == "token_invalid"
        assert close_code(ws) == 4401


def test_an_access_token_issued_by_the_api_opens_a_connection(ws_server, make_user):
    from trading.tokens import access_encode

    token, _ = access_encode(user=make_user())  # exactly what /api/v1/auth/login hands out
    with ws_connect(ws_server, token=token) as ws:
        assert subscribe(ws, "trades")["type"] == "subscribed"
