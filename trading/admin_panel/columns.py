"""Columns of the admin's lists that an operator reads at 1280 px: status first, then what and
how much; prices to the market's precision, money with two decimals, no `0E-8`; closes shown as
closes (reduce-only, fraction); times with seconds in UTC; people by name, not `user:3`."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import DecimalField
from django.utils.html import format_html

from trading.admin_panel.formatting import money, number, price, when

STATUS_COLOURS = {
    "FILLED": "#2e8b57",
    "open": "#2e8b57",
    "delivered": "#2e8b57",
    "REJECTED": "#c0392b",
    "UNKNOWN": "#c0392b",
    "failed": "#c0392b",
    "dead": "#c0392b",
    "CANCELLED": "#7f8c8d",
    "EXPIRED": "#7f8c8d",
    "closed": "#7f8c8d",
}


def status_badge(status: str, extra: str = ""):
    colour = STATUS_COLOURS.get(status, "#d68910")
    return format_html(
        '<strong style="color:{}">{}</strong>{}',
        colour,
        status,
        format_html('<div class="td-muted" style="font-size:11px">{}</div>', extra) if extra else "",
    )


def person(user) -> str:
    if user is None:
        return ""
    return f"{user.get_username()} (user {user.pk})"


def _decimal_column(name: str, field: DecimalField):
    @admin.display(description=field.verbose_name, ordering=name)
    def column(obj):
        return number(getattr(obj, name))

    column.__name__ = name
    return column


class TrimmedDecimals:
    """Every list shows its decimal columns as `number` prints them (10,000, not
    10000.000000000000000000000000): the admin site mixes this into each model admin it registers.
    A column an operator edits in the list keeps its field."""

    def get_list_display(self, request):
        columns = self.__dict__.get("_decimal_columns")
        if columns is None:  # one callable per column (the list's sorting finds its columns by identity)
            editable = set(self.list_editable or ())
            columns = self._decimal_columns = {
                f.name: _decimal_column(f.name, f)
                for f in self.model._meta.concrete_fields
                if isinstance(f, DecimalField) and f.name not in editable
            }
        return [
            columns.get(name, name) if isinstance(name, str) else name for name in super().get_list_display(request)
        ]


class WideList:
    """A list page without the model sidebar: its columns get the page's width (1280 px fits)."""

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})


class OrderColumns(WideList):
    list_display = ("status_col", "order_col", "amount_col", "price_col", "user_col", "created_col", "timeline_link")
    list_display_links = ("order_col",)
    list_select_related = ("user",)

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return status_badge(obj.status, obj.error_code)

    @admin.display(description="Order", ordering="id")
    def order_col(self, obj):
        kind = obj.order_type
        if obj.reduce_only:
            kind = f"close ({obj.order_type})"
        return f"#{obj.pk} {kind} {obj.side} {obj.asset} · {obj.provider}"

    @admin.display(description="How much")
    def amount_col(self, obj):
        if obj.reduce_only:
            share = f"{number(obj.close_fraction * 100)} %" if obj.close_fraction else "all"
            return f"reduce-only, {share} of trade {obj.trade_id or '—'}"
        if obj.order_type in obj.PROTECTIVE_TYPES:
            return f"protects trade {obj.trade_id or '—'}"
        return f"{money(obj.collateral)} USD × {number(obj.leverage)}"

    @admin.display(description="Price")
    def price_col(self, obj):
        if obj.filled_price is not None:
            return f"filled {price(obj.filled_price, obj.asset)}"
        level = obj.price or obj.stop_price or obj.take_profit_price or obj.oco_stop_price
        return f"at {price(level, obj.asset)}" if level is not None else "market"

    @admin.display(description="User", ordering="user__username")
    def user_col(self, obj):
        return person(obj.user)

    @admin.display(description="Created (UTC)", ordering="created_at")
    def created_col(self, obj):
        return when(obj.created_at).removesuffix(" UTC")


