from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    name = "configuration"
    verbose_name = "Runtime configuration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from configuration.services import provider_configs_ensure_on_migrate

        post_migrate.connect(provider_configs_ensure_on_migrate, sender=self)
