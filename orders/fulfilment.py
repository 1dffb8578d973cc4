"""The supplier-order state machine: what a worker does with one supplier order, and the
only place a supplier order's status changes (``transition``).

The contract (DESIGN.md, "Never buy twice, never lose a code"):
- A VendorOrder and its client reference are committed before its supplier is called, and the
  reference is the supplier's idempotency key.
- A submission whose outcome is unknown is reconciled by looking the order up by our
  reference; only a confirmed absence allows sending it again.
- Codes are stored encrypted in the transaction that moves the VendorOrder to its final
  status, together with the ledger settlement and the audit rows.

Every write is conditional on the claim the job was given (orders.dispatch): a job whose
supplier order was given back by the sweep acts no more. Supplier trouble never raises out of
``advance``: it becomes a retry, a back-off, or a person's attention, with an audit row saying
why.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services. Fulfilment imports pricing and
lines (a line whose supplier refused or ran out falls back to the next offer of its item:
``_fall_back``) and neither dispatch nor services; jobs call it.
"""

import logging
import random
import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import services as audit
from common.http import Kind, SupplierError
from common.money import MoneyError, format_money
from orders import alerts, ledger
from orders.custody import seal
from orders.errors import OrderError
from orders.lines import add_line
from orders.models import Order, OrderLine, VendorOrder, Voucher
from orders.pricing import Router, codes
from vendors.adapters.base import OrderRequest, OrderResult, SupplierStatus
from vendors.services import adapter_for

logger = logging.getLogger(__name__)

Status = VendorOrder.Status


def transition(vo: VendorOrder, status: str, *, order: Order, message: str,
               action: str = audit.Action.STATUS_CHANGED, actor=None, data: dict | None = None,
               **fields) -> bool:
    """Move ``vo`` to ``status`` (setting ``fields`` too) and write the audit row saying why,
    ``"<client reference>: <message>"``, in one transaction. The only way a supplier order's
    status changes. The caller holds ``order`` locked.

    Conditional on the claim ``vo`` was loaded with: returns False, changing and writing
    nothing, when the row no longer holds it (the sweep gave it to another job)."""
    changes = {"status": status, **fields}
    with transaction.atomic():
        if not _mine(vo).update(**changes, updated_at=timezone.now()):
            return False
        for name, value in changes.items():
            setattr(vo, name, value)
        audit.record(action=action, target=vo, actor=actor, order=order,
                     message=f"{vo.client_reference}: {message}", data=data)
    return True


def advance(*, vendor_order_id: int, claim: str | None = None) -> str:
    """Do whatever a supplier order needs next. Safe to run twice; never raises on supplier
    trouble (a job must not crash-loop): problems become a retry or a person's attention.

    ``claim`` is the token of the job's claim: when the row no longer holds it (the sweep gave
    the order back), the job does nothing; every write below is conditional on it too."""
    vo = VendorOrder.objects.select_related("vendor", "order", "line").get(pk=vendor_order_id)
    if claim is not None and vo.claim_token != claim:
        return "given back by the sweep; another job has it"
    if vo.status in Status.FINAL or vo.attention:
        _unclaim(vo)
        return "nothing to do"
    try:
        if vo.status == Status.CREATED:
            return _submit(vo)
        if vo.status in (Status.SENDING, Status.UNKNOWN):
            return _reconcile(vo)
        return _poll(vo)
    except SupplierError as exc:
        return _supplier_trouble(vo, exc)
    except MoneyError as exc:
        return _attention(vo, f"supplier sent an amount the portal cannot read: {exc}")
    except Exception as exc:
        logger.exception("advancing vendor order %s failed", vo.pk)
        return _attention(vo, f"internal error ({type(exc).__name__}); see the worker log")


