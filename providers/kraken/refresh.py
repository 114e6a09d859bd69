"""The one-shot REST refresh of Kraken's prices (the staff API's `refresh`): each sourced pair's
Ticker, written to the store like a stream update (via "rest"). Its timestamp is the time received:
a refreshed price is fresh for REFERENCE_MAX_AGE_MS, then the stream (or another refresh) must
follow."""

from __future__ import annotations

from providers.kraken.client import ticker_rest
from providers.reference import store
from providers.reference.config import KRAKEN


def kraken_refresh() -> dict:
    from providers.reference.service import direct_pairs

    quotes, errors = ticker_rest(direct_pairs())
    store.quotes_put(quotes)
    if errors:
        why = "; ".join(f"{pair}: {error}" for pair, error in sorted(errors.items()))
        store.state_update(KRAKEN, fields=store.error_fields(f"REST refresh: {why}"), incr={"errors": 1})
    result = {"source": KRAKEN, "ok": not errors, "refreshed": sorted(q.pair for q in quotes)}
    if errors:
        result["error"] = {"code": "error", "message": why}
    return result
