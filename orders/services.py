"""Writes for the whole life of an order: place, approve, submit, poll, complete, cancel.

The contract (DESIGN.md, "Never buy twice, never lose a code"):
- A VendorOrder and its client reference are committed before its supplier is called, and the
  reference is the supplier's idempotency key.
- A submission whose outcome is unknown is reconciled by looking the order up by our
  reference; only a confirmed absence allows sending it again.
- Codes are stored encrypted in the transaction that moves the VendorOrder to its final
  status, together with the ledger settlement and the audit rows.

Scheduling lives in the database: ``VendorOrder.next_poll_at`` says when a worker should next
act on a supplier order. ``dispatch_due`` claims due rows one by one (a conditional UPDATE, so
two dispatchers never queue the same row) and queues one job per row; the job's own outcome
sets the next time. ``sweep`` puts back rows whose job was lost.
"""

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import django_rq
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from orders.custody import VoucherSecrets, open_voucher, seal
from orders.models import Order, OrderLine, VendorOrder, Voucher
from portal import audit, ratelimit
from portal.http import SupplierError
from portal.money import MoneyError, format_money
from vendors import ledger
from vendors.adapters import adapter_class
from vendors.adapters.base import OrderRequest, OrderResult, SupplierStatus
from vendors.models import Balance, Product
from vendors.services import adapter_for

logger = logging.getLogger(__name__)

Status = VendorOrder.Status
OPEN = (Status.CREATED, Status.SENDING, Status.PROCESSING, Status.UNKNOWN)
FINAL = (Status.COMPLETED, Status.PARTIALLY_COMPLETED, Status.FAILED, Status.CANCELLED)
JOB = "orders.jobs.advance_vendor_order"


