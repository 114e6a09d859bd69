from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers (venues, feeds, sandboxes)"

    def ready(self):
        from providers.ostium.service import SIGNER, signer_activity
        from trading.admin_panel.activity import activity_provider_register

        activity_provider_register(SIGNER, signer_activity)
