from django.apps import AppConfig


class SolverConfig(AppConfig):
    name = "solver"
    verbose_name = "NEAR Intents solver"
    default_auto_field = "django.db.models.BigAutoField"