class OrderError(Exception):
    """A request the portal refuses, with a message for the person who made it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class LineRequest:
    """One line as asked for: a product, or a brand and face value for the engine to route."""

    quantity: int
    product: Product | None = None
    brand: str = ""
    face_value: Decimal | None = None
    currency: str = ""
    pay_with_currency: str = ""


@dataclass(frozen=True)
class PricedLine:
    product: Product
    quantity: int
    face_value: Decimal | None
    unit_cost: Decimal
    currency: str  # what we pay in: the cost currency, or the pay-with currency
    routing_note: str = ""
    pay_with_currency: str = ""

    @property
    def total(self) -> Decimal:
        return self.unit_cost * self.quantity


# Placing


def codes(count: int) -> str:
    return f"{count} code" if count == 1 else f"{count} codes"


def new_reference() -> str:
    return f"VP-{timezone.now():%y%m%d}-{secrets.token_hex(4).upper()}"


def unit_cost(product: Product, face_value: Decimal | None) -> Decimal:
    if product.denomination_type == Product.DenominationType.FIXED or face_value is None:
        if product.cost is None:
            raise OrderError(f"{product.name} has no price in the catalog.", "product")
        return product.cost
    ratio = (product.cost / product.face_value) if product.cost and product.face_value else 1
    return face_value * ratio


def check_quantity(quantity: int) -> None:
    if quantity < 1:
        raise OrderError("Quantity must be at least 1.", "quantity")
    if quantity > settings.ORDER_MAX_QUANTITY:
        raise OrderError(
            f"Quantity must be at most {settings.ORDER_MAX_QUANTITY}.", "quantity"
        )


def check_product(product: Product, face_value: Decimal | None) -> Decimal | None:
    if not product.available or not product.vendor.enabled:
        raise OrderError(f"{product.name} is not available at the moment.", "product")
    if product.denomination_type == Product.DenominationType.OPEN:
        if face_value is None:
            raise OrderError("Choose a face value for this product.", "face_value")
        low, high, step = product.min_value, product.max_value, product.step
        if (low is not None and face_value < low) or (high is not None and face_value > high):
            raise OrderError(f"Face value must be between {low} and {high}.", "face_value")
        if step and low is not None and (face_value - low) % step:
            raise OrderError(f"Face value must go in steps of {step}.", "face_value")
        return face_value
    return product.face_value


def price_line(request: LineRequest) -> PricedLine:
    check_quantity(request.quantity)
    if request.product is not None:
        face_value = check_product(request.product, request.face_value)
        pay_with = request.pay_with_currency.upper()
        if pay_with and pay_with != request.product.cost_currency:
            return price_in(request.product, request.quantity, face_value, pay_with)
        cost = unit_cost(request.product, face_value)
        return PricedLine(request.product, request.quantity, face_value, cost,
                          request.product.cost_currency)
    return route(request)


def price_in(product: Product, quantity: int, face_value: Decimal | None,
             pay_with: str) -> PricedLine:
    """Ask the supplier what the line costs in another currency it can charge."""
    try:
        quote = adapter_for(product.vendor).quote(OrderRequest(
            client_reference="quote", product_id=product.supplier_product_id, sku=product.sku,
            quantity=quantity, currency=product.cost_currency, face_value=face_value,
            pay_with_currency=pay_with,
        ))
    except SupplierError as exc:
        raise OrderError(f"{product.vendor} cannot charge this in {pay_with}: {exc.message}",
                         "pay_with_currency") from exc
    if quote is None:
        raise OrderError(f"{product.vendor} does not charge in another currency.",
                         "pay_with_currency")
    return PricedLine(product, quantity, face_value, quote.unit_cost.amount,
                      quote.unit_cost.currency, pay_with_currency=pay_with)


def route(request: LineRequest, exclude_vendor_ids: tuple[int, ...] = ()) -> PricedLine:
    """Pick the cheapest enabled supplier that has the brand and face value in stock and the
    balance to pay for it, and say why."""
    if not request.brand or request.face_value is None:
        raise OrderError("Choose a product, or a brand and a face value.", "product")
    offers = list(
        Product.objects.exclude(vendor_id__in=exclude_vendor_ids).filter(
            available=True, vendor__enabled=True, brand__iexact=request.brand,
            face_value=request.face_value, denomination_type=Product.DenominationType.FIXED,
            cost__isnull=False,
            **({"face_currency": request.currency} if request.currency else {}),
        ).select_related("vendor").order_by("cost", "vendor__name")
    )
    if not offers:
        raise OrderError(
            f"No supplier offers {request.brand} {request.face_value} at the moment.", "brand"
        )
    balances = {
        (b.vendor_id, b.currency): b
        for b in Balance.objects.filter(vendor__in={o.vendor_id for o in offers})
    }
    skipped = []
    for offer in offers:
        balance = balances.get((offer.vendor_id, offer.cost_currency))
        needed = offer.cost * request.quantity
        if balance is not None and balance.available is not None and balance.available < needed:
            skipped.append(f"{offer.vendor} (balance {balance.available})")
            continue
        note = f"Cheapest of {len(offers)} offers: {offer.vendor} at {offer.cost} " \
               f"{offer.cost_currency}"
        if skipped:
            note += f"; skipped {', '.join(skipped)} for lack of balance"
        return PricedLine(offer, request.quantity, offer.face_value, offer.cost,
                          offer.cost_currency, note[:300])
    raise OrderError(
        f"No supplier of {request.brand} {request.face_value} has the balance for "
        f"{request.quantity}: {', '.join(skipped)}.", "quantity",
    )


def needs_approval(total: Decimal) -> bool:
    threshold = settings.ORDER_APPROVAL_THRESHOLD
    return threshold is not None and total > Decimal(threshold)


def place_order(*, user, lines: list[LineRequest], note: str = "",
                purchase_order: str = "") -> Order:
    """Validate, price, reserve and record an order; its supplier orders are queued on commit."""
    if not lines:
        raise OrderError("An order needs at least one line.")
    priced = [price_line(line) for line in lines]
    currencies = {p.currency for p in priced}
    if len(currencies) != 1:
        raise OrderError("All lines of an order must be paid in one currency.")
    total = sum((p.total for p in priced), Decimal("0"))
    with transaction.atomic():
        order = Order.objects.create(
            reference=new_reference(), placed_by=user, currency=priced[0].currency,
            total_cost=total, quantity=sum(p.quantity for p in priced), note=note,
            purchase_order=purchase_order,
            status=Order.Status.PENDING_APPROVAL if needs_approval(total) else Order.Status.QUEUED,
        )
        for p in priced:
            try:
                ledger.reserve(vendor=p.product.vendor, currency=p.currency, amount=p.total,
                               order=order)
            except ledger.InsufficientBalance as exc:
                raise OrderError(f"Refused: {exc}.", "quantity") from exc
            line = OrderLine.objects.create(
                order=order, product=p.product, vendor=p.product.vendor, quantity=p.quantity,
                face_value=p.face_value, unit_cost=p.unit_cost, currency=p.currency,
                pay_with_currency=p.pay_with_currency, routing_note=p.routing_note,
            )
            _create_vendor_orders(order, line)
        audit.record(
            action=audit.Action.PLACED, target=order, actor=user, order=order,
            message=f"Placed {codes(order.quantity)} for {format_money(total, order.currency)}",
            data={"lines": [{"product": p.product.pk, "quantity": p.quantity,
                             "unit_cost": str(p.unit_cost), "routing": p.routing_note}
                            for p in priced]},
        )
        if order.status == Order.Status.QUEUED:
            _release_on_commit(order)
    return order


def _create_vendor_orders(order: Order, line: OrderLine) -> list[VendorOrder]:
    """One supplier order per line, or one per code for suppliers that sell one per request."""
    one_each = adapter_class(line.vendor.kind).one_code_per_request
    sizes = [1] * line.quantity if one_each else [line.quantity]
    start = order.vendor_orders.count()
    return VendorOrder.objects.bulk_create(
        VendorOrder(
            order=order, line=line, vendor=line.vendor, quantity=size, currency=line.currency,
            client_reference=f"{order.reference}-{start + i + 1}",
        )
        for i, size in enumerate(sizes)
    )


def _release_on_commit(order: Order) -> None:
    """Make the order's new supplier orders due now, and dispatch them once committed."""
    now = timezone.now()
    order.vendor_orders.filter(status=Status.CREATED, next_poll_at__isnull=True,
                               claimed_at__isnull=True).update(next_poll_at=now)
    ids = list(order.vendor_orders.filter(next_poll_at=now).values_list("pk", flat=True))
    transaction.on_commit(lambda: claim_and_enqueue(ids))


