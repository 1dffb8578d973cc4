"""CSV export of the audit trail. Writing the export's own audit row comes first, so every
export that starts streaming is already on record."""

from collections.abc import Iterator

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet

from audit import services as audit
from audit.models import AuditEvent
from orders.exports import neutralise

COLUMNS = ["id", "when", "who", "action", "target type", "target id", "order", "message",
           "data"]
CHUNK = 1000


def can_view_audit(user) -> bool:
    """The audit trail is for auditors (the audit.view_auditevent permission)."""
    return user.is_active and user.has_perm("audit.view_auditevent")


def export_rows(*, events: QuerySet[AuditEvent], user, filters: dict) -> Iterator[list[str]]:
    """Check, audit, then give the rows (header first). Raises PermissionDenied before
    anything is written."""
    if not can_view_audit(user):
        raise PermissionDenied("You may not read the audit trail.")
    with transaction.atomic():
        count = events.count()
        audit.record(
            action=audit.Action.AUDIT_EXPORTED, actor=user,
            message=f"Exported {count} audit events",
            data={"events": count, "filters": {k: str(v) for k, v in filters.items()}},
        )
    return _rows(events)


def _rows(events: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    yield COLUMNS
    for event in events.iterator(chunk_size=CHUNK):
        yield [neutralise(value) for value in (
            event.pk,
            event.created_at.isoformat(timespec="seconds"),
            event.actor.get_username() if event.actor else "system",
            event.action,
            event.target_type.model if event.target_type else "",
            event.target_id,
            event.order.reference if event.order else "",
            event.message,
            event.data,
        )]
