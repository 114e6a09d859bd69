"""``manage.py near_solver``: the NEAR Intents solver loop (the relay websocket, quotes decided,
answered when armed, followed to settlement) until SIGINT/SIGTERM. Every component starts
disarmed on a fresh deploy: arm them in the control panel (or the staff API)."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the NEAR Intents solver loop until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="the relay websocket (default: the network's)")

    def handle(self, *args, **options):
        from providers.near_intents.config import network_config
        from solver.runner import SolverRunner

        url = options["url"] or network_config().relay_ws_url
        runner = SolverRunner(url=url, api_key=settings.NEAR_INTENTS_RELAY_API_KEY)
        self.stdout.write(f"NEAR Intents solver: relay {url}")

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.run(stop)

        asyncio.run(main())
