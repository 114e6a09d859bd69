"""The solver loop in the admin: its settings (changed through `solver.services.config`, with a
reason, audited), read-only quotes, decisions and commands, and the chain page of one quote
(decision with the prices and inventory of that moment, command, timeline). The components'
arm / disarm / pause / resume / drain are on the control panel with every other component."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.errors import ApplicationError
from solver.models import QuoteCommand, QuoteDecision, RelayQuote, SolverConfig
from solver.services import config as config_services
from solver.services.queries import quote_chain
from trading.admin import ReadOnlyAdmin
from trading.admin_panel.formatting import number
from trading.services.operator import PERM_RISK_LIMIT, actor_label, permission_require


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _chain_link(quote_id: str):
    return format_html('<a href="{}">chain</a>', reverse("admin:solver_chain", args=[quote_id]))


@admin.display(description="quote id", ordering="quote_id")
def quote_short(obj):
    """A quote id in a list: its first characters, the whole in the tooltip (and the search)."""
    return format_html('<span title="{}">{}…</span>', obj.quote_id, obj.quote_id[:8])


def _exact_amount(amount, exact_amount_in, asset_in: str, asset_out: str) -> str:
    """What a quote request fixes: the amount the user gives (`in`) or the amount they ask (`out`);
    "" when the request had none that could be read."""
    if amount in (None, ""):
        return ""
    given = bool(exact_amount_in)
    return f"{_amount(amount, asset_in if given else asset_out)} {'in' if given else 'out'}"


def _amount(value, token_id: str) -> str:
    """A token amount as an operator reads it: `0.00741666 BTC`, not 27 decimals of a token id."""
    if value is None:
        return ""
    from solver.services.loop import token_info

    info = token_info(token_id) if token_id else None
    return f"{number(value)} {info[0]}" if info else number(value)


@admin.register(RelayQuote)
class RelayQuoteAdmin(ReadOnlyAdmin):
    list_display = ("quote_id", "received_at", "pair", "direction", "amount_col", "status", "chain")
    list_filter = ("status", "pair")
    search_fields = ("quote_id",)

    @admin.display(description="exact amount", ordering="amount")
    def amount_col(self, obj):
        return _exact_amount(obj.amount, obj.exact_amount_in, obj.asset_in, obj.asset_out)

    @admin.display(description="chain")
    def chain(self, obj):
        return _chain_link(obj.quote_id)

    def get_urls(self):
        return [
            path(
                "chain/<str:quote_id>/",
                self.admin_site.admin_view(self.chain_view),
                name="solver_chain",
            ),
            *super().get_urls(),
        ]

    def chain_view(self, request, quote_id):
        if not request.user.has_perm("solver.view_relayquote"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        from django.http import Http404

        from config.errors import NotFoundError

        try:
            chain = quote_chain(quote_id)
        except NotFoundError as exc:  # an unknown quote: the admin's 404, not a server error
            raise Http404(str(exc)) from exc
        return TemplateResponse(
            request,
            "admin/solver/chain.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Quote {quote_id}",
                "chain": chain,
                "amount": _exact_amount(
                    chain["quote"]["amount"],
                    chain["quote"]["exact_amount_in"],
                    chain["quote"]["asset_in"],
                    chain["quote"]["asset_out"],
                ),
                "rates": {
                    name: number((chain["decision"] or {}).get(name))
                    for name in ("implied_rate", "reference_rate", "gross_edge_pct")
                },
                "sample": _pretty(chain["reference_sample"]),
                "inventory": _pretty(
                    {
                        "at_decision": (chain["decision"] or {}).get("inventory_snapshot"),
                        "last_sync": chain["inventory_snapshot"],
                    }
                ),
                "command": _pretty(chain["command"]),
                "rows": [{**e, "payload": _pretty(e["payload"])} for e in chain["timeline"]],
            },
        )


@admin.register(QuoteDecision)
class QuoteDecisionAdmin(ReadOnlyAdmin):
    # what an operator scans for first, left; the decision is its reason's (QUOTED or a skip), and
    # the freshness is on the decision's page and its chain
    list_display = (
        "decision_id",
        "created_at",
        "pair",
        "direction",
        "decision_reason",
        "edge_col",
        quote_short,
        "chain",
    )
    list_filter = ("decision", "decision_reason", "pair")
    search_fields = ("quote_id", "decision_id")

    @admin.display(description="gross edge %", ordering="gross_edge_pct")
    def edge_col(self, obj):
        return number(obj.gross_edge_pct, places=4) if obj.gross_edge_pct is not None else ""

    @admin.display(description="chain")
    def chain(self, obj):
        return _chain_link(obj.quote_id)


@admin.register(QuoteCommand)
class QuoteCommandAdmin(ReadOnlyAdmin):
    # narrow enough for a laptop beside the navigation: the deadline is on the command's page and its chain
    list_display = ("command_id", "created_at", quote_short, "pair", "status", "give_col", "receive_col", "chain")
    list_filter = ("status", "pair")
    search_fields = ("quote_id", "command_id", "quote_hash", "intent_hash")

    @admin.display(description="desk gives", ordering="give_amount")
    def give_col(self, obj):
        return _amount(obj.give_amount, obj.give_asset)

    @admin.display(description="desk receives", ordering="receive_amount")
    def receive_col(self, obj):
        return _amount(obj.receive_amount, obj.receive_asset)

    @admin.display(description="chain")
    def chain(self, obj):
        return _chain_link(obj.quote_id)


class SolverConfigForm(forms.ModelForm):
    pairs_text = forms.CharField(label="Pair filter", help_text="comma separated, e.g. BTC/EURE", required=False)
    change_reason = forms.CharField(label="Reason", max_length=300)

    class Meta:
        model = SolverConfig
        fields = ("threshold_pct", "spread_pct", "max_notional_quote", "max_notional_hour", "price_max_age_ms")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pairs_text"].initial = ", ".join(self.instance.pairs or [])


@admin.register(SolverConfig)
class SolverConfigAdmin(admin.ModelAdmin):
    form = SolverConfigForm
    list_display = ("__str__", "spread_pct", "max_notional_quote", "max_notional_hour", "changed_by", "changed_at")
    readonly_fields = ("changed_by", "changed_at", "reason")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm(PERM_RISK_LIMIT)

    def get_queryset(self, request):
        config_services.config_get()
        return super().get_queryset(request)

    def save_model(self, request, obj, form, change):
        permission_require(actor=request.user, perm=PERM_RISK_LIMIT)
        data = {k: form.cleaned_data[k] for k in SolverConfigForm.Meta.fields}
        data["pairs"] = [p for p in (form.cleaned_data.get("pairs_text") or "").split(",") if p.strip()]
        try:
            reason = form.cleaned_data["change_reason"]
            config_services.config_set(actor=actor_label(request.user), reason=reason, **data)
        except ApplicationError as exc:
            messages.error(request, f"{exc.code}: {exc.message}")
