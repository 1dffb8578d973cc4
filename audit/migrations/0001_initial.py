"""The audit trail moves from portal into its own app (portal.0006 forgets the model). Only
Django's state moves: the table keeps its name (portal_auditevent) and its PostgreSQL
append-only trigger (portal.0004). The content type is relabelled, so the auditors' permission
and the admin log follow; on a fresh database, where the roles migration ran before this app
had a model, the auditor role is granted its permission here."""

import django.db.models.deletion
from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def move_content_type(apps, schema_editor) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    if not content_types.filter(app_label="audit", model="auditevent").exists():
        content_types.filter(app_label="portal", model="auditevent").update(app_label="audit")
    create_permissions(global_apps.get_app_config("audit"), apps=apps, verbosity=0)
    auditor = apps.get_model("auth", "Group").objects.filter(name="auditor").first()
    if auditor is not None:
        auditor.permissions.add(apps.get_model("auth", "Permission").objects.get(
            content_type__app_label="audit", codename="view_auditevent"))


def restore_content_type(apps, schema_editor) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    if not content_types.filter(app_label="portal", model="auditevent").exists():
        content_types.filter(app_label="audit", model="auditevent").update(app_label="portal")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("orders", "0008_ledger_entry_moves_to_orders"),
        ("portal", "0006_audit_event_moves_to_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='AuditEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('action', models.CharField(choices=[('placed', 'Placed'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('submitted', 'Submitted'), ('polled', 'Polled'), ('status_changed', 'Status Changed'), ('cancelled', 'Cancelled'), ('codes_stored', 'Codes Stored'), ('duplicate_code', 'Duplicate Code'), ('needs_attention', 'Needs Attention'), ('revealed', 'Revealed'), ('exported', 'Exported'), ('credentials_changed', 'Credentials Changed'), ('keys_rotated', 'Keys Rotated'), ('catalog_synced', 'Catalog Synced'), ('balance_synced', 'Balance Synced'), ('sync_failed', 'Sync Failed'), ('limits_changed', 'Limits Changed'), ('topped_up', 'Topped Up'), ('repoll_asked', 'Repoll Asked'), ('resolved', 'Resolved'), ('logged_in', 'Logged In'), ('login_failed', 'Login Failed'), ('vendor_created', 'Vendor Created'), ('vendor_changed', 'Vendor Changed'), ('vendor_deleted', 'Vendor Deleted'), ('groups_changed', 'Groups Changed'), ('permissions_changed', 'Permissions Changed'), ('user_flags_changed', 'User Flags Changed'), ('audit_exported', 'Audit Exported')], max_length=32)),
                    ('target_id', models.CharField(blank=True, max_length=64)),
                    ('message', models.CharField(blank=True, max_length=500)),
                    ('data', models.JSONField(blank=True, default=dict)),
                    ('actor', models.ForeignKey(blank=True, help_text='Empty when the system acted (a worker or a command).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('order', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='events', to='orders.order')),
                    ('target_type', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='contenttypes.contenttype')),
                ],
                options={
                    'db_table': 'portal_auditevent',
                    'ordering': ['-created_at', '-id'],
                    'indexes': [models.Index(fields=['order', 'created_at'], name='portal_audi_order_i_5c28b6_idx'), models.Index(fields=['target_type', 'target_id'], name='portal_audi_target__26f874_idx'), models.Index(fields=['action', 'created_at'], name='portal_audi_action_7ec42e_idx')],
                },
            ),
        ]),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
