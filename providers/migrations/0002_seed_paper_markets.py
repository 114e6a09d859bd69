"""Seed the paper venue's default markets (BTC, ETH, SOL, EUR, GBP, XAU); edit them in the admin."""

from django.db import migrations


def seed_markets(apps, schema_editor):
    from providers.paper.seed import markets_ensure

    markets_ensure(model=apps.get_model("providers", "PaperMarket"))


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0001_paper_venue_and_routes"),
    ]

    operations = [
        migrations.RunPython(seed_markets, migrations.RunPython.noop),
    ]
