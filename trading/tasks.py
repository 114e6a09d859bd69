from celery import shared_task

from trading.outbox import outbox_dispatch


@shared_task(ignore_result=True, acks_late=True, expires=30)
def outbox_dispatch_task() -> int:
    return outbox_dispatch()


@shared_task(ignore_result=True, expires=600)
def accounts_purge_expired_task() -> dict:
    from trading.services.accounts import auth_records_purge

    return auth_records_purge()
