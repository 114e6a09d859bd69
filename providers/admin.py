from django.contrib import admin, messages

from providers.models import (
    PaperAccount,
    PaperFill,
    PaperFundingCharge,
    PaperMarket,
    PaperOrder,
    PaperPosition,
    PaperPriceState,
    ProviderRoute,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit records of the paper venue: nobody adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProviderRoute)
class ProviderRouteAdmin(admin.ModelAdmin):
    list_display = ("match_type", "value", "venue", "priority", "enabled", "note", "updated_at")
    list_filter = ("match_type", "venue", "enabled")
    list_editable = ("priority", "enabled")
    search_fields = ("value", "venue", "note")


@admin.register(PaperMarket)
class PaperMarketAdmin(admin.ModelAdmin):
    list_display = (
        "symbol",
        "category",
        "is_open",
        "max_leverage",
        "taker_fee_rate",
        "maker_fee_rate",
        "maintenance_margin_rate",
        "spread",
        "funding_rate_hourly",
        "annual_volatility",
    )
    list_filter = ("category", "is_open")
    search_fields = ("symbol",)
    fieldsets = (
        (None, {"fields": ("symbol", "category", "is_open")}),
        ("Trading", {"fields": ("min_leverage", "max_leverage", "min_collateral", "maintenance_margin_rate")}),
        ("Fees and funding", {"fields": ("taker_fee_rate", "maker_fee_rate", "funding_rate_hourly")}),
        (
            "Fill simulation",
            {
                "fields": ("spread", "impact_coefficient", "depth", "max_slippage"),
                "description": "price = mid × (1 ± (spread/2 + min(impact_coefficient × notional / depth, "
                "max_slippage)))",
            },
        ),
        ("Price walk", {"fields": ("initial_price", "annual_volatility", "price_decimals")}),
    )


@admin.register(PaperPriceState)
class PaperPriceStateAdmin(admin.ModelAdmin):
    list_display = ("symbol", "price", "step", "source", "updated_at")
    readonly_fields = ("step", "updated_at")
    actions = ["publish_price"]

    @admin.action(description="Publish the stored price as a tick now")
    def publish_price(self, request, queryset):
        from providers.prices import price_set

        for state in queryset:
            price_set(state.symbol, state.price, source="admin")
        self.message_user(request, f"Published {queryset.count()} price(s).", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        from providers.prices import price_set

        price_set(obj.symbol, obj.price, source="admin")


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "balance", "created_at", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return ("name", *self.readonly_fields) if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        from providers.paper.engine import paper_account_set_balance

        account = paper_account_set_balance(name=obj.name, balance=obj.balance)
        obj.pk = account.pk

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PaperPosition)
class PaperPositionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "market",
        "side",
        "status",
        "size",
        "entry_price",
        "collateral",
        "leverage",
        "liquidation_price",
        "funding_accrued",
        "realized_pnl",
        "opened_at",
    )
    list_filter = ("status", "side", "market")
    search_fields = ("=id", "account__name")
    list_select_related = ("account", "market")


@admin.register(PaperOrder)
class PaperOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "idempotency_key",
        "action",
        "kind",
        "symbol",
        "side",
        "status",
        "collateral",
        "leverage",
        "limit_price",
        "stop_price",
        "reserved",
        "error_code",
        "created_at",
    )
    list_filter = ("status", "action", "kind", "symbol")
    search_fields = ("=idempotency_key", "=id", "account__name")
    actions = ["cancel_orders"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("providers.change_paperorder")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Cancel selected resting orders (releases their reserve)", permissions=["change"])
    def cancel_orders(self, request, queryset):
        from providers.paper.engine import paper_order_cancel

        done = 0
        for order in queryset.filter(status=PaperOrder.Status.PENDING).select_related("account"):
            result = paper_order_cancel(account=order.account.name, venue_order_id=str(order.pk))
            done += result.status == "cancelled"
        self.message_user(request, f"Cancelled {done} order(s).", messages.SUCCESS)


@admin.register(PaperFill)
class PaperFillAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "position",
        "reason",
        "direction",
        "price",
        "size",
        "notional",
        "fee",
        "is_maker",
        "reference_mid",
        "slippage",
        "price_source",
        "realized_pnl",
        "created_at",
    )
    list_filter = ("reason", "is_maker", "price_source")
    search_fields = ("=position__id", "=order__idempotency_key")


@admin.register(PaperFundingCharge)
class PaperFundingChargeAdmin(ReadOnlyAdmin):
    list_display = ("id", "position", "hours", "rate_hourly", "price", "amount", "period_start", "period_end")
    search_fields = ("=position__id",)
