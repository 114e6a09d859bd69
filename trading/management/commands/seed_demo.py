from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from providers.paper.engine import paper_account_get
from providers.paper.seed import seed_paper_demo
from trading.models import ControlState
from trading.services.control import control_arm, venue_enabled
from trading.services.ledger import event_record


class Command(BaseCommand):
    help = "Seed a small demo (idempotent): a demo trader and the paper venue's setup."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username="demo", defaults={"email": "demo@tradedesk.local", "email_verified": True}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            event_record(
                topic="user.created",
                aggregate_type="user",
                aggregate_id=user.pk,
                payload={"username": user.username, "source": "seed_demo"},
                actor="seed_demo",
            )
        seed_paper_demo()  # markets and first prices of the paper venue
        paper_account_get(name=f"user:{user.pk}")  # the demo user's paper account (treasury inventory)
        # the paper executor is the only executor a demo arms; the NEAR Intents loop ingests and
        # decides against the doubles, its executor stays disarmed (arming it starts quoting)
        for component in ("executor:paper", "near_intents:ingest", "strategy:near_intents"):
            row = ControlState.objects.filter(component=component).first()
            if component == "executor:paper" and not venue_enabled("paper"):
                continue
            if not (row and row.armed):
                control_arm(component=component, actor="seed_demo", reason="demo seed")
        self.stdout.write(f"demo seeded (demo user {'created' if created else 'present'})")
