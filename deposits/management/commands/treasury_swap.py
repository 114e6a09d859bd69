"""`manage.py treasury_swap --operator NAME --amount 0.5 [--token 0x… --symbol ETH] [--send]`: quote
a treasury swap of a token the desk's own wallet holds on the target chain into USDC there (and
with --send, sign and send it). Refused while `treasury:swaps` is not armed (docs/deposits.md)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError


class Command(BaseCommand):
    help = "Convert a token of the desk's own wallet into USDC through LI.FI (treasury:swaps must be armed)."

    def add_arguments(self, parser):
        parser.add_argument("--operator", required=True, help="the staff user asking (recorded on the ledger)")
        parser.add_argument("--amount", required=True)
        parser.add_argument("--token", default="0x0000000000000000000000000000000000000000")
        parser.add_argument(
            "--symbol", default="", help="the token's symbol, checked against the token LI.FI lists at --token"
        )
        parser.add_argument("--send", action="store_true", help="sign and send it now")

    def handle(self, *args, operator, amount, token, symbol, send, **options):
        from deposits.desk_swaps import desk_swap_request, desk_swap_send

        user = get_user_model().objects.filter(username=operator, is_staff=True, is_active=True).first()
        if user is None:
            raise CommandError(f"no active staff user {operator!r}")
        try:
            swap = desk_swap_request(operator=user, token_address=token, token_symbol=symbol, amount=amount)
            self.stdout.write(f"treasury swap {swap.pk}: {swap.amount} {swap.token_symbol} → USDC, {swap.status}")
            if send:
                swap = desk_swap_send(deposit_id=swap.pk, actor=f"operator:{user.pk}")
                self.stdout.write(f"treasury swap {swap.pk}: {swap.status} {swap.transaction_hash}")
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
