"""The protective engine's price state is kept per venue and asset: orders are evaluated at the
price of the venue holding them. The table only caches the engine's last view (whether an asset's
price is stale, to raise `price.stale` once): it is recreated empty and refilled by the next
evaluation."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0015_idempotency_user_index_covered'),
    ]

    operations = [
        migrations.DeleteModel(name='ProtectiveAssetState'),
        migrations.CreateModel(
            name='ProtectiveAssetState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('venue', models.CharField(max_length=32)),
                ('asset', models.CharField(max_length=32)),
                ('last_price', models.DecimalField(blank=True, decimal_places=18, max_digits=38, null=True)),
                ('last_price_at', models.DateTimeField(blank=True, null=True)),
                ('last_source', models.CharField(blank=True, default='', max_length=32)),
                ('stale', models.BooleanField(default=False)),
                ('stale_since', models.DateTimeField(blank=True, null=True)),
                ('evaluated_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['venue', 'asset'],
                'constraints': [
                    models.UniqueConstraint(fields=('venue', 'asset'), name='protective_asset_state_venue_asset')
                ],
            },
        ),
    ]
