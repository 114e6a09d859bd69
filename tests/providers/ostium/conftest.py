"""Session-scoped Ostium localnet with per-test evm_snapshot/evm_revert."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.ostium.localnet import start_localnet


@pytest.fixture(scope="session")
def localnet_session():
    net = start_localnet(keeper_interval=None)
    print(f"\nOstium localnet ready in {net.startup_seconds:.2f}s at {net.rpc_url}")
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def localnet(localnet_session):
    """The shared localnet, rolled back after the test (chain via
    evm_revert; subgraph index rebuilt from the reverted chain; prices reset)."""
    net = localnet_session
    snapshot = net.snapshot()
    try:
        yield net
    finally:
        net.keeper.paused = False
        net.revert(snapshot)
        net.prices.reset()


@pytest.fixture
def ostium(localnet, settings, tmp_path):
    """Tradedesk pointed at the localnet: network config file, the desk trader's key file
    (traders[0]), fresh adapter and SDK clients (the SDK caches allowances; a reverted chain
    must not meet a stale cache). Returns the localnet."""
    from providers.markets import markets_cache_clear
    from providers.ostium.client import clients_reset
    from providers.ostium.resilience import breaker_reset
    from providers.ostium.service import service_reset
    from providers.registry import venues_reset

    config = localnet.write_config(tmp_path / "ostium-localnet.json")
    key_file = tmp_path / "trader.key"
    key_file.write_text(localnet.traders[0].private_key)
    settings.OSTIUM_NETWORK = "localnet"
    settings.OSTIUM_LOCALNET_CONFIG = str(config)
    settings.OSTIUM_TRADER_KEY_FILE = str(key_file)
    settings.OSTIUM_DELEGATE_KEY_FILE = ""
    settings.OSTIUM_RPC_URL = settings.OSTIUM_SUBMIT_RPC_URL = ""
    settings.OSTIUM_SUBGRAPH_URL = settings.OSTIUM_PRICE_URL = ""
    settings.OSTIUM_SERVICE_BASE_URL = ""
    clients_reset()
    venues_reset()
    service_reset()
    markets_cache_clear()
    breaker_reset("localnet")
    yield localnet
    clients_reset()
    venues_reset()
    service_reset()
    markets_cache_clear()
    breaker_reset("localnet")


def route_btc_to_ostium(net, *, reason: str) -> None:
    """BTC-USD routed to ostium, the ostium executor armed, the venue's and our price aligned."""
    from providers.models import ProviderRoute
    from providers.prices import price_cache_clear, price_set
    from trading.services.control import control_arm

    ProviderRoute.objects.create(match_type="symbol", value="BTC-USD", venue="ostium")
    control_arm(component="executor:ostium", actor="test", reason=reason)
    net.set_price("BTC-USD", "65000")
    price_cache_clear()
    price_set("BTC-USD", Decimal("65000"))


@pytest.fixture
def desk(ostium, django_user_model):
    """A trader user, BTC-USD routed to ostium, the ostium executor armed, prices aligned."""
    from rest_framework.test import APIClient

    route_btc_to_ostium(ostium, reason="localnet e2e")
    user = django_user_model.objects.create_user(username="desk", email="desk@example.com", password="pw")
    api = APIClient()
    api.force_authenticate(user)
    return user, api


@pytest.fixture
def http_sandbox():
    """`http_sandbox(upstream, answer)` → the URL of a sandbox in front of `upstream` (the
    localnet's subgraph or JSON-RPC: the same wire protocol, JSON over HTTP POST):
    `answer(body)` returns a JSON document to send instead, or None to forward the request.
    Stopped at teardown."""
    import http.server
    import json
    import threading

    import httpx

    servers = []

    def start(upstream: str, answer) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                own = answer(body)
                if own is not None:
                    content = json.dumps(own).encode()
                else:
                    content = httpx.post(upstream, content=body, headers={"content-type": "application/json"}).content
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
