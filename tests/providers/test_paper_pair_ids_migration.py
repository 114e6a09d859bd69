"""The migration that numbers the paper venue's pairs: markets get numbers, and paper trades,
orders and reconciliation breaks that named the pair by its symbol name it by its number;
another venue's references stay as they are."""

from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("providers", "0006_reference_prices"), ("trading", "0016_protective_asset_state_per_venue")]
AFTER = [("trading", "0017_paper_pair_ids")]


@pytest.mark.ledger_drift  # rows written through the migration's old model versions, without events
@pytest.mark.django_db(transaction=True)
def test_paper_references_follow_the_numbered_markets():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        from providers.paper.seed import markets_ensure

        markets_ensure(model=apps.get_model("providers", "PaperMarket"))
        User, Position, Trade, Order, Break = (
            apps.get_model("trading", m) for m in ("User", "Position", "Trade", "Order", "ReconciliationBreak")
        )
        user = User.objects.create(username="ada", email="ada@example.com")
        money = {"collateral": D(100), "leverage": D(5), "size": D(1), "initial_size": D(1)}
        money |= {"entry_price": D(1), "current_price": D(1), "margin": D(100)}

        def trade(provider, pair_id, index):
            position = Position.objects.create(user=user, provider=provider, asset="ETH-USD", side="long")
            return Trade.objects.create(
                user=user, position=position, provider=provider, asset="ETH-USD", pair_id=pair_id,
                trade_index=index, side="long", **money,
            ).pk  # fmt: skip

        paper_trade, ostium_trade = trade("paper", "ETH-USD", "7"), trade("ostium", "1", "0")
        order = Order.objects.create(user=user, provider="paper", asset="ETH-USD", side="long", pair_id="ETH-USD")
        brk = Break.objects.create(venue="paper", kind="missing", account="user:1", pair_id="ETH-USD", trade_index="7")

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)

        from providers.models import PaperMarket
        from trading.models import Order as O
        from trading.models import ReconciliationBreak as B
        from trading.models import Trade as T

        numbers = dict(PaperMarket.objects.values_list("symbol", "pair_id"))
        assert sorted(numbers.values()) == list(range(1, len(numbers) + 1))
        eth = str(numbers["ETH-USD"])
        assert (T.objects.get(pk=paper_trade).pair_id, T.objects.get(pk=paper_trade).trade_index) == (eth, "7")
        assert T.objects.get(pk=ostium_trade).pair_id == "1"  # Ostium's own number, untouched
        assert O.objects.get(pk=order.pk).pair_id == eth and B.objects.get(pk=brk.pk).pair_id == eth
    finally:
        MigrationExecutor(connection).loader.build_graph()
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
