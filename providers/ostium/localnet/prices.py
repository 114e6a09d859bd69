"""Price source shared by the keeper and the price API."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from .config import PairSpec

PRICE_DECIMALS = 18


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    mid: Decimal
    ask: Decimal
    timestamp: int
    is_market_open: bool = True
    is_day_trading_closed: bool = False


def to_price_units(value: Decimal | int | float | str) -> int:
    """Price -> on-chain 1e18 integer."""
    return int(Decimal(str(value)) * 10**PRICE_DECIMALS)


class PriceSource:
    """Thread-safe prices per symbol (``"BTC-USD"``), optionally moved by a
    seeded random walk. Tests pin prices exactly with :meth:`set_price`."""

    def __init__(
        self,
        pairs: tuple[PairSpec, ...],
        spread_p: Decimal = Decimal("0"),
        volatility: float = 0.0005,
        seed: int | None = None,
    ):
        self._lock = threading.Lock()
        self._initial = {p.symbol: Decimal(p.price) for p in pairs}
        self._prices = dict(self._initial)
        self._market_open = {p.symbol: True for p in pairs}
        self._updated = {p.symbol: int(time.time()) for p in pairs}
        self.spread_p = Decimal(spread_p)  # percent, e.g. Decimal("0.01") = 0.01%
        self.volatility = volatility
        self._random = random.Random(seed)

    @staticmethod
    def normalise(symbol: str) -> str:
        return symbol.upper().replace("/", "-").replace("_", "-")

    @property
    def symbols(self) -> list[str]:
        return list(self._prices)

    def get_price(self, symbol: str) -> Decimal:
        with self._lock:
            return self._prices[self.normalise(symbol)]

    def set_price(self, symbol: str, price: Decimal | int | float | str) -> None:
        price = Decimal(str(price))
        if price <= 0:
            raise ValueError("price must be positive")
        symbol = self.normalise(symbol)
        with self._lock:
            if symbol not in self._prices:
                raise KeyError(f"unknown symbol {symbol}")
            self._prices[symbol] = price
            self._updated[symbol] = int(time.time())

    def set_market_open(self, symbol: str, is_open: bool) -> None:
        with self._lock:
            self._market_open[self.normalise(symbol)] = bool(is_open)

    def reset(self) -> None:
        with self._lock:
            self._prices = dict(self._initial)
            self._market_open = dict.fromkeys(self._initial, True)

    def step(self) -> None:
        """Advance every price by one random-walk step (log-normal)."""
        with self._lock:
            now = int(time.time())
            for symbol, price in self._prices.items():
                factor = Decimal(str(math.exp(self._random.gauss(0.0, self.volatility))))
                self._prices[symbol] = (price * factor).quantize(Decimal("0.00001")) or price
                self._updated[symbol] = now

    def quote(self, symbol: str) -> Quote:
        symbol = self.normalise(symbol)
        with self._lock:
            mid = self._prices[symbol]
            half = mid * self.spread_p / Decimal(200)
            return Quote(symbol, mid - half, mid, mid + half, self._updated[symbol], self._market_open[symbol])

    def quotes(self) -> list[Quote]:
        return [self.quote(s) for s in self.symbols]


class RandomWalker:
    """Background thread stepping a PriceSource every ``interval`` seconds."""

    def __init__(self, source: PriceSource, interval: float = 1.0):
        self.source = source
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ostium-price-walk", daemon=True)

    def start(self) -> RandomWalker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.source.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
