"""`manage.py lifi_sandbox`: the loopback double of LI.FI (`providers.lifi.sandbox`) for the demo,
until SIGTERM/SIGINT.

On the Ostium localnet (OSTIUM_NETWORK=localnet) it waits for the localnet's config file, then
knows the localnet as the target chain (ETH and MockUSDC there), reads sent transactions from its
RPC and delivers by minting MockUSDC from the localnet's deployer account. Its address goes to
LIFI_SANDBOX_CONFIG (JSON), where the desk finds it when LIFI_ENDPOINTS=sandbox. Idle with
LIFI_ENDPOINTS=live."""

from __future__ import annotations

import json
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from providers.ostium.config import localnet_config_path
from providers.sandbox_config import project_path


class Command(BaseCommand):
    help = "Run the LI.FI loopback double for the demo."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--config-out", default=settings.LIFI_SANDBOX_CONFIG)
        parser.add_argument("--wait-localnet", type=float, default=600.0, help="seconds to wait for its config")

    def handle(self, *args, port, config_out, wait_localnet, **options):
        from providers.lifi.sandbox import World, start_sandbox
        from providers.lifi.sandbox.world import NATIVE

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if settings.LIFI_ENDPOINTS != "sandbox":
            self.stdout.write("lifi sandbox: idle (LIFI_ENDPOINTS is not sandbox)")
            stop.wait()
            return
        world = World()
        if str(settings.OSTIUM_NETWORK).lower() == "localnet":
            localnet = localnet_config_path()
            deadline = time.monotonic() + wait_localnet
            while not localnet.exists() and not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.5)
            if localnet.exists():
                net = json.loads(localnet.read_text())
                chain_id = int(net["chain_id"])
                world.chain_add(chain_id, "arbl", "Arbitrum (localnet)")
                world.token_add(chain_id, NATIVE, "ETH", 18)
                world.token_add(chain_id, net["contracts"]["usdc"], "USDC", 6)
                world.rpc[chain_id] = net["rpc_url"]
                world.minter = net["accounts"][0]["address"]
                self.stdout.write(f"lifi sandbox: delivering on the localnet (chain {chain_id})")
        server = start_sandbox(world=world, port=port)
        path = project_path(config_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": server.url + "/v1"}, indent=2))
        tmp.replace(path)
        self.stdout.write(f"lifi sandbox: {server.url}/v1 (config {path})")
        try:
            stop.wait()
        finally:
            server.stop()
            path.unlink(missing_ok=True)
