from django.urls import path

from trading.api import ledger

urlpatterns = [
    path("ledger/events", ledger.EventList.as_view(), name="ledger-events"),
    path("ledger/events/<str:pk>", ledger.EventDetail.as_view(), name="ledger-event"),
]
