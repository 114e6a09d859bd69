from django.urls import path

from treasury import api

urlpatterns = [
    path("treasury/inventory", api.InventoryView.as_view(), name="treasury-inventory"),
    path("treasury/liquidity-actions", api.ActionList.as_view(), name="treasury-liquidity-actions"),
    path("treasury/liquidity-actions/<int:pk>", api.ActionDetail.as_view(), name="treasury-liquidity-action"),
    path("treasury/liquidity-actions/<int:pk>/approve", api.ActionApprove.as_view(), name="treasury-action-approve"),
    path("treasury/liquidity-actions/<int:pk>/cancel", api.ActionCancel.as_view(), name="treasury-action-cancel"),
]
