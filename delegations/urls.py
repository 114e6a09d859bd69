from django.urls import path

from delegations import api

urlpatterns = [
    path("ostium/delegations", api.DelegationList.as_view(), name="ostium-delegations"),
    path("ostium/delegations/", api.DelegationListSlash.as_view()),
    path("ostium/delegations/prepare", api.DelegationPrepare.as_view(), name="ostium-delegation-prepare"),
    path("ostium/delegations/<int:pk>", api.DelegationDetail.as_view(), name="ostium-delegation"),
    path("ostium/delegations/<int:pk>/signatures", api.DelegationSignatures.as_view(), name="ostium-delegation-sign"),
    path("ostium/delegations/<int:pk>/execute", api.DelegationExecute.as_view(), name="ostium-delegation-execute"),
    path("ostium/delegations/<int:pk>/revoke", api.DelegationRevoke.as_view(), name="ostium-delegation-revoke"),
]
