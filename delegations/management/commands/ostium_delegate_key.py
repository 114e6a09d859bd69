"""Custody keys for Ostium delegations. Prints addresses and fingerprints, never a key.

manage.py ostium_delegate_key create --network localnet [--user ID] [--replace]
manage.py ostium_delegate_key create-relayer --network localnet [--replace]
manage.py ostium_delegate_key list
manage.py ostium_delegate_key rotate-encryption
"""

from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from delegations import keys
from delegations.models import CustodyKey


class Command(BaseCommand):
    help = "Create delegate/relayer keys (stored encrypted) and re-encrypt them with the newest key."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="generate the delegate key of a network (or of a user)")
        create.add_argument("--network", required=True)
        create.add_argument("--user", type=int, help="user id (OSTIUM_DELEGATE_KEY_SCOPE=user)")
        create.add_argument("--replace", action="store_true", help="deactivate the current key and make a new one")
        relayer = sub.add_parser("create-relayer", help="generate the relayer key (pays gas for execTransaction)")
        relayer.add_argument("--network", required=True)
        relayer.add_argument("--replace", action="store_true")
        sub.add_parser("list", help="list keys (fingerprints only)")
        sub.add_parser("rotate-encryption", help="re-encrypt every key with the newest key-encryption key")

    def handle(self, *args, action, **options):
        try:
            if action == "create":
                user = None
                if options.get("user"):
                    from django.contrib.auth import get_user_model

                    user = get_user_model().objects.filter(pk=options["user"]).first()
                    if user is None:
                        raise CommandError(f"no user {options['user']}")
                row = keys.delegate_key_create(
                    network=options["network"], user=user, actor="cli", replace=options["replace"]
                )
                self.stdout.write(f"delegate key for {row.network}: {row.fingerprint}")
            elif action == "create-relayer":
                row = keys.relayer_key_create(network=options["network"], actor="cli", replace=options["replace"])
                self.stdout.write(f"relayer key for {row.network}: {row.fingerprint} (fund this address with ETH)")
            elif action == "list":
                for row in CustodyKey.objects.order_by("id"):
                    state = "active" if row.is_active else "retired"
                    who = f" user {row.user_id}" if row.user_id else ""
                    self.stdout.write(f"{row.pk} {row.purpose} {row.network}{who} {row.fingerprint} {state}")
            elif action == "rotate-encryption":
                count = keys.custody_keys_rotate_encryption(actor="cli")
                self.stdout.write(f"re-encrypted {count} key(s) with the newest key-encryption key")
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
