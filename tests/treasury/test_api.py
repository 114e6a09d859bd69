"""The staff treasury API: inventory, liquidity actions (create, list, approve, cancel), in the
OpenAPI schema, every error in the envelope."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.treasury.conftest import SOLVER, USDC, allow, arm_withdrawals, sync

pytestmark = pytest.mark.django_db
DEST = "0x1111111111111111111111111111111111111111"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def envelope(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"} and error["code"] == code
    return error


def test_inventory_lists_balances_with_spendable_and_sync_ages(near, operators):
    sync()
    body = api(operators[0]).get("/api/v1/treasury/inventory?venue=near_intents").json()
    usdc = next(r for r in body["inventory"] if r["asset"] == USDC)
    assert Decimal(usdc["credited"]) == Decimal(50_000) and Decimal(usdc["spendable"]) == Decimal(50_000)
    assert usdc["status"] == "ok" and usdc["sync_age_seconds"] is not None and usdc["account"] == SOLVER
    assert {s["venue"] for s in body["syncs"]} == {"near_intents", "ostium", "paper"}
    near.world.down.add("rpc")
    sync()
    stale = api(operators[0]).get("/api/v1/treasury/inventory?status=stale").json()["inventory"]
    assert stale and all(r["spendable"] is None and "RPC_UNAVAILABLE" in r["stale_reason"] for r in stale)
    envelope(api(operators[0]).get("/api/v1/treasury/inventory?venue=moon"), 400, "VALIDATION_ERROR")


def test_staff_only(db, django_user_model):
    user = django_user_model.objects.create_user(username="u", email="u@example.com", password="pw-U-12345!")
    envelope(api(user).get("/api/v1/treasury/inventory"), 403, "PERMISSION_DENIED")
    envelope(APIClient().get("/api/v1/treasury/liquidity-actions"), 401, "NOT_AUTHENTICATED")


def test_withdrawal_request_approve_and_list(near, operators, settings, django_capture_on_commit_callbacks):
    alice, bob = operators
    settings.WITHDRAWAL_APPROVAL_THRESHOLD = "10"
    sync()
    allow(DEST)
    arm_withdrawals()
    body = {"kind": "withdrawal", "asset": USDC, "amount": "25.5", "chain": "eth:42161", "address": DEST}
    created = api(alice).post("/api/v1/treasury/liquidity-actions", body, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert created.status_code == 201, created.content
    action = created.json()
    assert action["status"] == "requested" and action["needs_approval"] and Decimal(action["amount"]) == Decimal("25.5")
    replay = api(alice).post("/api/v1/treasury/liquidity-actions", body, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert replay.json()["id"] == action["id"] and replay["Idempotent-Replayed"] == "true"
    envelope(
        api(alice).post(f"/api/v1/treasury/liquidity-actions/{action['id']}/approve", {}), 403, "FOUR_EYES_REQUIRED"
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approved = api(bob).post(f"/api/v1/treasury/liquidity-actions/{action['id']}/approve", {"reason": "ok"})
    assert approved.status_code == 200 and approved.json()["approved_by"].endswith(":bob") and len(callbacks) == 1
    listed = api(alice).get("/api/v1/treasury/liquidity-actions?kind=withdrawal").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == action["id"]
    envelope(api(alice).get("/api/v1/treasury/liquidity-actions?status=nope"), 400, "VALIDATION_ERROR")
    envelope(api(alice).get("/api/v1/treasury/liquidity-actions/999999"), 404, "NOT_FOUND")


def test_errors_are_enveloped_with_field_details(near, operators):
    alice, _ = operators
    sync()
    url = "/api/v1/treasury/liquidity-actions"
    err = envelope(api(alice).post(url, {"kind": "teleport"}, format="json"), 400, "VALIDATION_ERROR")
    assert "kind" in err["details"]
    err = envelope(
        api(alice).post(url, {"kind": "withdrawal", "asset": USDC, "amount": "1"}, format="json"), 400, "MISSING_FIELDS"
    )
    assert set(err["details"]) == {"chain", "address"}
    err = envelope(
        api(alice).post(
            url,
            {"kind": "withdrawal", "asset": USDC, "amount": "1", "chain": "eth:42161", "address": DEST},
            format="json",
        ),
        403,
        "WITHDRAWAL_DESTINATION_NOT_ALLOWED",
    )
    assert "address" in err["details"]
    allow(DEST)
    err = envelope(
        api(alice).post(
            url,
            {"kind": "withdrawal", "asset": USDC, "amount": "99999999", "chain": "eth:42161", "address": DEST},
            format="json",
        ),
        409,
        "INSUFFICIENT_INVENTORY",
    )
    assert err["details"]["spendable"] == "50000"
    err = envelope(
        api(alice).post(url, {"kind": "funding", "asset": USDC, "amount": "-1"}, format="json"), 400, "INVALID_AMOUNT"
    )
    assert "amount" in err["details"]
    for unplain in ("5e0", "５", " 5"):  # refused as on the trade endpoints, not read as 5
        response = api(alice).post(url, {"kind": "funding", "asset": USDC, "amount": unplain}, format="json")
        err = envelope(response, 400, "VALIDATION_ERROR")
        assert "amount" in err["details"]
    # finer than the token: the bridge credits whole units, so such a funding could never match
    err = envelope(
        api(alice).post(url, {"kind": "funding", "asset": USDC, "amount": "0.0000001"}, format="json"),
        400,
        "INVALID_AMOUNT",
    )
    assert err["message"] == "USDC has 6 decimals."
    created = api(alice).post(url, {"kind": "funding", "asset": USDC, "amount": "5", "tx_hash": "0xf"}, format="json")
    assert created.status_code == 201
    envelope(
        api(alice).post(url, {"kind": "funding", "asset": USDC, "amount": "5", "tx_hash": "0xf"}, format="json"),
        409,
        "DUPLICATE_TX_HASH",
    )
    cancel = f"{url}/{created.json()['id']}/cancel"
    err = envelope(api(alice).post(cancel, {}, format="json"), 400, "REASON_REQUIRED")
    assert "reason" in err["details"]
    assert api(alice).post(cancel, {"reason": "recorded twice"}, format="json").json()["status"] == "cancelled"
    envelope(api(alice).post(cancel, {"reason": "again"}, format="json"), 409, "ACTION_NOT_CANCELLABLE")


def test_a_viewer_cannot_request(near, django_user_model):
    from django.contrib.auth.models import Group

    from trading.admin_panel.roles import roles_and_rows_ensure

    roles_and_rows_ensure()
    viewer = django_user_model.objects.create_user(
        username="v", email="v@example.com", password="pw-V-12345!", is_staff=True
    )
    viewer.groups.add(Group.objects.get(name="viewer"))
    body = {"kind": "funding", "asset": USDC, "amount": "5"}
    envelope(api(viewer).post("/api/v1/treasury/liquidity-actions", body, format="json"), 403, "PERMISSION_DENIED")
    assert api(viewer).get("/api/v1/treasury/inventory").status_code == 200


def test_the_endpoints_are_in_the_openapi_schema(staff_client):
    schema = staff_client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "get" in paths["/api/v1/treasury/inventory"]
    assert {"get", "post"} <= set(paths["/api/v1/treasury/liquidity-actions"])
    for verb in ("approve", "cancel"):
        operation = paths[f"/api/v1/treasury/liquidity-actions/{{id}}/{verb}"]["post"]
        assert "403" in operation["responses"] and "409" in operation["responses"]
    post = paths["/api/v1/treasury/liquidity-actions"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert {"400", "403", "409"} <= set(post["responses"])


def test_empty_filters_are_refused_and_the_list_schema_is_a_page(operators):
    """`?status=` was read as no filter (schemathesis ST201) and the list documented as an array
    while it returns a page (ST108), as the webhook deliveries did."""
    from drf_spectacular.generators import SchemaGenerator

    alice, _ = operators
    for url in (
        "/api/v1/treasury/liquidity-actions?status=",
        "/api/v1/treasury/liquidity-actions?kind=",
        "/api/v1/treasury/liquidity-actions?offset=null",
        "/api/v1/treasury/inventory?venue=",
    ):
        envelope(api(alice).get(url), 400, "VALIDATION_ERROR")
    schema = SchemaGenerator().get_schema(request=None, public=True)
    ok = schema["paths"]["/api/v1/treasury/liquidity-actions"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"]
    assert "results" in schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
