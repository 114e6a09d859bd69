from celery import shared_task
from django.db import OperationalError

from trading.outbox import outbox_dispatch_while_kicked


@shared_task(ignore_result=True, acks_late=True, expires=30)
def outbox_dispatch_task() -> int:
    return outbox_dispatch_while_kicked()


# Execution tasks are safe to redeliver: the executor claims the order and never sends a
# command twice (the command row exists → reconcile instead).
@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def execute_order_task(order_id: int) -> str:
    from trading.services.execution import order_execute

    return order_execute(order_id=order_id)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def cancel_order_task(order_id: int) -> str:
    from trading.services.execution import order_cancel_execute

    return order_cancel_execute(order_id=order_id)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def protection_sync_task(trade_id: int, actions: list[str]) -> list[str]:
    from trading.services.execution import trade_protection_sync

    return trade_protection_sync(trade_id=trade_id, actions=actions)


@shared_task(ignore_result=True, acks_late=True, expires=10)
def reconcile_executions_task() -> dict:
    from trading.services.execution import execution_reconcile

    return execution_reconcile()


@shared_task(ignore_result=True, expires=600)
def idempotency_purge_task() -> int:
    from trading.services.idempotency import idempotency_purge

    return idempotency_purge()


@shared_task(ignore_result=True, expires=600)
def accounts_purge_expired_task() -> dict:
    from trading.services.accounts import auth_records_purge

    return auth_records_purge()


@shared_task(ignore_result=True, expires=30)
def control_expiry_task() -> dict:
    from trading.services.expiry import control_expiry_run

    return control_expiry_run()


@shared_task(ignore_result=True, expires=60)
def venue_reconcile_task(venue: str = "ostium") -> int:
    """Compare our open trades of `venue` with the venue's positions; record breaks."""
    from django.conf import settings

    from trading.services.reconciliation import venue_reconcile

    if venue == "ostium" and not settings.OSTIUM_TRADER_KEY_FILE and not settings.OSTIUM_SERVICE_BASE_URL:
        return 0  # Ostium not configured here
    return len(venue_reconcile(venue=venue))


@shared_task(ignore_result=True, expires=3600, soft_time_limit=1800)
def ledger_verify_task() -> int:
    """The daily ledger replay check over the last LEDGER_VERIFY_WINDOW_HOURS (its result on
    /metrics as tradedesk_ledger_mismatches). Returns the number of mismatches."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from trading.services.ledger_verify import ledger_verify_record

    since = timezone.now() - timedelta(hours=settings.LEDGER_VERIFY_WINDOW_HOURS)
    return len(ledger_verify_record(since=since).mismatches)
