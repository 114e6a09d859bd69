from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils import timezone

from trading.models import Event, OutboxMessage, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
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
