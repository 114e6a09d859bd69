"""Every runtime-configurable key, declared in code: its type, range or choices, the setting it
falls back to (the environment, then the code default, as `config/settings.py` reads them),
whether it is secret, and who may change it.

App keys are stored one row each (`AppConfiguration`); provider keys are fields of their
provider's row (`ProviderConfiguration.config_data`). A key is known by its setting's name
(`OSTIUM_READ_TIMEOUT`); a provider key also by its field (`ostium` / `read_timeout`).

Settings needed before the database is reachable, or that protect it, never come from here
(`ENVIRONMENT_ONLY`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

OPERATOR = "operator"  # configuration.change_operational_config
RISK_ADMIN = "risk_admin"  # configuration.change_risk_config
PERMISSIONS = {
    OPERATOR: "configuration.change_operational_config",
    RISK_ADMIN: "configuration.change_risk_config",
}

# Read from the environment only, at start-up: the database and Redis themselves, Django's
# secret key, key files and the encryption keys that open the stored secrets.
ENVIRONMENT_ONLY = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "DELEGATE_KEY_ENCRYPTION_KEYS",
    "DELEGATE_KEY_ENCRYPTION_KEY_FILE",
    "OSTIUM_TRADER_KEY_FILE",
    "OSTIUM_DELEGATE_KEY_FILE",
    "OSTIUM_SERVICE_HMAC_SECRETS",
    "JWT_SIGNING_KEY",
    "PAPER_ENABLED / OSTIUM_ENABLED / NEAR_INTENTS_ENABLED = false (kill switches: beat the database)",
)


class InvalidValue(ValueError):
    """A value refused for its key (the message says why)."""


def _url(value: str) -> None:
    if value == "":
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise InvalidValue("must be an http(s) or ws(s) URL")


def _decimal(minimum: str = "0", allow_empty: bool = False) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value == "" and allow_empty:
            return
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise InvalidValue('must be a decimal number written as a string, like "0.05"') from None
        if not number.is_finite() or number < Decimal(minimum):
            raise InvalidValue(f"must be a finite decimal of at least {minimum}")

    return check


def _retry_schedule(value: Any) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= 20:
        raise InvalidValue("must be a list of 1 to 20 delays in seconds")
    for delay in value:
        if isinstance(delay, bool) or not isinstance(delay, int) or not 1 <= delay <= 7 * 24 * 3600:
            raise InvalidValue("each delay must be a whole number of seconds between 1 and 604800")


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # string | int | float | bool | json
    category: str
    description: str
    role: str = OPERATOR
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    check: Callable[[Any], None] | None = None
    fallback: Callable[[], Any] | None = None  # the environment / code default; default: settings.<name>
    provider: str = ""
    field: str = ""

    @property
    def permission(self) -> str:
        return PERMISSIONS[self.role]

    def default(self) -> Any:
        """The value when the database has none: the environment, else the code default."""
        if self.fallback is not None:
            return self.fallback()
        return getattr(settings, self.name)

    def clean(self, raw: Any) -> Any:
        """The typed value of `raw` (JSON-native, or text as the environment writes it), or
        InvalidValue saying why not."""
        value = _typed(self.type, raw)
        if self.type in ("int", "float"):
            if self.minimum is not None and value < self.minimum:
                raise InvalidValue(f"must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise InvalidValue(f"must be at most {self.maximum:g}")
        if self.choices and value not in self.choices:
            raise InvalidValue(f"must be one of {', '.join(map(str, self.choices))}")
        if self.type == "string" and len(value) > 2000:
            raise InvalidValue("must be at most 2000 characters")
        if self.check:
            self.check(value)
        return value


def _typed(kind: str, raw: Any) -> Any:
    if kind == "string":
        if not isinstance(raw, str):
            raise InvalidValue("must be a string")
        return raw.strip()
    if kind == "int":
        if isinstance(raw, bool):
            raise InvalidValue("must be a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            return int(raw.strip())
        raise InvalidValue("must be a whole number")
    if kind == "float":
        if isinstance(raw, bool):
            raise InvalidValue("must be a number")
        try:
            value = float(raw) if isinstance(raw, int | float | str) else None
        except (ValueError, OverflowError):
            value = None
        if value is None or not math.isfinite(value):
            raise InvalidValue("must be a finite number")
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return raw.strip().lower() in ("true", "1", "yes", "on")
        raise InvalidValue("must be true or false")
    if kind == "json":
        if isinstance(raw, str):
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise InvalidValue("must be JSON") from None
        return raw
    raise InvalidValue(f"unknown type {kind}")


def to_text(kind: str, value: Any) -> str:
    """How a typed value is stored in `config_value` (seed: a string)."""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "json":
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def from_text(kind: str, text: str) -> Any:
    return _typed(kind, text) if kind != "string" else text


@dataclass(frozen=True)
class Provider:
    name: str
    type: str  # trading | price | settlement | swap | wallet
    description: str
    fields: dict[str, Key] = field(default_factory=dict)


def _venue_enabled(venue: str) -> Callable[[], bool]:
    return lambda: bool(settings.VENUE_ENABLED.get(venue, True))


def _risk(name: str) -> Callable[[], Any]:
    return lambda: settings.RISK_DEFAULTS[name]


def _setting(name: str, default: Any) -> Callable[[], Any]:
    return lambda: getattr(settings, name, default)


def _provider(name: str, type_: str, description: str, *keys: Key) -> Provider:
    return Provider(
        name=name,
        type=type_,
        description=description,
        fields={k.field: Key(**{**k.__dict__, "provider": name, "category": name}) for k in keys},
    )


def _f(field_name: str, setting: str, type_: str, description: str, **kw) -> Key:
    return Key(name=setting, type=type_, category="", description=description, field=field_name, **kw)


_TIMEOUT = {"minimum": 0.1, "maximum": 600.0}

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        _provider(
            "paper",
            "trading",
            "The simulated venue.",
            _f("enabled", "PAPER_ENABLED", "bool", "Trade on the paper venue.", fallback=_venue_enabled("paper")),
        ),
        _provider(
            "ostium",
            "trading",
            "Ostium perpetuals on Arbitrum.",
            _f("enabled", "OSTIUM_ENABLED", "bool", "Trade on Ostium.", fallback=_venue_enabled("ostium")),
            _f("rpc_url", "OSTIUM_RPC_URL", "string", "Arbitrum RPC (empty: the network's own).", check=_url),
            _f("subgraph_url", "OSTIUM_SUBGRAPH_URL", "string", "Ostium subgraph (empty: the network's).", check=_url),
            _f("price_url", "OSTIUM_PRICE_URL", "string", "Ostium price API (empty: the network's).", check=_url),
            _f("read_timeout", "OSTIUM_READ_TIMEOUT", "float", "Seconds a read (RPC, subgraph) may take.", **_TIMEOUT),
            _f("write_timeout", "OSTIUM_WRITE_TIMEOUT", "float", "Seconds a write may take.", **_TIMEOUT),
        ),
        _provider(
            "near_intents",
            "settlement",
            "NEAR Intents (deposits, swaps, withdrawals).",
            _f("enabled", "NEAR_INTENTS_ENABLED", "bool", "Use NEAR Intents.", fallback=_venue_enabled("near_intents")),
        ),
        _provider(
            "kraken",
            "price",
            "Kraken reference prices (websocket v2 + REST).",
            _f("ws_url", "KRAKEN_WS_URL", "string", "Websocket URL (empty: per REFERENCE_ENDPOINTS).", check=_url),
            _f("rest_url", "KRAKEN_REST_URL", "string", "REST URL (empty: per REFERENCE_ENDPOINTS).", check=_url),
            _f("timeout", "KRAKEN_TIMEOUT", "float", "Seconds a REST call or a connect may take.", **_TIMEOUT),
        ),
        _provider(
            "coingecko",
            "price",
            "CoinGecko fallback reference prices.",
            _f("api_url", "COINGECKO_API_URL", "string", "API URL (empty: per plan / endpoints).", check=_url),
            _f("api_key", "COINGECKO_API_KEY", "string", "API key (secret).", secret=True),
            _f("timeout", "COINGECKO_TIMEOUT", "float", "Seconds a poll may take.", **_TIMEOUT),
        ),
        _provider(
            "lifi",
            "swap",
            "LI-FI swap and bridge quotes.",
            _f("enabled", "LIFI_ENABLED", "bool", "Use LI-FI.", fallback=_setting("LIFI_ENABLED", True)),
            _f("api_url", "LIFI_API_URL", "string", "API URL.", check=_url),
            _f("api_key", "LIFI_API_KEY", "string", "API key (secret).", secret=True),
            _f("timeout", "LIFI_TIMEOUT", "float", "Seconds a call may take.", **_TIMEOUT),
        ),
    )
}

_APP_KEYS = (
    Key("PRICE_CACHE_TTL", "int", "prices", "Seconds a cached venue price lives.", minimum=1, maximum=3600),
    Key("MARKETS_CACHE_TTL", "int", "prices", "Seconds the market list is cached.", minimum=1, maximum=3600),
    Key(
        "WEBHOOK_RETRY_SCHEDULE",
        "json",
        "webhooks",
        "Delays (seconds) before each webhook retry; its length + 1 is the number of attempts.",
        check=_retry_schedule,
    ),
    Key(
        "WEBHOOK_RETRY_JITTER",
        "float",
        "webhooks",
        "Each retry delay is multiplied by a random factor in [1 - jitter, 1 + jitter].",
        minimum=0,
        maximum=1,
    ),
    Key(
        "RISK_MAX_NOTIONAL",
        "string",
        "risk",
        "Default maximum notional per order (decimal).",
        role=RISK_ADMIN,
        check=_decimal(),
        fallback=_risk("max_notional"),
    ),
    Key(
        "RISK_MAX_LEVERAGE",
        "string",
        "risk",
        "Default maximum leverage (decimal; empty: the market's own maximum).",
        role=RISK_ADMIN,
        check=_decimal("1", allow_empty=True),
        fallback=_risk("max_leverage"),
    ),
    Key(
        "RISK_MAX_OPEN_POSITIONS",
        "int",
        "risk",
        "Default maximum open positions per user.",
        role=RISK_ADMIN,
        minimum=0,
        maximum=100_000,
        fallback=_risk("max_open_positions"),
    ),
    Key(
        "RISK_MAX_SLIPPAGE",
        "string",
        "risk",
        "Default maximum slippage (fraction, decimal).",
        role=RISK_ADMIN,
        check=_decimal(),
        fallback=_risk("max_slippage"),
    ),
    Key(
        "RISK_PRICE_BAND",
        "string",
        "risk",
        "Default price band around the mark (fraction, decimal).",
        role=RISK_ADMIN,
        check=_decimal(),
        fallback=_risk("price_band"),
    ),
    Key(
        "RISK_DAILY_LOSS_CAP",
        "string",
        "risk",
        "Default daily realised loss cap (decimal).",
        role=RISK_ADMIN,
        check=_decimal(),
        fallback=_risk("daily_loss_cap"),
    ),
    Key(
        "RISK_MAX_ORDERS_PER_MINUTE",
        "int",
        "risk",
        "Default orders per minute per user.",
        role=RISK_ADMIN,
        minimum=0,
        maximum=100_000,
        fallback=_risk("max_orders_per_minute"),
    ),
    Key(
        "RISK_REFERENCE_BAND_BPS",
        "string",
        "risk",
        "Refuse new exposure this far (bps) from the reference fair rate; 0: no check.",
        role=RISK_ADMIN,
        check=_decimal(),
    ),
)

APP_KEYS: dict[str, Key] = {k.name: k for k in _APP_KEYS}
PROVIDER_KEYS: dict[str, Key] = {k.name: k for p in PROVIDERS.values() for k in p.fields.values()}
KEYS: dict[str, Key] = {**APP_KEYS, **PROVIDER_KEYS}
