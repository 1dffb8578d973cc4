"""The reports' permission (orders.view_reports), granted to the roles of portal.roles that
hold it: on a database whose role groups exist already, and on a fresh one, where the roles
migration (portal.0002) ran before the permission existed."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

from portal.roles import ROLES

PERMISSION = "orders.view_reports"


def grant(apps, schema_editor) -> None:
    create_permissions(global_apps.get_app_config("orders"), apps=apps, verbosity=0)
    permission = apps.get_model("auth", "Permission").objects.get(
        content_type__app_label="orders", codename="view_reports")
    roles = [name for name, permissions in ROLES.items() if PERMISSION in permissions]
    for group in apps.get_model("auth", "Group").objects.filter(name__in=roles):
        group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0008_ledger_entry_moves_to_orders"),
        ("portal", "0002_roles"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("approve_order", "Can approve or reject orders"),
                    ("reveal_codes", "Can reveal voucher codes"),
                    ("export_codes", "Can export voucher codes"),
                    ("view_reports", "Can see spend and supplier reports"),
                ],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
