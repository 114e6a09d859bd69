"""A loopback double of LI.FI's REST API (`/v1/quote`, `/v1/status`, `/v1/chains`,
`/v1/tokens`) in LI.FI's shapes, for tests and the demo. State and scripts live in `World`
(`providers.lifi.sandbox.world`); the HTTP server is `server.LifiServer`.

    sandbox = start_sandbox()
    sandbox.world.script_next(outcome="REFUNDED", pending_for=2)
    settings.LIFI_ENDPOINTS, settings.LIFI_API_URL = "live", sandbox.url + "/v1"
    ...
    sandbox.stop()
"""

from __future__ import annotations

from providers.lifi.sandbox.server import LifiServer
from providers.lifi.sandbox.world import Script, World

__all__ = ["LifiServer", "Script", "World", "start_sandbox"]


def start_sandbox(*, world: World | None = None, port: int = 0) -> LifiServer:
    return LifiServer(world or World(), port=port).start()