def top_up_order(*, order: Order, user) -> list[OrderLine]:
    """Order what a partially delivered order is missing from the cheapest other supplier."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.PARTIALLY_COMPLETED:
            raise OrderError("Only a partially delivered order can be topped up.")
        missing = order.quantity - order.delivered_quantity
        lines = []
        for line in order.lines.select_related("product", "vendor"):
            short = line.quantity - line.delivered_quantity
            if short <= 0 or not missing:
                continue
            short = min(short, missing)
            priced = route(
                LineRequest(quantity=short, brand=line.product.brand, face_value=line.face_value,
                            currency=line.product.face_currency),
                exclude_vendor_ids=(line.vendor_id,),
            )
            if priced.currency != order.currency:
                raise OrderError(f"The other supplier charges in {priced.currency}, "
                                 f"this order is in {order.currency}.")
            try:
                ledger.reserve(vendor=priced.product.vendor, currency=priced.currency,
                               amount=priced.total, order=order)
            except ledger.InsufficientBalance as exc:
                raise OrderError(f"Refused: {exc}.") from exc
            new_line = OrderLine.objects.create(
                order=order, product=priced.product, vendor=priced.product.vendor,
                quantity=short, face_value=priced.face_value, unit_cost=priced.unit_cost,
                currency=priced.currency,
                routing_note=f"Top-up of {short} missing from {line.vendor}. "
                f"{priced.routing_note}"[:300],
            )
            _create_vendor_orders(order, new_line)
            order.total_cost += priced.total
            missing -= short
            lines.append(new_line)
        if not lines:
            raise OrderError("Nothing is missing from this order.")
        order.status, order.completed_at = Order.Status.QUEUED, None
        order.save(update_fields=["status", "total_cost", "completed_at", "updated_at"])
        audit.record(action=audit.Action.PLACED, target=order, actor=user, order=order,
                     message="Topped up: " + "; ".join(line.routing_note for line in lines))
        _release_on_commit(order)
    return lines


@transaction.atomic
def approve_order(*, order: Order, user) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != Order.Status.PENDING_APPROVAL:
        raise OrderError("Only an order waiting for approval can be approved.")
    if order.placed_by_id == user.pk:
        raise OrderError("An order must be approved by someone other than who placed it.")
    order.status = Order.Status.QUEUED
    order.approved_by, order.approved_at = user, timezone.now()
    order.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
    audit.record(action=audit.Action.APPROVED, target=order, actor=user, order=order,
                 message="Approved")
    _release_on_commit(order)
    return order


@transaction.atomic
def reject_order(*, order: Order, user, reason: str = "") -> Order:
    return _close_unsent(order, user, Order.Status.REJECTED, audit.Action.REJECTED,
                         reason or "Rejected")


@transaction.atomic
def cancel_order(*, order: Order, user) -> Order:
    """Cancel an order none of whose supplier orders has been sent."""
    return _close_unsent(order, user, Order.Status.CANCELLED, audit.Action.CANCELLED,
                         "Cancelled before submission")


def _close_unsent(order: Order, user, status: str, action: str, message: str) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    vendor_orders = list(order.vendor_orders.select_for_update().select_related("line"))
    if order.status not in (Order.Status.PENDING_APPROVAL, Order.Status.QUEUED) or any(
        vo.status != Status.CREATED for vo in vendor_orders
    ):
        raise OrderError("This order has already been sent to its supplier.")
    for vo in vendor_orders:
        vo.status, vo.next_poll_at, vo.claimed_at = Status.CANCELLED, None, None
        vo.save(update_fields=["status", "next_poll_at", "claimed_at", "updated_at"])
        ledger.settle(vendor=vo.vendor, currency=vo.currency, reserved=_reserved(vo),
                      spent=Decimal("0"), order=order, vendor_order=vo, note=message)
    order.status = status
    order.completed_at = timezone.now()
    order.save(update_fields=["status", "completed_at", "updated_at"])
    audit.record(action=action, target=order, actor=user, order=order, message=message)
    return order


@transaction.atomic
def repoll_now(*, vendor_order: VendorOrder, user) -> VendorOrder:
    """A person asks for another look now: clears the attention flag and queues the job."""
    order = Order.objects.select_for_update().get(pk=vendor_order.order_id)
    vo = VendorOrder.objects.select_for_update().get(pk=vendor_order.pk)
    if vo.status in FINAL:
        raise OrderError("This supplier order is finished.")
    vo.attention, vo.next_poll_at, vo.claimed_at = "", timezone.now(), None
    vo.save(update_fields=["attention", "next_poll_at", "claimed_at", "updated_at"])
    audit.record(action=audit.Action.STATUS_CHANGED, target=vo, actor=user, order=order,
                 message=f"{vo.client_reference}: re-poll asked for")
    _refresh_order(order)
    transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return vo


@transaction.atomic
def resolve_unknown(*, vendor_order: VendorOrder, user, supplier_order_id: str = "",
                    absent: bool = False) -> VendorOrder:
    """A person settles an unknown outcome the supplier's API cannot (no look-up by our
    reference): the supplier confirmed it has no such order (send it again), or gave its id."""
    if absent == bool(supplier_order_id):
        raise OrderError("Say either that the supplier has no such order, or give its id.")
    order = Order.objects.select_for_update().get(pk=vendor_order.order_id)
    vo = VendorOrder.objects.select_for_update().get(pk=vendor_order.pk)
    if vo.status not in (Status.UNKNOWN, Status.SENDING):
        raise OrderError("Only a supplier order whose outcome is unknown can be resolved.")
    vo.status = Status.CREATED if absent else Status.PROCESSING
    vo.supplier_order_id = supplier_order_id.strip() or vo.supplier_order_id
    vo.attention, vo.next_poll_at, vo.claimed_at = "", timezone.now(), None
    vo.save()
    message = ("the supplier confirms it has no such order: sending it again" if absent
               else f"the supplier has it as order {vo.supplier_order_id}: following it")
    audit.record(action=audit.Action.STATUS_CHANGED, target=vo, actor=user, order=order,
                 message=f"{vo.client_reference}: {message}")
    _refresh_order(order)
    transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return vo


def repoll_order(*, order: Order, user) -> tuple[int, list[str]]:
    """Ask again about an order's open supplier orders (``order.vendor_orders`` may be
    prefetched): those waiting for a person, or else every open one. Returns how many were
    asked and why the others could not be."""
    from orders.selectors import vendor_orders_to_repoll  # selectors import this module

    asked, refused = 0, []
    for vo in vendor_orders_to_repoll(order):
        try:
            repoll_now(vendor_order=vo, user=user)
            asked += 1
        except OrderError as exc:
            refused.append(f"{vo.client_reference}: {exc.message}")
    return asked, refused


# Dispatching


def claim_and_enqueue(ids) -> int:
    """Queue one job for each due supplier order that this call manages to claim."""
    queue = django_rq.get_queue("orders")
    now = timezone.now()
    queued = 0
    for pk in ids:
        claimed = VendorOrder.objects.filter(pk=pk, next_poll_at__lte=now).update(
            next_poll_at=None, claimed_at=now
        )
        if claimed:
            queue.enqueue(JOB, pk, job_id=job_id(pk), result_ttl=0, failure_ttl=86400)
            queued += 1
    return queued


def job_id(vendor_order_id: int) -> str:
    return f"vendor-order-{vendor_order_id}"


def dispatch_due(limit: int = 1000) -> int:
    due = VendorOrder.objects.filter(next_poll_at__lte=timezone.now()).order_by("next_poll_at")
    return claim_and_enqueue(list(due.values_list("pk", flat=True)[:limit]))


def _job_alive(vendor_order_id: int) -> bool:
    try:
        job = Job.fetch(job_id(vendor_order_id), connection=django_rq.get_connection("orders"))
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in (
        JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED
    )


def sweep() -> dict[str, int]:
    """Self-healing: give back every supplier order whose job was lost, then dispatch."""
    stale = timezone.now() - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT)
    lost = 0
    for vo in VendorOrder.objects.filter(
        status__in=OPEN, next_poll_at__isnull=True, claimed_at__lt=stale
    ).select_related("order"):
        if _job_alive(vo.pk):
            continue
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if VendorOrder.objects.filter(pk=vo.pk, claimed_at=vo.claimed_at).update(
                next_poll_at=timezone.now(), claimed_at=None
            ):
                lost += 1
                audit.record(
                    action=audit.Action.STATUS_CHANGED, target=vo, order=order,
                    message=f"{vo.client_reference}: its job was lost ({vo.status}); "
                    "queued again",
                )
    return {"recovered": lost, "dispatched": dispatch_due()}


# Acting on one supplier order (the job)


def advance(*, vendor_order_id: int) -> str:
    """Do whatever a supplier order needs next. Safe to run twice; never raises on supplier
    trouble (a job must not crash-loop): problems become a retry or a person's attention."""
    vo = VendorOrder.objects.select_related("vendor", "order", "line").get(pk=vendor_order_id)
    if vo.status in FINAL or vo.attention:
        _unclaim(vo)
        return "nothing to do"
    wait = ratelimit.acquire(f"vendor:{vo.vendor_id}", vo.vendor.rate_limit_per_minute)
    if wait is not None:
        _schedule(vo, _at(wait + random.uniform(0, 1)))
        return f"rate limited for {wait:.1f}s"
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
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        if locked.status != Status.CREATED:
            return "already sent"
        locked.status, locked.attempts = Status.SENDING, locked.attempts + 1
        locked.submitted_at = locked.submitted_at or timezone.now()
        locked.save(update_fields=["status", "attempts", "submitted_at", "updated_at"])
    vo.refresh_from_db()
    line, product = vo.line, vo.line.product
    request = OrderRequest(
        client_reference=vo.client_reference, product_id=product.supplier_product_id,
        sku=product.sku, quantity=vo.quantity, currency=vo.currency,
        unit_price=line.unit_cost,
        denomination=line.face_value if product.denomination_type == "open" else None,
        face_value=line.face_value,
        pay_with_currency=line.pay_with_currency,
    )
    result = adapter_for(vo.vendor).submit_order(request)
    return _apply(vo, result, audit.Action.SUBMITTED)


