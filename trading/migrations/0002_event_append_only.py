from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION trading_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'trading_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trading_event_no_update_delete
    BEFORE UPDATE OR DELETE ON trading_event
    FOR EACH ROW EXECUTE FUNCTION trading_event_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS trading_event_no_update_delete ON trading_event;
DROP FUNCTION IF EXISTS trading_event_append_only();
"""


class Migration(migrations.Migration):
    """The ledger refuses UPDATE and DELETE at the database level (row triggers).
    TRUNCATE stays a privileged maintenance operation (the test runner resets tables with it)."""

    dependencies = [("trading", "0001_initial")]
    operations = [migrations.RunSQL(APPEND_ONLY, DROP)]
