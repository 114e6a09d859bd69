"""OpenAPI security schemes for our DRF authentication classes (drf-spectacular extensions;
imported by TradingConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "trading.auth.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 (the scheme name)
            bearer_format="JWT",
        )


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "trading.auth.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Service API key: `Authorization: Api-Key tdk_...` (scopes `read`, `trade`).",
        }
