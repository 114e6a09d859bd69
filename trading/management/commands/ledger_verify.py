"""`manage.py ledger_verify [--since 24h|ISO time]`: replay the event ledger and compare it with
the current rows (orders, trades, positions, control and trading states, delegations). Prints each
mismatch; exits 1 on any (trading/services/ledger_verify.py)."""

import re
import sys
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> datetime:
    match = _RELATIVE.match(text.strip())
    if match:
        return timezone.now() - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--since {text!r}: give a duration (30m, 24h, 7d) or an ISO time") from None
    return when if when.tzinfo else timezone.make_aware(when)


class Command(BaseCommand):
    help = "Re-derive state from the event ledger and compare it with the rows; exit 1 on a mismatch."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="only aggregates with an event since then: 24h, 7d, or an ISO time")
        parser.add_argument("--record", action="store_true", help="also set the metrics and log (as the Beat job)")

    def handle(self, *args, since=None, record=False, **options):
        from trading.services.ledger_verify import ledger_verify, ledger_verify_record

        when = parse_since(since) if since else None
        report = (ledger_verify_record if record else ledger_verify)(since=when)
        checked = ", ".join(f"{n} {kind}" for kind, n in report.checked.items())
        scope = f"since {when.isoformat()}" if when else "all of the ledger"
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"ledger verified ({scope}): {checked}; no mismatch"))
            return
        for mismatch in report.mismatches:
            self.stdout.write(f"MISMATCH {mismatch}")
        self.stderr.write(f"{len(report.mismatches)} mismatch(es) ({scope}; checked {checked})")
        sys.exit(1)
