from django.core.management.base import BaseCommand

from providers.paper.seed import seed_paper_demo


class Command(BaseCommand):
    help = "Create the paper venue's default markets and starting prices where missing (idempotent)."

    def handle(self, *args, **options):
        result = seed_paper_demo()
        self.stdout.write(
            f"paper venue seeded: markets created {result['markets_created'] or 'none'}, "
            f"prices initialised {result['prices_initialised'] or 'none'}"
        )
