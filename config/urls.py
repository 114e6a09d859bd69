from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import health, metrics

# Django tries the patterns in order, and every pattern it tries costs the request (a regex
# match, more for an include's own list): the trading API comes first, the busiest of the API's
# routes (placing a trade) first in it. No two entries match the same path, so the order changes
# only the cost.
urlpatterns = [
    path("api/v1/", include("trading.urls")),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("webhooks.urls")),
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
