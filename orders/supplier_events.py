"""Supplier events: what a webhook delivery, once verified, does to the portal's orders.

An event is a hint and nothing more. A verified event about an open supplier order makes it due
at once and queues its job through the dispatcher's own claim, so the worker polls the
supplier's API, and the codes come from that poll, never from the event's body (which is
neither stored nor logged). The request does no supplier call and answers at once.

A delivery proves itself by the HMAC signature made with the vendor's ``webhook_secret``
credential (vendors.adapters.starship_webhook checks it and the timestamp). An event id seen
before for the vendor is acknowledged and ignored (the supplier retries until it
hears 2xx), as is an event about an order the portal does not hold, or about nothing to fetch
(``order.created``, ``order.pending``: the submission's own answer says as much).

Claims: when a job holds the order (its claim set, no next poll), the event takes the claim
over for a new job, as the sweep does for a lost one: every write of the old job is conditional
on its claim, so it ends without acting. Only PROCESSING orders are taken over; a submission
or a reconciliation in flight is never interrupted.
"""

import logging
import time
from collections.abc import Mapping
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from orders.dispatch import claim_and_enqueue
from orders.models import SupplierEvent, VendorOrder
from vendors.adapters import starship_webhook
from vendors.credentials import open_credentials
from vendors.models import Vendor

logger = logging.getLogger(__name__)

# Event ids are kept past the supplier's last retry (about 7 h after the first delivery).
KEEP_EVENTS = timedelta(days=2)


class NoEndpoint(Exception):
    """The vendor does not exist, is not a Starship vendor, or has no webhook secret."""


Refused = starship_webhook.Refused


def receive_starship_delivery(*, vendor_id: int, body: bytes, headers: Mapping[str, str]) -> str:
    """Verify one delivery (signature, timestamp) and act on its event. Raises ``NoEndpoint``,
    or ``Refused`` with the HTTP status to answer; returns what was done, in a few words."""
    vendor = Vendor.objects.filter(pk=vendor_id, kind="starship").first()
    secret = open_credentials(vendor).get("webhook_secret") if vendor else ""
    if not secret:
        raise NoEndpoint(vendor_id)
    try:
        starship_webhook.verify(
            secret=secret, body=body, now=time.time(),
            timestamp=headers.get(starship_webhook.TIMESTAMP_HEADER, ""),
            signature_header=headers.get(starship_webhook.SIGNATURE_HEADER, ""),
        )
        event = starship_webhook.parse(body)
    except Refused as exc:
        logger.warning("Starship webhook for vendor %s refused: %s", vendor.pk, exc.reason)
        raise
    outcome = receive_event(vendor=vendor, event=event)
    logger.info("Starship webhook for vendor %s: %s %s (order %s): %s", vendor.pk, event.name,
                event.event_id, event.supplier_order_id, outcome)
    return outcome


@transaction.atomic
def receive_event(*, vendor: Vendor, event: starship_webhook.Event) -> str:
    """When the event is news about an open supplier order, and its id was not seen before,
    remember the id, make the order due now and queue it (on commit). Returns what was done,
    in a few words."""
    vo = VendorOrder.objects.filter(
        vendor=vendor, supplier_order_id=event.supplier_order_id
    ).select_related("order").first()
    if vo is None:
        return "no such order here, ignored"
    if not event.is_news:
        return "nothing to fetch"
    now = timezone.now()
    try:
        with transaction.atomic():
            SupplierEvent.objects.create(vendor=vendor, event_id=event.event_id, name=event.name,
                                         supplier_order_id=event.supplier_order_id)
    except IntegrityError:
        return "repeated event, ignored"
    SupplierEvent.objects.filter(received_at__lt=now - KEEP_EVENTS).delete()
    taken = VendorOrder.objects.filter(
        pk=vo.pk, status=VendorOrder.Status.PROCESSING, attention=""
    ).update(next_poll_at=now)
    if not taken:
        return "not waiting for the supplier, ignored"
    audit.record(action=audit.Action.REPOLL_ASKED, target=vo, order=vo.order,
                 message=f"{vo.client_reference}: the supplier sent {event.name}; polling now",
                 data={"event": event.name, "event_id": event.event_id})
    transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return "poll queued"
