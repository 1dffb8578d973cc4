"""Reads of the audit trail for the audit page and its export."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""  # a username
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None
    order: str = ""  # an order reference


@dataclass(frozen=True)
class AuditPage:
    rows: list
    has_next: bool
    next_before: int | None  # the next page holds the events older than this id
    keyset = True


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The events matching ``filters``, newest first (by id: the order rows were written)."""
    events = AuditEvent.objects.select_related("actor", "order", "target_type")
    if filters.actor:
        events = events.filter(actor__username=filters.actor)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.date_from:
        events = events.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        events = events.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.order:
        events = events.filter(order__reference=filters.order.strip().upper())
    return events.order_by("-id")


def audit_page(events: QuerySet[AuditEvent], *, size: int,
               before: int | None = None) -> AuditPage:
    """One page of ``events`` older than the id ``before``: one query, no COUNT."""
    if before is not None:
        events = events.filter(id__lt=before)
    rows = list(events[:size + 1])
    more, rows = len(rows) > size, rows[:size]
    return AuditPage(rows=rows, has_next=more, next_before=rows[-1].pk if more else None)
