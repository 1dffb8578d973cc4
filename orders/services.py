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
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import django_rq
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from orders import spend
from orders.custody import VoucherSecrets, open_voucher, seal
from orders.models import Order, OrderLine, VendorOrder, Voucher
from portal import audit, worker
from portal.access import is_portal_user
from portal.http import Kind, SupplierError
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


class AlreadyPlaced(OrderError):
    """The confirmation was used already: ``order`` is the order it placed."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"This order was already placed as {order.reference}.")
        self.order = order


def place_order(*, user, lines: list[LineRequest], note: str = "", purchase_order: str = "",
                confirmation_token: str | None = None) -> Order:
    """Validate, price, reserve and record an order; its supplier orders are queued on commit.

    Above the user's spend limits (orders.spend) it waits for approval, and says why. A
    ``confirmation_token`` places at most one order: the database refuses a second one with
    the same token (unique), and ``AlreadyPlaced`` names the first.
    """
    if not lines:
        raise OrderError("An order needs at least one line.")
    priced = [price_line(line) for line in lines]
    currencies = {p.currency for p in priced}
    if len(currencies) != 1:
        raise OrderError("All lines of an order must be paid in one currency.")
    total = sum((p.total for p in priced), Decimal("0"))
    try:
        return _place(user, priced, total, note, purchase_order, confirmation_token)
    except IntegrityError:
        placed = Order.objects.filter(
            confirmation_token=confirmation_token, placed_by=user
        ).first() if confirmation_token else None
        if placed is None:
            raise
        raise AlreadyPlaced(placed) from None


def _place(user, priced: list[PricedLine], total: Decimal, note: str, purchase_order: str,
           confirmation_token: str | None) -> Order:
    with transaction.atomic():
        spend.lock_user(user)
        if confirmation_token and (placed := Order.objects.filter(
            confirmation_token=confirmation_token, placed_by=user
        ).first()):
            raise AlreadyPlaced(placed)
        reasons = spend.approval_reasons(user=user, currency=priced[0].currency, total=total)
        order = Order.objects.create(
            reference=new_reference(), placed_by=user, currency=priced[0].currency,
            total_cost=total, quantity=sum(p.quantity for p in priced), note=note,
            purchase_order=purchase_order, confirmation_token=confirmation_token or None,
            status=Order.Status.PENDING_APPROVAL if reasons else Order.Status.QUEUED,
            approval_reason=" ".join(reasons)[:500],
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
            message=f"Placed {codes(order.quantity)} for {format_money(total, order.currency)}"
            + (f"; waits for approval: {order.approval_reason}" if reasons else ""),
            data={"lines": [{"product": p.product.pk, "quantity": p.quantity,
                             "unit_cost": str(p.unit_cost), "routing": p.routing_note}
                            for p in priced], "approval": reasons},
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
        if not can_top_up(user, order):
            raise PermissionDenied("You may not top up this order.")
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
        audit.record(action=audit.Action.TOPPED_UP, target=order, actor=user, order=order,
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
    if not can_approve(user, order):
        raise PermissionDenied("You may not approve orders.")
    order.status = Order.Status.QUEUED
    order.approved_by, order.approved_at = user, timezone.now()
    order.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
    audit.record(action=audit.Action.APPROVED, target=order, actor=user, order=order,
                 message="Approved")
    _release_on_commit(order)
    return order


REJECTION_REASON_MAX = 300


@transaction.atomic
def reject_order(*, order: Order, user, reason: str) -> Order:
    """Refuse an order waiting for approval; the reason, who and when are kept on it for its
    placer."""
    reason = reason.strip()
    if not reason:
        raise OrderError("Give the reason for the rejection.", "reason")
    if len(reason) > REJECTION_REASON_MAX:
        raise OrderError(f"The reason must be at most {REJECTION_REASON_MAX} characters.",
                         "reason")
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != Order.Status.PENDING_APPROVAL:
        raise OrderError("Only an order waiting for approval can be rejected.")
    if order.placed_by_id == user.pk:
        raise OrderError("An order must be rejected by someone other than who placed it.")
    if not can_reject(user, order):
        raise PermissionDenied("You may not reject orders.")
    order = _close_unsent(order, user, Order.Status.REJECTED, audit.Action.REJECTED,
                          f"Rejected: {reason}")
    order.rejected_by, order.rejected_at, order.rejection_reason = user, timezone.now(), reason
    order.save(update_fields=["rejected_by", "rejected_at", "rejection_reason", "updated_at"])
    return order


@transaction.atomic
def cancel_order(*, order: Order, user) -> Order:
    """Cancel an order none of whose supplier orders has been sent."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if not _may_cancel(user, order):
        raise PermissionDenied("Only who placed an order, or an approver, may cancel it.")
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
                      spent=Decimal("0"), order=order, vendor_order=vo, note=message[:300])
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
    if not repollable(order, vo):
        raise OrderError("This supplier order has not been sent: only an approved order's "
                         "supplier orders are sent, by the portal.")
    if not can_repoll_vendor_order(user, vo, order):
        raise PermissionDenied("Only who placed an order, or an operator, may re-poll it.")
    vo.attention, vo.next_poll_at, vo.claimed_at = "", timezone.now(), None
    vo.save(update_fields=["attention", "next_poll_at", "claimed_at", "updated_at"])
    audit.record(action=audit.Action.REPOLL_ASKED, target=vo, actor=user, order=order,
                 message=f"{vo.client_reference}: re-poll asked for")
    _refresh_order(order)
    transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return vo


