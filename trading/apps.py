from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from providers.events import register_venue_listener
        from providers.prices import register_held_symbols, register_tick_listener
        from trading import (
            outbox,
            schema,  # noqa: F401  (registers the OpenAPI auth schemes)
        )
        from trading.realtime.publish import publish_ledger_event, publish_ledger_events, publish_price_tick
        from trading.selectors import venue_assets_held
        from trading.services.marks import position_marks_on_tick
        from trading.services.orders import order_hand_off, order_hand_off_many
        from trading.services.venue_events import venue_event_listener

        # what venues do on their own (fills of resting orders, liquidations, funding)
        register_venue_listener(venue_event_listener)
        # accepted orders → the executor (first: a dispatch run hands orders off before it
        # publishes the batch to websockets and webhooks)
        outbox.register_handler("executor", order_hand_off, topics=["order.accepted"], batch=order_hand_off_many)
        # committed ledger events → websocket clients (channel-layer groups)
        outbox.register_handler("realtime", publish_ledger_event, topics=["*"], batch=publish_ledger_events)
        # price ticks → `prices.<PAIR>` websocket groups (the price of the venue the pair routes to)
        register_tick_listener(publish_price_tick, routed_only=True)
        # price ticks → live marks (current price, unrealised PnL) of open positions on the
        # asset at the tick's venue
        register_tick_listener(position_marks_on_tick)
        # venues keep being priced for what they hold, whatever the asset routes to now
        register_held_symbols(venue_assets_held)
        # a runtime-configuration change (risk defaults) reaches the cached limits at once
        from configuration.runtime import register_change_listener
        from trading.selectors import risk_limits_cache_clear

        register_change_listener(risk_limits_cache_clear)
        # Ostium writes outside the executor (the signer service, the poller's timeouts) ask the
        # control states at side-effect time
        from providers.ostium.write_gate import register_write_gate
        from trading.services.control import ostium_write_gate

        register_write_gate(ostium_write_gate)
        self._protective_engine_ready()

    def _protective_engine_ready(self):
        """The protective-order engine: its tasks, admin and the tick listener."""
        import trading.protective.admin
        import trading.protective.tasks  # noqa: F401
        from providers.prices import register_tick_listener
        from trading.services.protective import protective_on_tick

        register_tick_listener(protective_on_tick)
