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
    scope_type = forms.ChoiceField(
        choices=[("global", "global"), ("venue", "venue"), ("instrument", "instrument"), ("strategy", "strategy")]
    )
    scope_key = forms.CharField(
        required=False, help_text="venue name, instrument (BTC-USD) or strategy; empty for global"
    )
    field_order = ["scope_type", "scope_key", "reason", "expires_at"]

    def clean(self):
        data = super().clean()
        if data.get("scope_type") != "global" and not (data.get("scope_key") or "").strip():
            self.add_error("scope_key", "Required for this scope.")
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
