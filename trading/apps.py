from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from providers.events import register_venue_listener
        from providers.prices import register_tick_listener
        from trading import (
            outbox,
            schema,  # noqa: F401  (registers the OpenAPI auth schemes)
        )
        from trading.realtime.publish import publish_ledger_event, publish_price_tick
        from trading.services.marks import position_marks_on_tick
        from trading.services.venue_events import venue_event_listener

        # what venues do on their own (fills of resting orders, liquidations, funding)
        register_venue_listener(venue_event_listener)
        # committed ledger events → websocket clients (channel-layer groups)
        outbox.register_handler("realtime", publish_ledger_event, topics=["*"])
        # price ticks → `prices.<PAIR>` websocket groups
        register_tick_listener(publish_price_tick)
        # price ticks → live marks (current price, unrealised PnL) of open positions on the asset
        register_tick_listener(position_marks_on_tick)
        self._protective_engine_ready()

    def _protective_engine_ready(self):
        """The protective-order engine: its tasks, admin and the tick listener."""
        import trading.protective.admin
        import trading.protective.tasks  # noqa: F401
        from providers.prices import register_tick_listener
        from trading.services.protective import protective_on_tick

        register_tick_listener(protective_on_tick)
