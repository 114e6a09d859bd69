from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from providers.events import register_venue_listener
        from trading.services.venue_events import venue_event_listener

        register_venue_listener(venue_event_listener)
        from trading import schema  # noqa: F401  (registers the OpenAPI auth schemes)

        self._protective_engine_ready()

    def _protective_engine_ready(self):
        """The protective-order engine: its tasks, admin and the tick listener."""
        import trading.protective.admin
        import trading.protective.tasks  # noqa: F401
        from providers.prices import register_tick_listener
        from trading.services.protective import protective_on_tick

        register_tick_listener(protective_on_tick)
