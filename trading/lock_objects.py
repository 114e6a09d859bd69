"""Row locks in one place, so every path takes them in the same order: order, then trade,
then position, then command."""

from trading.models import ExecutionCommand, Order, Position, Trade


def order_lock(pk, *, skip_locked: bool = False) -> Order | None:
    return Order.objects.select_for_update(skip_locked=skip_locked, of=("self",)).filter(pk=pk).first()


def trade_waiting_orders_lock(trade_pk) -> list[Order]:
    """The trade's waiting orders (which a close fills or cancels), in pk order: taken before
    the trade by every path that closes one, so a venue's close and the executor's cannot
    deadlock."""
    waiting = (Order.Status.ACCEPTED, Order.Status.PENDING_TRIGGER, Order.Status.TRIGGERED)
    return list(
        Order.objects.select_for_update(of=("self",)).filter(trade_id=trade_pk, status__in=waiting).order_by("pk")
    )


def trade_lock(pk) -> Trade | None:
    return Trade.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def position_lock(pk) -> Position | None:
    return Position.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def command_lock(pk) -> ExecutionCommand | None:
    return ExecutionCommand.objects.select_for_update(of=("self",)).filter(pk=pk).first()