UNRESOLVED = (Status.UNKNOWN, Status.SENDING)


def can_resolve(user, vendor_order: VendorOrder) -> bool:
    """An operator may settle a supplier order whose outcome is unknown and that waits for a
    person: send it again, or attach the supplier's own order."""
    return (is_portal_user(user) and user.has_perm("orders.change_vendororder")
            and vendor_order.status in UNRESOLVED and bool(vendor_order.attention))


def _lock_unresolved(vendor_order: VendorOrder, user) -> tuple[Order, VendorOrder]:
    order = Order.objects.select_for_update().get(pk=vendor_order.order_id)
    vo = VendorOrder.objects.select_for_update().select_related("line__product", "vendor").get(
        pk=vendor_order.pk
    )
    if vo.status not in UNRESOLVED or not vo.attention:
        raise OrderError("Only a supplier order whose outcome is unknown and that waits for a "
                         f"person can be resolved; this one is {vo.get_status_display()}.")
    if not can_resolve(user, vo):
        raise PermissionDenied("Only an operator may resolve a supplier order.")
    return order, vo


def resolve_unknown(*, vendor_order: VendorOrder, user, supplier_order_id: str = "",
                    absent: bool = False) -> VendorOrder:
    """A person settles an unknown outcome the supplier's API cannot (no look-up by our
    reference): the supplier confirmed it has no such order (send it again), or gave its id
    (see ``attach_supplier_order``, which calls the supplier outside any transaction)."""
    if absent == bool(supplier_order_id):
        raise OrderError("Say either that the supplier has no such order, or give its id.")
    if supplier_order_id:
        return attach_supplier_order(vendor_order=vendor_order, user=user,
                                     supplier_order_id=supplier_order_id)
    with transaction.atomic():
        order, vo = _lock_unresolved(vendor_order, user)
        vo.status = Status.CREATED
        vo.attention, vo.next_poll_at, vo.claimed_at = "", timezone.now(), None
        vo.save()
        audit.record(action=audit.Action.RESOLVED, target=vo, actor=user, order=order,
                     message=f"{vo.client_reference}: the supplier confirms it has no such "
                     "order: sending it again")
        _refresh_order(order)
        transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return vo


