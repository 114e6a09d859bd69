"""Deposits and their swaps on the admin: read-only (they change only through services), with
filters and each deposit's timeline from the ledger. A deposit pending longer than
DEPOSIT_DELAY_ALERT_MINUTES is flagged here and on the control panel (`deposits.health`)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from deposits.models import Deposit, DepositSignature, TokenSwap
from trading.admin_panel.formatting import event_lines
from treasury.models import amount_text


def late_q(now=None) -> Q:
    """Followed deposits submitted longer ago than the alert delay (flagged or about to be)."""
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.DEPOSIT_DELAY_ALERT_MINUTES)
    return Q(status__in=Deposit.FOLLOWED) & (Q(delayed_at__isnull=False) | Q(submitted_at__lte=cutoff))


class DelayedFilter(admin.SimpleListFilter):
    title = "delayed"
    parameter_name = "delayed"

    def lookups(self, request, model_admin):
        return (("yes", f"Pending > {settings.DEPOSIT_DELAY_ALERT_MINUTES:g} min"),)

    def queryset(self, request, queryset):
        return queryset.filter(late_q()) if self.value() == "yes" else queryset


class ReadOnly(admin.ModelAdmin):
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.display(description="amount", ordering="amount")
def amount_exact(obj) -> str:
    """The token amount without the column's 18 decimal places ("1", not "1.000000000000000000")."""
    return amount_text(obj.amount)


def _fields(model) -> list[str]:
    return ["timeline", *("amount_exact" if f.name == "amount" else f.name for f in model._meta.fields)]


class TokenSwapInline(admin.TabularInline):
    model = TokenSwap
    fields = (
        "swap_status",
        "lifi_status",
        "substatus",
        "from_token",
        "from_chain",
        "amount_exact",
        "estimated_output",
        "min_output",
        "actual_output",
        "route_id",
        "swap_transaction_hash",
        "receiving_transaction_hash",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    amount_exact = staticmethod(amount_exact)

    def has_add_permission(self, request, obj=None):
        return False


class DepositSignatureInline(admin.TabularInline):
    model = DepositSignature
    fields = ("owner", "safe_tx_hash", "verified_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Deposit)
class DepositAdmin(ReadOnly):
    list_display = (
        "id",
        "created_at",
        "user",
        "amount_exact",
        "token_symbol",
        "chain",
        "source",
        "target_address",
        "status",
        "swap_state",
        "credited_amount",
        "late",
    )
    list_filter = ("status", DelayedFilter, "chain", "source", "swaps__swap_status", "swaps__substatus")
    search_fields = ("=id", "user__username", "=transaction_hash", "target_address", "from_address", "=swaps__route_id")
    inlines = [TokenSwapInline, DepositSignatureInline]
    amount_exact = staticmethod(amount_exact)

    def get_fields(self, request, obj=None):
        return _fields(Deposit)

    @admin.display(description="swap")
    def swap_state(self, obj):
        swap = obj.swap
        return f"{swap.swap_status} {swap.substatus}".strip() if swap else "—"

    @admin.display(description="delayed", boolean=True)
    def late(self, obj):
        if obj.status not in Deposit.FOLLOWED:
            return False
        cutoff = timezone.now() - timedelta(minutes=settings.DEPOSIT_DELAY_ALERT_MINUTES)
        return obj.delayed_at is not None or (obj.submitted_at is not None and obj.submitted_at <= cutoff)

    @admin.display(description="Timeline")
    def timeline(self, obj):
        return event_lines(
            obj.correlation_id, note=lambda e: e.payload.get("lifi_substatus") or e.payload.get("error_code") or ""
        )


@admin.register(TokenSwap)
class TokenSwapAdmin(ReadOnly):
    list_display = (
        "id",
        "created_at",
        "deposit",
        "from_token",
        "from_chain",
        "amount_exact",
        "swap_status",
        "lifi_status",
        "substatus",
        "estimated_output",
        "actual_output",
    )
    list_filter = ("swap_status", "lifi_status", "substatus", "from_chain", "tool")
    search_fields = ("=id", "=deposit__id", "route_id", "=swap_transaction_hash", "=receiving_transaction_hash")
    amount_exact = staticmethod(amount_exact)

    def get_fields(self, request, obj=None):
        return _fields(TokenSwap)

    @admin.display(description="Timeline (the deposit's)")
    def timeline(self, obj):
        return DepositAdmin.timeline(None, obj.deposit)
