from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outbound webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from trading.outbox import register_handler
        from webhooks.services import deliveries_create_for_event, deliveries_create_for_events
        from webhooks.topics import TOPIC_MAP

        register_handler(
            "webhooks", deliveries_create_for_event, topics=list(TOPIC_MAP), batch=deliveries_create_for_events
        )
