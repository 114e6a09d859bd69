"""The migration that gives a timed pause's end a field of its own: a paused row's expiry was
its pause's (the expiry job resumed it) and moves to `paused_until`; an armed, running row's
stays its arming's."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("trading", "0017_paper_pair_ids")]
AFTER = [("trading", "0018_control_state_paused_until")]


@pytest.mark.ledger_drift  # rows written through the migration's old model versions, without events
@pytest.mark.django_db(transaction=True)
def test_a_paused_rows_expiry_becomes_its_pauses_end():
    until = datetime(2030, 1, 1, tzinfo=UTC)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        State = executor.loader.project_state(BEFORE).apps.get_model("trading", "ControlState")
        State.objects.update_or_create(
            component="test:paused", defaults={"armed": True, "paused": True, "expires_at": until}
        )
        State.objects.update_or_create(
            component="test:armed", defaults={"armed": True, "expires_at": until + timedelta(1)}
        )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)

        from trading.models import ControlState

        paused, armed = (
            ControlState.objects.get(component="test:paused"),
            ControlState.objects.get(component="test:armed"),
        )
        assert (paused.paused_until, paused.expires_at) == (until, None)
        assert (armed.paused_until, armed.expires_at) == (None, until + timedelta(1))
    finally:
        MigrationExecutor(connection).loader.build_graph()
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
