"""Celery doors of the solver loop (scheduled in config/schedule.py)."""

from celery import shared_task


@shared_task(ignore_result=True, expires=600)
def solver_quotes_purge_task() -> int:
    """Delete raw quotes older than NEAR_SOLVER_QUOTE_RETENTION_DAYS that no command answered
    (their decisions with them); answered quotes, their chains and pinned samples stay."""
    from solver.services.retention import quotes_purge

    return quotes_purge()
