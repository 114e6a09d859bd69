from django.contrib import admin, messages

from config.errors import ApplicationError
from delegations import services
from delegations.models import CustodyKey, DelegationSignature, OstiumDelegation
from trading.admin_panel.formatting import event_lines


class DelegationSignatureInline(admin.TabularInline):
    model = DelegationSignature
    fields = ("owner", "safe_tx_hash", "verified_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OstiumDelegation)
class OstiumDelegationAdmin(admin.ModelAdmin):
    """Delegations change only through services; "check chain status" reconciles with the chain."""

    list_display = ("id", "created_at", "user", "network", "safe_address", "delegate_address", "status", "action")
    list_filter = ("status", "network", "action")
    search_fields = ("=id", "safe_address", "delegate_address", "=safe_tx_hash", "=transaction_hash", "user__username")
    inlines = [DelegationSignatureInline]
    actions = ["check_chain_status"]
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        return ["timeline", *[f.name for f in OstiumDelegation._meta.fields]]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="Timeline")
    def timeline(self, obj):
        return event_lines(obj.correlation_id)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Check chain status (reconcile with delegations(safe))")
    def check_chain_status(self, request, queryset):
        for delegation in queryset:
            before = delegation.status
            try:
                after = services.delegation_reconcile(delegation=delegation, actor=f"admin:{request.user.pk}").status
            except ApplicationError as exc:
                self.message_user(request, f"delegation {delegation.pk}: {exc.code} {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"delegation {delegation.pk}: {before} → {after}")


@admin.register(CustodyKey)
class CustodyKeyAdmin(admin.ModelAdmin):
    """Fingerprints only: the encrypted key is never rendered. Keys are made by the
    `ostium_delegate_key` command."""

    list_display = ("id", "purpose", "network", "user", "fingerprint", "is_active", "created_at", "rotated_at")
    list_filter = ("purpose", "network", "is_active")
    fields = ("purpose", "network", "user", "fingerprint", "is_active", "created_at", "rotated_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
