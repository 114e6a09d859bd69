from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outbound webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from trading.outbox import register_handler
        from webhooks.services import deliveries_create_for_event, deliveries_create_for_events
        from webhooks.topics import TOPIC_MAP

        # before the websocket publish: a delivery still waits for a run and an HTTP request
        # after its dispatch (a paced event's first attempt ~3 ms sooner), a publish is done then
        register_handler(
            "webhooks",
            deliveries_create_for_event,
            topics=list(TOPIC_MAP),
            batch=deliveries_create_for_events,
            before="realtime",
        )
