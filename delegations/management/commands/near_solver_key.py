"""The NEAR Intents solver key (ed25519, stored encrypted like the delegate keys). Prints the
public key (to register on the verifier with `add_public_key`), never the key.

manage.py near_solver_key create --network sandbox [--replace]
manage.py near_solver_key show --network sandbox
"""

from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from delegations import keys


class Command(BaseCommand):
    help = "Create the NEAR Intents solver key (stored encrypted) or show its public key."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="generate the solver key of a NEAR Intents network")
        create.add_argument("--network", required=True)
        create.add_argument("--replace", action="store_true", help="deactivate the current key and make a new one")
        show = sub.add_parser("show", help="print the solver key's public key")
        show.add_argument("--network", required=True)

    def handle(self, *args, action, network, **options):
        try:
            if action == "create":
                row = keys.solver_key_create(network=network, actor="cli", replace=options["replace"])
                self.stdout.write(
                    f"solver key for {network}: {row.address} (register it on the verifier: add_public_key)"
                )
            else:
                public_key = keys.solver_public_key(network)
                if public_key is None:
                    raise CommandError(f"no solver key for {network}")
                self.stdout.write(public_key)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
