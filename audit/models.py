from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AppendOnlyError(Exception):
    """An audit row was about to be changed or deleted: the trail only grows."""


class AuditEventQuerySet(models.QuerySet):
    """Rows are only ever inserted: bulk updates and deletes refuse (PostgreSQL's trigger
    refuses the rest, see migration portal.0004)."""

    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """Who did what to which object, written in the same transaction as the change itself.
    Append-only: neither the ORM (save of an existing row, delete, update) nor the admin
    changes a row, and the objects it points at cannot be deleted from under it (PROTECT)."""

    class Action(models.TextChoices):
        PLACED = "placed"
        APPROVED = "approved"
        REJECTED = "rejected"
        SUBMITTED = "submitted"
        POLLED = "polled"
        STATUS_CHANGED = "status_changed"
        CANCELLED = "cancelled"
        CODES_STORED = "codes_stored"
        DUPLICATE_CODE = "duplicate_code"
        NEEDS_ATTENTION = "needs_attention"
        REVEALED = "revealed"
        EXPORTED = "exported"
        CREDENTIALS_CHANGED = "credentials_changed"
        KEYS_ROTATED = "keys_rotated"
        CATALOG_SYNCED = "catalog_synced"
        BALANCE_SYNCED = "balance_synced"
        SYNC_FAILED = "sync_failed"
        LIMITS_CHANGED = "limits_changed"
        TOPPED_UP = "topped_up"
        REPOLL_ASKED = "repoll_asked"
        RESOLVED = "resolved"
        LOGGED_IN = "logged_in"
        LOGIN_FAILED = "login_failed"
        VENDOR_CREATED = "vendor_created"
        VENDOR_CHANGED = "vendor_changed"
        VENDOR_DELETED = "vendor_deleted"
        GROUPS_CHANGED = "groups_changed"
        PERMISSIONS_CHANGED = "permissions_changed"
        USER_FLAGS_CHANGED = "user_flags_changed"
        AUDIT_EXPORTED = "audit_exported"
        CATALOG_MATCHED = "catalog_matched"
        FELL_BACK = "fell_back"

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", help_text="Empty when the system acted (a worker or a command).",
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        # The table keeps the name it had when the model lived in portal (audit.0001).
        db_table = "portal_auditevent"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["order", "created_at"]),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["action", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target_type} {self.target_id}".strip()

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")
