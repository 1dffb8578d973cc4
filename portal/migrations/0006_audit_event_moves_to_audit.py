"""The audit trail now lives in its own app (audit.0001): portal forgets the model, not the
table."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("portal", "0005_audit_actions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name="AuditEvent"),
        ]),
    ]
