"""OpenAPI: every operation documents the error envelope for the errors any request can get.

A drf-spectacular postprocessing hook (settings.SPECTACULAR_SETTINGS): adds the
`ErrorEnvelope` component and, to every operation, the statuses in `ERRORS` it does not already
list; an error response listed without a body schema (or with only a description) gets the
envelope as its body. So clients (and schemathesis) can check that every error is the envelope."""

from __future__ import annotations

ERRORS = {
    "400": "Bad input (validation, control characters, JSON nested too deeply): the error envelope",
    "401": "Not authenticated: the error envelope",
    "403": "Not allowed: the error envelope",
    "404": "Not found: the error envelope",
    "406": "Not acceptable (Accept header): the error envelope",
    "413": "Body larger than DATA_UPLOAD_MAX_MEMORY_SIZE: the error envelope (code PAYLOAD_TOO_LARGE)",
    "415": "Unsupported content type: the error envelope",
    "429": "Over the rate limit: the error envelope (code THROTTLED) and Retry-After",
    "503": "A service the request needs is down; retry (code SERVICE_UNAVAILABLE, details.retryable)",
}

ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "timestamp", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": {"type": "string", "nullable": True},
            },
        }
    },
}
_METHODS = {"get", "post", "put", "patch", "delete"}


def document_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ENVELOPE
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[:1] in ("4", "5") and not _has_schema(response):
                    response["content"] = body
    return result


def _has_schema(response: dict) -> bool:
    """A body schema that says something (views document errors as `{"description": ...}`)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema") or {}
    return bool({"$ref", "type", "properties", "allOf", "oneOf", "anyOf"} & set(schema))
