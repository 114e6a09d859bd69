"""The demo's NEAR Intents sandbox (`manage.py near_intents_sandbox --demo`, a Procfile process of
`make run`): the solver key registered on the verifier, demo inventory, and a scripted deposit
that travels pending → credited through the real sync."""

import threading
import time

import pytest

from tests.treasury.conftest import USDC, sync
from treasury.models import InventoryBalance, LiquidityAction

pytestmark = pytest.mark.django_db(transaction=True)  # the sandbox thread writes the solver key


def test_the_demo_sandbox_scripts_a_deposit_from_pending_to_credited(settings, tmp_path, monkeypatch):
    """The address file's relative name is the project's, as the readers take it, not the working
    directory's: the sandbox started from elsewhere still writes where the solver looks."""
    from providers.management.commands.near_intents_sandbox import sandbox_run
    from providers.near_intents.client import clients_reset

    config = "var/near.json"
    settings.BASE_DIR = tmp_path / "project"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    settings.NEAR_INTENTS_NETWORK = "sandbox"
    settings.NEAR_INTENTS_SANDBOX_CONFIG = config
    settings.NEAR_INTENTS_SOLVER_ACCOUNT = ""
    clients_reset()
    stop, lines = threading.Event(), []

    def run(**kwargs):
        from django.db import connection

        try:
            sandbox_run(**kwargs)
        finally:
            connection.close()

    runner = threading.Thread(
        target=run,
        kwargs={
            "config_out": config,
            "solver_account": "demo-solver.near",
            "demo": True,
            "deposit_every": 0.1,
            "credit_after": 1.0,
            "out": lines.append,
            "stop": stop,
        },
    )
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not any("scripted deposit" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sync()["ok"]
        usdc = InventoryBalance.objects.get(venue="near_intents", asset=USDC)
        first = LiquidityAction.objects.order_by("pk").first()
        assert first.status == "seen" and usdc.pending_in >= 10_000 and usdc.credited == 50_000
        time.sleep(1.1)
        sync()
        first.refresh_from_db()
        assert InventoryBalance.objects.get(venue="near_intents", asset=USDC).credited >= 60_000
    finally:
        stop.set()
        runner.join(timeout=10)
        clients_reset()
