from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import health, metrics

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("webhooks.urls")),
    path("api/v1/", include("trading.urls")),
    path("internal/ostium/v1/", include("providers.ostium.service")),
    path("api/v1/", include("delegations.urls")),
    path("api/v1/", include("treasury.urls")),
    path("api/v1/", include("configuration.urls")),
    path("api/v1/", include("solver.urls")),
    path("api/v1/", include("deposits.urls")),
]

handler400 = "config.errors.handler400"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
