"""The API's OpenAPI schema and its query parameters (what schemathesis checks over a running
desk in tests/resilience/test_schema.py): every error status documents the envelope, empty
enum values and malformed pagination are refused, and the webhook deliveries schema is the page
the endpoint returns."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="u", email="u@example.com"))
    return client


def test_every_operation_documents_the_error_envelope(schema):
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    error = schema["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"]
    assert error["required"] == ["code", "message", "details", "timestamp", "request_id"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "404", "413", "429", "503"):
                response = operation["responses"][status]
                assert response["content"]["application/json"]["schema"] == envelope, (method, path, status)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/trading/orders?type=",
        "/api/v1/trading/orders?status=",
        "/api/v1/trading/orders?origin=",
        "/api/v1/trading/positions?status=",
        "/api/v1/prices/BTC-USD?use_cache=",
        "/api/v1/trading/orders?offset=null",
        "/api/v1/trading/orders?limit=-3",
        "/api/v1/trading/orders?limit=1_0",
        "/api/v1/trading/orders?limit=",
        "/api/v1/wallets?offset=%D9%A1",  # an Arabic-Indic one
    ],
)
def test_empty_enum_values_and_malformed_pagination_are_400(api, url):
    response = api.get(url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_well_formed_filters_and_pages_are_accepted(api):
    assert api.get("/api/v1/trading/orders?type=MARKET&status=FILLED&limit=5&offset=0").status_code == 200
    assert api.get("/api/v1/trading/positions?status=all").status_code == 200
    assert api.get("/api/v1/trading/positions").status_code == 200


def test_a_limit_above_the_maximum_is_read_as_the_maximum(api):
    assert api.get("/api/v1/trading/positions?limit=1000000").json()["limit"] == 500
    assert api.get("/api/v1/trading/positions?limit=499").json()["limit"] == 499


def test_try_it_out_every_operation_has_an_area_tag_a_summary_and_every_body_an_example(schema):
    from config.openapi import TAGS

    areas = {tag for _, tag in TAGS}
    schemas = schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation["tags"] and set(operation["tags"]) <= areas, (method, path, operation["tags"])
            assert operation.get("summary"), (method, path)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                name = body["$ref"].rsplit("/", 1)[1]
                assert "example" in schemas[name], (method, path, name)
    assert "POST /api/v1/auth/login" in schema["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert [t["name"] for t in schema["tags"]][:2] == ["auth", "account"]


def test_the_pre_filled_examples_work_as_they_stand(paper_markets):
    """What Swagger pre-fills for register, login and open a trade is accepted by the API."""
    from rest_framework.test import APIClient

    from config.openapi import REQUEST_EXAMPLES
    from trading.services.control import control_arm

    control_arm(component="executor:paper", actor="test", reason="the demo arms paper")
    anonymous = APIClient()
    assert anonymous.post("/api/v1/auth/register", REQUEST_EXAMPLES["Register"], format="json").status_code == 201
    login = anonymous.post("/api/v1/auth/login", REQUEST_EXAMPLES["Login"], format="json")
    assert login.status_code == 200, login.content
    trader = APIClient()
    trader.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access_token']}")
    opened = trader.post("/api/v1/trading/trades", REQUEST_EXAMPLES["TradeOpenRequest"], format="json")
    assert opened.status_code == 202, opened.content


def test_the_schema_generates_without_warnings():
    """No component is named by a hash (`StatusDa1Enum`) and no operationId is numbered: a
    client generated from the schema gets stable type and method names."""
    from django.core.management import call_command
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    call_command("spectacular", "--fail-on-warn", "--file", "/dev/null")
