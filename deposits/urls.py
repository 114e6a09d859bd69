from django.urls import path

from deposits import api

urlpatterns = [
    path("deposits", api.DepositListCreate.as_view(), name="deposits"),
    path("deposits/<int:pk>", api.DepositDetail.as_view(), name="deposit"),
    path("deposits/<int:pk>/swap-status", api.DepositSwapStatus.as_view(), name="deposit-swap-status"),
    path("deposits/<int:pk>/submitted", api.DepositSubmitted.as_view(), name="deposit-submitted"),
    path("deposits/<int:pk>/quote", api.DepositRequote.as_view(), name="deposit-requote"),
    path("deposits/<int:pk>/signatures", api.DepositSignatures.as_view(), name="deposit-sign"),
    path("deposits/<int:pk>/execute", api.DepositExecute.as_view(), name="deposit-execute"),
]
