from django.apps import AppConfig


class DelegationsConfig(AppConfig):
    name = "delegations"
    verbose_name = "Ostium delegations"

    def ready(self):
        from trading.services.orders import register_pretrade_check

        register_pretrade_check("ostium", ostium_pretrade)

        from delegations.keys import delegate_key_for_trader
        from providers.ostium.signer_keys import register_delegate_key_source

        register_delegate_key_source(delegate_key_for_trader)

        from delegations.keys import solver_key_for_network
        from providers.near_intents.solver_keys import register_solver_key_source

        register_solver_key_source(solver_key_for_network)

        from delegations.health import ostium_gas_health
        from trading.admin_panel.health import health_provider_register

        # the control panel shows the ETH the Ostium signers hold for gas
        health_provider_register("ostium_gas", ostium_gas_health)

        from delegations.services import RELAY
        from trading.admin_panel.activity import activity_provider_register

        activity_provider_register(RELAY, relay_activity)


def relay_activity():
    """The panel's "last activity" of `delegations:relay`: the last SafeTx it relayed."""
    from django.db.models import Max

    from delegations.models import OstiumDelegation

    return OstiumDelegation.objects.aggregate(at=Max("submitted_at"))["at"], "SafeTx relayed"


def ostium_pretrade(*, user, intent):
    """Ostium orders of a user trading through a Safe: delegated mode, account = the Safe."""
    from delegations.services import ostium_pretrade_check

    return ostium_pretrade_check(user=user, collateral=intent.collateral, reduces_exposure=intent.reduces_exposure)
