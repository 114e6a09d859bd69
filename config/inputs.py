"""Bounds on what a client may send, checked before anything parses it, at every door.

- **Size.** An HTTP body larger than `DATA_UPLOAD_MAX_MEMORY_SIZE` is refused with 413
  `PAYLOAD_TOO_LARGE` by `BodySizeLimit`, the ASGI wrapper around the whole HTTP app (REST,
  admin, the Ostium signer service), before Django reads it; the JSON parser checks it again
  for servers that do not go through the ASGI app. Websocket messages: `REALTIME_MAX_MESSAGE_SIZE`
  (close 1009, see trading/realtime/connection.py).
- **Nesting depth.** A JSON document nested deeper than `INPUT_MAX_JSON_DEPTH` is refused
  (400 `JSON_TOO_DEEP`) by a linear scan of the text, before the recursive parser sees it.
- **Control characters.** NUL and the other C0/C1 control characters (tab, line feed and
  carriage return excepted) in any string — the URL path, query parameters, form fields, JSON
  keys and values — are refused (400 `INVALID_CHARACTERS`): PostgreSQL cannot store NUL in
  text, and none of our inputs has a use for the others.

`json_loads` is the one bounded JSON loader: the DRF parser, the signer service and the
websocket consumers use it. `plain_decimal` is the one reading of an amount a client sent.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import JsonResponse
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.fields import empty
from rest_framework.utils.json import strict_constant

from config.errors import ApplicationError, envelope
from config.middleware import DualModeMiddleware

DECIMAL_PATTERN = r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"
_DECIMAL = re.compile(DECIMAL_PATTERN.replace("$", "\\Z"))
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class InputRejected(ApplicationError):
    """Input refused before it reached a serializer: too deep, or control characters."""


def plain_decimal(value) -> Decimal:
    """An amount a client sent: a JSON number, a Decimal, or a string of ASCII digits with an
    optional minus and point ("1000", "1000.5", ".5"). Anything else raises ValueError: booleans,
    exponents ("1e3"), "1_000", other scripts' digits ("١"), surrounding spaces, NaN and
    infinities — all of which Python's Decimal would take. Range checks are the caller's."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("not a number")
    if isinstance(value, float):
        value = repr(value)  # 1000.0 → "1000.0"; nan, inf and 1e+20 fail the pattern below
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise ValueError("not a plain decimal")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("not finite")
    return Decimal(value)


