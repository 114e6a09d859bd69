from django.urls import include, path

from bench._server import Baseline

urlpatterns = [
    path("bench/baseline", Baseline.as_view()),
    path("", include("config.urls")),
]
