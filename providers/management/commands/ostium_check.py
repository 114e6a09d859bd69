"""``manage.py ostium_check [--network testnet]``: validate the Ostium configuration and
check that the RPC is the network (its chain id, and the Trading contract at its address). Exits 1
when something is wrong."""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Check the Ostium network configuration and that the RPC is that network."

    def add_arguments(self, parser):
        parser.add_argument("--network", default=None, help="localnet | testnet | mainnet (default OSTIUM_NETWORK)")

    def handle(self, *args, network=None, **options):
        from providers.ostium.config import ostium_check

        result = ostium_check(network)
        self.stdout.write(json.dumps(result, indent=2))
        if not result["ok"]:
            raise CommandError("Ostium check failed: " + "; ".join(result["problems"]))
