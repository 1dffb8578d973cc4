"""Writing audit events. Callers run inside the transaction of the change they record."""

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from portal.models import AuditEvent

Action = AuditEvent.Action


def record(
    *,
    action: str,
    target: models.Model | None = None,
    actor=None,
    order=None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor if actor is not None and actor.is_authenticated else None,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        order=order,
        message=message[:500],
        data=data or {},
    )
