"""Loopback doubles of NEAR Intents speaking the real JSON-RPC: a NEAR RPC node answering the
verifier's view methods, the deposit/withdrawal bridge service, and the solver relay
(`publish_intent`, `get_status`). One `World` holds their state; each listens on its own port.

    sandbox = start_sandbox(solver_account="desk.near")
    sandbox.world.balance_set("desk.near", "nep141:btc.omft.near", 10**8)
    sandbox.world.relay.quote(asset_in=..., asset_out=..., exact_amount_in=...)   # a quote request
    sandbox.write_config(".var/near-intents-sandbox.json")   # NEAR_INTENTS_NETWORK=sandbox reads it
    ...
    sandbox.stop()
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from providers.near_intents.sandbox.apps import BridgeApp, NearRpcApp, RelayApp
from providers.near_intents.sandbox.server import Server
from providers.near_intents.sandbox.world import World
from providers.near_intents.tokens import KNOWN

# The tokens the sandbox's bridge supports by default (chain of each deposit and withdrawal).
DEFAULT_TOKENS = (
    ("nep141:btc.omft.near", "btc:mainnet"),
    ("nep141:eth.omft.near", "eth:1"),
    ("nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near", "eth:100"),
    ("nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near", "eth:42161"),
)


@dataclass
class Sandbox:
    world: World
    rpc: Server
    bridge: Server
    relay: Server
    solver_account: str

    def config(self) -> dict:
        return {
            "rpc_url": self.rpc.url,
            "bridge_url": self.bridge.url + "/rpc",
            "relay_url": self.relay.url + "/rpc",
            "relay_ws_url": self.relay.url.replace("http://", "ws://") + "/ws",
            "verifier": self.world.verifier,
            "solver_account": self.solver_account,
        }

    def write_config(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config(), indent=2))
        return path

    def stop(self) -> None:
        for server in (self.rpc, self.bridge, self.relay):
            server.stop()


def start_sandbox(
    *, solver_account: str = "tradedesk-solver.near", verifier: str = "intents.near", world: World | None = None
) -> Sandbox:
    world = world or World(verifier=verifier)
    if not world.tokens:
        for token_id, chain in DEFAULT_TOKENS:
            info = KNOWN[token_id]
            world.token_add(token_id, info.symbol, info.decimals, chain)
    servers = []
    try:
        for app in (NearRpcApp(world), BridgeApp(world), RelayApp(world)):
            servers.append(Server(app, name=f"near-intents-{app.name}").start())
    except BaseException:
        for server in servers:
            server.stop()
        raise
    rpc, bridge, relay = servers
    return Sandbox(world=world, rpc=rpc, bridge=bridge, relay=relay, solver_account=solver_account)
