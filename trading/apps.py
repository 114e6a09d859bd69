from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from trading import outbox
        from trading.realtime.publish import publish_ledger_event

        # committed ledger events → websocket clients (channel-layer groups)
        outbox.register_handler("realtime", publish_ledger_event, topics=["*"])
