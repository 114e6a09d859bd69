"""Paper venue: latency of its commands and of one tick through the book.

Runs against the configured database and Redis inside one transaction that is rolled back,
on a bench-only market (BENCH-USD), so it leaves nothing behind. Baseline: one indexed
SELECT of a paper account (the cheapest database round trip the venue makes).
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from bench._db import on_bench_database


def _timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _line(name: str, samples: list[float], baseline: float) -> None:
    p50 = statistics.median(samples)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    print(f"{name:<52} n={len(samples):<5} p50={p50:8.3f} ms  p95={p95:8.3f} ms  ({p50 / baseline:6.1f}× baseline)")


class _Rollback(Exception):
    pass


def main() -> None:
    on_bench_database(_run)


def _run() -> None:
    from django.db import transaction

    from providers.feeds.paper import PaperFeed
    from providers.interface import CloseTradeRequest, OpenTradeRequest, PriceTick, Side, VenueOrderKind
    from providers.models import PaperAccount, PaperMarket
    from providers.paper.engine import paper_account_set_balance, paper_book_process_tick
    from providers.prices import price_cache_clear, price_get, price_set
    from providers.registry import get_venue

    symbol, account = "BENCH-USD", "bench:paper"
    venue = get_venue("paper")
    try:
        with transaction.atomic():
            PaperMarket.objects.create(
                symbol=symbol,
                category="crypto",
                max_leverage=Decimal("50"),
                taker_fee_rate=Decimal("0.0005"),
                maker_fee_rate=Decimal("0.0002"),
                maintenance_margin_rate=Decimal("0.005"),
                spread=Decimal("0.0002"),
                impact_coefficient=Decimal("0.5"),
                depth=Decimal("1e7"),
                max_slippage=Decimal("0.01"),
                initial_price=Decimal("50000"),
                annual_volatility=Decimal("0.6"),
            )
            paper_account_set_balance(name=account, balance=Decimal("1e12"))
            price_set(symbol, Decimal("50000"))

            baseline = _timed(lambda i: PaperAccount.objects.filter(name=account).exists(), 300)
            base = statistics.median(baseline)
            _line("baseline: indexed SELECT of an account", baseline, base)
            _line("price_get (Redis cache hit)", _timed(lambda i: price_get(symbol), 500), base)
            _line("paper feed: one walk step (advance)", _timed(lambda i: PaperFeed().advance([symbol]), 200), base)
            price_set(symbol, Decimal("50000"))

            opened = []

            def open_one(i):
                result = venue.open_trade(
                    OpenTradeRequest(
                        idempotency_key=f"bench-open-{i}",
                        account=account,
                        symbol=symbol,
                        side=Side.LONG if i % 2 else Side.SHORT,
                        collateral=Decimal("100"),
                        leverage=Decimal("5"),
                    )
                )
                opened.append(result.trade_index)

            _line("open_trade (market, new key)", _timed(open_one, 300), base)
            _line(
                "open_trade (repeated key → stored result)",
                _timed(lambda i: venue.open_trade(_req(OpenTradeRequest, Side, i)), 300),
                base,
            )

            def close_one(i):
                venue.close_trade(
                    CloseTradeRequest(
                        idempotency_key=f"bench-close-{i}",
                        account=account,
                        symbol=symbol,
                        pair_id=symbol,
                        trade_index=opened[i],
                        fraction=Decimal("0.5"),
                    )
                )

            _line("close_trade (half)", _timed(close_one, 300), base)

            tick = PriceTick(symbol=symbol, price=Decimal("50000"), timestamp=_now(), source="bench", venue="paper")
            _line(
                "book on a tick: 300 open positions, 0 resting",
                _timed(lambda i: paper_book_process_tick(tick=tick), 200),
                base,
            )
            for i in range(1000):
                venue.open_trade(
                    OpenTradeRequest(
                        idempotency_key=f"bench-rest-{i}",
                        account=account,
                        symbol=symbol,
                        side=Side.LONG,
                        collateral=Decimal("100"),
                        leverage=Decimal("5"),
                        kind=VenueOrderKind.LIMIT,
                        limit_price=Decimal("40000") - i,
                    )
                )
            _line(
                "book on a tick: 300 open, 1000 resting, none cross",
                _timed(lambda i: paper_book_process_tick(tick=tick), 200),
                base,
            )
            raise _Rollback
    except _Rollback:
        pass
    finally:
        price_cache_clear([symbol])


def _req(OpenTradeRequest, Side, i):
    return OpenTradeRequest(
        idempotency_key=f"bench-open-{i}",
        account="bench:paper",
        symbol="BENCH-USD",
        side=Side.LONG if i % 2 else Side.SHORT,
        collateral=Decimal("100"),
        leverage=Decimal("5"),
    )


def _now():
    from django.utils import timezone

    return timezone.now()


if __name__ == "__main__":
    main()