def _reconcile(vo: VendorOrder) -> str:
    adapter = adapter_for(vo.vendor)
    if not adapter.has_lookup:
        return _attention(
            vo, "the supplier's answer to our order was lost and it offers no look-up by "
            "our reference: check with the supplier before resending",
        )
    result = adapter.lookup_order(vo.client_reference)
    if result is None:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            VendorOrder.objects.filter(pk=vo.pk).update(
                status=Status.CREATED, next_poll_at=timezone.now(), claimed_at=None
            )
            audit.record(
                action=audit.Action.STATUS_CHANGED, target=vo, order=order,
                message=f"{vo.client_reference}: the supplier confirms it has no such order; "
                "sending it again",
            )
        return "confirmed absent; resending"
    return _apply(vo, result, audit.Action.POLLED)


def _poll(vo: VendorOrder) -> str:
    if vo.submitted_at and timezone.now() > vo.submitted_at + timedelta(
        seconds=vo.vendor.poll_deadline
    ):
        return _attention(vo, f"no final answer {vo.vendor.poll_deadline // 60} minutes "
                              "after submission")
    VendorOrder.objects.filter(pk=vo.pk).update(polls=F("polls") + 1)
    vo.polls += 1
    result = adapter_for(vo.vendor).fetch_order(vo.supplier_order_id)
    return _apply(vo, result, audit.Action.POLLED)


