"""Reference prices in the admin: the control panel's health lines (each source's health and each
pair's fair rate with its age and policy outcome), the sources with pause / resume actions, the
bases (edited through `reference_basis_set`: who, when, ledger event) and the samples (read-only).
Self-contained: imported by `trading.admin`."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from config.errors import ApplicationError
from providers.admin import ReadOnlyAdmin
from providers.models import ReferenceBasis, ReferenceSample, ReferenceSource
from trading.admin_panel.actions import confirm_then_apply
from trading.admin_panel.formatting import ago, plural
from trading.admin_panel.health import DOWN, OK, WARN, HealthItem, health_provider_register
from trading.services import operator
from trading.services import reference as reference_services

SOURCE_BADGE = {"ok": OK, "stale": WARN, "rate_limited": WARN, "paused": WARN, "down": DOWN}
PAIR_BADGE = {"ok": OK, "fallback": WARN, "conflicted": DOWN, "unhealthy": DOWN}


def _age(ms: int | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.1f} s old"


def reference_health() -> list[HealthItem]:
    from providers.reference.service import reference_state

    state = reference_state()
    items = []
    for s in state["sources"]:
        counts = " · ".join(
            (plural(s["reconnects"], "reconnect"), plural(s["errors"], "error"), f"{s['invalid_messages']} invalid")
        )
        if s["rate_limited"]:
            counts += f" · {s['rate_limited']} × 429"
        prices = ", ".join(f"{x['pair']} {x['price'] or '—'} ({_age(x['age_ms'])})" for x in s["symbols"])
        detail = "; ".join(
            part
            for part in (
                s["health_reason"],
                f"paused: {s['pause_reason']}" if s["paused"] else "",
                f"last error {ago(s['last_error_at'])}: {s['last_error']}" if s["last_error"] else "",
                prices,
            )
            if part
        )
        items.append(
            HealthItem(
                name=f"Reference source {s['name']}",
                status=SOURCE_BADGE.get(s["health"], DOWN),
                value=f"{s['health']} · {counts}",
                detail=detail,
                last_seen=s["last_frame_at"] or s["last_success_at"],
            )
        )
    for x in state["pairs"]:
        rate = f"{x['rate']} via {x['source']}" if x["usable"] else "no usable rate"
        items.append(
            HealthItem(
                name=f"Fair rate {x['pair']}",
                status=PAIR_BADGE.get(x["outcome"], DOWN),
                value=f"{x['outcome']} · {rate} · {_age(x['age_ms'])}",
                detail=x["reason"],
            )
        )
    return items


health_provider_register("reference", reference_health)


def _source_action(name: str, description: str, help_text: str):
    service = {"pause": reference_services.reference_source_pause, "resume": reference_services.reference_source_resume}

    def action(modeladmin, request, queryset):
        return confirm_then_apply(
            modeladmin,
            request,
            queryset,
            title=description,
            help_text=help_text,
            danger=name == "pause",
            apply=lambda obj, reason, _expires_at: (
                service[name](actor=request.user, source=obj.name, reason=reason) and f"{name}d"
            ),
        )

    action.__name__ = f"{name}_source"
    return admin.action(description=description, permissions=["pause"])(action)


@admin.register(ReferenceSource)
class ReferenceSourceAdmin(ReadOnlyAdmin):
    list_display = ("name", "paused", "reason", "changed_by", "changed_at")
    actions = [
        _source_action("pause", "Pause selected reference sources", "The fair rates stop using them."),
        _source_action("resume", "Resume selected reference sources", "The fair rates use them again."),
    ]

    def has_pause_permission(self, request):
        return request.user.has_perm(operator.PERM_PAUSE)


@admin.register(ReferenceBasis)
class ReferenceBasisAdmin(admin.ModelAdmin):
    list_display = ("asset", "equals", "rate", "source", "sanity_coingecko_id", "set_by", "set_at")
    fields = ("asset", "equals", "rate", "source", "sanity_coingecko_id", "note", "set_by", "set_at")
    readonly_fields = ("set_by", "set_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "asset") if obj else self.readonly_fields

    def has_add_permission(self, request):
        return request.user.has_perm(operator.PERM_RISK_LIMIT)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm(operator.PERM_RISK_LIMIT)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        try:
            row = reference_services.reference_basis_set(
                actor=request.user,
                asset=obj.asset,
                equals=obj.equals,
                rate=obj.rate,
                source=obj.source,
                sanity_coingecko_id=obj.sanity_coingecko_id,
                note=obj.note,
            )
        except ApplicationError as exc:
            if exc.code == "PERMISSION_DENIED":
                raise PermissionDenied(exc.message) from exc
            raise
        obj.pk, obj.set_by, obj.set_at = row.pk, row.set_by, row.set_at
        messages.info(request, "Rates derived through this basis record the new value from now on.")


@admin.register(ReferenceSample)
class ReferenceSampleAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "pair", "outcome", "rate", "source", "kraken_age_ms", "coingecko_age_ms", "pinned_for")
    list_filter = ("outcome", "source", "pair", "pinned_for")
    search_fields = ("pair",)
    date_hierarchy = "taken_at"
