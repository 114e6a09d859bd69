"""The demo's first trades (`trading/demo.py`): placed only for a demo user with no order yet and
only while `executor:paper` is armed (the placing path itself runs in
`tests/providers/ostium/test_demo_run.py`, through `manage.py run`'s own worker)."""

import io

import pytest
from django.core.management import call_command

from trading.demo import demo_trades_place
from trading.models import Order
from trading.services.control import control_disarm

pytestmark = pytest.mark.django_db


def test_nothing_without_a_demo_user():
    assert demo_trades_place() == ""
    assert not Order.objects.exists()


def test_a_disarmed_paper_executor_places_nothing_and_says_so():
    call_command("seed_demo", stdout=io.StringIO())
    control_disarm(component="executor:paper", actor="op", reason="not today")
    assert demo_trades_place() == "demo trades: none placed (executor:paper is not armed)"
    assert not Order.objects.exists()
