from decimal import Decimal

from django import forms
from django.utils import timezone

from trading.models import RiskLimit


class ConfirmActionForm(forms.Form):
    """The intermediate page of every dangerous action: a required reason, optional expiry."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why? It is recorded with the change and shown on the control panel.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional, UTC (YYYY-MM-DD HH:MM). When it passes, the state returns to what it was.",
        widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"}),
    )

    def __init__(self, *args, allow_expiry: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not allow_expiry:
            del self.fields["expires_at"]

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if len(reason) < 3:
            raise forms.ValidationError("Give a reason (at least 3 characters).")
        return reason

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value


class TradingStateForm(ConfirmActionForm):
    """The scope is chosen from what exists (the key field suggests the venues and instruments
    the desk knows) and checked against it: a typo such as `BTCUSD` is refused, never shown as
    a restriction."""

    scope_type = forms.ChoiceField(
        choices=[("global", "global"), ("venue", "venue"), ("instrument", "instrument"), ("strategy", "strategy")]
    )
    scope_key = forms.CharField(
        required=False,
        help_text="Pick a venue (paper) or an instrument (BTC-USD); empty for global.",
        widget=forms.TextInput(attrs={"list": "td-scope-keys", "autocomplete": "off"}),
    )
    field_order = ["scope_type", "scope_key", "reason", "expires_at"]

    @property
    def scope_key_options(self) -> list[tuple[str, str]]:
        from trading.services.control import scope_keys

        return [(kind, key) for kind in ("venue", "instrument") for key in scope_keys(kind)]

    def clean(self):
        from config.errors import ApplicationError
        from trading.services.control import scope_key_check

        data = super().clean()
        scope_type = data.get("scope_type")
        if scope_type:
            try:
                data["scope_key"] = scope_key_check(scope_type, data.get("scope_key") or "")
            except ApplicationError as exc:
                self.add_error("scope_key", exc.message)
        return data


# (min, max) per field: positive and within a range an operator could mean.
RISK_RANGES = {
    "max_notional": (Decimal("0.01"), Decimal("100000000")),
    "max_leverage": (Decimal("1"), Decimal("1000")),
    "max_open_positions": (1, 10000),
    "max_slippage": (Decimal("0.000001"), Decimal("0.5")),
    "price_band": (Decimal("0.000001"), Decimal("1")),
    "daily_loss_cap": (Decimal("0.01"), Decimal("100000000")),
    "max_orders_per_minute": (1, 100000),
}


class RiskLimitForm(forms.ModelForm):
    class Meta:
        model = RiskLimit
        fields = ["instrument", *RISK_RANGES]

    def clean_instrument(self):
        return (self.cleaned_data.get("instrument") or "").strip().upper()

    def clean(self):
        data = super().clean()
        for name, (low, high) in RISK_RANGES.items():
            value = data.get(name)
            if value is None:
                continue
            if value <= 0:
                self.add_error(name, "Must be positive.")
            elif not (low <= value <= high):
                self.add_error(name, f"Must be between {low} and {high}.")
        return data
