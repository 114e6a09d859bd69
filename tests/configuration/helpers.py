"""Clients for the staff configuration API."""

from __future__ import annotations

from rest_framework.test import APIClient

BASE = "/api/v1/admin/config"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"} and error["code"] == code
    return error


def provider_id(client, name: str) -> int:
    items = client.get(f"{BASE}/provider-configs").json()["items"]
    return next(p["id"] for p in items if p["provider_name"] == name)