def _supplier_trouble(vo: VendorOrder, exc: SupplierError) -> str:
    if exc.status_code == 429 and exc.retry_after:
        ratelimit.pause(f"vendor:{vo.vendor_id}", exc.retry_after)
    current = VendorOrder.objects.get(pk=vo.pk).status
    if current == Status.SENDING:
        if exc.outcome_unknown:
            return _mark_unknown(vo, exc)
        if refused(exc):
            return _fail_submission(vo, exc)
        return _retry_submission(vo, exc)
    if exc.retryable:
        delay = exc.retry_after if exc.retry_after is not None else _backoff(vo)
        _schedule(vo, _at(delay), error=exc.message)
        return f"retry in {delay:.0f}s: {exc.message}"
    return _attention(vo, exc.message)


def refused(exc: SupplierError) -> bool:
    """The order was declined for good: by the supplier's own 4xx answer, or by the adapter
    before sending (a price that went up, a currency it cannot use). Anything else, such as a
    malformed answer to a preliminary read, is worth another attempt."""
    if exc.retryable:
        return False
    if exc.status_code is None:
        return True
    return 400 <= exc.status_code < 500 and exc.status_code not in (408, 409, 429)


def _mark_unknown(vo: VendorOrder, exc: SupplierError) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        VendorOrder.objects.filter(pk=vo.pk).update(
            status=Status.UNKNOWN, last_error=exc.message, claimed_at=None,
            next_poll_at=_at(exc.retry_after or 2),
        )
        audit.record(
            action=audit.Action.STATUS_CHANGED, target=vo, order=order,
            message=f"{vo.client_reference}: outcome unknown ({exc.message}); looking it up "
            "by our reference before anything else",
        )
        _refresh_order(order)
    return "outcome unknown"


