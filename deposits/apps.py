from django.apps import AppConfig


class DepositsConfig(AppConfig):
    name = "deposits"
    verbose_name = "Deposits (LI.FI to USDC)"

    def ready(self):
        from deposits.desk_swaps import TREASURY_SWAPS
        from deposits.health import deposits_health, sent_activity
        from deposits.models import Deposit
        from deposits.relay import RELAY
        from trading.admin_panel.activity import activity_provider_register
        from trading.admin_panel.health import health_provider_register

        health_provider_register("deposits", deposits_health)
        activity_provider_register(RELAY, sent_activity(Deposit.Source.SAFE, "SafeTx relayed"))
        activity_provider_register(TREASURY_SWAPS, sent_activity(Deposit.Source.DESK, "swap sent"))

        from deposits.in_flight import pending_inbound
        from treasury.services.inventory import register_pending_inbound

        register_pending_inbound("deposits", pending_inbound)
