"""Read-only admin of the protective engine's state: heartbeat, asset staleness, risk flags."""

from django.contrib import admin

from trading.models import EngineHeartbeat, PositionRiskState, ProtectiveAssetState


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EngineHeartbeat)
class EngineHeartbeatAdmin(_ReadOnly):
    list_display = (
        "name",
        "last_run_at",
        "duration_ms",
        "assets_evaluated",
        "orders_evaluated",
        "triggered",
        "trailing_moved",
        "stale_assets",
        "near_liquidation",
        "stop_missing",
        "runs",
        "total_triggered",
    )
    readonly_fields = list_display + ("last_error",)


@admin.register(ProtectiveAssetState)
class ProtectiveAssetStateAdmin(_ReadOnly):
    list_display = (
        "venue",
        "asset",
        "stale",
        "stale_since",
        "last_price",
        "last_price_at",
        "last_source",
        "evaluated_at",
    )
    list_filter = ("stale", "venue")


@admin.register(PositionRiskState)
class PositionRiskStateAdmin(_ReadOnly):
    list_display = ("position", "near_liquidation_since", "uncovered_since", "stop_missing_flagged_at")
