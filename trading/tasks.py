from celery import shared_task

from trading.outbox import outbox_dispatch


@shared_task(ignore_result=True, acks_late=True, expires=30)
def outbox_dispatch_task() -> int:
    return outbox_dispatch()
