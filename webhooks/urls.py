from django.urls import path

from webhooks import api

urlpatterns = [
    path("webhooks", api.EndpointList.as_view(), name="webhook-endpoints"),
    path("webhooks/<int:pk>", api.EndpointDetail.as_view(), name="webhook-endpoint"),
    path("webhooks/<int:pk>/rotate-secret", api.EndpointRotateSecret.as_view(), name="webhook-rotate-secret"),
    path("webhooks/<int:pk>/test", api.EndpointTest.as_view(), name="webhook-test"),
    path("webhooks/<int:pk>/deliveries", api.EndpointDeliveries.as_view(), name="webhook-deliveries"),
]
