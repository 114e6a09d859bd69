"""``manage.py ostium_localnet``: run the Ostium localnet (chain, contracts,
keeper, subgraph, price API) in the foreground until Ctrl-C. Funds the `--fund` addresses and
those of OSTIUM_LOCALNET_FUND (USDC, and ETH for gas) once it is up."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the Ostium localnet (anvil + contracts + keeper + subgraph + price API) until Ctrl-C."

    def add_arguments(self, parser):
        from providers.ostium.localnet.cli import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        from argparse import Namespace

        from django.conf import settings

        from providers.ostium.localnet.cli import run

        extra = getattr(settings, "OSTIUM_LOCALNET_FUND", [])  # (the command also runs with bare settings)
        options["fund"] = [*options["fund"], *(a.strip() for a in extra if a.strip())]
        run(Namespace(**options), out=lambda line: self.stdout.write(line))