def attach_supplier_order(*, vendor_order: VendorOrder, user,
                          supplier_order_id: str) -> VendorOrder:
    """Settle an unknown outcome with the supplier's order: fetch it, check it is ours (our
    reference where the supplier states it, the product, the quantity), then store its codes
    and settle the ledger as a poll would. Refuses, changing nothing, when it is not ours."""
    supplier_order_id = supplier_order_id.strip()
    if not supplier_order_id or len(supplier_order_id) > 100:
        raise OrderError("Enter the supplier's order id (at most 100 characters).",
                         "supplier_order_id")
    vo = VendorOrder.objects.select_related("line__product", "vendor").get(pk=vendor_order.pk)
    if not can_resolve(user, vo):
        if vo.status in UNRESOLVED and vo.attention:
            raise PermissionDenied("Only an operator may resolve a supplier order.")
        raise OrderError("Only a supplier order whose outcome is unknown and that waits for a "
                         "person can be resolved.")
    taken = VendorOrder.objects.filter(vendor=vo.vendor, supplier_order_id=supplier_order_id)
    if other := taken.exclude(pk=vo.pk).first():
        raise OrderError(f"{vo.vendor} order {supplier_order_id} is already ours as "
                         f"{other.client_reference}.", "supplier_order_id")
    try:
        result = adapter_for(vo.vendor).fetch_order(supplier_order_id,
                                                    order=_order_request(vo))
    except (SupplierError, MoneyError) as exc:
        message = exc.message if isinstance(exc, SupplierError) else str(exc)
        raise OrderError(f"{vo.vendor} could not show order {supplier_order_id}: {message}",
                         "supplier_order_id") from exc
    problem = not_ours(vo, result)
    if problem:
        raise OrderError(f"{vo.vendor} order {supplier_order_id} is not "
                         f"{vo.client_reference}: {problem}. Nothing was changed.",
                         "supplier_order_id")
    with transaction.atomic():
        order, vo = _lock_unresolved(vo, user)
        vo.supplier_order_id, vo.attention = supplier_order_id, ""
        vo.status = Status.PROCESSING
        vo.save(update_fields=["supplier_order_id", "attention", "status", "updated_at"])
        audit.record(
            action=audit.Action.RESOLVED, target=vo, actor=user, order=order,
            message=f"{vo.client_reference}: the supplier has it as order {supplier_order_id} "
            f"({codes(vo.quantity)} of {vo.line.product.name}); attached by hand, not resent",
        )
        outcome = _apply(vo, result, audit.Action.POLLED)
        if outcome == "processing":
            transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    vo.refresh_from_db()
    return vo


def not_ours(vo: VendorOrder, result: OrderResult) -> str:
    """Why the supplier's order ``result`` cannot be ``vo`` ("" when it matches)."""
    if result.client_reference and result.client_reference != vo.client_reference:
        return f"it was placed as {result.client_reference}"
    quantity = result.total if result.total is not None else result.delivered
    if quantity is None:
        return "the supplier does not say how many codes it is for"
    if quantity != vo.quantity:
        return f"it is for {codes(quantity)}, ours for {codes(vo.quantity)}"
    product = vo.line.product
    named = {str(p.get("productId")) for p in result.details.get("unit_prices", [])
             if isinstance(p, dict) and p.get("productId") is not None}
    named |= {c.sku for c in result.codes if c.sku}
    if not named:
        return "the supplier does not say which product it is for"
    if not named & {product.supplier_product_id, product.sku}:
        return f"it is for product {', '.join(sorted(named))}, ours is {product.name}"
    return ""


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
    """Queue one job for each due supplier order that this call manages to claim. Each claim
    carries a new token, handed to the job: the job acts only while the row still holds it."""
    queue = django_rq.get_queue("orders")
    now = timezone.now()
    queued = 0
    for pk in ids:
        token = secrets.token_hex(8)
        claimed = VendorOrder.objects.filter(pk=pk, next_poll_at__lte=now).update(
            next_poll_at=None, claimed_at=now, claim_token=token
        )
        if claimed:
            queue.enqueue(JOB, pk, token, job_id=job_id(pk, token), result_ttl=0, failure_ttl=86400)
            queued += 1
    return queued


def job_id(vendor_order_id: int, claim: str) -> str:
    """One job id per claim: a job given back and its successor never share one."""
    return f"vendor-order-{vendor_order_id}-{claim}"


def dispatch_due(limit: int = 1000) -> int:
    due = VendorOrder.objects.filter(next_poll_at__lte=timezone.now()).order_by("next_poll_at")
    return claim_and_enqueue(list(due.values_list("pk", flat=True)[:limit]))


CLAIM_GRACE = 5  # seconds between a claim and its job reaching the queue