def _submit(vo: VendorOrder) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        if locked.claim_token != vo.claim_token:
            return "given back by the sweep; not sending"
        if locked.status != Status.CREATED:
            return "already sent"
        if order.status in Order.Status.UNRELEASED:
            # Only approve_order releases an order; whatever queued this job, never send.
            VendorOrder.objects.filter(pk=vo.pk).update(next_poll_at=None, claimed_at=None)
            return "not sent: its order is not approved"
        attempt = locked.attempts + 1
        transition(locked, Status.SENDING, order=order, message=f"sending, attempt {attempt}",
                   attempts=attempt, submitted_at=locked.submitted_at or timezone.now())
    vo.refresh_from_db()
    vo.claim_token = locked.claim_token  # the job's, even if the sweep takes it back now
    result = adapter_for(vo.vendor).submit_order(order_request(vo))
    return apply_result(vo, result, audit.Action.SUBMITTED)


def order_request(vo: VendorOrder) -> OrderRequest:
    """What we ask the supplier for; reads pass it too, for what their answers leave out."""
    line, product = vo.line, vo.line.product
    return OrderRequest(
        client_reference=vo.client_reference, product_id=product.supplier_product_id,
        sku=product.sku, quantity=vo.quantity, currency=vo.currency,
        unit_price=line.unit_cost,
        denomination=line.face_value if product.denomination_type == "open" else None,
        face_value=line.face_value,
        pay_with_currency=line.pay_with_currency,
    )


def _reconcile(vo: VendorOrder) -> str:
    adapter = adapter_for(vo.vendor)
    if not adapter.has_lookup:
        return _attention(
            vo, "the supplier's answer to our order was lost and it offers no look-up by "
            "our reference: check with the supplier before resending",
        )
    try:
        result = adapter.lookup_order(vo.client_reference, order=order_request(vo))
    except SupplierError as exc:
        # a failed look-up says nothing of the order: never a reason to resend it or fail it
        return _read_trouble(vo, exc)
    if result is None:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if not transition(vo, Status.CREATED, order=order,
                              message="the supplier confirms it has no such order; sending it "
                              "again", next_poll_at=timezone.now(), claimed_at=None):
                return "given back by the sweep"
        return "confirmed absent; resending"
    return apply_result(vo, result, audit.Action.POLLED)


def _poll(vo: VendorOrder) -> str:
    if vo.submitted_at and timezone.now() > vo.submitted_at + timedelta(
        seconds=vo.vendor.poll_deadline
    ):
        return _attention(vo, f"no final answer {vo.vendor.poll_deadline // 60} minutes "
                              "after submission")
    result = adapter_for(vo.vendor).fetch_order(vo.supplier_order_id, order=order_request(vo))
    # counted once answered: a fault's retry is no step of the poll schedule's back-off
    _mine(vo).update(polls=F("polls") + 1)
    vo.polls += 1
    return apply_result(vo, result, audit.Action.POLLED)


def _supplier_trouble(vo: VendorOrder, exc: SupplierError) -> str:
    current = VendorOrder.objects.get(pk=vo.pk).status
    if exc.kind is Kind.THROTTLED and exc.status_code is None:
        return _over_budget(vo, exc, sending=current == Status.SENDING)
    if current == Status.SENDING:
        if exc.kind is Kind.OUTCOME_UNKNOWN:
            return _mark_unknown(vo, exc)
        if refused(exc):
            return _fail_submission(vo, exc)
        return _retry_submission(vo, exc)  # throttled, unavailable, malformed: nothing taken
    return _read_trouble(vo, exc)


def _over_budget(vo: VendorOrder, exc: SupplierError, *, sending: bool) -> str:
    """Our own request budget for the supplier is spent (common.http): nothing was sent, so
    it counts as neither an attempt nor a fault."""
    delay = (exc.retry_after or 1) + random.uniform(0, 1)
    if sending:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            attempts = vo.attempts - 1
            if not transition(vo, Status.CREATED, order=order,
                              message=f"not sent ({exc.message}); sending in {delay:.0f}s",
                              attempts=attempts,
                              submitted_at=vo.submitted_at if attempts else None):
                return "given back by the sweep"
    _schedule(vo, _at(delay))
    return f"rate limited for {delay:.1f}s"


