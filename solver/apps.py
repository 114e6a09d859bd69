from django.apps import AppConfig


class SolverConfig(AppConfig):
    name = "solver"
    verbose_name = "NEAR Intents solver"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from solver.health import executor_activity, ingest_activity, solver_health, strategy_activity
        from solver.models import EXECUTOR, INGEST, STRATEGY
        from trading.admin_panel.activity import activity_provider_register
        from trading.admin_panel.health import health_provider_register

        health_provider_register("near_intents_solver", solver_health)
        activity_provider_register(INGEST, ingest_activity)
        activity_provider_register(STRATEGY, strategy_activity)
        activity_provider_register(EXECUTOR, executor_activity)
