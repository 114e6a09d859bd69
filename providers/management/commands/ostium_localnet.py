"""``manage.py ostium_localnet``: run the Ostium localnet (chain, contracts,
keeper, subgraph, price API) in the foreground until Ctrl-C."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the Ostium localnet (anvil + contracts + keeper + subgraph + price API) until Ctrl-C."

    def add_arguments(self, parser):
        from providers.ostium.localnet.cli import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        from argparse import Namespace

        from providers.ostium.localnet.cli import run

        run(Namespace(**options), out=lambda line: self.stdout.write(line))
