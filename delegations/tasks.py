from celery import shared_task


@shared_task(ignore_result=True, expires=55)
def delegation_recovery_task() -> dict:
    """Resolve delegation executions left claimed by a crashed or timed-out executor."""
    from delegations.services import delegations_recover

    return delegations_recover()


@shared_task(ignore_result=True, expires=110)
def delegation_chain_check_task() -> dict:
    """Re-read active delegations from the chain (revocations made from another wallet)."""
    from delegations.services import delegations_chain_check

    return delegations_chain_check()
