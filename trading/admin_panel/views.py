"""Admin pages for operators: control panel (+ JSON status and auto-refresh fragment),
confirmation pages of control actions, halt everything, and the order timeline."""

from __future__ import annotations

import json
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from config.errors import ApplicationError
from config.logging import redact
from trading.admin_panel.formatting import number, price
from trading.admin_panel.forms import ConfirmActionForm, TradingStateForm
from trading.admin_panel.panel import actor_display, panel_json, panel_snapshot
from trading.admin_panel.svg import bar_chart
from trading.models import ControlState, Event, ExecutionCommand, Order, Position, Trade
from trading.services import operator

CONTROL_LABELS = {
    "arm": "Arm",
    "disarm": "Disarm",
    "pause": "Pause",
    "resume": "Resume",
    "drain": "Drain",
}
CONTROL_HELP = {
    "arm": "The component may cause side effects (orders reach the venue).",
    "disarm": "The component keeps running and observable but refuses every side effect.",
    "pause": "The component takes no new work: new orders for this venue are refused when placed.",
    "resume": "Lift a pause or a drain.",
    "drain": "Finish in-flight work, accept no new exposure; shows 'drained' once nothing is in flight.",
}
STATE_HELP = {
    "halt": "HALTED: no order passes the risk engine or the executor in this scope.",
    "reduce_only": "REDUCE_ONLY: only closes and protective orders pass.",
    "activate": "ACTIVE: normal trading.",
}


def _require_view(request, perm="trading.view_controlstate"):
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _abilities(user) -> dict:
    return {
        "arm": user.has_perm(operator.PERM_ARM),
        "pause": user.has_perm(operator.PERM_PAUSE),
        "trading_state": user.has_perm(operator.PERM_TRADING_STATE),
        "halt_all": user.has_perm(operator.PERM_HALT_ALL),
    }


def _panel_context(request, site) -> dict:
    snapshot = panel_snapshot()
    venues = snapshot["venues"]
    return {
        **site.each_context(request),
        **snapshot,
        "title": "Control panel",
        "is_nav_sidebar_enabled": False,  # the panel wants the full width; "All models" links the rest
        "can": _abilities(request.user),
        "exposure_chart": bar_chart([(r["venue"], r["exposure"]) for r in venues], title="Open exposure (USD)"),
        "pnl_chart": bar_chart([(r["venue"], r["pnl_today"]) for r in venues], title="PnL today (USD)", signed=True),
        "instrument_chart": bar_chart(snapshot["instrument_exposure"], title="Open exposure by instrument (USD)"),
        "pnl_history_chart": _pnl_history_chart(days=14),
    }


def _pnl_history_chart(*, days: int, user=None, width: int = 640):
    from trading.admin_panel.panel import pnl_over_time
    from trading.admin_panel.svg import line_chart

    labels, series = pnl_over_time(days=days, user=user)
    whose = f" of {user.get_username()}" if user is not None else ""
    return line_chart(
        series, labels=labels, title=f"Realised PnL{whose}, cumulative, last {days} days (USD)", width=width
    )


def pnl_page(request, site):
    """PnL over time for the desk, each venue, or one user (?user=<id>), and the CSV exports."""
    from django.contrib.auth import get_user_model

    _require_view(request, "trading.view_fill")
    try:
        days = min(max(int(request.GET.get("days") or 30), 2), 366)
    except ValueError:
        days = 30
    user = None
    if request.GET.get("user"):
        user = get_object_or_404(get_user_model(), pk=request.GET["user"]) if request.GET["user"].isdigit() else None
        if user is None:
            raise Http404("no such user")
    return TemplateResponse(
        request,
        "admin/trading/pnl.html",
        {
            **site.each_context(request),
            "title": "PnL over time" + (f" — {user.get_username()} (user {user.pk})" if user else ""),
            "is_nav_sidebar_enabled": False,
            "chart": _pnl_history_chart(days=days, user=user, width=1100),
            "days": days,
            "subject": user,
        },
    )


EXPORTS = {
    "trades": (
        "trading.view_trade",
        [
            "id",
            "user",
            "provider",
            "asset",
            "side",
            "status",
            "collateral",
            "leverage",
            "size",
            "entry_price",
            "realized_pnl",
            "fees_paid",
            "funding_paid",
            "close_reason",
            "opened_at",
            "closed_at",
        ],
    ),
    "fills": (
        "trading.view_fill",
        [
            "id",
            "user",
            "trade_id",
            "order_id",
            "kind",
            "price",
            "size",
            "notional",
            "fee",
            "realized_pnl",
            "funding",
            "price_source",
            "occurred_at",
        ],
    ),
}


