"""A timed pause's end gets a field of its own: `expires_at` was shared by a timed arming and a
timed pause, and every later change (a pause, a resume, a drain) set it again, so a timed arming
paused and resumed stayed armed for good. `expires_at` is now the arming's alone.

A row paused with an expiry was timed by its pause (the last change set the expiry, and the
expiry job would have resumed it): the expiry moves to `paused_until`."""

from django.db import migrations, models
from django.db.models import F


def timed_pauses_move(apps, schema_editor):
    rows = apps.get_model("trading", "ControlState").objects.filter(paused=True, expires_at__isnull=False)
    rows.update(paused_until=F("expires_at"), expires_at=None)


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0017_paper_pair_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="controlstate",
            name="paused_until",
            field=models.DateTimeField(blank=True, help_text="a timed pause ends then (resumed)", null=True),
        ),
        migrations.RunPython(timed_pauses_move, migrations.RunPython.noop),
    ]
