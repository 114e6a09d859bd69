"""The paper venue's models live in `providers.models` (one app, one models module)."""

from providers.models import (  # noqa: F401
    PaperAccount,
    PaperFill,
    PaperFundingCharge,
    PaperMarket,
    PaperOrder,
    PaperPosition,
    PaperPriceState,
)
