"""Service API keys: `Authorization: Api-Key tdk_...`, scopes, revocation, and the admin that
shows a new key exactly once."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import include, path
from django.utils import timezone
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tests.trading.accounts_helpers import UserFactory, bearer, login
from trading.models import ApiKey, Event
from trading.permissions import HasScope, OwnedQuerysetMixin
from trading.services.accounts import api_key_create, api_key_revoke
from trading.tokens import sha256_hex

pytestmark = pytest.mark.django_db


class TradeEndpoint(APIView):
    """Stands in for a trade endpoint another app will build: GET reads, POST trades."""

    permission_classes = [HasScope("trade")]

    def get(self, request):
        return Response({"user": request.user.pk})

    def post(self, request):
        return Response({"traded_for": request.user.pk}, status=201)


class OwnedKeys(OwnedQuerysetMixin, generics.GenericAPIView):
    permission_classes = [HasScope("trade")]
    queryset = ApiKey.objects.all()

    def get(self, request):
        return Response(sorted(k.pk for k in self.get_queryset()))


urlpatterns = [
    path("api/v1/test/trade", TradeEndpoint.as_view()),
    path("api/v1/test/owned", OwnedKeys.as_view()),
    path("api/v1/", include("trading.urls")),
]


def _key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


@override_settings(ROOT_URLCONF="tests.trading.test_api_keys")
def test_read_key_can_get_but_not_post_and_trade_key_can_both():
    user = UserFactory()
    _, read_raw = api_key_create(name="reader", user=user, scopes=["read"], created_by=None)
    _, trade_raw = api_key_create(name="trader", user=user, scopes=["read", "trade"], created_by=None)
    reader, trader = _key_client(read_raw), _key_client(trade_raw)
    assert reader.get("/api/v1/test/trade").json() == {"user": user.pk}
    denied = reader.post("/api/v1/test/trade")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "PERMISSION_DENIED"
    assert trader.post("/api/v1/test/trade").status_code == 201
    # a person with a Bearer token holds read and trade
    assert bearer(login(user)["access_token"]).post("/api/v1/test/trade").status_code == 201


@override_settings(ROOT_URLCONF="tests.trading.test_api_keys")
def test_trade_only_key_cannot_read():
    _, raw = api_key_create(name="write-only", user=UserFactory(), scopes=["trade"], created_by=None)
    assert _key_client(raw).get("/api/v1/test/trade").status_code == 403


@override_settings(ROOT_URLCONF="tests.trading.test_api_keys")
def test_owned_queryset_mixin_scopes_to_the_key_user():
    alice, bob = UserFactory(), UserFactory()
    a_key, a_raw = api_key_create(name="a", user=alice, scopes=["read"], created_by=None)
    api_key_create(name="b", user=bob, scopes=["read"], created_by=None)
    assert _key_client(a_raw).get("/api/v1/test/owned").json() == [a_key.pk]


def test_revoked_expired_unknown_keys_and_inactive_users_are_refused():
    user = UserFactory()
    key, raw = api_key_create(name="k", user=user, scopes=["read"], created_by=None)
    client = _key_client(raw)
    assert client.get("/api/v1/me").status_code == 200
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None
    # revoked
    api_key_revoke(api_key=key, actor=None)
    assert Event.objects.filter(topic="api_key.revoked", aggregate_id=str(key.pk)).exists()
    r = client.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    # expired
    key2, raw2 = api_key_create(
        name="k2", user=user, scopes=["read"], created_by=None, expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert _key_client(raw2).get("/api/v1/me").status_code == 401
    # unknown
    assert _key_client("tdk_" + "x" * 43).get("/api/v1/me").status_code == 401
    # inactive user
    _, raw3 = api_key_create(name="k3", user=user, scopes=["read"], created_by=None)
    user.is_active = False
    user.save()
    assert _key_client(raw3).get("/api/v1/me").status_code == 401


def test_keys_cannot_manage_the_account_or_reach_staff_endpoints():
    staff = UserFactory(is_staff=True)
    _, raw = api_key_create(name="ops", user=staff, scopes=["read", "trade"], created_by=None)
    client = _key_client(raw)
    assert client.get("/api/v1/wallets").status_code == 200
    assert client.post("/api/v1/wallets", {}, format="json").status_code == 403
    assert client.get("/api/v1/ledger/events").status_code == 403


def test_key_shape_and_storage():
    key, raw = api_key_create(name="k", user=UserFactory(), scopes=["read"], created_by=None)
    assert raw.startswith("tdk_") and len(raw) > 40 and key.prefix == raw[:12]
    assert key.key_hash == sha256_hex(raw) and raw not in str(ApiKey.objects.filter(pk=key.pk).values().first())
    created = Event.objects.get(topic="api_key.created", aggregate_id=str(key.pk))
    assert raw not in str(created.payload)


def test_admin_creates_a_key_shows_it_once_and_revokes_it(staff_client, operator_user):
    user = UserFactory()
    # when an operator adds a key
    response = staff_client.post(
        "/admin/trading/apikey/add/",
        {"name": "market-maker", "user": user.pk, "scopes": ["read", "trade"], "expires_at": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    key = ApiKey.objects.get(name="market-maker")
    assert key.created_by == operator_user and key.scopes == ["read", "trade"]
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    raw = next(word for m in shown for word in m.split() if word.startswith("tdk_"))
    assert sha256_hex(raw) == key.key_hash
    # then the key works; the page after the add shows it once, and no page shows it again
    assert _key_client(raw).get("/api/v1/me").json()["id"] == user.pk
    assert raw in staff_client.get("/admin/trading/apikey/").content.decode()
    for url in ("/admin/trading/apikey/", f"/admin/trading/apikey/{key.pk}/change/"):
        page = staff_client.get(url).content.decode()
        assert key.prefix in page and raw not in page and key.key_hash not in page
    # revoke through the admin action
    staff_client.post("/admin/trading/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert _key_client(raw).get("/api/v1/me").status_code == 401


def test_admin_wallet_and_user_pages_render(staff_client):
    from eth_account import Account

    from trading.models import Wallet

    user = UserFactory()
    wallet = Wallet.objects.create(user=user, wallet_address=Account.create().address)
    assert staff_client.get(f"/admin/trading/user/{user.pk}/change/").status_code == 200
    assert staff_client.get("/admin/trading/wallet/?q=" + wallet.wallet_address).status_code == 200
    assert staff_client.get("/admin/trading/refreshtoken/").status_code == 200
    staff_client.post("/admin/trading/wallet/", {"action": "deactivate", "_selected_action": [wallet.pk]})
    wallet.refresh_from_db()
    assert not wallet.is_active
