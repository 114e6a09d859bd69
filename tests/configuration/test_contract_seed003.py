"""Seed 003 §4.5 (admin endpoints), as the seed writes them: a Bearer admin token, the query
parameters, the request bodies and the response shapes — and the same operations in the
OpenAPI schema."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.configuration.helpers import BASE, provider_id
from tests.trading.accounts_helpers import UserFactory, bearer, login

pytestmark = pytest.mark.django_db
SEED_ITEM = {
    "id": int,
    "config_key": str,
    "config_type": str,
    "category": str,
    "is_encrypted": bool,
    "is_active": bool,
}


@pytest.fixture
def admin_token():
    return login(UserFactory(is_staff=True, is_superuser=True))["access_token"]


def test_4_5_1_list_app_configurations(admin_token):
    client = bearer(admin_token)
    client.post(
        f"{BASE}/app-configs",
        {"config_key": "RISK_MAX_NOTIONAL", "config_value": "2500", "reason": "seed 003 §4.5.1"},
        format="json",
    )
    client.post(
        f"{BASE}/app-configs", {"config_key": "PRICE_CACHE_TTL", "config_value": 40, "reason": "r"}, format="json"
    )
    response = client.get(f"{BASE}/app-configs?category=risk&skip=0&limit=100")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "total", "skip", "limit"}
    assert (body["total"], body["skip"], body["limit"]) == (1, 0, 100)
    (item,) = body["items"]
    for name, kind in SEED_ITEM.items():
        assert isinstance(item[name], kind), name
    assert (item["config_key"], item["config_type"], item["category"]) == ("RISK_MAX_NOTIONAL", "string", "risk")
    assert item["is_active"] is True and item["is_encrypted"] is False
    defaults = client.get(f"{BASE}/app-configs").json()
    assert (defaults["total"], defaults["skip"], defaults["limit"]) == (2, 0, 100)
    paged = client.get(f"{BASE}/app-configs?skip=1&limit=1").json()
    assert len(paged["items"]) == 1 and paged["total"] == 2 and paged["skip"] == 1
    assert client.get(f"{BASE}/app-configs?limit=0").status_code == 400
    negative = client.get(f"{BASE}/app-configs?skip=-1")
    assert negative.status_code == 400  # not "A valid integer is required."
    assert negative.json()["error"]["details"] == {"skip": ["Must be a whole number of at least 0."]}
    for odd in ("skip=%D9%A1", "limit=1_0", "limit=", "skip=null"):
        assert client.get(f"{BASE}/app-configs?{odd}").status_code == 400, odd
    assert client.get(f"{BASE}/provider-configs?provider_type=").status_code == 400
    assert client.get(f"{BASE}/provider-configs?provider_type=moon").status_code == 400
    assert client.get(f"{BASE}/provider-configs?provider_type=swap").json()["total"] == 1


def test_4_5_2_update_provider_configuration(admin_token):
    client = bearer(admin_token)
    config_id = provider_id(client, "lifi")
    response = client.put(
        f"{BASE}/provider-configs/{config_id}",
        {
            "config_data": {"enabled": True, "api_url": "https://api.example.com", "timeout": 30},
            "activate": True,
            "reason": "seed 003 §4.5.2",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": config_id,
        "provider_name": "lifi",
        "provider_type": "swap",
        "is_active": True,
        "version": 2,
    }


def test_the_admin_endpoints_need_an_admin_token(db):
    user_token = login(UserFactory())["access_token"]
    assert bearer(user_token).get(f"{BASE}/app-configs").status_code == 403
    assert bearer("not-a-token").get(f"{BASE}/app-configs").status_code == 401


def test_the_openapi_schema_documents_the_admin_endpoints_in_the_seed_shapes():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    listing = paths[f"{BASE}/app-configs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"category", "skip", "limit"}
    page = _resolve(schema, listing["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(page["properties"]) == {"items", "total", "skip", "limit"}
    item = _resolve(schema, page["properties"]["items"]["items"])
    assert set(SEED_ITEM) <= set(item["properties"])
    update = paths[f"{BASE}/provider-configs/{{id}}"]["put"]
    request = _resolve(schema, update["requestBody"]["content"]["application/json"]["schema"])
    assert {"config_data", "activate"} <= set(request["properties"])
    answer = _resolve(schema, update["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(answer["properties"]) == {"id", "provider_name", "provider_type", "is_active", "version"}
    for path in (
        "app-configs/{id}",
        "app-configs/{id}/versions",
        "app-configs/{id}/rollback",
        "provider-configs",
        "provider-configs/{id}/versions",
        "provider-configs/{id}/rollback",
        "keys",
    ):
        assert f"{BASE}/{path}" in paths, path


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node
