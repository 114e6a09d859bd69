"""``manage.py near_solver``: the NEAR Intents solver loop (the relay websocket, quotes decided,
answered when armed, followed to settlement) until SIGINT/SIGTERM. Every component starts
disarmed on a fresh deploy: arm them in the control panel (or the staff API)."""

import asyncio
import contextlib
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from config.aio import run


class Command(BaseCommand):
    help = "Run the NEAR Intents solver loop until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="the relay websocket (default: the network's)")

    def handle(self, *args, **options):
        from providers.near_intents.config import NearIntentsConfigError, network_config
        from solver.runner import SolverRunner

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            url, said = options["url"], False
            # no --url: the network's relay, read again before each connection (the demo's double
            # has a new address each time it starts)
            source = None if url else (lambda: network_config().relay_ws_url)
            while not url and not stop.is_set():  # the sandbox writes its config when it is up
                try:
                    url = network_config().relay_ws_url
                except NearIntentsConfigError as exc:
                    if not said:
                        self.stdout.write(f"waiting for the NEAR Intents config: {exc}")
                        said = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=2)
            if stop.is_set():
                return
            self.stdout.write(f"NEAR Intents solver: relay {url}")
            await SolverRunner(url=url, api_key=settings.NEAR_INTENTS_RELAY_API_KEY, url_source=source).run(stop)

        run(main())
