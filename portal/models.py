from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEvent(models.Model):
    """Who did what to which object, written in the same transaction as the change itself."""

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

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="Empty when the system acted (a worker or a command).",
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["order", "created_at"]),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["action", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target_type} {self.target_id}".strip()
