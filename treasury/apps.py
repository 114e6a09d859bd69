from django.apps import AppConfig


class TreasuryConfig(AppConfig):
    name = "treasury"
    verbose_name = "Treasury"

    def ready(self):
        from trading.admin_panel.activity import activity_provider_register
        from trading.admin_panel.health import health_provider_register
        from treasury.health import treasury_health, withdrawals_activity
        from treasury.services.liquidity import WITHDRAWALS

        health_provider_register("treasury", treasury_health)
        activity_provider_register(WITHDRAWALS, withdrawals_activity)