def _job_lost(vo: VendorOrder, queued: set[str], beats: dict[str, float]) -> str:
    """Why the job holding ``vo`` is lost ("" while it lives): gone from Redis, dequeued but
    never started, or started by a worker whose heartbeat stopped."""
    try:
        job = Job.fetch(job_id(vo.pk, vo.claim_token),
                        connection=django_rq.get_connection("orders"))
    except NoSuchJobError:
        return "gone from Redis"
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        return "" if job.id in queued else "dequeued but never started"
    if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return ""
    if status == JobStatus.STARTED:
        if worker.is_alive(beats.get(job.worker_name or "")):
            return ""
        return f"its worker {job.worker_name} stopped beating"
    return f"it ended {status} without letting go"


def sweep() -> dict[str, int]:
    """Self-healing: give back every supplier order whose job was lost, then dispatch.

    A claim older than ``CLAIM_GRACE`` is checked against RQ and the workers' heartbeats, so a
    job lost to a killed worker or a Redis flush is found within the sweep's interval plus
    ``WORKER_HEARTBEAT_MAX_AGE``; one older than ``ORDER_CLAIM_TIMEOUT`` is given back in any
    case. Giving back clears the claim token: a job that resumes afterwards cannot act."""
    now = timezone.now()
    claimed = list(VendorOrder.objects.filter(
        status__in=OPEN, next_poll_at__isnull=True,
        claimed_at__lt=now - timedelta(seconds=CLAIM_GRACE),
    ))
    if not claimed:
        return {"recovered": 0, "dispatched": dispatch_due()}
    queue = django_rq.get_queue("orders")
    queued, beats = set(queue.get_job_ids()), worker.heartbeats(queue.connection)
    timeout = now - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT)
    lost = 0
    for vo in claimed:
        reason = _job_lost(vo, queued, beats) or (
            "held longer than ORDER_CLAIM_TIMEOUT" if vo.claimed_at < timeout else ""
        )
        if not reason:
            continue
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if VendorOrder.objects.filter(pk=vo.pk, claim_token=vo.claim_token,
                                          next_poll_at__isnull=True).update(
                next_poll_at=timezone.now(), claimed_at=None, claim_token=""
            ):
                lost += 1
                audit.record(
                    action=audit.Action.STATUS_CHANGED, target=vo, order=order,
                    message=f"{vo.client_reference}: its job was lost ({reason}; {vo.status}, "
                    f"claimed {(now - vo.claimed_at).total_seconds():.0f}s ago); queued again",
                )
    return {"recovered": lost, "dispatched": dispatch_due()}


# Acting on one supplier order (the job)


def advance(*, vendor_order_id: int, claim: str | None = None) -> str:
    """Do whatever a supplier order needs next. Safe to run twice; never raises on supplier
    trouble (a job must not crash-loop): problems become a retry or a person's attention.

    ``claim`` is the token of the job's claim: when the row no longer holds it (the sweep gave
    the order back), the job does nothing; every write below is conditional on it too."""
    vo = VendorOrder.objects.select_related("vendor", "order", "line").get(pk=vendor_order_id)
    if claim is not None and vo.claim_token != claim:
        return "given back by the sweep; another job has it"
    if vo.status in FINAL or vo.attention:
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
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        if locked.claim_token != vo.claim_token:
            return "given back by the sweep; not sending"
        if locked.status != Status.CREATED:
            return "already sent"
        if Order.objects.filter(pk=vo.order_id, status__in=UNRELEASED).exists():
            # Only approve_order releases an order; whatever queued this job, never send.
            VendorOrder.objects.filter(pk=vo.pk).update(next_poll_at=None, claimed_at=None)
            return "not sent: its order is not approved"
        locked.status, locked.attempts = Status.SENDING, locked.attempts + 1
        locked.submitted_at = locked.submitted_at or timezone.now()
        locked.save(update_fields=["status", "attempts", "submitted_at", "updated_at"])
    vo.refresh_from_db()
    vo.claim_token = locked.claim_token  # the job's, even if the sweep takes it back now
    result = adapter_for(vo.vendor).submit_order(_order_request(vo))
    return _apply(vo, result, audit.Action.SUBMITTED)


def _order_request(vo: VendorOrder) -> OrderRequest:
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
        result = adapter.lookup_order(vo.client_reference, order=_order_request(vo))
    except SupplierError as exc:
        # a failed look-up says nothing of the order: never a reason to resend it or fail it
        return _read_trouble(vo, exc)
    if result is None:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=vo.order_id)
            if not _mine(vo).update(
                status=Status.CREATED, next_poll_at=timezone.now(), claimed_at=None
            ):
                return "given back by the sweep"
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
    result = adapter_for(vo.vendor).fetch_order(vo.supplier_order_id, order=_order_request(vo))
    # counted once answered: a fault's retry is no step of the poll schedule's back-off
    _mine(vo).update(polls=F("polls") + 1)
    vo.polls += 1
    return _apply(vo, result, audit.Action.POLLED)


