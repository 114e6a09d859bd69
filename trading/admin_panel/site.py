from functools import partial

from django.contrib import admin
from django.urls import path

from trading.admin_panel import views
from trading.admin_panel.columns import TrimmedDecimals


class TradedeskAdminSite(admin.AdminSite):
    site_header = "Tradedesk"
    site_title = "Tradedesk admin"
    index_title = "Control panel"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, TrimmedDecimals):
            admin_class = type(
                admin_class.__name__, (TrimmedDecimals, admin_class), {"__module__": admin_class.__module__}
            )
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self):
        def v(fn):
            return self.admin_view(partial(fn, site=self))

        return [
            path("control-panel/", v(views.control_panel), name="control_panel"),
            path("control-panel/status.json", v(views.control_panel_status), name="control_panel_status"),
            path("control-panel/fragment/", v(views.control_panel_fragment), name="control_panel_fragment"),
            path("control-panel/halt-all/", v(views.halt_all), name="halt_all"),
            path("control-panel/resume-all/", v(views.resume_all), name="resume_all"),
            path("control-panel/pnl/", v(views.pnl_page), name="pnl"),
            path("control-panel/export/<str:what>.csv", v(views.export_csv), name="export_csv"),
            path(
                "control-panel/trading-state/<str:action>/", v(views.trading_state_action), name="trading_state_action"
            ),
            path("control-panel/<str:component>/<str:action>/", v(views.control_action), name="control_action"),
            path("timeline/<str:kind>/<int:pk>/", v(views.timeline), name="timeline"),
            path("models/", self.admin_view(super().index), name="models_index"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        """Operators land on the control panel; anyone else gets the usual model index."""
        if request.user.has_perm("trading.view_controlstate"):
            return views.control_panel(request, site=self)
        return super().index(request, extra_context)
