"""The paper venue numbers its pairs (the seed API's integer `pair_id`, as Ostium's): existing
markets are numbered from 1 in the order they were created."""

from django.db import migrations, models


def number_markets(apps, schema_editor):
    PaperMarket = apps.get_model("providers", "PaperMarket")
    for number, market in enumerate(PaperMarket.objects.order_by("pk"), start=1):
        PaperMarket.objects.filter(pk=market.pk).update(pair_id=number)


class Migration(migrations.Migration):
    dependencies = [("providers", "0006_reference_prices")]

    operations = [
        migrations.AddField(
            model_name="papermarket",
            name="pair_id",
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.RunPython(number_markets, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="papermarket",
            name="pair_id",
            field=models.PositiveIntegerField(
                blank=True,
                unique=True,
                help_text="The venue's number for the pair, as trades and the API show it (the next free one when empty).",
            ),
        ),
    ]