def _supplier_trouble(vo: VendorOrder, exc: SupplierError) -> str:
    current = VendorOrder.objects.get(pk=vo.pk).status
    if exc.kind is Kind.THROTTLED and exc.status_code is None:
        # our own request budget: nothing was sent, so neither an attempt nor a fault
        if current == Status.SENDING:
            _mine(vo).update(status=Status.CREATED, attempts=F("attempts") - 1)
        _schedule(vo, _at((exc.retry_after or 1) + random.uniform(0, 1)))
        return f"rate limited for {exc.retry_after or 1:.1f}s"
    if current == Status.SENDING:
        if exc.kind is Kind.OUTCOME_UNKNOWN:
            return _mark_unknown(vo, exc)
        if refused(exc):
            return _fail_submission(vo, exc)
        return _retry_submission(vo, exc)  # throttled, unavailable, malformed: nothing taken
    return _read_trouble(vo, exc)


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
        if not _mine(vo).update(
            status=Status.UNKNOWN, last_error=exc.message, claimed_at=None,
            next_poll_at=_at(exc.retry_after or 2),
        ):
            return "given back by the sweep"
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
        _mine(vo).update(status=Status.CREATED)
        return _attention(vo, f"not accepted after {vo.attempts} attempts: {exc.message}")
    delay = exc.retry_after if exc.retry_after is not None else _backoff(vo, vo.attempts)
    _mine(vo).update(status=Status.CREATED)
    _schedule(vo, _at(delay), error=exc.message)
    return f"resubmit in {delay:.0f}s: {exc.message}"


def _fail_submission(vo: VendorOrder, exc: SupplierError) -> str:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=vo.order_id)
        locked = VendorOrder.objects.select_for_update().get(pk=vo.pk)
        if locked.claim_token != vo.claim_token or locked.status in FINAL:
            return "given back by the sweep"
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
        if locked.claim_token != vo.claim_token:
            return "given back by the sweep; another job has it"
        locked.supplier_order_id = result.supplier_order_id or locked.supplier_order_id
        locked.supplier_status = result.raw_status[:64]
        locked.estimated_ready_at = result.estimated_ready_at or locked.estimated_ready_at
        locked.estimated_ready_at = locked.estimated_ready_at or _delivery_estimate(locked)
        locked.details = {**locked.details, **result.details}
        locked.last_error, locked.faults = "", 0
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
    """Finish a supplier order: final status, ledger settled, order refreshed, audited."""
    vo.status, vo.delivered_quantity = status, delivered
    vo.cost = spent
    vo.completed_at = timezone.now()
    vo.next_poll_at = vo.claimed_at = None
    vo.last_error = "" if status != Status.FAILED else note[:1000]
    vo.save()
    ledger.settle(vendor=vo.vendor, currency=vo.currency, reserved=_reserved(vo), spent=spent,
                  order=order, vendor_order=vo, note=note[:300], estimated=estimated)
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
        if not _mine(vo).update(
            attention=reason[:300], next_poll_at=None, claimed_at=None, last_error=reason
        ):
            return "given back by the sweep"
        audit.record(action=audit.Action.NEEDS_ATTENTION, target=vo, order=order,
                     message=f"{vo.client_reference}: {reason}"[:500])
        _refresh_order(order)
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



# Who may do what. Pages, admin pages and admin actions ask these; the commands above
# enforce them too, so that no door skips them. Each decides from the user (active staff,
# roles: portal.roles), the order's state and its supplier orders' states.

UNRELEASED = (Order.Status.PENDING_APPROVAL, Order.Status.REJECTED, Order.Status.CANCELLED)
UNSENT = (Order.Status.PENDING_APPROVAL, Order.Status.QUEUED)


def _placed(user, order: Order) -> bool:
    return order.placed_by_id == user.pk


def can_see_all_orders(user) -> bool:
    """Approvers (and superusers) see every order; everyone else only their own."""
    return is_portal_user(user) and user.has_perm("orders.approve_order")