def _read_trouble(vo: VendorOrder, exc: SupplierError) -> str:
    """A read (poll, look-up) without a usable answer: soon again, later, or a person."""
    if exc.retryable:
        if vo.faults < settings.ORDER_FAULT_RETRIES:
            return _retry_fault(vo, exc)
        delay = exc.retry_after if exc.retry_after is not None else _backoff(vo)
        _schedule(vo, _at(delay), error=exc.message)
        return f"retry in {delay:.0f}s: {exc.message}"
    return _attention(vo, exc.message)


def _retry_fault(vo: VendorOrder, exc: SupplierError) -> str:
    """A transient fault on a read (429, 5xx, timeout): ask again in a few seconds, jittered,
    after ``Retry-After`` when given. Counted apart from polls, so the schedule keeps its pace."""
    if exc.retry_after is not None:
        delay = exc.retry_after + random.uniform(0.1, 1.0)
    else:
        # slowly growing (2, 3, 4, 5 s ... for 2 s): a fault again soon is bad luck, not a trend
        base = settings.ORDER_FAULT_RETRY_SECONDS * (1 + vo.faults / 2)
        delay = min(15.0, base) * random.uniform(0.75, 1.25)
    _mine(vo).update(
        faults=F("faults") + 1, next_poll_at=_at(delay), claimed_at=None, last_error=exc.message
    )
    return f"transient fault {vo.faults + 1}; retry in {delay:.1f}s: {exc.message}"


def refused(exc: SupplierError) -> bool:
    """The order was declined for good: by the supplier's own 4xx answer, or by the adapter
    before sending (a price that went up, a currency it cannot use). Anything else, such as a
    malformed answer to a preliminary read, is worth another attempt."""
    return exc.kind is Kind.REFUSED


def _mark_unknown(vo: VendorOrder, exc: SupplierError) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        if not transition(
            vo, Status.UNKNOWN, order=order,
            message=f"outcome unknown ({exc.message}); looking it up by our reference before "
            "anything else",
            last_error=exc.message, claimed_at=None, next_poll_at=_at(exc.retry_after or 2),
        ):
            return "given back by the sweep"
        refresh_order(order)
    return "outcome unknown"


def _retry_submission(vo: VendorOrder, exc: SupplierError) -> str:
    """The supplier did not take the order (it said so, or we never reached it): send again."""
    if vo.attempts >= settings.ORDER_SUBMIT_ATTEMPTS:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if not transition(vo, Status.CREATED, order=order,
                              message=f"not accepted ({exc.message}); not sent again"):
                return "given back by the sweep"
            return _attention(vo, f"not accepted after {vo.attempts} attempts: {exc.message}",
                              order=order)
    delay = exc.retry_after if exc.retry_after is not None else _backoff(vo, vo.attempts)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        if not transition(vo, Status.CREATED, order=order,
                          message=f"not accepted ({exc.message}); sending again in "
                          f"{delay:.0f}s", next_poll_at=_at(delay), claimed_at=None,
                          last_error=exc.message):
            return "given back by the sweep"
    return f"resubmit in {delay:.0f}s: {exc.message}"


def _fail_submission(vo: VendorOrder, exc: SupplierError) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        if locked.claim_token != vo.claim_token or locked.status in Status.FINAL:
            return "given back by the sweep"
        _close(locked, order, Status.FAILED, f"refused by the supplier: {exc.message}")
    return f"refused: {exc.message}"


