from django import template

from treasury.models import amount_text

register = template.Library()


@register.filter
def amount(value):
    """An amount without trailing zeros ("2.5", "60000")."""
    return "" if value is None else amount_text(value)