def _retry_submission(vo: VendorOrder, exc: SupplierError) -> str:
    """The supplier did not take the order (it said so, or we never reached it): send again."""
    if vo.attempts >= settings.ORDER_SUBMIT_ATTEMPTS:
        VendorOrder.objects.filter(pk=vo.pk).update(status=Status.CREATED)
        return _attention(vo, f"not accepted after {vo.attempts} attempts: {exc.message}")
    delay = exc.retry_after if exc.retry_after is not None else _backoff(vo, vo.attempts)
    VendorOrder.objects.filter(pk=vo.pk).update(status=Status.CREATED)
    _schedule(vo, _at(delay), error=exc.message)
    return f"resubmit in {delay:.0f}s: {exc.message}"


def _fail_submission(vo: VendorOrder, exc: SupplierError) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        _close(locked, order, Status.FAILED, f"refused by the supplier: {exc.message}")
    return f"refused: {exc.message}"


def _apply(vo: VendorOrder, result: OrderResult, action: str) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        locked = VendorOrder.objects.select_for_update().select_related("line", "vendor").get(
            pk=vo.pk
        )
        if locked.status in FINAL:
            return "already final"
        locked.supplier_order_id = result.supplier_order_id or locked.supplier_order_id
        locked.supplier_status = result.raw_status[:64]
        locked.estimated_ready_at = result.estimated_ready_at or locked.estimated_ready_at
        locked.details = {**locked.details, **result.details}
        locked.last_error = ""
        audit.record(
            action=action, target=locked, order=order,
            message=f"{locked.client_reference}: supplier says {result.raw_status or result.status}"
            + (f" ({result.message})" if result.message else ""),
            data={"status": str(result.status), "supplier_status": result.raw_status,
                  "supplier_order_id": locked.supplier_order_id,
                  "codes": len(result.codes)},
        )
        if result.status == SupplierStatus.UNKNOWN:
            locked.status = Status.PROCESSING if locked.supplier_order_id else Status.UNKNOWN
            locked.save()
            return _attention(locked, f"the supplier answered a status the portal does not "
                                      f"know: {result.raw_status!r}", order=order)
        if result.status == SupplierStatus.PROCESSING:
            locked.status = Status.PROCESSING
            locked.next_poll_at, locked.claimed_at = _next_poll(locked), None
            locked.save()
            _refresh_order(order)
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

    spent = vo.line.unit_cost * delivered
    if result.cost is not None and result.cost.currency == vo.currency and delivered:
        spent = result.cost.amount
    status = Status.COMPLETED if delivered >= vo.quantity else Status.PARTIALLY_COMPLETED
    if delivered == 0:
        status = Status.FAILED
    note = f"{delivered} of {vo.quantity} delivered"
    if result.status == SupplierStatus.COMPLETED and delivered < vo.quantity:
        note += " although the supplier says completed"
    _close(vo, order, status, note, delivered=delivered, spent=spent)
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
           spent: Decimal = Decimal("0")) -> None:
    """Finish a supplier order: final status, ledger settled, order refreshed, audited."""
    vo.status, vo.delivered_quantity = status, delivered
    vo.cost = spent
    vo.completed_at = timezone.now()
    vo.next_poll_at = vo.claimed_at = None
    vo.last_error = "" if status != Status.FAILED else note[:1000]
    vo.save()
    ledger.settle(vendor=vo.vendor, currency=vo.currency, reserved=_reserved(vo), spent=spent,
                  order=order, vendor_order=vo, note=note[:300])
    if delivered:
        OrderLine.objects.filter(pk=vo.line_id).update(
            delivered_quantity=F("delivered_quantity") + delivered
        )
    audit.record(action=audit.Action.STATUS_CHANGED, target=vo, order=order,
                 message=f"{vo.client_reference}: {status} ({note})")
    _refresh_order(order)