def apply_result(vo: VendorOrder, result: OrderResult, action: str) -> str:
    """Act on the supplier's answer about ``vo`` (to a submission, a poll, a look-up, or an
    order attached by hand): record it, then keep polling, store the codes, close, or ask for
    a person. One transaction, with the order row locked."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        # of=self: FOR UPDATE on a join would lock the vendor's row too, and every order
        # placed meanwhile takes a key-share lock on it (PostgreSQL deadlocked under load).
        locked = VendorOrder.objects.select_for_update(of=("self",)).select_related(
            "line", "vendor").get(pk=vo.pk)
        if locked.status in Status.FINAL:
            return "already final"
        if locked.claim_token != vo.claim_token:
            return "given back by the sweep; another job has it"
        locked.supplier_order_id = result.supplier_order_id or locked.supplier_order_id
        locked.supplier_status = result.raw_status[:64]
        locked.estimated_ready_at = result.estimated_ready_at or locked.estimated_ready_at
        locked.estimated_ready_at = locked.estimated_ready_at or _delivery_estimate(locked)
        locked.details = {**locked.details, **result.details}
        locked.last_error, locked.faults = "", 0
        locked.save(update_fields=["supplier_order_id", "supplier_status", "estimated_ready_at",
                                   "details", "last_error", "faults", "updated_at"])
        audit.record(
            action=action, target=locked, order=order,
            message=f"{locked.client_reference}: supplier says {result.raw_status or result.status}"
            + (f" ({result.message})" if result.message else ""),
            data={"status": str(result.status), "supplier_status": result.raw_status,
                  "supplier_order_id": locked.supplier_order_id,
                  "codes": len(result.codes)},
        )
        if result.status == SupplierStatus.UNKNOWN:
            status = Status.PROCESSING if locked.supplier_order_id else Status.UNKNOWN
            if locked.status != status:
                transition(locked, status, order=order, message=f"{status} until a person "
                           f"reads the supplier's status {result.raw_status!r}")
            return _attention(locked, f"the supplier answered a status the portal does not "
                                      f"know: {result.raw_status!r}", order=order)
        if result.status == SupplierStatus.PROCESSING:
            schedule = {"next_poll_at": _next_poll(locked), "claimed_at": None}
            if locked.status == Status.PROCESSING:
                _mine(locked).update(**schedule)
            else:
                transition(locked, Status.PROCESSING, order=order,
                           message="processing at the supplier", **schedule)
            refresh_order(order)
            return "processing"
        if result.status in (SupplierStatus.COMPLETED, SupplierStatus.PARTIALLY_COMPLETED) or (
            result.codes  # a failed or cancelled order may still have delivered some codes
        ):
            return _complete(locked, order, result)
        _close(locked, order, Status(result.status.value),
               result.message or f"supplier says {result.raw_status}")
        return str(result.status)


def _complete(vo: VendorOrder, order: Order, result: OrderResult) -> str:
    """Store the codes, settle the ledger and finish the supplier order: one transaction."""
    delivered = len(result.codes)
    vouchers, duplicates = [], []
    seen: set[str] = set()
    for info in result.codes:
        voucher = Voucher(order=order, vendor_order=vo, serial=info.serial[:128],
                          expires_at=info.expires_at)
        seal(voucher, code=info.code, pin=info.pin, claim_url=info.claim_url)
        voucher.duplicate = voucher.code_index in seen
        seen.add(voucher.code_index)
        vouchers.append(voucher)
    already = set(
        Voucher.objects.filter(code_index__in=seen).values_list("code_index", flat=True)
    )
    for voucher in vouchers:
        voucher.duplicate = voucher.duplicate or voucher.code_index in already
        if voucher.duplicate:
            duplicates.append(voucher)
    Voucher.objects.bulk_create(vouchers)

    # Debit what the supplier says it charged; where it does not say, an estimate marked so.
    spent, estimated = vo.line.unit_cost * delivered, bool(delivered)
    if result.cost is not None and result.cost.currency == vo.currency and delivered:
        spent, estimated = result.cost.amount, result.cost_estimated
    status = Status.COMPLETED if delivered >= vo.quantity else Status.PARTIALLY_COMPLETED
    if delivered == 0:
        status = Status.FAILED
    note = f"{delivered} of {vo.quantity} delivered"
    if result.status == SupplierStatus.COMPLETED and delivered < vo.quantity:
        note += " although the supplier says completed"
    if estimated:
        note += "; charge estimated, the supplier did not state it"
    _close(vo, order, status, note, delivered=delivered, spent=spent, estimated=estimated)
    audit.record(
        action=audit.Action.CODES_STORED, target=vo, order=order,
        message=f"{vo.client_reference}: {codes(delivered)} stored encrypted",
        data={"delivered": delivered, "quantity": vo.quantity},
    )
    for voucher in duplicates:
        audit.record(
            action=audit.Action.DUPLICATE_CODE, target=voucher, order=order,
            message=f"{vo.client_reference}: code ending {voucher.last4} was already in the "
            "portal: a supplier delivered the same code twice",
        )
    if delivered > vo.quantity:
        return _attention(vo, f"the supplier delivered {delivered} codes for {vo.quantity}",
                          order=order)
    return str(status)


def _close(vo: VendorOrder, order: Order, status: str, note: str, *, delivered: int = 0,
           spent: Decimal = Decimal("0"), estimated: bool = False) -> None:
    """Finish a supplier order: final status, ledger settled, order refreshed, audited. The
    caller holds ``order`` and ``vo`` locked and checked the claim."""
    transition(vo, status, order=order, message=f"{status} ({note})",
               delivered_quantity=delivered, cost=spent, completed_at=timezone.now(),
               next_poll_at=None, claimed_at=None,
               last_error="" if status != Status.FAILED else note[:1000])
    ledger.settle(vendor=vo.vendor, currency=vo.currency, reserved=reserved(vo), spent=spent,
                  order=order, vendor_order=vo, note=note[:300], estimated=estimated)
    if delivered:
        OrderLine.objects.filter(pk=vo.line_id).update(
            delivered_quantity=F("delivered_quantity") + delivered
        )
    if status in FELL_SHORT and delivered < vo.quantity and order.allow_other_suppliers:
        _fall_back(vo, order, vo.quantity - delivered, note)
    refresh_order(order)


# A supplier order closed so, with codes missing, is offered to the item's next offer.
FELL_SHORT = frozenset({Status.FAILED, Status.CANCELLED, Status.PARTIALLY_COMPLETED})


def _fall_back(vo: VendorOrder, order: Order, missing: int, why: str) -> OrderLine | None:
    """Order what ``vo`` missed from the cheapest offer of its line's item that this order
    has not tried, paid in the order's currency; due at once (orders.dispatch sends it). The
    order's total moves by the difference in cost, which the new line shows. Nothing when no
    other offer can take it: the audit row says why."""
    line = vo.line
    if line.item_id is None:
        return None
    tried = OrderLine.objects.filter(order=order, item_id=line.item_id).values_list(
        "vendor_id", flat=True)
    router = Router.for_items([line.item_id])
    try:
        priced = router.route(item=line.item, quantity=missing,
                              face_value=line.face_value, pay_currency=order.currency,
                              exclude_vendor_ids=set(tried))
        new_line = add_line(order, priced, replaces=line, routing_note=(
            f"Fallback for {codes(missing)} {vo.vendor} did not deliver ({why}). "
            f"{priced.routing_note}"))
    except OrderError as exc:
        audit.record(action=audit.Action.FELL_BACK, target=vo, order=order,
                     message=f"{vo.client_reference}: no other offer takes the "
                     f"{codes(missing)} missing: {exc.message}"[:500])
        return None
    difference = priced.total - line.unit_cost * missing
    order.total_cost += difference
    order.save(update_fields=["total_cost", "updated_at"])
    new_line.vendor_orders.update(next_poll_at=timezone.now())
    audit.record(
        action=audit.Action.FELL_BACK, target=vo, order=order,
        message=f"{vo.client_reference}: {codes(missing)} missing, ordered from "
        f"{priced.product.vendor} instead ({'+' if difference >= 0 else ''}"
        f"{format_money(difference, order.currency)})"[:500],
        data={"line": new_line.pk, "replaces": line.pk, "product": priced.product.pk,
              "difference": str(difference)},
    )
    return new_line



def reserved(vo: VendorOrder) -> Decimal:
    """What placing the order reserved in the ledger for ``vo``."""
    return vo.line.unit_cost * vo.quantity


def _attention(vo: VendorOrder, reason: str, *, order: Order | None = None) -> str:
    """Stop acting on a supplier order until a person looks; say why."""
    with transaction.atomic():
        order = order or Order.objects.select_for_update().get(pk=vo.order_id)
        if not _mine(vo).update(
            attention=reason[:300], next_poll_at=None, claimed_at=None, last_error=reason
        ):
            return "given back by the sweep"
        audit.record(action=audit.Action.NEEDS_ATTENTION, target=vo, order=order,
                     message=f"{vo.client_reference}: {reason}"[:500])
        refresh_order(order)
    return f"needs attention: {reason}"


def _schedule(vo: VendorOrder, when: datetime, error: str = "") -> None:
    fields = {"next_poll_at": when, "claimed_at": None}
    if error:
        fields["last_error"] = error
    _mine(vo).update(**fields)


def _unclaim(vo: VendorOrder) -> None:
    _mine(vo).update(claimed_at=None)


def _mine(vo: VendorOrder):
    """The row, as long as it still holds the claim ``vo`` was loaded with (the job's)."""
    return VendorOrder.objects.filter(pk=vo.pk, claim_token=vo.claim_token)


def _at(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=max(0.0, seconds))


def _backoff(vo: VendorOrder, step: int | None = None) -> float:
    """Early, then slower: the first delay, then 2.5, 5, 10 ... times it (2, 5, 10, 20 s for
    the default 2 s), up to the vendor's longest wait; jittered."""
    step = vo.polls if step is None else step
    first = vo.vendor.first_poll_delay
    base = first if step <= 0 else first * 2.5 * 2 ** min(step - 1, 12)
    return min(vo.vendor.max_poll_interval, base) * random.uniform(0.8, 1.2)


def _next_poll(vo: VendorOrder) -> datetime:
    """At the supplier's estimate while it lies ahead, else early and backing off."""
    now = timezone.now()
    if vo.estimated_ready_at and vo.estimated_ready_at > now:
        return vo.estimated_ready_at + timedelta(seconds=random.uniform(0, 1))
    return _at(_backoff(vo, vo.polls))


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|second|m|min|minute|h|hour|d|day)?s?\s*$",
                      re.IGNORECASE)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _delivery_estimate(vo: VendorOrder) -> datetime | None:
    """When the supplier's catalog gives a delivery time as a duration ("15 minutes", 900),
    the order is expected that long after submission. INSTANT / DELAYED give no time."""
    match = DURATION.match(str(vo.line.product.extra.get("delivery_time") or ""))
    if not match or not vo.submitted_at:
        return None
    unit = UNIT_SECONDS[(match.group(2) or "s")[0].lower()]
    return vo.submitted_at + timedelta(seconds=float(match.group(1)) * unit)


