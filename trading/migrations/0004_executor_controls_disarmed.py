from django.db import migrations
from django.utils import timezone

EXECUTORS = ("executor:paper", "executor:ostium", "executor:near_intents")


def create_disarmed(apps, schema_editor):
    """A fresh deploy starts with every executor disarmed (an operator arms it, with a reason)."""
    ControlState = apps.get_model("trading", "ControlState")
    for component in EXECUTORS:
        ControlState.objects.get_or_create(
            component=component,
            defaults={
                "armed": False,
                "reason": "initial state: disarmed on deploy",
                "changed_by": "migration",
                "changed_at": timezone.now(),
            },
        )


class Migration(migrations.Migration):
    dependencies = [("trading", "0003_orders_trades_positions_control")]
    operations = [migrations.RunPython(create_disarmed, migrations.RunPython.noop)]
