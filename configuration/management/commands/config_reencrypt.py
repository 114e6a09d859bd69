from django.core.management.base import BaseCommand

from configuration.services import config_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored configuration secrets under the newest FIELD_ENCRYPTION_KEYS key "
        "(after putting a new key first; then the old keys can be dropped)."
    )

    def handle(self, *args, **options):
        count = config_secrets_reencrypt(actor="command:config_reencrypt")
        self.stdout.write(f"re-encrypted {count} configuration secret(s)")
