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
