import json

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.schedule import BEAT_SCHEDULE

MANAGED = "tradedesk:"  # prefix of the entries this command owns


class Command(BaseCommand):
    help = "Write the Beat schedule defined in config/schedule.py into django_celery_beat."

    @transaction.atomic
    def handle(self, *args, **options):
        names = set()
        for key, spec in BEAT_SCHEDULE.items():
            name = MANAGED + key
            names.add(name)
            every = float(spec["every"])
            period, value = (
                (IntervalSchedule.MICROSECONDS, int(every * 1_000_000))
                if every < 1
                else (IntervalSchedule.SECONDS, int(every))
            )
            interval, _ = IntervalSchedule.objects.get_or_create(every=value, period=period)
            PeriodicTask.objects.update_or_create(
                name=name,
                defaults={
                    "task": spec["task"],
                    "interval": interval,
                    "crontab": None,
                    "enabled": spec.get("enabled", True),
                    "expire_seconds": spec.get("expires"),
                    "kwargs": json.dumps(spec.get("kwargs", {})),
                    "queue": spec.get("queue"),
                },
            )
        stale = PeriodicTask.objects.filter(name__startswith=MANAGED).exclude(name__in=names).update(enabled=False)
        self.stdout.write(f"beat schedule synced: {len(names)} entries, {stale} stale disabled")
