"""Structured JSON logs with request/correlation ids, and a filter that redacts secrets."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

from config.context import correlation_id_var, request_id_var

SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|private|signature|authorization|cookie|mnemonic|nonce|seed",
    re.I,
)
# Values that are secrets whatever key they sit under.
SENSITIVE_VALUE = [
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),  # JWT
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"),  # webhook secret
    re.compile(r"\btdk_[A-Za-z0-9_\-]+"),  # service API key
    re.compile(r"\b(0x)?[0-9a-fA-F]{64}\b"),  # 32-byte private key / hash-sized secret
    re.compile(r"\b0x[0-9a-fA-F]{130}\b"),  # 65-byte signature
    re.compile(r"(?i)(password|secret|token|api_key|private_key)=([^&\s\"'<>]+)"),
]
REDACTED = "[REDACTED]"
# Public identifiers of the chains' hash shape (a transaction, a SafeTx, a NEAR intent or quote):
# a value of exactly that shape under one of these keys is kept — the operator follows a trade
# on a block explorer by it — where the same shape under any other key is taken for a key.
PUBLIC_HASH_KEY = re.compile(r"(?:^|_)(?:transaction|tx|safe_tx|intent|quote|block)_?hash(?:es)?$", re.I)
_HASH_SHAPE = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
# Any of them, in one pass: most texts match none, and are then returned as they are.
_ANY_SENSITIVE_VALUE = re.compile(
    "|".join(
        f"(?i:{p.pattern.removeprefix('(?i)')})" if p.pattern.startswith("(?i)") else f"(?:{p.pattern})"
        for p in SENSITIVE_VALUE
    )
)


# A text shorter than the hash-sized pattern matches only if it holds what one of the others
# starts with or needs (`=`, `eyJ`, `whsec_`, `tdk_`; keep in step with SENSITIVE_VALUE): that
# test first, since most of a line's fields are short ids and names and a search costs microseconds.
_SHORTEST_HEX = 64


def redact_text(text: str) -> str:
    if len(text) < _SHORTEST_HEX and not ("=" in text or "eyJ" in text or "whsec_" in text or "tdk_" in text):
        return text
    if not _ANY_SENSITIVE_VALUE.search(text):
        return text
    for pattern in SENSITIVE_VALUE:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


_KEYS: dict[str, bool] = {}  # key → SENSITIVE_KEY matches it (keys are few: names in the code)


def sensitive_key(key: str) -> bool:
    hit = _KEYS.get(key)
    if hit is None:
        hit = SENSITIVE_KEY.search(key) is not None
        if len(_KEYS) < 4096:
            _KEYS[key] = hit
    return hit


def public_hash(key, value) -> bool:
    """Is `value` a public hash (`PUBLIC_HASH_KEY`) rather than a secret of the same shape?"""
    return (
        isinstance(value, str)
        and len(value) in (64, 66)
        and isinstance(key, str)
        and _HASH_SHAPE.fullmatch(value) is not None
        and PUBLIC_HASH_KEY.search(key) is not None
    )


def redact_field(key, value, depth: int = 0):
    """`value` as it may be shown under `key`: REDACTED for a sensitive key, a public hash as
    it is, anything else redacted by shape."""
    if isinstance(key, str) and sensitive_key(key):
        return REDACTED
    if public_hash(key, value):
        return value
    return redact(value, depth)


def redact(value, depth: int = 0):
    """Redact secrets in nested dicts/lists/strings (keys by name, values by shape)."""
    if depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_field(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, depth + 1) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # anything else is written as its str() (JsonFormatter's default=str): redact that text —
    # Django's `request` extra prints the full path with its query string (?token=...)
    return redact_text(str(value))


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        if not getattr(record, "correlation_id", None):
            record.correlation_id = correlation_id_var.get()
        return True


class RedactionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the log line
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        attrs = record.__dict__
        for key in attrs.keys() - _STD_ATTRS:
            attrs[key] = redact_field(key, attrs[key])
        return True


_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "correlation_id",
}


# Seed 004's stable top-level fields: on every line, null when the line has none.
STABLE_FIELDS = ("level", "service", "component", "event", "namespace", "venue", "topic", "pair")
# Other names a line may give the same thing under (an `asset`, a `provider`).
_ALIASES = {"venue": ("provider",), "pair": ("asset", "symbol")}
_SERVICES = {"worker": "worker", "beat": "beat", "uvicorn": "web", "gunicorn": "web", "granian": "web", "daphne": "web"}


def service_name(argv: list[str] | None = None) -> str:
    """Which process of the desk this is: TRADEDESK_SERVICE (the supervisor sets it to the
    Procfile entry's name), else read from the command line (uvicorn: web; celery worker / beat;
    manage.py <command>)."""
    named = os.environ.get("TRADEDESK_SERVICE")
    if named:
        return named
    argv = sys.argv if argv is None else argv
    words = [os.path.basename(a) for a in argv]
    for word in words:
        if word in _SERVICES:
            return _SERVICES[word]
    if "manage.py" in words and words.index("manage.py") + 1 < len(words):
        return words[words.index("manage.py") + 1]
    return "pytest" if "pytest" in sys.modules else (words[0] if words else "python")


_SERVICE: str | None = None


def component_of(logger_name: str) -> str:
    """`tradedesk.executor` -> `executor`; another library's logger: its top package (`celery`)."""
    if logger_name.startswith("tradedesk."):
        return logger_name.split(".", 2)[1]
    return logger_name.split(".", 1)[0]


def log_event(logger: logging.Logger, event: str, message: str | None = None, *, level=logging.INFO, **fields):
    """One structured line for a thing that happened: `event` (a dotted name, e.g.
    `command.submitted`), the stable fields and body ids it knows (`venue=`, `pair=`, `topic=`,
    `order_id=`, `command_id=`, ...)."""
    logger.log(level, message or event, extra={"event": event, **fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        global _SERVICE
        if _SERVICE is None:
            _SERVICE = service_name()
        attrs = record.__dict__
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            # the process and the deployment: the same on every line of a process, never a line's own
            "service": _SERVICE,
            "component": attrs.get("component") or component_of(record.name),
            "event": attrs.get("event"),
            "namespace": _namespace(),
            "venue": None,
            "topic": attrs.get("topic"),
            "pair": None,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for field, aliases in _ALIASES.items():
            for name in (field, *aliases):
                if attrs.get(name):
                    out[field] = str(attrs[name])
                    break
        for key, val in attrs.items():
            if key not in _STD_ATTRS and not key.startswith("_") and key not in out:
                out[key] = val
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


_NAMESPACE: str | None = None


def _namespace() -> str:
    """The deployment this desk is (LOG_NAMESPACE: e.g. `demo`, `prod`)."""
    global _NAMESPACE
    if _NAMESPACE is None:
        try:
            from django.conf import settings

            _NAMESPACE = settings.LOG_NAMESPACE
        except Exception:  # logging before the settings exist
            return os.environ.get("LOG_NAMESPACE", "tradedesk")
    return _NAMESPACE


def adopt_server_access_log() -> None:
    """uvicorn's access log, when it is on, through our handlers (JSON, redaction of query-string
    credentials) instead of its own plain-text one. `--no-access-log` leaves it without handlers,
    and then it stays off."""
    access = logging.getLogger("uvicorn.access")
    if access.handlers:
        access.handlers = list(logging.getLogger().handlers)
