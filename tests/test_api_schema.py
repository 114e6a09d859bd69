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
