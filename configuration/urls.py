from django.urls import path

from configuration import api

urlpatterns = [
    path("admin/config/keys", api.KeyList.as_view(), name="admin-config-keys"),
    path("admin/config/app-configs", api.AppConfigList.as_view(), name="admin-config-app-configs"),
    path("admin/config/app-configs/<int:pk>", api.AppConfigDetail.as_view(), name="admin-config-app-config"),
    path(
        "admin/config/app-configs/<int:pk>/versions",
        api.AppConfigVersions.as_view(),
        name="admin-config-app-config-versions",
    ),
    path(
        "admin/config/app-configs/<int:pk>/rollback",
        api.AppConfigRollback.as_view(),
        name="admin-config-app-config-rollback",
    ),
    path("admin/config/provider-configs", api.ProviderConfigList.as_view(), name="admin-config-provider-configs"),
    path(
        "admin/config/provider-configs/<int:pk>",
        api.ProviderConfigDetailView.as_view(),
        name="admin-config-provider-config",
    ),
    path(
        "admin/config/provider-configs/<int:pk>/versions",
        api.ProviderConfigVersions.as_view(),
        name="admin-config-provider-config-versions",
    ),
    path(
        "admin/config/provider-configs/<int:pk>/rollback",
        api.ProviderConfigRollback.as_view(),
        name="admin-config-provider-config-rollback",
    ),
]