def _reserved(vo: VendorOrder) -> Decimal:
    return vo.line.unit_cost * vo.quantity


def _attention(vo: VendorOrder, reason: str, *, order: Order | None = None) -> str:
    """Stop acting on a supplier order until a person looks; say why."""
    with transaction.atomic():
        order = order or Order.objects.select_for_update().get(pk=vo.order_id)
        VendorOrder.objects.filter(pk=vo.pk).update(
            attention=reason[:300], next_poll_at=None, claimed_at=None, last_error=reason
        )
        audit.record(action=audit.Action.NEEDS_ATTENTION, target=vo, order=order,
                     message=f"{vo.client_reference}: {reason}"[:500])
        _refresh_order(order)
    return f"needs attention: {reason}"


def _schedule(vo: VendorOrder, when: datetime, error: str = "") -> None:
    fields = {"next_poll_at": when, "claimed_at": None}
    if error:
        fields["last_error"] = error
    VendorOrder.objects.filter(pk=vo.pk).update(**fields)


def _unclaim(vo: VendorOrder) -> None:
    VendorOrder.objects.filter(pk=vo.pk).update(claimed_at=None)


def _at(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=max(0.0, seconds))


def _backoff(vo: VendorOrder, step: int | None = None) -> float:
    step = vo.polls if step is None else step
    base = min(vo.vendor.max_poll_interval, vo.vendor.first_poll_delay * 2 ** min(step, 12))
    return base * random.uniform(0.8, 1.2)


