"""Indexes the protective engine updates for every order it fires and every event it writes,
with nothing reading them: the LIKE (varchar_pattern_ops) indexes of the order status and of
the event id, and the user / event indexes that composite indexes already cover (order_user_*,
outbox_event_handler_unique). The plain status index stays (as `order_status`). And a small
partial index for the engine's sibling check: protective orders of a trade whose close is under
way (a handful of rows, instead of every order of the trade read from the table)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0012_position_open_asset_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='order',
            name='status',
            field=models.CharField(choices=[('ACCEPTED', 'Accepted'), ('PENDING_TRIGGER', 'Pending Trigger'), ('TRIGGERED', 'Triggered'), ('SUBMITTING', 'Submitting'), ('SUBMITTED', 'Submitted'), ('PARTIALLY_FILLED', 'Partially Filled'), ('FILLED', 'Filled'), ('REJECTED', 'Rejected'), ('CANCELLED', 'Cancelled'), ('EXPIRED', 'Expired'), ('UNKNOWN', 'Unknown')], default='ACCEPTED', max_length=20),
        ),
        migrations.AlterField(
            model_name='order',
            name='user',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='outboxmessage',
            name='event',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='outbox', to='trading.event'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['status'], name='order_status'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(condition=models.Q(('order_type__in', ['STOP_LOSS', 'TAKE_PROFIT', 'TRAILING_STOP', 'OCO']), ('status__in', ['TRIGGERED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN'])), fields=['trade'], name='order_trade_closing'),
        ),
        # Django adds a LIKE index to a CharField primary key by itself; event ids are never
        # matched by prefix.
        migrations.RunSQL(
            "DROP INDEX IF EXISTS trading_event_id_97e760ea_like",
            "CREATE INDEX IF NOT EXISTS trading_event_id_97e760ea_like ON trading_event (id varchar_pattern_ops)",
        ),
    ]
