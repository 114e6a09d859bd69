"""Admin actions that ask for confirmation and a reason, then call an operator service.

Each action renders an intermediate page (`admin/trading/confirm_action.html`) carrying
the selected ids; the POST back with a valid reason applies the service to each object
and reports per object. Permissions are checked twice: Django hides and refuses actions
the user lacks (`permissions=[...]`), and the service refuses the actor itself.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.html import format_html

from config.errors import ApplicationError
from trading.admin_panel.forms import ConfirmActionForm
from trading.services import operator


def confirm_then_apply(
    modeladmin,
    request,
    queryset,
    *,
    title: str,
    help_text: str,
    apply: Callable[[object, str, object], str],
    allow_expiry: bool = False,
    danger: bool = True,
):
    form = ConfirmActionForm(request.POST if "confirm" in request.POST else None, allow_expiry=allow_expiry)
    if "confirm" in request.POST and form.is_valid():
        for obj in queryset:
            try:
                outcome = apply(obj, form.cleaned_data["reason"], form.cleaned_data.get("expires_at"))
            except ApplicationError as exc:
                modeladmin.message_user(request, f"{obj}: {exc.message} ({exc.code})", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{obj}: {outcome}", messages.SUCCESS)
        return None
    hidden = [("action", request.POST.get("action", "")), ("confirm", "yes")]
    hidden += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
    return TemplateResponse(
        request,
        "admin/trading/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "help_text": help_text,
            "form": form,
            "targets": [str(o) for o in queryset],
            "hidden": hidden,
            "danger": danger,
            "cancel_url": request.get_full_path(),
            "opts": modeladmin.model._meta,
        },
    )


def _control_action(name: str, description: str, help_text: str, timed: bool):
    def action(modeladmin, request, queryset):
        return confirm_then_apply(
            modeladmin,
            request,
            queryset,
            title=description,
            help_text=help_text,
            allow_expiry=timed,
            danger=name in ("disarm", "pause", "drain"),
            apply=lambda obj, reason, expires_at: (
                operator.control_state_change(
                    actor=request.user, component=obj.component, action=name, reason=reason, expires_at=expires_at
                )
                and f"{name} done"
            ),
        )

    perm = "arm" if name in ("arm", "disarm") else "pause"
    action.__name__ = name
    return admin.action(description=description, permissions=[perm])(action)


class ControlStateActions:
    """Arm / disarm / pause / resume / drain on the ControlState changelist."""

    actions = [
        _control_action("arm", "Arm selected components", "They may cause side effects again.", True),
        _control_action("disarm", "Disarm selected components", "They keep running but refuse side effects.", False),
        _control_action("pause", "Pause selected components", "They take no new work.", True),
        _control_action("resume", "Resume selected components", "Lift a pause or a drain.", False),
        _control_action("drain", "Drain selected components", "Finish in-flight work, take nothing new.", False),
    ]

    def has_arm_permission(self, request):
        return request.user.has_perm(operator.PERM_ARM)

    def has_pause_permission(self, request):
        return request.user.has_perm(operator.PERM_PAUSE)


def _state_action(name: str, state: str, description: str):
    def action(modeladmin, request, queryset):
        return confirm_then_apply(
            modeladmin,
            request,
            queryset,
            title=description,
            help_text=f"The selected scopes become {state} (until the expiry, if given).",
            allow_expiry=True,
            danger=state != "ACTIVE",
            apply=lambda obj, reason, expires_at: (
                operator.trading_state_change(
                    actor=request.user,
                    scope_type=obj.scope_type,
                    scope_key=obj.scope_key,
                    state=state,
                    reason=reason,
                    expires_at=expires_at,
                )
                and state
            ),
        )

    action.__name__ = name
    return admin.action(description=description, permissions=["set_state"])(action)


class TradingStateActions:
    actions = [
        _state_action("halt", "HALTED", "Halt selected scopes"),
        _state_action("reduce_only", "REDUCE_ONLY", "Set selected scopes reduce-only"),
        _state_action("activate", "ACTIVE", "Set selected scopes ACTIVE"),
    ]

    def has_set_state_permission(self, request):
        return request.user.has_perm(operator.PERM_TRADING_STATE)


def _force_close(kind: str):
    def action(modeladmin, request, queryset):
        def apply(obj, reason, _expires_at):
            if kind == "position":
                orders = operator.position_force_close(actor=request.user, position=obj, reason=reason)
            else:
                orders = [operator.trade_force_close(actor=request.user, trade=obj, reason=reason)]
            return "close order(s) " + ", ".join(str(o.pk) for o in orders) + " placed"

        return confirm_then_apply(
            modeladmin,
            request,
            queryset,
            title=f"Force-close selected {kind}s",
            help_text="A reduce-only MARKET close goes through the risk engine and the executor like any close.",
            apply=apply,
        )

    action.__name__ = "force_close"
    return admin.action(description=f"Force-close selected {kind}s", permissions=["force_close"])(action)


class ForceCloseActions:
    def has_force_close_permission(self, request):
        return request.user.has_perm(operator.PERM_FORCE_CLOSE)


class TimelineLink:
    @admin.display(description="Timeline")
    def timeline_link(self, obj):
        from django.urls import reverse

        kind = obj._meta.model_name
        return format_html('<a href="{}">timeline</a>', reverse("admin:timeline", args=[kind, obj.pk]))


position_force_close_action = _force_close("position")
trade_force_close_action = _force_close("trade")
