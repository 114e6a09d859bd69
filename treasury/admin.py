"""Treasury in the admin: the treasury page (inventory per venue and asset with sync ages and
drift, the pipeline of liquidity actions with delayed ones on top, refresh, freeze
withdrawals, approve, cancel, acknowledge drift) as the inventory changelist, and read-only
lists of everything else. Every button calls a service that records who and why."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.errors import ApplicationError
from trading.admin import ReadOnlyAdmin
from trading.admin_panel.actions import confirm_then_apply
from trading.admin_panel.forms import ConfirmActionForm
from trading.models import ControlState
from trading.services.operator import actor_label, permission_require
from treasury.models import (
    AllowlistEntry,
    DepositAddress,
    InventoryBalance,
    InventorySnapshot,
    InventorySync,
    LiquidityAction,
    Reservation,
    Venue,
)
from treasury.selectors import inventory_rows, pipeline, recent_closed, sync_rows
from treasury.services import inventory as inventory_services
from treasury.services import liquidity
from treasury.services.sync import treasury_sync


def _page_context(request) -> dict:
    rows = inventory_rows()
    venues = []
    for venue, label in Venue.choices:
        venues.append({"venue": venue, "label": label, "rows": [r for r in rows if r["venue"] == venue]})
    state = ControlState.objects.filter(component=liquidity.WITHDRAWALS).first()
    user = request.user
    return {
        "venues": venues,
        "syncs": {s["venue"]: s for s in sync_rows()},
        "pipeline": list(pipeline()),
        "closed": list(recent_closed()),
        "withdrawals": state,
        "can": {
            "refresh": user.has_perm(liquidity.PERM_REFRESH),
            "freeze": user.has_perm(liquidity.PERM_FREEZE),
            "approve": user.has_perm(liquidity.PERM_APPROVE),
            "cancel": user.has_perm(liquidity.PERM_CANCEL),
        },
    }


def _confirm(request, site, *, title, help_text, target, danger=True, cancel_url):
    form = ConfirmActionForm(request.POST or None, allow_expiry=False)
    return form, TemplateResponse(
        request,
        "admin/trading/confirm_action.html",
        {
            **site.each_context(request),
            "title": title,
            "help_text": help_text,
            "form": form,
            "targets": [target],
            "danger": danger,
            "cancel_url": cancel_url,
        },
    )


@admin.register(InventoryBalance)
class InventoryBalanceAdmin(ReadOnlyAdmin):
    """The changelist is the treasury page."""

    def get_urls(self):
        def v(fn):
            return self.admin_site.admin_view(fn)

        return [
            path("fragment/", v(self.page_fragment), name="treasury_fragment"),
            path("refresh/<str:venue>/", v(self.refresh), name="treasury_refresh"),
            path("freeze-withdrawals/", v(self.freeze), name="treasury_freeze"),
            path("drift/<int:pk>/acknowledge/", v(self.drift_acknowledge), name="treasury_drift_ack"),
            path("actions/<int:pk>/<str:verb>/", v(self.action_verb), name="treasury_action"),
            *super().get_urls(),
        ]

    def _require_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied

    def changelist_view(self, request, extra_context=None):
        self._require_view(request)
        return TemplateResponse(
            request,
            "admin/treasury/treasury.html",
            {
                **self.admin_site.each_context(request),
                **_page_context(request),
                "title": "Treasury",
                "is_nav_sidebar_enabled": False,
                "opts": self.model._meta,
            },
        )

    def page_fragment(self, request):
        self._require_view(request)
        return TemplateResponse(request, "admin/treasury/treasury_body.html", _page_context(request))

    def _back(self):
        return redirect(reverse("admin:treasury_inventorybalance_changelist"))

    def _run(self, request, fn, success: str):
        try:
            fn()
        except ApplicationError as exc:
            if exc.code == "PERMISSION_DENIED":
                raise PermissionDenied(exc.message) from exc
            messages.error(request, f"{exc.message} ({exc.code})")
        else:
            messages.success(request, success)
        return self._back()

    def refresh(self, request, venue):
        if venue not in Venue.values:
            raise Http404("unknown venue")
        if request.method != "POST":
            return self._back()

        def run():
            permission_require(actor=request.user, perm=liquidity.PERM_REFRESH)
            result = treasury_sync(venue=venue)
            if not result.get("ok", True) or result.get("skipped"):
                raise ApplicationError(
                    result.get("message") or result.get("skipped") or "sync failed",
                    code=result.get("code") or "SKIPPED",
                )

        return self._run(request, run, f"{venue}: inventory synced.")

    def freeze(self, request):
        form, page = _confirm(
            request,
            self.admin_site,
            title="Freeze withdrawals",
            help_text=(
                "Disarms treasury:withdrawals: every withdrawal is refused at its side effect (a request waiting "
                "fails with WITHDRAWALS_FROZEN) until an operator arms it again on the control panel."
            ),
            target=liquidity.WITHDRAWALS,
            cancel_url=reverse("admin:treasury_inventorybalance_changelist"),
        )
        if request.method == "POST" and form.is_valid():
            return self._run(
                request,
                lambda: liquidity.withdrawals_freeze(actor=request.user, reason=form.cleaned_data["reason"]),
                "Withdrawals frozen.",
            )
        return page

    def drift_acknowledge(self, request, pk):
        balance = get_object_or_404(InventoryBalance, pk=pk)
        form, page = _confirm(
            request,
            self.admin_site,
            title="Acknowledge drift",
            help_text=f"Accept the credited balance as the truth; the drift of {balance.drift} is cleared (recorded).",
            target=str(balance),
            danger=False,
            cancel_url=reverse("admin:treasury_inventorybalance_changelist"),
        )
        if request.method == "POST" and form.is_valid():

            def run():
                permission_require(actor=request.user, perm=liquidity.PERM_REFRESH)
                inventory_services.inventory_drift_acknowledge(
                    balance_id=pk, actor=actor_label(request.user), reason=form.cleaned_data["reason"]
                )

            return self._run(request, run, f"{balance}: drift acknowledged.")
        return page

    def action_verb(self, request, pk, verb):
        if verb not in ("approve", "cancel"):
            raise Http404("unknown action")
        action = get_object_or_404(LiquidityAction, pk=pk)
        form, page = _confirm(
            request,
            self.admin_site,
            title=f"{verb.capitalize()} liquidity action #{pk}",
            help_text=(
                "Approve another operator's withdrawal above the threshold; it is signed and sent next."
                if verb == "approve"
                else "Cancel an action that has not been submitted; its reservation is released."
            ),
            target=str(action),
            danger=verb == "cancel",
            cancel_url=reverse("admin:treasury_inventorybalance_changelist"),
        )
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            if verb == "approve":
                fn = lambda: liquidity.liquidity_action_approve(actor=request.user, action_id=pk, reason=reason)  # noqa: E731
            else:
                fn = lambda: liquidity.liquidity_action_cancel(actor=request.user, action_id=pk, reason=reason)  # noqa: E731
            return self._run(request, fn, f"#{pk}: {verb} done.")
        return page


@admin.register(LiquidityAction)
class LiquidityActionAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "kind", "status", "venue", "symbol", "amount", "tx_hash", "requested_by")
    list_filter = ("status", "kind", "venue", "origin")
    search_fields = ("=id", "tx_hash", "intent_hash", "address")
    actions = ["approve", "cancel"]
    show_full_result_count = False

    @admin.action(description="Approve selected withdrawals (four eyes)")
    def approve(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            title="Approve selected withdrawals",
            help_text="Another operator than the requester approves; they are signed and sent next.",
            danger=False,
            apply=lambda obj, reason, _e: (
                liquidity.liquidity_action_approve(actor=request.user, action_id=obj.pk, reason=reason) and "approved"
            ),
        )

    @admin.action(description="Cancel selected actions")
    def cancel(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            title="Cancel selected actions",
            help_text="Only actions not submitted yet; their reservations are released.",
            apply=lambda obj, reason, _e: (
                liquidity.liquidity_action_cancel(actor=request.user, action_id=obj.pk, reason=reason) and "cancelled"
            ),
        )


@admin.register(AllowlistEntry)
class AllowlistEntryAdmin(admin.ModelAdmin):
    """Adding goes through `allowlist_add` (recorded); entries are deactivated, never deleted."""

    list_display = ("id", "label", "chain", "address", "asset", "active", "added_by", "created_at")
    list_filter = ("active", "chain")
    fields = ("chain", "address", "asset", "label")
    actions = ["deactivate"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        entry = liquidity.allowlist_add(
            actor=request.user, chain=obj.chain, address=obj.address, asset=obj.asset, label=obj.label
        )
        obj.pk = entry.pk

    @admin.action(description="Remove selected destinations from the allowlist")
    def deactivate(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            title="Remove from the allowlist",
            help_text="Withdrawals to these destinations are refused from now on.",
            apply=lambda obj, reason, _e: (
                liquidity.allowlist_remove(actor=request.user, entry_id=obj.pk, reason=reason) and "removed"
            ),
        )


@admin.register(InventorySnapshot)
class InventorySnapshotAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "venue", "account", "asset", "credited", "reserved", "pending_in", "status", "source")
    list_filter = ("venue", "status")
    search_fields = ("asset", "account")
    show_full_result_count = False


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "ref", "balance", "amount", "status", "expires_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("ref",)


@admin.register(InventorySync)
class InventorySyncAdmin(ReadOnlyAdmin):
    list_display = ("venue", "last_run_at", "last_success_at", "assets", "duration_ms", "last_error_code")


@admin.register(DepositAddress)
class DepositAddressAdmin(ReadOnlyAdmin):
    list_display = ("venue", "account", "chain", "address", "memo", "created_at")
