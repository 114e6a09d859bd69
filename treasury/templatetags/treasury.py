from decimal import Context, Decimal

from django import template
from django.utils.html import format_html

from treasury.models import amount_text

register = template.Library()


@register.filter
def amount(value, places=None):
    """An amount without trailing zeros ("2.5", "60000"). With `places` (the asset's decimals), a
    value carrying more is shown rounded to them, the exact value in its tooltip: a paper USD
    balance of 99899.550466705509487074 reads "99899.55"."""
    if value is None:
        return ""
    exact = amount_text(value)
    if places in (None, "") or -Decimal(value).normalize().as_tuple().exponent <= int(places):
        return exact
    shown = amount_text(Decimal(value).quantize(Decimal(1).scaleb(-int(places)), context=Context(prec=80)))
    return format_html('<span title="{}">{}</span>', exact, shown)
