from django.apps import AppConfig


class TreasuryConfig(AppConfig):
    name = "treasury"
    verbose_name = "Treasury"

    def ready(self):
        from trading.admin_panel.health import health_provider_register
        from treasury.health import treasury_health

        health_provider_register("treasury", treasury_health)
