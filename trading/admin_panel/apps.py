from django.contrib.admin.apps import AdminConfig


class TradedeskAdminConfig(AdminConfig):
    """The Django admin with the operators' control panel as its index."""

    default_site = "trading.admin_panel.site.TradedeskAdminSite"
