"""Helpers for the accounts tests: users, token clients and Sign-In with Ethereum messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factory
from django.conf import settings
from eth_account import Account
from eth_account.messages import encode_defunct
from rest_framework.test import APIClient
from siwe import SiweMessage

from trading.models import User

PASSWORD = "Correct-Horse-Battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def login(user: User) -> dict:
    response = APIClient().post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe_message(*, address: str, nonce: str, **overrides) -> str:
    now = datetime.now(UTC)
    fields = {
        "domain": settings.SIWE_DOMAIN,
        "address": address,
        "statement": "Sign in to Tradedesk.",
        "uri": settings.SIWE_URI,
        "version": "1",
        "chain_id": settings.SIWE_CHAIN_IDS[0],
        "nonce": nonce,
        "issued_at": iso(now),
        "expiration_time": iso(now + timedelta(minutes=5)),
    }
    fields.update(overrides)
    return SiweMessage(**{k: v for k, v in fields.items() if v is not None}).prepare_message()


def sign(account, message: str) -> str:
    return "0x" + Account.sign_message(encode_defunct(text=message), account.key).signature.hex().removeprefix("0x")


def get_nonce(client: APIClient, address: str) -> dict:
    response = client.post("/api/v1/auth/wallet/nonce", {"wallet_address": address}, format="json")
    assert response.status_code == 200, response.content
    return response.json()
