from django.apps import AppConfig


class SolverConfig(AppConfig):
    name = "solver"
    verbose_name = "NEAR Intents solver"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from solver.health import solver_health
        from trading.admin_panel.health import health_provider_register

        health_provider_register("near_intents_solver", solver_health)
