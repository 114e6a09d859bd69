"""The deposits' lines on the control panel: deposits in flight (sent, not yet credited: how many
and the USDC expected, the part going to accounts the treasury tracks), deposits pending longer
than DEPOSIT_DELAY_ALERT_MINUTES (red), and LI.FI status polls failing (LI.FI down or rate limiting)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Max

from deposits.admin import late_q
from deposits.in_flight import in_flight_totals
from deposits.models import Deposit
from trading.admin_panel.health import DOWN, OK, WARN, HealthItem


def deposits_health() -> list[HealthItem]:
    late = Deposit.objects.filter(late_q())
    count = late.count()
    ids = list(late.order_by("submitted_at").values_list("pk", flat=True)[:6])
    followed = Deposit.objects.filter(status__in=Deposit.FOLLOWED)
    failing = followed.filter(poll_failures__gt=0)
    errors = list(failing.values_list("poll_error", flat=True)[:1])
    polled = followed.count() if not errors else 0
    flying = in_flight_totals()
    return [
        HealthItem(
            name="Deposits in flight",
            status=OK,
            value=f"{flying.count} · {flying.expected:,.2f} USDC" if flying.count else "0",
            detail=(
                f"sent, not yet credited: {flying.expected:,.2f} USDC expected (at least {flying.minimum:,.2f}); "
                f"{flying.into_treasury:,.2f} of it into accounts the treasury tracks (pending in); "
                + ", ".join(f"#{pk}" for pk in flying.ids[:6])
            )
            if flying.count
            else "",
        ),
        HealthItem(
            name="Deposits delayed",
            status=DOWN if count else OK,
            value=str(count),
            detail=(
                f"pending longer than {settings.DEPOSIT_DELAY_ALERT_MINUTES:g} min: "
                + ", ".join(f"#{pk}" for pk in ids)
            )
            if count
            else "",
        ),
        # LI.FI is asked only about deposits under way: with none, there is nothing to judge it by
        HealthItem(
            name="Deposits LI.FI polling",
            status=WARN if errors else OK,
            value=f"{failing.count()} failing"
            if errors
            else f"ok · {polled} followed"
            if polled
            else "nothing to poll",
            detail=(errors[0] if errors else "" if polled else "no deposit under way: LI.FI is not being asked")[:300],
        ),
    ]


def sent_activity(source: str, what: str):
    """The last transaction the desk sent for deposits of `source` (the relay's SafeTx, a
    treasury swap): the panel's "last activity" of the component that gates it."""

    def read():
        sent = Deposit.objects.filter(source=source, submitted_at__isnull=False)
        return sent.aggregate(at=Max("submitted_at"))["at"], what

    return read
