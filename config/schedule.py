"""The Celery Beat schedule, as code. `manage.py sync_beat_schedule` writes it into
django_celery_beat's tables (creating, updating, and disabling entries no longer listed).
Each entry has `expires` (seconds) so a run that could not start in time is dropped."""

BEAT_SCHEDULE: dict[str, dict] = {
    "outbox-dispatch": {
        "task": "trading.tasks.outbox_dispatch_task",
        "every": 2.0,
        "expires": 10,
    },
    "reconcile-executions": {
        "task": "trading.tasks.reconcile_executions_task",
        "every": 10.0,
        "expires": 10,
    },
    "ledger-verify": {
        # the ledger replay check over the last day's aggregates (LEDGER_VERIFY_WINDOW_HOURS):
        # tradedesk_ledger_mismatches and the LedgerMismatch alert
        "task": "trading.tasks.ledger_verify_task",
        "every": 86400.0,
        "expires": 3600,
    },
    "idempotency-purge": {
        "task": "trading.tasks.idempotency_purge_task",
        "every": 3600.0,
        "expires": 600,
    },
    "accounts-purge-expired": {
        "task": "trading.tasks.accounts_purge_expired_task",
        "every": 3600.0,
        "expires": 600,
    },
    "price-tick": {
        "task": "providers.tasks.price_tick_task",
        "every": 1.0,
        "expires": 2,
    },
    "paper-funding": {
        "task": "providers.tasks.paper_funding_task",
        "every": 300.0,
        "expires": 240,
    },
    "webhook-retry-sweep": {
        "task": "webhooks.tasks.webhook_retry_sweep",
        "every": 30.0,
        "expires": 25,
    },
    "control-expiry": {
        "task": "trading.tasks.control_expiry_task",
        "every": 5.0,
        "expires": 10,
    },
    "ostium-sync": {
        "task": "providers.tasks.ostium_sync_task",
        "every": 2.0,
        "expires": 5,
    },
    "venue-reconcile-ostium": {
        "task": "trading.tasks.venue_reconcile_task",
        "every": 60.0,
        "expires": 60,
        "kwargs": {"venue": "ostium"},
    },
    "delegation-recovery": {
        "task": "delegations.tasks.delegation_recovery_task",
        "every": 60.0,
        "expires": 55,
    },
    "delegation-chain-check": {
        "task": "delegations.tasks.delegation_chain_check_task",
        "every": 120.0,
        "expires": 110,
    },
    "reference-coingecko-poll": {
        "task": "providers.tasks.reference_coingecko_poll_task",
        "every": 5.0,  # looks whether a poll is due (COINGECKO_POLL_SECONDS, back-off)
        "expires": 5,
    },
    "reference-sample-retention": {
        "task": "providers.tasks.reference_samples_purge_task",
        "every": 3600.0,
        "expires": 600,
    },
    "protective-monitor": {
        "task": "trading.protective.tasks.protective_monitor_task",
        "every": 1.0,
        "expires": 2,
    },
    # the NEAR Intents solver loop: raw quotes past their retention
    "solver-quotes-purge": {
        "task": "solver.tasks.solver_quotes_purge_task",
        "every": 3600.0,
        "expires": 600,
    },
    # treasury: each venue's inventory sync (runs when INVENTORY_SYNC_SECONDS have passed)
    "treasury-sync-near-intents": {
        "task": "treasury.tasks.treasury_sync_task",
        "every": 5.0,
        "expires": 10,
        "kwargs": {"venue": "near_intents"},
    },
    "treasury-sync-ostium": {
        "task": "treasury.tasks.treasury_sync_task",
        "every": 5.0,
        "expires": 10,
        "kwargs": {"venue": "ostium"},
    },
    "treasury-sync-paper": {
        "task": "treasury.tasks.treasury_sync_task",
        "every": 5.0,
        "expires": 10,
        "kwargs": {"venue": "paper"},
    },
    "liquidity-track": {
        "task": "treasury.tasks.liquidity_track_task",
        "every": 5.0,
        "expires": 10,
    },
    "config-apply-due": {
        "task": "configuration.tasks.config_apply_due_task",
        "every": 5.0,
        "expires": 10,
    },
    # deposits: follow LI.FI transfers until they end (each deposit polled when due)
    "deposits-poll": {
        "task": "deposits.tasks.deposits_poll_task",
        "every": 5.0,
        "expires": 10,
    },
}