def refresh_order(order: Order) -> None:
    """Derive the order's status and counts from its supplier orders (order row is locked).
    The one place an order comes to need attention or to be done: orders.alerts tells."""
    if order.status in Order.Status.UNRELEASED:
        return
    previous = order.status
    vos = list(order.vendor_orders.all())
    delivered = sum(vo.delivered_quantity for vo in vos)
    if any(vo.attention and vo.status not in Status.FINAL for vo in vos):
        status = Order.Status.NEEDS_ATTENTION
    elif all(vo.status in Status.FINAL for vo in vos):
        if delivered >= order.quantity:
            status = Order.Status.COMPLETED
        elif delivered:
            status = Order.Status.PARTIALLY_COMPLETED
        elif all(vo.status == Status.CANCELLED for vo in vos):
            status = Order.Status.CANCELLED
        else:
            status = Order.Status.FAILED
    elif any(vo.status != Status.CREATED for vo in vos):
        status = Order.Status.IN_PROGRESS
    else:
        status = Order.Status.QUEUED
    order.status, order.delivered_quantity = status, delivered
    order.completed_at = timezone.now() if all(vo.status in Status.FINAL for vo in vos) else None
    order.save(update_fields=["status", "delivered_quantity", "completed_at", "updated_at"])
    alerts.order_status_changed(order, previous)