class TradeColumns(WideList):
    list_display = (
        "status_col",
        "trade_col",
        "size_col",
        "entry_col",
        "pnl_col",
        "user_col",
        "opened_col",
        "timeline_link",
    )
    list_display_links = ("trade_col",)
    list_select_related = ("user",)

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return status_badge(obj.status, obj.get_close_reason_display() if obj.close_reason else "")

    @admin.display(description="Trade", ordering="id")
    def trade_col(self, obj):
        return f"#{obj.pk} {obj.side} {obj.asset} · {obj.provider}"

    @admin.display(description="Size", ordering="size")
    def size_col(self, obj):
        return f"{number(obj.size)} ({money(obj.collateral)} USD × {number(obj.leverage)})"

    @admin.display(description="Entry", ordering="entry_price")
    def entry_col(self, obj):
        return price(obj.entry_price, obj.asset)

    @admin.display(description="Realised PnL", ordering="realized_pnl")
    def pnl_col(self, obj):
        return money(obj.realized_pnl)

    @admin.display(description="User", ordering="user__username")
    def user_col(self, obj):
        return person(obj.user)

    @admin.display(description="Opened (UTC)", ordering="opened_at")
    def opened_col(self, obj):
        return when(obj.opened_at).removesuffix(" UTC")


class PositionColumns(WideList):
    list_display = (
        "status_col",
        "position_col",
        "size_col",
        "entry_col",
        "pnl_col",
        "user_col",
        "opened_col",
        "timeline_link",
    )
    list_display_links = ("position_col",)
    list_select_related = ("user",)

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return status_badge(obj.status)

    @admin.display(description="Position", ordering="id")
    def position_col(self, obj):
        return f"#{obj.pk} {obj.side} {obj.asset} · {obj.provider}"

    @admin.display(description="Size", ordering="quantity")
    def size_col(self, obj):
        return f"{number(obj.quantity)} (margin {money(obj.margin)} USD)"

    @admin.display(description="Avg entry", ordering="avg_entry_price")
    def entry_col(self, obj):
        return price(obj.avg_entry_price, obj.asset)

    @admin.display(description="Realised PnL", ordering="realized_pnl")
    def pnl_col(self, obj):
        return money(obj.realized_pnl)

    @admin.display(description="User", ordering="user__username")
    def user_col(self, obj):
        return person(obj.user)

    @admin.display(description="Opened (UTC)", ordering="opened_at")
    def opened_col(self, obj):
        return when(obj.opened_at).removesuffix(" UTC")


class FillColumns(WideList):
    list_display = ("kind_col", "what_col", "price_col", "size_col", "fee_col", "pnl_col", "when_col")
    list_display_links = ("what_col",)
    list_select_related = ("trade", "user")

    @admin.display(description="Kind", ordering="kind")
    def kind_col(self, obj):
        return obj.kind

    @admin.display(description="Fill", ordering="id")
    def what_col(self, obj):
        order = f", order {obj.order_id}" if obj.order_id else ""
        return f"#{obj.pk} {obj.trade.side} {obj.trade.asset} · trade {obj.trade_id}{order} · {person(obj.user)}"

    @admin.display(description="Price", ordering="price")
    def price_col(self, obj):
        return price(obj.price, obj.trade.asset) if obj.price else "—"

    @admin.display(description="Size", ordering="size")
    def size_col(self, obj):
        return number(obj.size)

    @admin.display(description="Fee / funding")
    def fee_col(self, obj):
        return money(obj.fee) + (f" / {money(obj.funding)}" if obj.funding else "")

    @admin.display(description="Realised PnL", ordering="realized_pnl")
    def pnl_col(self, obj):
        return money(obj.realized_pnl)

    @admin.display(description="When (UTC)", ordering="occurred_at")
    def when_col(self, obj):
        return when(obj.occurred_at).removesuffix(" UTC")
