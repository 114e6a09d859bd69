from django.apps import AppConfig


class DepositsConfig(AppConfig):
    name = "deposits"
    verbose_name = "Deposits (LI.FI to USDC)"

    def ready(self):
        from deposits.health import deposits_health
        from trading.admin_panel.health import health_provider_register

        health_provider_register("deposits", deposits_health)

        from deposits.in_flight import pending_inbound
        from treasury.services.inventory import register_pending_inbound

        register_pending_inbound("deposits", pending_inbound)
