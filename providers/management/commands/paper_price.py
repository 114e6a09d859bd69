from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from providers.interface import VenueException
from providers.prices import price_get, price_set


class Command(BaseCommand):
    help = "Show a symbol's price, or set it exactly and publish the tick (paper book included)."

    def add_arguments(self, parser):
        parser.add_argument("symbol")
        parser.add_argument("price", nargs="?", help="Set this price (omit to show the current one).")

    def handle(self, *args, symbol, price=None, **options):
        try:
            if price is None:
                tick = price_get(symbol, venue="paper", use_cache=False)
            else:
                try:
                    value = Decimal(price)
                except InvalidOperation as exc:
                    raise CommandError(f"not a price: {price!r}") from exc
                tick = price_set(symbol, value, source="manual")
        except VenueException as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{tick.symbol} {tick.price} ({tick.source}, {tick.timestamp.isoformat()})")
