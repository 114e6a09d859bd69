"""Template tags of the admin: the banner every admin page shows while a scope is restricted."""

from decimal import Decimal

from django import template

from trading.admin_panel.formatting import ago

register = template.Library()


@register.inclusion_tag("admin/trading/restrictions_banner.html", takes_context=True)
def restrictions_banner(context):
    """HALTED / REDUCE_ONLY scopes (who, when, why), with "Resume trading" while the global scope
    is HALTED, for staff who may see the control panel."""
    from trading.admin_panel.panel import restrictions
    from trading.services import operator

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.has_perm("trading.view_controlstate"):
        return {"restrictions": []}
    rows = restrictions()
    global_halted = any(r["scope"] == "global" and r["state"] == "HALTED" for r in rows)
    return {"restrictions": rows, "can_resume": global_halted and user.has_perm(operator.PERM_HALT_ALL)}


@register.filter
def usd(value):
    """Money as the panel's charts print it: thousands separated, two decimals (1,450.32)."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):,.2f}"


@register.filter
def actor(value):
    """`user:3:alice` → `alice (user 3)`; other actors as they are."""
    from trading.admin_panel.panel import actor_display

    return actor_display(value or "")


register.filter("ago", ago)
