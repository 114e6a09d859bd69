"""Pairs, sources and endpoints of the reference prices.

Endpoints come from settings (KRAKEN_WS_URL, KRAKEN_REST_URL, COINGECKO_API_URL) or, when those are
empty, from REFERENCE_ENDPOINTS: "live" (Kraken's and CoinGecko's own) or "sandbox" (the loopback
doubles; `manage.py reference_sandbox --config-out <REFERENCE_SANDBOX_CONFIG>` writes their
addresses). The sandbox file is read at each use, so a double started later is picked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from config.errors import ApplicationError
from configuration.runtime import config_value
from providers.sandbox_config import sandbox_config_read

KRAKEN, COINGECKO = "kraken", "coingecko"
SOURCES = (KRAKEN, COINGECKO)
LIVE_KRAKEN_WS = "wss://ws.kraken.com/v2"
LIVE_KRAKEN_REST = "https://api.kraken.com"
LIVE_COINGECKO = {"demo": "https://api.coingecko.com/api/v3", "pro": "https://pro-api.coingecko.com/api/v3"}
COINGECKO_KEY_HEADER = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}

_PAIR = re.compile(r"^([A-Z0-9]{2,12})[/\-]([A-Z0-9]{2,12})$")


class ReferenceConfigError(ApplicationError):
    status_code = 503
    code = "REFERENCE_NOT_CONFIGURED"


def pair_normalise(text: str) -> str:
    """ "btc-eur" / "BTC/EUR" -> "BTC/EUR"; ValueError when it is not BASE/QUOTE."""
    match = _PAIR.match((text or "").strip().upper())
    if not match:
        raise ValueError(f"{text!r} is not a pair like BTC/EUR")
    return f"{match.group(1)}/{match.group(2)}"


def pair_split(pair: str) -> tuple[str, str]:
    base, quote = pair.split("/")
    return base, quote


def pair_reversed(pair: str) -> str:
    base, quote = pair_split(pair)
    return f"{quote}/{base}"


def configured_pairs() -> list[str]:
    return [pair_normalise(p) for p in settings.REFERENCE_PAIRS]


@dataclass(frozen=True)
class Policy:
    max_age_ms: int
    fallback_max_age_ms: int
    fallback_enabled: bool
    conflict_bps: Decimal
    basis_tolerance_bps: Decimal


def policy_from_settings() -> Policy:
    return Policy(
        max_age_ms=int(settings.REFERENCE_MAX_AGE_MS),
        fallback_max_age_ms=int(settings.REFERENCE_FALLBACK_MAX_AGE_MS),
        fallback_enabled=bool(settings.REFERENCE_FALLBACK_ENABLED),
        conflict_bps=Decimal(str(settings.REFERENCE_CONFLICT_BPS)),
        basis_tolerance_bps=Decimal(str(settings.REFERENCE_BASIS_TOLERANCE_BPS)),
    )


def _sandbox_file() -> dict:
    return sandbox_config_read(
        settings.REFERENCE_SANDBOX_CONFIG,
        label="reference sandbox config",
        start_hint="run `manage.py reference_sandbox` or set REFERENCE_ENDPOINTS=live",
        error=ReferenceConfigError,
    )


def _endpoint(setting: str, sandbox_key: str, live: str) -> str:
    explicit = config_value(setting)
    if explicit:
        return explicit.rstrip("/")
    mode = settings.REFERENCE_ENDPOINTS
    if mode == "live":
        return live
    if mode == "sandbox":
        return _sandbox_file()[sandbox_key].rstrip("/")
    raise ReferenceConfigError(f"REFERENCE_ENDPOINTS must be live or sandbox, not {mode!r}")


def kraken_ws_url() -> str:
    return _endpoint("KRAKEN_WS_URL", "kraken_ws_url", LIVE_KRAKEN_WS)


def kraken_rest_url() -> str:
    return _endpoint("KRAKEN_REST_URL", "kraken_rest_url", LIVE_KRAKEN_REST)


def coingecko_url() -> str:
    return _endpoint("COINGECKO_API_URL", "coingecko_url", LIVE_COINGECKO.get(coingecko_plan(), LIVE_COINGECKO["demo"]))


def coingecko_plan() -> str:
    plan = settings.COINGECKO_API_PLAN
    if plan not in COINGECKO_KEY_HEADER:
        raise ReferenceConfigError(f"COINGECKO_API_PLAN must be demo or pro, not {plan!r}")
    return plan


def coingecko_id(asset: str) -> str:
    """The CoinGecko coin id of `asset` ("" when none is configured)."""
    return {k.strip().upper(): v.strip() for k, v in settings.COINGECKO_IDS.items()}.get(asset.upper(), "")
