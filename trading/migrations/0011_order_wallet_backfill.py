# Backfill of the order's wallet link and origin. Its own migration: updating the new foreign key
# in the migration that adds it leaves deferred constraint checks pending when its index is
# created at the end, which PostgreSQL refuses.

from django.db import migrations
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Upper


def backfill(apps, schema_editor):
    """Link each order to the Wallet row of its user with its `wallet_address` (addresses
    compared case-insensitively: older rows may not be checksummed); orders whose address is no
    wallet of their user keep only the address. Protective orders get origin `protective`."""
    Order = apps.get_model("trading", "Order")
    Wallet = apps.get_model("trading", "Wallet")
    match = (
        Wallet.objects.annotate(upper_address=Upper("wallet_address"))
        .filter(user_id=OuterRef("user_id"), upper_address=Upper(OuterRef("wallet_address")))
        .order_by("id")
        .values("id")[:1]
    )
    Order.objects.filter(wallet__isnull=True).exclude(wallet_address__isnull=True).exclude(wallet_address="").update(
        wallet_id=Subquery(match)
    )
    Order.objects.filter(order_type__in=["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "OCO"]).update(
        origin="protective"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0010_order_wallet_origin'),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