def export_csv(request, site, what):
    """Trades (opened in the period) or fills (in the period) as CSV: ?from=YYYY-MM-DD&to=YYYY-MM-DD (UTC
    days, inclusive; default the last 30 days)."""
    import csv
    from datetime import date, timedelta

    from django.http import HttpResponse

    from trading.models import Fill

    if what not in EXPORTS:
        raise Http404("unknown export")
    perm, columns = EXPORTS[what]
    _require_view(request, perm)
    try:
        end = date.fromisoformat(request.GET["to"]) if request.GET.get("to") else timezone_today()
        start = date.fromisoformat(request.GET["from"]) if request.GET.get("from") else end - timedelta(days=29)
    except ValueError:
        return HttpResponse("from and to are dates: YYYY-MM-DD\n", status=400, content_type="text/plain")
    if what == "trades":
        rows = Trade.objects.filter(opened_at__date__gte=start, opened_at__date__lte=end).select_related("user")
    else:
        rows = Fill.objects.filter(occurred_at__date__gte=start, occurred_at__date__lte=end).select_related("user")
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{what}-{start}-{end}.csv"'
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows.order_by("id").iterator():
        writer.writerow([_csv_value(row, c) for c in columns])
    return response


def timezone_today():
    from django.utils import timezone

    return timezone.now().date()


def _csv_value(row, column):
    if column == "user":
        return row.user.get_username()
    value = getattr(row, column)
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return value


def control_panel(request, site):
    _require_view(request)
    return TemplateResponse(request, "admin/control_panel.html", _panel_context(request, site))


def control_panel_fragment(request, site):
    _require_view(request)
    return TemplateResponse(request, "admin/control_panel_body.html", _panel_context(request, site))


def control_panel_status(request, site):
    _require_view(request)
    return JsonResponse(panel_json(panel_snapshot()), encoder=DjangoJSONEncoder)


def _confirm_page(request, site, *, title, help_text, form, target, danger=False):
    return TemplateResponse(
        request,
        "admin/trading/confirm_action.html",
        {
            **site.each_context(request),
            "title": title,
            "is_nav_sidebar_enabled": False,
            "help_text": help_text,
            "form": form,
            "targets": [target] if isinstance(target, str) else target,
            "danger": danger,
        },
    )


def _done(request, fn, success: str):
    """Call the service; report the outcome; a permission refusal is a 403."""
    try:
        fn()
    except ApplicationError as exc:
        if exc.code == "PERMISSION_DENIED":
            raise PermissionDenied(exc.message) from exc
        messages.error(request, f"{exc.message} ({exc.code})")
        return None
    messages.success(request, success)
    return redirect(reverse("admin:control_panel"))


def _network(component: str) -> str:
    """The network a real venue's component acts on (localnet / testnet / mainnet; NEAR: its
    endpoint set), so that arming says where orders will go."""
    from django.conf import settings

    if component in ("executor:ostium", "signer:ostium"):
        return f"Ostium {settings.OSTIUM_NETWORK}"
    if component == "executor:near_intents":
        return f"NEAR Intents {settings.NEAR_INTENTS_NETWORK}"
    return ""


def control_action(request, site, component, action):
    if action not in operator.CONTROL_ACTIONS:
        raise Http404("unknown action")
    _, perm, timed = operator.CONTROL_ACTIONS[action]
    if not request.user.has_perm(perm):
        raise PermissionDenied
    get_object_or_404(ControlState, component=component)
    form = ConfirmActionForm(request.POST or None, allow_expiry=timed)
    if request.method == "POST" and form.is_valid():
        response = _done(
            request,
            lambda: operator.control_state_change(
                actor=request.user,
                component=component,
                action=action,
                reason=form.cleaned_data["reason"],
                expires_at=form.cleaned_data.get("expires_at"),
            ),
            f"Done — {component}: {CONTROL_LABELS[action].lower()}.",
        )
        if response:
            return response
    help_text = CONTROL_HELP[action]
    network = _network(component)
    if network:
        help_text += f" Network: {network}."
    return _confirm_page(
        request,
        site,
        title=f"{CONTROL_LABELS[action]} {component}" + (f" ({network})" if network else ""),
        help_text=help_text,
        form=form,
        target=component,
        danger=action in ("disarm", "pause", "drain"),
    )


