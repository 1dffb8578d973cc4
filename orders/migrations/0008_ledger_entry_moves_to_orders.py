"""The ledger moves from vendors to orders: its entries point at orders, and vendors must not
depend on orders. Only Django's state moves; the table keeps its name (vendors_ledgerentry),
and the content type (with its permissions and admin log entries) is relabelled."""

import django.db.models.deletion
from django.db import migrations, models


def relabel(source: str, target: str):
    def run(apps, schema_editor) -> None:
        content_types = apps.get_model("contenttypes", "ContentType").objects
        if not content_types.filter(app_label=target, model="ledgerentry").exists():
            content_types.filter(app_label=source, model="ledgerentry").update(app_label=target)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("orders", "0007_supplier_event"),
        ("vendors", "0002_estimated_debits_and_early_polls"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name="LedgerEntry",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("kind", models.CharField(choices=[("reserve", "Reserve"), ("release", "Release"), ("debit", "Debit"), ("report", "Report"), ("difference", "Difference"), ("adjustment", "Adjustment")], max_length=10)),
                    ("amount", models.DecimalField(decimal_places=4, max_digits=18)),
                    ("note", models.CharField(blank=True, max_length=300)),
                    ("estimated", models.BooleanField(default=False, help_text="A debit the supplier did not state: the portal's estimate, corrected by the next balance sync.")),
                    ("created_at", models.DateTimeField(auto_now_add=True)),
                    ("balance", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="entries", to="vendors.balance")),
                    ("order", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="orders.order")),
                    ("reconciled_by", models.ForeignKey(blank=True, help_text="For an estimated debit: the balance sync difference that settled it.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name="reconciles", to="orders.ledgerentry")),
                    ("vendor_order", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="orders.vendororder")),
                ],
                options={
                    "verbose_name_plural": "ledger entries",
                    "db_table": "vendors_ledgerentry",
                    "ordering": ["created_at", "id"],
                    "indexes": [models.Index(fields=["balance", "created_at"], name="vendors_led_balance_1663bc_idx")],
                },
            ),
        ]),
        migrations.RunPython(relabel("vendors", "orders"), relabel("orders", "vendors")),
    ]