def can_view_order(user, order: Order) -> bool:
    return is_portal_user(user) and user.has_perm("orders.view_order") and (
        _placed(user, order) or can_see_all_orders(user)
    )


def can_approve(user, order: Order) -> bool:
    """An approver decides an order waiting for approval, never their own."""
    return (is_portal_user(user) and user.has_perm("orders.approve_order")
            and order.status == Order.Status.PENDING_APPROVAL and not _placed(user, order))


def can_reject(user, order: Order) -> bool:
    return can_approve(user, order)


def _may_cancel(user, order: Order) -> bool:
    return is_portal_user(user) and (
        (_placed(user, order) and user.has_perm("orders.view_order"))
        or user.has_perm("orders.approve_order")
    )


def can_cancel(user, order: Order) -> bool:
    """An order none of whose supplier orders was sent, by who placed it or an approver
    (``order.vendor_orders`` may be prefetched)."""
    return (_may_cancel(user, order) and order.status in UNSENT
            and all(vo.status == Status.CREATED for vo in order.vendor_orders.all()))


def can_top_up(user, order: Order) -> bool:
    """A partially delivered order, by who placed it (still allowed to order) or an
    operator."""
    return is_portal_user(user) and order.status == Order.Status.PARTIALLY_COMPLETED and (
        (_placed(user, order) and user.has_perm("orders.add_order"))
        or user.has_perm("orders.change_vendororder")
    )


def repollable(order: Order, vendor_order: VendorOrder) -> bool:
    """Asking the supplier again makes sense, and sends nothing new: the order was released
    (approved, or needing no approval), and the supplier order is open and was sent at
    least once (a CREATED one that never was is the dispatcher's to send)."""
    return (order.status not in UNRELEASED and vendor_order.status not in FINAL
            and (vendor_order.status != Status.CREATED or vendor_order.submitted_at is not None))


def can_repoll_vendor_order(user, vendor_order: VendorOrder, order: Order) -> bool:
    return repollable(order, vendor_order) and is_portal_user(user) and (
        (_placed(user, order) and user.has_perm("orders.view_order"))
        or user.has_perm("orders.change_vendororder")
    )


def can_repoll(user, order: Order) -> bool:
    """Whether the order has a supplier order ``user`` may have asked about again."""
    from orders.selectors import vendor_orders_to_repoll  # selectors import this module

    return any(can_repoll_vendor_order(user, vo, order) for vo in vendor_orders_to_repoll(order))


def can_mark_reviewed(user, order: Order) -> bool:
    """A second person's check: an approver, on someone else's order."""
    return (is_portal_user(user) and user.has_perm("orders.approve_order")
            and not _placed(user, order))


@transaction.atomic
def mark_reviewed(*, order: Order, user) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    if not can_mark_reviewed(user, order):
        raise PermissionDenied(f"You may not mark order {order.reference} reviewed.")
    if not order.reviewed:
        order.reviewed = True
        order.save(update_fields=["reviewed", "updated_at"])
        audit.record(action=audit.Action.STATUS_CHANGED, target=order, actor=user,
                     order=order, message="Marked reviewed")
    return order


# Code custody: the only ways a code leaves its encryption


def can_reveal(user, order: Order) -> bool:
    """Codes are for the person who ordered them, and for approvers; both need the right."""
    return is_portal_user(user) and user.has_perm("orders.reveal_codes") and (
        _placed(user, order) or user.has_perm("orders.approve_order")
    )


def can_export(user, order: Order | None = None) -> bool:
    """Exporting codes at all, or those of ``order``: the right, and seeing its codes."""
    return is_portal_user(user) and user.has_perm("orders.export_codes") and (
        order is None or can_reveal(user, order)
    )


def reveal_voucher(*, voucher: Voucher, user) -> VoucherSecrets:
    if not can_reveal(user, voucher.order):
        raise PermissionDenied("You may not see the codes of this order.")
    with transaction.atomic():
        audit.record(action=audit.Action.REVEALED, target=voucher, actor=user,
                     order=voucher.order, message=f"Code ending {voucher.last4} revealed",
                     data={"voucher": str(voucher.pk), "last4": voucher.last4})
    return open_voucher(voucher)