def trading_state_action(request, site, action):
    if action not in operator.TRADING_STATE_ACTIONS:
        raise Http404("unknown action")
    if not request.user.has_perm(operator.PERM_TRADING_STATE):
        raise PermissionDenied
    state = operator.TRADING_STATE_ACTIONS[action]
    form = TradingStateForm(request.POST or None, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        scope = d["scope_type"] + (f":{d['scope_key']}" if d["scope_type"] != "global" else "")
        response = _done(
            request,
            lambda: operator.trading_state_change(
                actor=request.user,
                scope_type=d["scope_type"],
                scope_key=(d.get("scope_key") or "").strip(),
                state=state,
                reason=d["reason"],
                expires_at=d.get("expires_at"),
            ),
            f"Done — {scope} is now {state}.",
        )
        if response:
            return response
    scope = request.GET.get("scope_type", "") + (f":{request.GET['scope_key']}" if request.GET.get("scope_key") else "")
    return _confirm_page(
        request,
        site,
        title=f"Set {state}" + (f" on {scope}" if scope else ""),
        help_text=STATE_HELP[action],
        form=form,
        target=scope or "a scope",
        danger=action != "activate",
    )


def halt_all(request, site):
    if not request.user.has_perm(operator.PERM_HALT_ALL):
        raise PermissionDenied
    form = ConfirmActionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        response = _done(
            request,
            lambda: operator.desk_halt_all(
                actor=request.user, reason=form.cleaned_data["reason"], expires_at=form.cleaned_data.get("expires_at")
            ),
            "Everything halted: global trading state HALTED, every component disarmed.",
        )
        if response:
            return response
    return _confirm_page(
        request,
        site,
        title="Halt everything",
        help_text=(
            "Sets the global trading state to HALTED (until the expiry, if given) and disarms every component. "
            "Components stay disarmed after the expiry: re-arm each one deliberately."
        ),
        form=form,
        target=list(ControlState.objects.values_list("component", flat=True)),
        danger=True,
    )


def resume_all(request, site):
    """One step back from HALT EVERYTHING: global ACTIVE, and the components the halt disarmed armed again."""
    if not request.user.has_perm(operator.PERM_HALT_ALL):
        raise PermissionDenied
    plan = operator.desk_resume_plan()
    form = ConfirmActionForm(request.POST or None, allow_expiry=False)
    if plan is None:
        messages.info(request, "Trading is not halted globally: nothing to resume.")
        return redirect(reverse("admin:control_panel"))
    if request.method == "POST" and form.is_valid():
        response = _done(
            request,
            lambda: operator.desk_resume(actor=request.user, reason=form.cleaned_data["reason"]),
            "Trading resumed: global trading state ACTIVE"
            + (f"; armed again: {', '.join(plan['rearm'])}." if plan["rearm"] else "; no component to re-arm."),
        )
        if response:
            return response
    halt = plan["halt"]
    until = plan["until"]
    if plan["rearm"]:
        targets = ["global trading state → ACTIVE"] + [
            f"arm {c}" + (f" until {until[c]:%Y-%m-%d %H:%M} UTC" if c in until else "") for c in plan["rearm"]
        ]
    else:
        targets = ["global trading state → ACTIVE", "no component to re-arm (none was armed before the halt)"]
    targets += [f"not {c}: its arming ended during the halt ({until[c]:%Y-%m-%d %H:%M} UTC)" for c in plan["lapsed"]]
    return _confirm_page(
        request,
        site,
        title="Resume trading",
        help_text=(
            f"Undo the halt by {actor_display(halt.actor if halt else plan['state'].changed_by)}: "
            "the global scope returns to ACTIVE and exactly the components that the halt disarmed are armed "
            "again. Other restrictions (venues, instruments) stay as they are."
        ),
        form=form,
        target=targets,
    )


# --- timeline -------------------------------------------------------------------------------------


def _pretty(value) -> str:
    return json.dumps(redact(value), indent=2, sort_keys=True, cls=DjangoJSONEncoder, default=str)


def _subject(kind: str, pk: int):
    """The orders, trades and positions a timeline covers, and its correlation ids."""
    if kind == "order":
        order = get_object_or_404(Order.objects.select_related("trade__position"), pk=pk)
        orders = [order, *order.attached_orders.all()]
        if order.parent_id:
            orders.append(order.parent)
        trades = [order.trade] if order.trade_id else []
    elif kind == "trade":
        trade = get_object_or_404(Trade, pk=pk)
        trades = [trade]
        orders = list(trade.orders.all())
    elif kind == "position":
        position = get_object_or_404(Position, pk=pk)
        trades = list(position.trades.all())
        orders = list(Order.objects.filter(trade__in=trades))
    else:
        raise Http404("unknown kind")
    orders = sorted({o.pk: o for o in orders}.values(), key=lambda o: o.pk)
    positions = sorted({t.position_id: t.position for t in trades}.values(), key=lambda p: p.pk)
    return orders, trades, positions


def timeline(request, site, kind, pk):
    _require_view(request, "trading.view_order")
    orders, trades, positions = _subject(kind, pk)
    correlations = {o.correlation_id for o in orders} | {f"trade-{t.pk}" for t in trades}
    correlations |= {f"position-{p.pk}" for p in positions}
    events = list(Event.objects.filter(correlation_id__in=correlations).order_by("id"))
    known = {e.id for e in events}
    missing = {e.causation_id for e in events if e.causation_id and e.causation_id not in known}
    if missing:  # causes recorded under another correlation (e.g. an operator's force-close request)
        events = sorted([*events, *Event.objects.filter(id__in=missing)], key=lambda e: e.id)
    order_ids = [o.pk for o in orders]
    commands = list(ExecutionCommand.objects.filter(order_id__in=order_ids).order_by("id"))
    rows = []
    for e in events:
        decision = ""
        if e.topic == "order.accepted":
            p = e.payload
            parts = ["risk engine passed"]
            if p.get("reference_price") not in (None, ""):
                parts.append(f"at reference price {price(p['reference_price'], p.get('asset') or '')}")
                parts.append(f"({p.get('price_source') or 'cache'})")
            if p.get("max_slippage") not in (None, ""):
                parts.append(f"· max slippage {number(Decimal(str(p['max_slippage'])) * 100)} %")
            decision = " ".join(parts)
        elif e.topic == "order.rejected":
            why = f"{e.payload.get('error_code') or ''} — {e.payload.get('error_message') or ''}"
            decision = ("executor gate refused: " if e.payload.get("stage") == "executor" else "rejected: ") + why
        rows.append({"event": e, "payload": _pretty(e.payload), "decision": decision})
    return TemplateResponse(
        request,
        "admin/trading/timeline.html",
        {
            **site.each_context(request),
            "title": f"Timeline of {kind} {pk}",
            "is_nav_sidebar_enabled": False,
            "kind": kind,
            "pk": pk,
            "rows": rows,
            "orders": orders,
            "trades": trades,
            "positions": positions,
            "commands": [
                {"command": c, "request": _pretty(c.request), "result": _pretty(c.result) if c.result else ""}
                for c in commands
            ],
            "risk_rejections": _risk_rejections(orders),
            "story": _stories(kind, pk, orders, trades),
        },
    )


def _stories(kind, pk, orders, trades) -> list[str]:
    """The order's story; for a trade or a position, the story of each trade's opening order."""
    from trading.admin_panel.story import order_story

    if kind == "order":
        subjects = [o for o in orders if o.pk == pk]
    else:
        subjects = []
        for trade in trades:
            opening = [o for o in orders if o.trade_id == trade.pk and not o.reduce_only]
            opening = [o for o in opening if o.order_type not in Order.PROTECTIVE_TYPES] or opening
            if opening:
                subjects.append(opening[0])
    return [story for story in (order_story(o) for o in subjects) if story]


def _risk_rejections(orders) -> list[Event]:
    """Risk refusals never create an order; show the user's refusals on the same instrument
    in the minute before the order, which explain retries."""
    from datetime import timedelta

    if not orders:
        return []
    first = orders[0]
    return list(
        Event.objects.filter(
            topic="risk.rejected",
            aggregate_type="user",
            aggregate_id=str(first.user_id),
            payload__asset=first.asset,
            occurred_at__gte=first.created_at - timedelta(minutes=1),
            occurred_at__lte=first.created_at,
        ).order_by("id")[:20]
    )
