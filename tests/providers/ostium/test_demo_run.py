"""`make run` (`manage.py run`) on the Ostium localnet trades Ostium with no other step than
routing a symbol and arming `executor:ostium`: its own web, worker, Beat and localnet processes,
against the test database, with the desk's trader, delegate and relayer funded by the localnet."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest

from tests.conftest import _database_url_for_tests, wait_for
from trading.models import Order, Trade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo(transactional_db, settings, tmp_path):
    """`manage.py run` in its own process group (stopped, with everything it started, at teardown)."""
    port = _free_port()
    tag = uuid.uuid4().hex[:8]
    config = tmp_path / "ostium-localnet.json"
    # the last run's NEAR sandbox address file, its relay long gone: this run must not use it
    near = tmp_path / "near-intents-sandbox.json"
    near.write_text(
        '{"rpc_url": "http://127.0.0.1:9", "relay_url": "http://127.0.0.1:9/rpc", '
        '"relay_ws_url": "ws://127.0.0.1:9/ws", "bridge_url": "http://127.0.0.1:9/rpc"}'
    )
    env = {
        **os.environ,
        "DATABASE_URL": _database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": f"demo-{tag}",
        "CHANNELS_PREFIX": f"demo-{tag}",
        "CELERY_QUEUE": f"demo-{tag}",  # its own worker and Beat, not the tests' worker
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "OSTIUM_NETWORK": "localnet",
        "OSTIUM_LOCALNET_CONFIG": str(config),
        "NEAR_INTENTS_SANDBOX_CONFIG": str(near),
        "REFERENCE_SANDBOX_CONFIG": str(tmp_path / "reference-sandbox.json"),
        "LIFI_SANDBOX_CONFIG": str(tmp_path / "lifi-sandbox.json"),
        "OSTIUM_TRADER_KEY_FILE": "",
        "OSTIUM_SERVICE_BASE_URL": "",
        "DELEGATE_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"),
        "LOG_LEVEL": "WARNING",
        # its own metrics directory: `manage.py run` empties the one it is given
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    log_path = tmp_path / "run.log"
    # a file, not a pipe: never blocks; appended to by the processes, read through its path
    log = open(log_path, "ab")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run", "--port", str(port)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"manage.py run exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200 and config.exists()
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=120, interval=0.5)
        settings.OSTIUM_LOCALNET_CONFIG = str(config)
        yield base, config, near, log_path
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: honcho stops the processes
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.celery
def test_make_run_trades_ostium_on_the_localnet_after_routing_and_arming(demo, settings):
    from delegations.chain import eth_balances, network_config
    from delegations.models import CustodyKey
    from providers.models import ProviderRoute
    from trading.models import User
    from trading.services.control import control_arm
    from trading.tokens import access_encode

    base, config, near, log_path = demo

    # the NEAR Intents solver reached this run's relay, not the one in the stale address file

    staff, _ = access_encode(user=User.objects.filter(is_superuser=True).first())
    ops = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {staff}"}, timeout=10)

    def ingest():
        return ops.get("/api/v1/ops/near-intents").json()["components"]["ingest"]

    wait_for(lambda: ingest()["connected"], timeout=60, interval=0.5, what="the solver connected to the relay")
    relay = json.loads(near.read_text())["relay_ws_url"]
    assert relay != "ws://127.0.0.1:9/ws"
    lines = log_path.read_text(errors="replace").splitlines()
    assert [line for line in lines if "NEAR Intents solver: relay" in line][-1].endswith(relay)

    # the demo's first trades, through the worker's paper executor: a BTC long with its stop-loss
    # and take-profit, an ETH short opened and closed (then the banner, last)
    wait_for(lambda: "Tradedesk is up." in log_path.read_text(errors="replace"), timeout=90, what="the banner")
    lines = log_path.read_text(errors="replace").splitlines()
    assert any("demo trades: a BTC long open with its stop-loss and take-profit" in line for line in lines), lines[-20:]
    demo_trades = {t.asset: t for t in Trade.objects.filter(user__username="demo")}
    assert {(a, t.provider, t.side, t.status) for a, t in demo_trades.items()} == {
        ("BTC-USD", "paper", "long", "open"),
        ("ETH-USD", "paper", "short", "closed"),
    }
    protective = Order.objects.filter(trade=demo_trades["BTC-USD"], status="PENDING_TRIGGER")
    assert sorted(protective.values_list("order_type", flat=True)) == ["STOP_LOSS", "TAKE_PROFIT"]
    assert demo_trades["ETH-USD"].realized_pnl != 0  # its fees at least

    # the operator routes ETH-USD to Ostium and arms its executor (the control panel does the same)
    ProviderRoute.objects.create(match_type="symbol", value="ETH-USD", venue="ostium")
    control_arm(component="executor:ostium", actor="user:op", reason="demo")

    token, _ = access_encode(user=User.objects.get(username="demo"))
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    quote = wait_for(lambda: (r := api.get("/api/v1/prices/ETH-USD?use_cache=false")).status_code == 200 and r.json())
    assert quote["venue"] == "ostium"
    placed = api.post(
        "/api/v1/trading/trades",
        json={"asset": "ETH-USD", "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"},
        headers={"Prefer": "respond-async"},  # followed below, as the demo's keeper fills it
    )
    assert placed.status_code == 202 and placed.headers["Preference-Applied"] == "respond-async", placed.text
    order_id = placed.json()["order_id"]

    def settled():
        status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
        if status in ("REJECTED", "CANCELLED", "UNKNOWN"):
            pytest.fail(f"order {status}: {Order.objects.get(pk=order_id).error_message}")
        return status == "FILLED"

    wait_for(settled, timeout=90, interval=0.5)  # the demo's executor, keeper, Beat and poller
    trade = Trade.objects.get(orders__pk=order_id)
    assert trade.provider == "ostium" and trade.entry_price > D("0")

    # the trader, the delegate and the relayer were funded with ETH for gas by the localnet
    net = network_config("localnet")
    relayer = CustodyKey.objects.get(purpose="relayer", network="localnet", is_active=True).address
    delegate = CustodyKey.objects.get(purpose="delegate", network="localnet", is_active=True).address
    trader_key = Path(config).with_name("ostium-demo-trader.key").read_text().strip()
    from eth_account import Account

    trader = Account.from_key(trader_key if trader_key.startswith("0x") else "0x" + trader_key).address
    balances = eth_balances(net, [relayer, delegate, trader])
    assert all(wei >= 10**18 for wei in balances.values()), balances
