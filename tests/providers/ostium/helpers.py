"""Steps the Ostium end-to-end tests share: wait for an order's status, run the sync job on the
worker as Beat would, read a trade from the chain."""

from __future__ import annotations

from tests.conftest import run_on_worker, wait_for
from trading.models import Order


def order_status(order_id, *statuses, timeout=30):
    """Wait until the order is in one of `statuses`; returns it."""

    def check():
        status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
        return status if status in statuses else None

    return wait_for(check, timeout=timeout)


def sync_until(predicate, timeout=30):
    """Run the sync job on the worker (as Beat would) until `predicate()` holds."""
    from providers.tasks import ostium_sync_task

    def step():
        run_on_worker(ostium_sync_task)
        return predicate()

    return wait_for(step, timeout=timeout, interval=0.2)


def chain_trade(net, trader, index):
    """The open trade `index` of `trader` as the SDK reads it from the localnet, or None."""
    import asyncio

    sdk = net.sdk(net.traders[0].private_key)
    trades, _ = asyncio.run(sdk.get_open_trades(trader_address=trader))
    return next((t for t in trades if int(t["index"]) == int(index)), None)


def approve_usdc(net, owner) -> None:
    """`owner` (one of the localnet's accounts) approves USDC to TradingStorage, so a write of
    its is one transaction (the SDK approves first when the allowance is short)."""
    usdc = net.contract("usdc")
    params = {"from": owner, "maxPriorityFeePerGas": 0, "maxFeePerGas": 10**9}
    net.w3.eth.wait_for_transaction_receipt(
        usdc.functions.approve(net.addresses.tradingStorage, 10**12).transact(params)
    )
