"""`manage.py feeds`: the long-running stream clients (Kraken's ticker stream, the reference
sampler, and any stream registered in `providers.streams`) on one event loop, until SIGTERM/SIGINT."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from providers.streams import stream_names, streams_run


class Command(BaseCommand):
    help = "Run the feeds process: every registered stream client (or those named with --stream)."

    def add_arguments(self, parser):
        parser.add_argument("--stream", action="append", dest="streams", help=f"one of {', '.join(stream_names())}")

    def handle(self, *args, streams=None, **options):
        asyncio.run(self._main(streams))

    async def _main(self, streams):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write(f"feeds: {', '.join(streams or stream_names())}")
        await streams_run(stop, streams)
