"""Seed 004's log fields: every line of a full flow carries the stable top-level fields, and each
"log when" event has its line with the body ids it knows. The lines are the real formatter's
output (config/logging.py JsonFormatter, with the context and redaction filters), parsed back."""

import io
import json
import logging
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from config.logging import STABLE_FIELDS, ContextFilter, JsonFormatter, RedactionFilter, service_name
from tests.trading.conftest import make_order
from trading.services import execution
from trading.services.control import control_arm, control_disarm

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("tradedesk", "tradedesk.execution", "tradedesk.control")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)
    for lg, lv in zip(loggers, levels, strict=True):
        lg.setLevel(lv)


def _one(lines: list[dict], event: str, **fields) -> dict:
    found = [line for line in lines if line["event"] == event and all(line.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (event, fields, [(line["event"], line.get("venue")) for line in lines])
    return found[0]


def test_a_full_flow_logs_each_event_with_the_stable_fields(markets, trader, log_lines, settings):
    settings.PROTECTIVE_TICK_LISTENER = False
    from providers import resilience
    from trading.services.protective import protective_evaluate

    # when the operator arms the paper executor, an order is submitted and fills, a venue's
    # breaker opens and closes again, a price goes stale, and the executor is disarmed
    control_arm(component="executor:paper", actor="op", reason="open for the day")
    order = make_order(trader)
    assert execution.order_execute(order_id=order.pk) == "FILLED"
    breaker = f"log-fields-{order.pk}"  # a breaker of its own: the shared cache may hold others' failures
    for _ in range(3):
        resilience.breaker_record("ostium", breaker, ok=False, threshold=3)
    resilience.breaker_record("ostium", breaker, ok=True, threshold=3)
    protective_evaluate(venue="paper", asset="ETH-USD", price=D("3000"), price_at=timezone.now() - timedelta(minutes=5))
    control_disarm(component="executor:paper", actor="op", reason="closing, token=abc123")

    lines = log_lines()
    # then every line has the stable top-level fields
    assert lines
    for line in lines:
        assert set(STABLE_FIELDS) <= set(line), line
        assert line["service"] == service_name() and line["namespace"] == settings.LOG_NAMESPACE
        assert line["component"]
    # and each "log when" event its line, with what it knows
    armed = _one(lines, "control.armed", venue="paper")
    assert (armed["level"], armed["component"], armed["topic"]) == ("INFO", "control", "control.armed")
    assert armed["control_component"] == "executor:paper" and armed["actor"] == "op"
    submitted = _one(lines, "command.submitted", order_id=order.pk)
    assert (submitted["venue"], submitted["pair"], submitted["component"]) == ("paper", "BTC-USD", "execution")
    assert submitted["command_id"] and submitted["correlation_id"] == f"order-{order.pk}"
    result = _one(lines, "command.filled", order_id=order.pk)
    assert result["command_id"] == submitted["command_id"] and result["recorded"] == "FILLED"
    opened = _one(lines, "breaker.opened", venue="ostium")
    assert (opened["level"], opened["breaker"], opened["failures"]) == ("WARNING", breaker, 3)
    _one(lines, "breaker.closed", venue="ostium")
    stale = _one(lines, "price.stale", venue="paper", pair="ETH-USD")
    assert stale["level"] == "WARNING" and stale["price_freshness_ms"] >= 5 * 60 * 1000
    disarmed = _one(lines, "control.disarmed", venue="paper")
    assert disarmed["reason"] == "closing, token=[REDACTED]"  # the redaction still holds


def test_a_rejected_command_logs_a_warning_with_its_code(markets, trader, armed, log_lines, counting_venue):
    counting_venue.fail_before_open = True  # the venue never answers: unknown outcome
    order = make_order(trader)

    execution.order_execute(order_id=order.pk)

    line = _one(log_lines(), "command.unknown", order_id=order.pk)
    assert line["level"] == "WARNING" and line["venue"] == "paper" and line["error_code"]


def test_service_is_the_process_the_line_came_from(monkeypatch):
    monkeypatch.delenv("TRADEDESK_SERVICE", raising=False)
    assert service_name(["/venv/bin/python", "-m", "uvicorn", "config.asgi:application"]) == "web"
    assert service_name(["celery", "-A", "config", "worker", "--loglevel", "INFO"]) == "worker"
    assert service_name(["celery", "-A", "config", "beat"]) == "beat"
    assert service_name(["manage.py", "feeds"]) == "feeds"
    monkeypatch.setenv("TRADEDESK_SERVICE", "refsandbox")
    assert service_name(["manage.py", "reference_sandbox"]) == "refsandbox"
