"""Structured JSON logs with request/correlation ids, and a filter that redacts secrets."""

from __future__ import annotations

import json
import logging
import re
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


def redact_text(text: str) -> str:
    for pattern in SENSITIVE_VALUE:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact(value, depth: int = 0):
    """Redact secrets in nested dicts/lists/strings (keys by name, values by shape)."""
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SENSITIVE_KEY.search(k) else redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value)
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
        for key, val in list(record.__dict__.items()):
            if key in _STD_ATTRS:
                continue
            record.__dict__[key] = REDACTED if SENSITIVE_KEY.search(key) else redact(val)
        return True


_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "correlation_id",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, val in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = val
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def adopt_server_access_log() -> None:
    """uvicorn's access log, when it is on, through our handlers (JSON, redaction of query-string
    credentials) instead of its own plain-text one. `--no-access-log` leaves it without handlers,
    and then it stays off."""
    access = logging.getLogger("uvicorn.access")
    if access.handlers:
        access.handlers = list(logging.getLogger().handlers)
