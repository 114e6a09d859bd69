"""Template tags of the admin: the banner every admin page shows while a scope is restricted."""

from django import template

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
