"""The ledger now lives in orders (orders.0008): vendors forgets its model, not the table."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0008_ledger_entry_moves_to_orders"),
        ("vendors", "0002_estimated_debits_and_early_polls"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name="LedgerEntry"),
        ]),
    ]
