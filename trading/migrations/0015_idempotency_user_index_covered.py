"""The idempotency record's own user index: the unique (user, key) index leads with the user and
serves every look-up by user, and each claim (one per keyed write) no longer updates a second one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0014_trade_protection_sync_due'),
    ]

    operations = [
        migrations.AlterField(
            model_name='idempotencyrecord',
            name='user',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
