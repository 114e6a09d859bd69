from django.urls import path

from solver import api

urlpatterns = [
    path("ops/near-intents", api.SolverState.as_view(), name="ops-near-intents"),
    path(
        "ops/near-intents/components/<str:component>/<str:action>",
        api.ComponentAction.as_view(),
        name="ops-near-intents-component",
    ),
    path("ops/near-intents/pair-filter", api.PairFilter.as_view(), name="ops-near-intents-pair-filter"),
    path("ops/near-intents/pair-filter/reset", api.PairFilterReset.as_view(), name="ops-near-intents-pair-reset"),
    path("ops/near-intents/threshold", api.Threshold.as_view(), name="ops-near-intents-threshold"),
    path("ops/near-intents/limits", api.Limits.as_view(), name="ops-near-intents-limits"),
    path("ops/near-intents/skip-reasons", api.SkipReasons.as_view(), name="ops-near-intents-skip-reasons"),
    path("ops/near-intents/quotes/<str:quote_id>", api.QuoteChain.as_view(), name="ops-near-intents-quote"),
]