def payload_too_large() -> PayloadTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return PayloadTooLarge(f"The body is larger than {limit} bytes.", details={"limit_bytes": limit})


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit` (strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to nest that deep at all
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def control_character_paths(value, path: str = "") -> list[str]:
    """Where (`a.b[2]`, `key`) a string or key of a parsed JSON value holds a control character.
    Only called on depth-checked values."""
    found = []
    if isinstance(value, str):
        if CONTROL_CHARACTERS.search(value):
            found.append(path or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if CONTROL_CHARACTERS.search(str(key)):
                found.append(where)
            else:
                found.extend(control_character_paths(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(control_character_paths(item, f"{path}[{index}]"))
    return found


def control_characters_error(paths: list[str]) -> InputRejected:
    return InputRejected(
        "Control characters (such as NUL) are not accepted in text.",
        code="INVALID_CHARACTERS",
        details={CONTROL_CHARACTERS.sub("?", path): ["Contains a control character."] for path in paths[:20]},
    )


def json_loads(raw: bytes | str, *, max_depth: int | None = None, parse_constant=None):
    """Parse a JSON text within the input bounds: depth first (before the recursive parser),
    then control characters in every key and string. Raises `InputRejected`, or `ValueError`
    for text that is not JSON."""
    limit = settings.INPUT_MAX_JSON_DEPTH if max_depth is None else max_depth
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    if json_depth_exceeds(text, limit):
        raise InputRejected(
            f"The JSON document is nested deeper than {limit} levels.",
            code="JSON_TOO_DEEP",
            details={"max_depth": limit},
        )
    data = json.loads(text, parse_constant=parse_constant)
    paths = control_character_paths(data)
    if paths:
        raise control_characters_error(paths)
    return data


def wire_json(raw: bytes | str, **options):
    """A JSON text from outside the desk (a relay frame, a price source's or a venue's answer):
    `json.loads`, with a document nested too deep for Python's parser (RecursionError) refused as
    a ValueError, like any other text that is not JSON: a stream that counts and skips bad frames
    keeps its connection, a client that answers "not JSON" says so."""
    try:
        return json.loads(raw, **options)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None


def read_bounded(stream) -> bytes:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise payload_too_large()
    return raw


# --- DRF parsers (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]) ---------------------------


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser within the input bounds (size, depth, control characters)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = read_bounded(stream)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            return json_loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:  # not JSON, or not in its encoding (UnicodeDecodeError)
            raise ParseError(f"JSON parse error - {exc}") from None


def _form_paths(data) -> list[str]:
    return [key for key, values in data.lists() if any(map(CONTROL_CHARACTERS.search, [key, *values]))]


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        paths = _form_paths(data)
        if paths:
            raise control_characters_error(paths)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        paths = _form_paths(result.data)
        if paths:
            raise control_characters_error(paths)
        return result


# --- query parameters -----------------------------------------------------------------------------


class QueryParams(serializers.Serializer):
    """Base of the serializers that read query parameters. DRF reads a QueryDict the way it reads
    an HTML form, where an empty value (`?status=`) means "not given": an empty enum value was
    accepted as no filter at all. Here a parameter's (last) value is a plain value, so `?status=`
    is validated like any other: an empty choice, or an empty text, is a 400."""

    def __init__(self, instance=None, data=empty, **kwargs):
        if hasattr(data, "getlist"):
            data = {key: data[key] for key in data}
        super().__init__(instance, data, **kwargs)


# --- the URL and form fields of every request (Django middleware) ------------------------------


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputGuardMiddleware(DualModeMiddleware):
    """Control characters in the URL path, a query parameter or a form field (any path: the
    admin's too) are a 400 before any view or query sees them (a NUL reached PostgreSQL as a
    psycopg DataError, a 500). Usable in the async chain too: the check does no I/O (an ASGI
    request's body is already in memory)."""

    def __call__(self, request):
        refused = self._refusal(request)
        if refused is None:
            return self.get_response(request)  # in the async chain: the coroutine, awaited by the caller
        if iscoroutinefunction(self):
            return _ready(refused)
        return refused

    @staticmethod
    def _refusal(request):
        paths = []
        if CONTROL_CHARACTERS.search(request.path):
            paths.append("path")
        paths += _form_paths(request.GET)
        if not paths and request.method == "POST" and request.content_type in _FORMS:
            request.body  # noqa: B018 - read (size-checked) and kept: views read it again after us
            paths += _form_paths(request.POST)
        if paths:
            from config.errors import error_response

            return error_response(request, control_characters_error(paths))
        return None


async def _ready(response):
    return response


# --- the HTTP body size (ASGI, config/asgi.py) --------------------------------------------------


class BodySizeLimit:
    """ASGI wrapper: an HTTP request whose body is larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`
    (by its Content-Length, or by what arrives) is answered 413 before the app runs. Django's
    ASGI handler otherwise spools any body, whatever its size, to memory or disk first; DRF
    then parsed it without ever looking at the limit."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._refuse(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._refuse(send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay():
            nonlocal body
            if body is None:
                return await receive()  # (the app then waits for the disconnect)
            message, body = body, None
            return message

        return await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send) -> None:
        from config.context import request_id_var

        rid = uuid.uuid4().hex
        token = request_id_var.set(rid)
        try:
            error = payload_too_large()
            response = JsonResponse(envelope(error.code, error.message, error.details), status=error.status_code)
        finally:
            request_id_var.reset(token)
        headers = [(b"content-type", b"application/json"), (b"x-request-id", rid.encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": response.content})
