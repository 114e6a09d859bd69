"""Admin: endpoints (secret fingerprints only), the delivery log with its attempts and the
redeliver actions, the SSRF allowlist, and notices about disabled endpoints."""

from django.contrib import admin, messages
from django.utils import timezone

from config.errors import ApplicationError
from trading.admin_panel.columns import WideList
from webhooks import services
from webhooks.models import WebhookAllowlist, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookNotice


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "url", "is_active", "secret_fingerprint", "failing_since", "disabled_reason")
    list_filter = ("is_active",)
    search_fields = ("url", "user__username", "user__email")
    # Secrets never appear: only their fingerprints (the encrypted fields are not in any form).
    fields = (
        "user",
        "url",
        "description",
        "event_types",
        "is_active",
        "secret_fingerprint",
        "previous_secret_fingerprint",
        "previous_secret_expires_at",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "created_at",
    )
    readonly_fields = (
        "user",
        "url",
        "event_types",
        "secret_fingerprint",
        "previous_secret_fingerprint",
        "previous_secret_expires_at",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "created_at",
    )
    actions = ["redeliver_failed"]

    def has_add_permission(self, request):
        return False  # endpoints are created through the API, which shows the secret once

    @admin.action(description="Redeliver all failed deliveries of the selected endpoints")
    def redeliver_failed(self, request, queryset):
        total = 0
        for endpoint in queryset:
            try:
                total += services.endpoint_redeliver_failed(endpoint=endpoint, actor=_actor(request))
            except ApplicationError as exc:
                self.message_user(request, f"#{endpoint.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{total} delivery(ies) queued again.", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.endpoint_delete(endpoint=obj, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_delete(endpoint=endpoint, actor=_actor(request))

    def save_model(self, request, obj, form, change):
        # only description and is_active are editable here; go through the service for the event
        services.endpoint_update(
            endpoint=obj,
            actor=_actor(request),
            description=form.cleaned_data.get("description"),
            is_active=form.cleaned_data.get("is_active"),
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "response_code", "error", "response_body")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(WideList, admin.ModelAdmin):
    list_display = (
        "status",
        "id",
        "event_type",
        "endpoint",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "created_at",
    )
    list_display_links = ("id",)
    list_filter = ("status", "event_type", "last_response_code", "endpoint")
    search_fields = ("=webhook_id", "=event_id")
    date_hierarchy = "created_at"
    list_select_related = ("endpoint",)
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver selected deliveries (same webhook-id)", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        try:
            n = services.delivery_redeliver(
                delivery_ids=list(queryset.values_list("pk", flat=True)), actor=_actor(request)
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{n} delivery(ies) queued again.", messages.SUCCESS)

    def has_redeliver_permission(self, request):
        return request.user.is_superuser or request.user.has_perm("webhooks.change_webhookdelivery")


@admin.register(WebhookAllowlist)
class WebhookAllowlistAdmin(admin.ModelAdmin):
    list_display = ("id", "host", "cidr", "allow_http", "note", "created_at")


@admin.register(WebhookNotice)
class WebhookNoticeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "subject", "user", "endpoint", "acknowledged_at")
    list_filter = ("acknowledged_at",)
    readonly_fields = ("endpoint", "user", "subject", "text", "created_at", "acknowledged_at")
    actions = ["acknowledge"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark selected notices as acknowledged")
    def acknowledge(self, request, queryset):
        n = queryset.filter(acknowledged_at__isnull=True).update(acknowledged_at=timezone.now())
        self.message_user(request, f"{n} notice(s) acknowledged.", messages.SUCCESS)
