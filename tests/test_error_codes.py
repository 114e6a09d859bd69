"""One error vocabulary: every code the code base can raise is UPPER_SNAKE and documented, with
its HTTP status and meaning, in docs/errors.md (which the OpenAPI description carries too)."""

import re
from pathlib import Path

from tests.error_vocabulary import error_codes

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|$", re.MULTILINE)


def _documented() -> dict[str, tuple[str, str]]:
    return {code: (status.strip(), meaning.strip()) for code, status, meaning in ROW.findall(DOC.read_text())}


def test_the_discovery_reads_the_source():
    codes = {f.code for f in error_codes()}
    # one of each kind of place a code is raised from
    assert {"VALIDATION_ERROR", "NOT_FOUND", "INVALID_ORDER", "RISK_MAX_LEVERAGE", "VENUE_DISARMED"} <= codes
    assert {"PRICE_STALE", "WEBHOOK_TARGET_REFUSED", "UNKNOWN_SCOPE", "SERVICE_UNAVAILABLE"} <= codes


def test_every_code_is_upper_snake():
    wrong = sorted({f"{f.code} ({f.where})" for f in error_codes() if not UPPER_SNAKE.match(f.code)})
    assert not wrong, f"codes not in UPPER_SNAKE: {wrong}"


def test_every_code_raised_is_documented_with_a_status_and_a_meaning():
    documented = _documented()
    missing = sorted({f"{f.code} ({f.where})" for f in error_codes() if f.code not in documented})
    assert not missing, f"codes missing from docs/errors.md: {missing}"
    empty = sorted(code for code, (status, meaning) in documented.items() if not status or not meaning)
    assert not empty, f"rows without a status or a meaning: {empty}"


def test_every_documented_code_is_raised_somewhere():
    raised = {f.code for f in error_codes()}
    stale = sorted(set(_documented()) - raised)
    assert not stale, f"docs/errors.md lists codes nothing raises: {stale}"


def test_the_openapi_description_carries_the_table(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    description = schema.json()["info"]["description"]
    assert "| `INVALID_ORDER` | 400 |" in description and "| `RISK_MAX_LEVERAGE` | 422 |" in description
