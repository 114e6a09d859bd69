"""NEAR Intents endpoints: the `sandbox` network (loopback doubles, described by the JSON file
`manage.py near_intents_sandbox` writes, NEAR_INTENTS_SANDBOX_CONFIG) or `mainnet` (public
endpoints). NEAR_INTENTS_*_URL settings override either."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from providers.sandbox_config import sandbox_config_read

SANDBOX, MAINNET = "sandbox", "mainnet"
NETWORKS = (SANDBOX, MAINNET)
MAINNET_URLS = {
    "rpc": "https://free.rpc.fastnear.com",
    "bridge": "https://bridge.chaindefuser.com/rpc",
    "relay": "https://solver-relay-v2.chaindefuser.com/rpc",
    "relay_ws": "wss://solver-relay-v2.chaindefuser.com/ws",
}


class NearIntentsConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NearIntentsNetwork:
    name: str
    rpc_url: str
    bridge_url: str
    relay_url: str
    verifier: str  # the verifier contract, e.g. intents.near
    solver_account: str  # the desk's account on the verifier ("" when not configured)
    relay_ws_url: str = ""  # the relay's websocket for solvers (quote requests, quote_status)

    def fingerprint(self) -> tuple:
        return (
            self.name,
            self.rpc_url,
            self.bridge_url,
            self.relay_url,
            self.verifier,
            self.solver_account,
            self.relay_ws_url,
        )


def sandbox_file() -> dict:
    return sandbox_config_read(
        settings.NEAR_INTENTS_SANDBOX_CONFIG,
        label="NEAR Intents sandbox config",
        start_hint="start `manage.py near_intents_sandbox`",
        error=NearIntentsConfigError,
    )


def network_config() -> NearIntentsNetwork:
    name = (settings.NEAR_INTENTS_NETWORK or "").strip().lower()
    if name not in NETWORKS:
        raise NearIntentsConfigError(f"NEAR_INTENTS_NETWORK must be one of {', '.join(NETWORKS)}, not {name!r}")
    urls = dict(MAINNET_URLS)
    solver = settings.NEAR_INTENTS_SOLVER_ACCOUNT
    verifier = settings.NEAR_INTENTS_VERIFIER
    if name == SANDBOX:
        data = sandbox_file()
        urls = {
            "rpc": data["rpc_url"],
            "bridge": data["bridge_url"],
            "relay": data["relay_url"],
            "relay_ws": data.get("relay_ws_url", ""),
        }
        solver = solver or data.get("solver_account", "")
        verifier = data.get("verifier") or verifier
    return NearIntentsNetwork(
        name=name,
        rpc_url=settings.NEAR_INTENTS_RPC_URL or urls["rpc"],
        bridge_url=settings.NEAR_INTENTS_BRIDGE_URL or urls["bridge"],
        relay_url=settings.NEAR_INTENTS_RELAY_URL or urls["relay"],
        verifier=verifier,
        solver_account=solver,
        relay_ws_url=settings.NEAR_INTENTS_RELAY_WS_URL or urls["relay_ws"],
    )
