"""Create the role groups of portal.roles with their permissions.

Permissions are normally created after all migrations ran (post_migrate); they are created
here first so that this migration also works on a fresh database. A permission that does not
exist yet at this point, of an app whose models come later (the audit trail's, audit.0001) or
added to a model later (orders.view_reports, orders.0009), is granted by that migration.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

from portal.roles import ROLES


def create_roles(apps, schema_editor) -> None:
    for label in ("orders", "vendors", "django_rq"):
        create_permissions(global_apps.get_app_config(label), apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, dotted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for perm in dotted:
            app_label, codename = perm.split(".")
            permissions.extend(Permission.objects.filter(content_type__app_label=app_label,
                                                         codename=codename))
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("portal", "0001_initial"),
        ("orders", "0004_spend_limits_rejection_and_confirmation_token"),
        ("vendors", "0001_initial"),
        ("django_rq", "0003_alter_dashboard_permission_names"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