def _next_poll(vo: VendorOrder) -> datetime:
    """At the supplier's estimate while it lies ahead, then back off with jitter."""
    now = timezone.now()
    if vo.estimated_ready_at and vo.estimated_ready_at > now:
        return vo.estimated_ready_at + timedelta(seconds=random.uniform(0, 1))
    if vo.polls == 0 and not vo.estimated_ready_at:
        return _at(vo.vendor.first_poll_delay * random.uniform(0.9, 1.1))
    return _at(_backoff(vo, max(vo.polls - 1, 0)))


def _refresh_order(order: Order) -> None:
    """Derive the order's status and counts from its supplier orders (order row is locked)."""
    if order.status in (Order.Status.PENDING_APPROVAL, Order.Status.REJECTED,
                        Order.Status.CANCELLED):
        return
    vos = list(order.vendor_orders.all())
    delivered = sum(vo.delivered_quantity for vo in vos)
    if any(vo.attention and vo.status not in FINAL for vo in vos):
        status = Order.Status.NEEDS_ATTENTION
    elif all(vo.status in FINAL for vo in vos):
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
    order.completed_at = timezone.now() if all(vo.status in FINAL for vo in vos) else None
    order.save(update_fields=["status", "delivered_quantity", "completed_at", "updated_at"])



# Code custody: the only ways a code leaves its encryption


def can_reveal(user, order: Order) -> bool:
    """Codes are for the person who ordered them, and for approvers; both need the right."""
    return user.is_active and user.has_perm("orders.reveal_codes") and (
        order.placed_by_id == user.pk or user.has_perm("orders.approve_order")
    )


def reveal_voucher(*, voucher: Voucher, user) -> VoucherSecrets:
    if not can_reveal(user, voucher.order):
        raise PermissionDenied("You may not see the codes of this order.")
    with transaction.atomic():
        audit.record(action=audit.Action.REVEALED, target=voucher, actor=user,
                     order=voucher.order, message=f"Code ending {voucher.last4} revealed")
    return open_voucher(voucher)
