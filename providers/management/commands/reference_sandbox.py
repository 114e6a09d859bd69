"""`manage.py reference_sandbox`: the loopback doubles of Kraken (websocket v2 + REST Ticker) and
CoinGecko (`/simple/price`) for the demo, with prices that walk, until SIGTERM/SIGINT.

Their addresses go to REFERENCE_SANDBOX_CONFIG (JSON), where the feeds process, the CoinGecko poll
and the refresh find them when REFERENCE_ENDPOINTS=sandbox. The walk starts from the paper
venue's prices where it has them (BTC/USD from BTC-USD, BTC/EUR from BTC-USD / EUR-USD), so the
demo's paper venue can follow the reference without a jump.

Script a running sandbox (as tests do in Python):
    manage.py reference_sandbox --script kraken disconnect
    manage.py reference_sandbox --script kraken storm '{"every": 1}'
    manage.py reference_sandbox --script coingecko rate_limit '{"times": 3, "retry_after": "60"}'
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from decimal import Decimal

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from providers.sandbox_config import project_path

# Where the walk starts when the paper venue has no price to start from.
DEFAULT_PRICES = {"BTC/USD": "65000", "BTC/EUR": "60000", "ETH/USD": "3200", "SOL/USD": "150", "ETH/EUR": "2950"}
SPREAD = Decimal("0.0001")  # Kraken's top of book: 1 bp wide
STEP_SECONDS = 0.5
GECKO_EVERY = 10  # walk steps between two CoinGecko updates (its answers lag, as CoinGecko's cache)


def _start_prices(pairs: list[str]) -> dict[str, Decimal]:
    from providers.models import PaperPriceState

    paper = {row.symbol: row.price for row in PaperPriceState.objects.all()}
    out = {}
    for pair in pairs:
        base, quote = pair.split("/")
        if f"{base}-{quote}" in paper:
            out[pair] = paper[f"{base}-{quote}"]
        elif quote != "USD" and f"{base}-USD" in paper and f"{quote}-USD" in paper:
            out[pair] = paper[f"{base}-USD"] / paper[f"{quote}-USD"]
        else:
            out[pair] = Decimal(DEFAULT_PRICES.get(pair, "100"))
    return {pair: price.quantize(Decimal("0.01")) for pair, price in out.items()}


class Command(BaseCommand):
    help = "Run the Kraken and CoinGecko loopback doubles for the demo (or script a running one)."

    def add_arguments(self, parser):
        parser.add_argument("--script", nargs="+", metavar="ARG", help="SOURCE ACTION [JSON kwargs]")
        parser.add_argument("--seed", default="tradedesk", help="seed of the price walk")

    def handle(self, *args, script=None, seed="tradedesk", **options):
        if script:
            return self._script(*script)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if settings.REFERENCE_ENDPOINTS != "sandbox":
            self.stdout.write(f"reference sandbox not used (REFERENCE_ENDPOINTS={settings.REFERENCE_ENDPOINTS}); idle")
            stop.wait()
            return None
        self._serve(stop, seed)
        return None

    def _serve(self, stop: threading.Event, seed: str) -> None:
        from providers.coingecko.sandbox import CoinGeckoSandbox
        from providers.kraken.sandbox import KrakenSandbox
        from providers.reference.config import coingecko_id
        from providers.reference.service import direct_pairs

        pairs = direct_pairs()
        prices = _start_prices(pairs)
        kraken = KrakenSandbox({p: (price * (1 - SPREAD / 2), price * (1 + SPREAD / 2)) for p, price in prices.items()})
        gecko = CoinGeckoSandbox()
        coins = {}
        for pair in pairs:
            base, quote = pair.split("/")
            if coingecko_id(base):
                coins[pair] = (coingecko_id(base), quote.lower())
                gecko.set_price(*coins[pair], prices[pair])
        kraken.start()
        gecko.start()
        path = project_path(settings.REFERENCE_SANDBOX_CONFIG)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"kraken_ws_url": kraken.ws_url, "kraken_rest_url": kraken.rest_url, "coingecko_url": gecko.url}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, path)
        self.stdout.write(f"reference sandbox: kraken {kraken.ws_url} / {kraken.rest_url}, coingecko {gecko.url}")
        self.stdout.write(f"wrote {path}; pairs {', '.join(pairs)}")
        rng = random.Random(seed)
        try:
            step = 0
            while not stop.wait(STEP_SECONDS):
                step += 1
                for pair in pairs:
                    mid = prices[pair] * (1 + Decimal(repr(rng.gauss(0, 0.0002))))
                    prices[pair] = mid.quantize(Decimal("0.01"))
                    kraken.set_price(pair, prices[pair] * (1 - SPREAD / 2), prices[pair] * (1 + SPREAD / 2))
                    if step % GECKO_EVERY == 0 and pair in coins:
                        gecko.set_price(*coins[pair], prices[pair])
        finally:
            kraken.stop()
            gecko.stop()
            path.unlink(missing_ok=True)

    def _script(self, source: str, action: str = "", raw: str = "{}") -> None:
        try:
            config = json.loads(project_path(settings.REFERENCE_SANDBOX_CONFIG).read_text())
            kwargs = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot script the sandbox: {exc}") from exc
        base = {"kraken": config["kraken_rest_url"], "coingecko": config["coingecko_url"].removesuffix("/api/v3")}
        if source not in base:
            raise CommandError("SOURCE is kraken or coingecko")
        response = httpx.post(f"{base[source]}/_sandbox/{action}", json=kwargs, timeout=10)
        self.stdout.write(response.text)
        if response.status_code != 200:
            raise CommandError(f"{source} {action}: HTTP {response.status_code}")
