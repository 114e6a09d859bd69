from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils import timezone

from trading.admin_panel.actions import (
    ControlStateActions,
    ForceCloseActions,
    TimelineLink,
    TradingStateActions,
    position_force_close_action,
    trade_force_close_action,
)
from trading.admin_panel.columns import FillColumns, OrderColumns, PositionColumns, TradeColumns
from trading.admin_panel.formatting import event_lines
from trading.admin_panel.forms import RiskLimitForm
from trading.models import (
    ApiKey,
    ControlState,
    Event,
    ExecutionCommand,
    Fill,
    IdempotencyRecord,
    Order,
    OutboxMessage,
    Position,
    RefreshToken,
    RiskLimit,
    Trade,
    TradingState,
    User,
    Wallet,
)
from trading.services import accounts


class WalletInline(admin.TabularInline):
    """Read-only here: wallets change through their services (the Wallet admin has actions)."""

    model = Wallet
    extra = 0
    can_delete = False
    fields = ("wallet_address", "wallet_type", "provider", "provider_wallet_id", "is_active", "verified_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [WalletInline]
    actions = ["revoke_sessions"]
    list_display = (
        "username",
        "email",
        "auth_method",
        "wallet_address",
        "feature_access_level",
        "is_active",
        "is_staff",
    )
    list_filter = ("auth_method", "feature_access_level", "is_active", "is_staff", "email_verified")
    search_fields = ("username", "email", "wallet_address")
    fieldsets = BaseUserAdmin.fieldsets + (
        (
            "Tradedesk",
            {"fields": ("auth_method", "wallet_address", "feature_access_level", "email_verified", "last_login_at")},
        ),
    )

    @admin.action(description="Sign out everywhere (revoke all refresh tokens)")
    def revoke_sessions(self, request, queryset):
        n = sum(accounts.user_tokens_revoke_all(user=u, reason="operator") for u in queryset)
        self.message_user(request, f"{n} refresh token(s) revoked.", messages.SUCCESS)


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("wallet_address", "user", "wallet_type", "provider", "is_active", "verified_at", "created_at")
    list_filter = ("provider", "wallet_type", "is_active")
    search_fields = ("wallet_address", "user__username", "user__email", "provider_wallet_id")
    list_select_related = ("user",)
    readonly_fields = ("user", "wallet_address", "verified_at", "created_at", "updated_at", "is_active")
    fields = (
        "user",
        "wallet_address",
        "wallet_type",
        "provider",
        "provider_wallet_id",
        "is_active",
        "verified_at",
        "created_at",
        "updated_at",
    )
    actions = ["deactivate"]

    def has_add_permission(self, request):
        return False  # users link wallets themselves (signed) or through provider integrations

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Deactivate selected wallets")
    def deactivate(self, request, queryset):
        for wallet in queryset.filter(is_active=True):
            accounts.wallet_deactivate(wallet=wallet, actor=request.user)
        self.message_user(request, "Wallets deactivated.", messages.SUCCESS)


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "user", "scopes", "expires_at")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """The key is generated on add and shown once in a message; only its prefix is kept visible."""

    list_display = (
        "name",
        "prefix",
        "user",
        "scopes",
        "status",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = ("revoked_at", "created_at")
    search_fields = ("name", "prefix", "user__username", "user__email")
    list_select_related = ("user", "created_by")
    actions = ["revoke"]
    raw_id_fields = ("user",)

    @admin.display(description="status")
    def status(self, obj):
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_usable else "expired"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "user", "scopes", "expires_at")
        return (
            "name",
            "prefix",
            "user",
            "scopes",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("prefix", "user", "scopes", "created_by", "created_at", "last_used_at", "expires_at", "revoked_at")

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = accounts.api_key_create(
            name=obj.name,
            user=obj.user,
            scopes=list(form.cleaned_data["scopes"]),
            created_by=request.user,
            expires_at=obj.expires_at,
        )
        obj.pk, obj.prefix, obj.key_hash, obj.scopes = key.pk, key.prefix, key.key_hash, key.scopes
        obj.created_by, obj.created_at = key.created_by, key.created_at
        obj._state.adding, obj._state.db = False, key._state.db
        self.message_user(
            request,
            f"API key created. Copy it now, it will not be shown again: {raw}",
            messages.WARNING,
        )

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays for the audit trail

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        n = 0
        for key in queryset.filter(revoked_at__isnull=True):
            accounts.api_key_revoke(api_key=key, actor=request.user)
            n += 1
        self.message_user(request, f"{n} API key(s) revoked.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger and audit records: nobody adds, changes or deletes them, superusers included."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("id", "occurred_at", "topic", "aggregate_type", "aggregate_id", "correlation_id", "actor")
    list_filter = ("topic", "aggregate_type")
    search_fields = ("=id", "=correlation_id", "=aggregate_id", "=causation_id")
    date_hierarchy = "occurred_at"
    list_per_page = 100
    show_full_result_count = False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "handler", "status", "attempts", "next_attempt_at", "last_error")
    list_filter = ("status", "handler")
    search_fields = ("=event__id",)
    actions = ["retry_dead"]

    @admin.action(description="Retry selected dead messages", permissions=["retry"])
    def retry_dead(self, request, queryset):
        n = queryset.filter(status=OutboxMessage.Status.DEAD).update(
            status=OutboxMessage.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        self.message_user(request, f"{n} message(s) queued again.", messages.SUCCESS)

    def has_retry_permission(self, request):
        return request.user.is_superuser


# --- trading -------------------------------------------------------------------------------------


class ExecutionCommandInline(admin.TabularInline):
    model = ExecutionCommand
    extra = 0
    can_delete = False
    fields = ("idempotency_key", "action", "status", "error_code", "attempts", "created_at", "completed_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class OrderStageFilter(admin.SimpleListFilter):
    """The control panel's "orders in flight" count, as a filter."""

    title = "stage"
    parameter_name = "stage"

    def lookups(self, request, model_admin):
        return [("in_flight", "in flight")]

    def queryset(self, request, queryset):
        from trading.admin_panel.panel import IN_FLIGHT

        if self.value() == "in_flight":
            return queryset.filter(status__in=IN_FLIGHT)
        return queryset


class TradeAttentionFilter(admin.SimpleListFilter):
    """The control panel's attention counts on trades, as filters."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("near_liquidation", "near liquidation"), ("without_stop", "open without a stop")]

    def queryset(self, request, queryset):
        from trading.admin_panel.panel import near_liquidation_trade_ids, trades_without_stop

        if self.value() == "near_liquidation":
            return queryset.filter(pk__in=near_liquidation_trade_ids())
        if self.value() == "without_stop":
            return queryset.filter(pk__in=trades_without_stop().values("pk"))
        return queryset


@admin.register(Order)
class OrderAdmin(OrderColumns, TimelineLink, ReadOnlyAdmin):
    """Orders change only through services; UNKNOWN ones wait for reconciliation (filter by status)."""

    list_filter = (OrderStageFilter, "status", "order_type", "origin", "provider", "side")
    search_fields = (
        "=id",
        "=client_order_id",
        "asset",
        "=venue_order_id",
        "=transaction_hash",
        "user__username",
        "user__email",
        "=wallet_address",
    )
    date_hierarchy = "created_at"
    inlines = [ExecutionCommandInline]
    readonly_fields = ("timeline",)
    show_full_result_count = False

    @admin.display(description="Timeline")
    def timeline(self, obj):
        return event_lines(obj.correlation_id, note=lambda e: f"(caused by {e.causation_id or '—'})")

    def get_fields(self, request, obj=None):
        return ["timeline", *[f.name for f in Order._meta.fields]]

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_staff


@admin.register(ExecutionCommand)
class ExecutionCommandAdmin(ReadOnlyAdmin):
    list_display = ("id", "idempotency_key", "provider", "action", "status", "error_code", "attempts", "created_at")
    list_filter = ("status", "action", "provider")
    search_fields = ("=idempotency_key", "=order__id")


@admin.register(Trade)
class TradeAdmin(TradeColumns, TimelineLink, ForceCloseActions, ReadOnlyAdmin):
    list_filter = (
        TradeAttentionFilter,
        "status",
        "provider",
        "side",
        "close_reason",
        ("protection_sync_due_at", admin.EmptyFieldListFilter),
    )
    actions = [trade_force_close_action]
    search_fields = ("=id", "asset", "user__username", "user__email")


@admin.register(Position)
class PositionAdmin(PositionColumns, TimelineLink, ForceCloseActions, ReadOnlyAdmin):
    actions = [position_force_close_action]
    list_filter = ("status", "provider", "side")
    search_fields = ("asset", "user__username", "user__email")


@admin.register(Fill)
class FillAdmin(FillColumns, ReadOnlyAdmin):
    list_filter = ("kind", "trade__provider")
    search_fields = ("=trade__id", "=order__id", "trade__asset", "user__username", "user__email")
    date_hierarchy = "occurred_at"


@admin.register(RiskLimit)
class RiskLimitAdmin(admin.ModelAdmin):
    """Editable by risk_admin (and superusers) only; every save goes through
    `risk_limit_update`, which validates and records `risk.limit_changed` (before/after)."""

    form = RiskLimitForm
    list_display = (
        "instrument",
        "max_notional",
        "max_leverage",
        "max_open_positions",
        "max_slippage",
        "price_band",
        "daily_loss_cap",
        "max_orders_per_minute",
        "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        return ("instrument",) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # clear a field instead: every change is audited through the service

    def save_model(self, request, obj, form, change):
        from trading.services.operator import RISK_LIMIT_FIELDS, risk_limit_update

        row = risk_limit_update(
            actor=request.user,
            instrument=obj.instrument,
            values={name: form.cleaned_data.get(name) for name in RISK_LIMIT_FIELDS},
        )
        obj.pk, obj.updated_at = row.pk, row.updated_at


@admin.register(ControlState)
class ControlStateAdmin(ControlStateActions, ReadOnlyAdmin):
    """Changed only through the control services: each action asks for a reason (and an
    optional expiry) on a confirmation page. The control panel is the everyday view."""

    list_display = (
        "component",
        "armed",
        "paused",
        "draining",
        "reason",
        "changed_by",
        "changed_at",
        "expires_at",
        "paused_until",
    )
    list_filter = ("armed", "paused", "draining")


@admin.register(TradingState)
class TradingStateAdmin(TradingStateActions, ReadOnlyAdmin):
    list_display = (
        "scope_type",
        "scope_key",
        "state",
        "previous_state",
        "reason",
        "changed_by",
        "changed_at",
        "expires_at",
    )
    list_filter = ("scope_type", "state")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("user", "key", "method", "path", "status", "response_status", "created_at")
    list_filter = ("status",)
    search_fields = ("=key",)


@admin.register(RefreshToken)
class RefreshTokenAdmin(ReadOnlyAdmin):
    """Issued refresh tokens (the tokens themselves are never stored: jti and hash only)."""

    list_display = ("short_jti", "user", "family", "created_at", "expires_at", "revoked_at", "revoked_reason")
    list_filter = ("revoked_reason",)
    search_fields = ("=jti", "=family", "user__username", "user__email")
    fields = ("jti", "user", "family", "created_at", "expires_at", "revoked_at", "revoked_reason", "replaced_by")
    list_select_related = ("user",)

    @admin.display(description="jti")
    def short_jti(self, obj):
        return obj.jti[:12] + "…"


def _resolve_breaks(action: str):
    def run(modeladmin, request, queryset):
        from config.errors import ApplicationError
        from trading.models import ReconciliationBreak
        from trading.services.reconciliation import reconciliation_break_resolve

        note = f"{action} from the admin by {request.user.username}"
        done, failed = 0, []
        for brk in queryset.filter(status=ReconciliationBreak.Status.OPEN).order_by("pk"):
            try:
                reconciliation_break_resolve(break_id=brk.pk, action=action, actor=f"user:{request.user.pk}", note=note)
                done += 1
            except ApplicationError as exc:
                failed.append(f"#{brk.pk}: {exc.message}")
        modeladmin.message_user(request, f"{done} break(s) resolved ({action}).", messages.SUCCESS)
        if failed:
            modeladmin.message_user(request, "; ".join(failed), messages.WARNING)

    run.__name__ = f"breaks_{action}"
    run.short_description = {
        "adopt": "Adopt the venue's view",
        "close": "Close our trade (the venue has none)",
        "ignore": "Ignore",
    }[action]
    return run


def _register_breaks():
    from trading.models import ReconciliationBreak

    @admin.register(ReconciliationBreak)
    class ReconciliationBreakAdmin(ReadOnlyAdmin):
        list_display = ("id", "venue", "kind", "account", "pair_id", "trade_index", "trade", "status", "detected_at")
        list_filter = ("status", "kind", "venue")
        search_fields = ("account", "pair_id", "trade_index")
        actions = [_resolve_breaks("adopt"), _resolve_breaks("close"), _resolve_breaks("ignore")]

        def has_change_permission(self, request, obj=None):
            return False


_register_breaks()


from trading.admin_panel import reference as _reference_admin  # noqa: E402, F401 (registers the reference admin and health lines)
