"""Paper trades, orders and reconciliation breaks named their pair by the market symbol; the
paper venue now numbers its pairs (providers 0007): the references follow."""

from django.db import migrations


def renumber(apps, schema_editor):
    numbers = dict(apps.get_model("providers", "PaperMarket").objects.values_list("symbol", "pair_id"))
    for model, venue_field in (("Trade", "provider"), ("Order", "provider"), ("ReconciliationBreak", "venue")):
        rows = apps.get_model("trading", model).objects.filter(**{venue_field: "paper"})
        for symbol, number in numbers.items():
            rows.filter(pair_id=symbol).update(pair_id=str(number))


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0016_protective_asset_state_per_venue"),
        ("providers", "0007_paper_market_pair_id"),
    ]

    operations = [migrations.RunPython(renumber, migrations.RunPython.noop)]
