from django.contrib.admin.apps import AdminConfig


class TradedeskAdminConfig(AdminConfig):
    """The Django admin with the operators' control panel as its index."""

    default_site = "trading.admin_panel.site.TradedeskAdminSite"

    def ready(self):
        super().ready()
        from django.apps import apps
        from django.db.models.signals import post_migrate

        from trading.admin_panel.roles import on_post_migrate

        # after the trading app's own post_migrate work (sent last of the apps we need)
        post_migrate.connect(on_post_migrate, sender=apps.get_app_config("trading"), dispatch_uid="td-roles")
