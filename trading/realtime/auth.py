"""Websocket authentication: a JWT access token, or the Django (admin) session cookie.

A token comes as the upgrade request's `Authorization: Bearer <jwt>` header (servers, bots,
the seed API's clients), as the subprotocol pair `Sec-WebSocket-Protocol: bearer, <jwt>` (the
server then answers with the subprotocol `bearer`; browsers cannot set an Authorization header
on a websocket), or as the `token` query parameter (`/ws?token=<jwt>`). With no token, the
session cookie is used (`websocket_auth_stack`). A token that is present but bad never falls
back to the session.

The Origin check (`SessionOriginValidator`) guards cookie sessions against cross-site use: a
page on another site cannot read a token, but its browser sends the cookie. A connection that
brings a token needs no Origin header (a Python bot sends none).

`trading.auth.user_from_token` is the one place a token becomes a user, here and in the REST
API, with the same refusal codes.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.contrib.auth.models import AnonymousUser

from trading.auth import TokenRejected, user_from_token

BEARER_SUBPROTOCOL = "bearer"


def token_from_scope(scope) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from the `Authorization: Bearer` header, the `bearer,
    <token>` subprotocols or the query string."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip(), None
    subprotocols = list(scope.get("subprotocols") or [])
    if BEARER_SUBPROTOCOL in subprotocols:
        index = subprotocols.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(subprotocols):
            return subprotocols[index + 1], BEARER_SUBPROTOCOL
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    tokens = query.get("token")
    if tokens:
        return tokens[0], None
    return None, None


class TokenAuthMiddleware(BaseMiddleware):
    """Sets `scope["user"]` from a token when one is given, and `scope["auth"]`:
    `{"method": "jwt" | "session", "expires_at": datetime | None, "subprotocol": str | None,
    "error": code | None}`. Goes inside the session middleware so it can override the session."""

    async def __call__(self, scope, receive, send):
        token, subprotocol = token_from_scope(scope)
        scope = dict(scope)
        if token is None:
            scope["auth"] = {"method": "session", "expires_at": None, "subprotocol": None, "error": None}
        else:
            auth = {"method": "jwt", "expires_at": None, "subprotocol": subprotocol, "error": None}
            try:
                identity = await database_sync_to_async(user_from_token)(token)
            except TokenRejected as exc:
                auth["error"] = exc.code
                scope["user"] = AnonymousUser()
            else:
                auth["expires_at"] = identity.expires_at
                scope["user"] = identity.user
            scope["auth"] = auth
        return await super().__call__(scope, receive, send)


class WebsocketSessionMiddleware(SessionMiddleware):
    """Channels' `SessionMiddleware` (the session from the cookie, in `scope["session"]`)
    without its `send` wrapper. The wrapper inspects the session on every outgoing frame so as
    to save it on `http.response.start`, which a websocket never sends: with a thousand
    clients on a pair, that was a thousand session checks per price tick for nothing."""

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


class SessionOriginValidator:
    """Channels' `AllowedHostsOriginValidator` (the Origin must name one of ALLOWED_HOSTS, else
    HTTP 403 before the handshake) for connections that would authenticate by the session
    cookie; a connection that brings a token, or no session cookie at all, passes without an
    Origin (the check guards the cookie). One with no credential at all is then told
    `unauthenticated` and closed 4401, not refused as if its origin were the problem."""

    def __init__(self, inner):
        from channels.security.websocket import AllowedHostsOriginValidator

        self.inner = inner
        self.checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope, receive, send):
        token, _ = token_from_scope(scope)
        app = self.inner if token is not None or not _session_cookie_sent(scope) else self.checked
        return await app(scope, receive, send)


def _session_cookie_sent(scope) -> bool:
    from django.conf import settings
    from django.http.cookie import parse_cookie

    for name, value in scope.get("headers", ()):
        if name == b"cookie" and settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin1")):
            return True
    return False


def websocket_auth_stack(inner):
    """Cookie → session → session user → bearer token (overrides the session user) → `inner`."""
    return CookieMiddleware(WebsocketSessionMiddleware(AuthMiddleware(TokenAuthMiddleware(inner))))
