"""User commands on orders, and the rules of who may do what (``can_*``).

Place, top up, approve, reject, cancel, re-poll, resolve an unknown outcome, mark reviewed,
reveal a code. Each command is keyword-only, runs in one transaction with its audit row, and
queues supplier work on commit (orders.dispatch); what happens at the supplier afterwards is
orders.fulfilment's. The ``can_*`` rules are asked by pages, forms and admin actions, and
enforced again by the commands, so that no door skips them.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services. No engine module imports
this one; the pages, forms, admin, exports, the basket and bulk files do.
"""

import hashlib
import secrets
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from common.http import SupplierError
from common.money import MoneyError, format_money
from orders import ledger, spend
from orders.custody import VoucherSecrets, open_voucher
from orders.dispatch import claim_and_enqueue
from orders.errors import OrderError
from orders.fulfilment import (
    apply_result,
    order_request,
    refresh_order,
    reserved,
    transition,
)
from orders.lines import add_line
from orders.models import BulkUpload, Order, OrderLine, VendorOrder, Voucher
from orders.pricing import LineRequest, PricedLine, Router, codes, price_line
from orders.selectors import can_see_all_orders
from portal.access import is_portal_user
from vendors.adapters.base import OrderResult
from vendors.services import adapter_for

Status = VendorOrder.Status


def new_reference() -> str:
    """Our reference of a new order: upper case, never edited (selectors search on it)."""
    return f"VP-{timezone.now():%y%m%d}-{secrets.token_hex(4).upper()}"


class AlreadyPlaced(OrderError):
    """The confirmation was used already: ``order`` is the order it placed."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"This order was already placed as {order.reference}.")
        self.order = order


def place_order(*, user, lines: list[LineRequest], note: str = "", purchase_order: str = "",
                confirmation_token: str | None = None,
                allow_other_suppliers: bool = True) -> Order:
    """Validate, price, reserve and record an order; its supplier orders are queued on commit.

    Above the user's spend limits (orders.spend) it waits for approval, and says why. A
    ``confirmation_token`` places at most one order: the database refuses a second one with
    the same token (unique), and ``AlreadyPlaced`` names the first.
    """
    if not lines:
        raise OrderError("An order needs at least one line.")
    priced = [price_line(line) for line in lines]
    if len({p.currency for p in priced}) != 1:
        raise OrderError("All lines of an order must be paid in one currency.")
    return place_lines(user=user, priced=priced, note=note, purchase_order=purchase_order,
                       confirmation_token=confirmation_token,
                       allow_other_suppliers=allow_other_suppliers)[0]


def place_lines(*, user, priced: list[PricedLine], note: str = "", purchase_order: str = "",
                confirmation_token: str | None = None, allow_other_suppliers: bool = True,
                source_upload: BulkUpload | None = None) -> list[Order]:
    """Place priced lines as one order per currency they are paid in (spend limits and the
    ledger are per currency), all in one transaction: every order or none. A
    ``confirmation_token`` places them once: a second use raises ``AlreadyPlaced``."""
    if not priced:
        raise OrderError("An order needs at least one line.")
    groups: dict[str, list[PricedLine]] = {}
    for line in priced:
        groups.setdefault(line.currency, []).append(line)
    tokens = _group_tokens(confirmation_token, list(groups))
    try:
        with transaction.atomic():
            spend.lock_user(user)
            if confirmation_token and (placed := _placed_with(user, tokens)):
                raise AlreadyPlaced(placed)
            return [_place(user, lines, note=note, purchase_order=purchase_order,
                           confirmation_token=tokens[currency],
                           allow_other_suppliers=allow_other_suppliers,
                           source_upload=source_upload)
                    for currency, lines in groups.items()]
    except IntegrityError:
        placed = _placed_with(user, tokens) if confirmation_token else None
        if placed is None:
            raise
        raise AlreadyPlaced(placed) from None


def _group_tokens(token: str | None, currencies: list[str]) -> dict[str, str | None]:
    """The first order of a confirmation keeps its nonce; each other currency's order gets
    one derived from it, so that every order of the confirmation is unique to it."""
    if not token:
        return {currency: None for currency in currencies}
    return {currency: token if i == 0 else hashlib.sha256(
        f"{token}:{currency}".encode()).hexdigest()[:32] for i, currency in enumerate(currencies)}


def _placed_with(user, tokens: dict[str, str | None]) -> Order | None:
    return Order.objects.filter(confirmation_token__in=[t for t in tokens.values() if t],
                                placed_by=user).order_by("pk").first()


def _place(user, priced: list[PricedLine], *, note: str, purchase_order: str,
           confirmation_token: str | None, allow_other_suppliers: bool,
           source_upload: BulkUpload | None) -> Order:
    """One order of lines paid in one currency; the caller holds the transaction and the
    user's lock."""
    currency = priced[0].currency
    total = sum((p.total for p in priced), Decimal("0"))
    reasons = spend.approval_reasons(user=user, currency=currency, total=total)
    order = Order.objects.create(
        reference=new_reference(), placed_by=user, currency=currency,
        total_cost=total, quantity=sum(p.quantity for p in priced), note=note,
        purchase_order=purchase_order, confirmation_token=confirmation_token or None,
        status=Order.Status.PENDING_APPROVAL if reasons else Order.Status.QUEUED,
        approval_reason=" ".join(reasons)[:500], allow_other_suppliers=allow_other_suppliers,
        source_upload=source_upload,
    )
    for p in priced:
        add_line(order, p)
    audit.record(
        action=audit.Action.PLACED, target=order, actor=user, order=order,
        message=f"Placed {codes(order.quantity)} for {format_money(total, order.currency)}"
        + (f" from {source_upload.filename}" if source_upload else "")
        + (f"; waits for approval: {order.approval_reason}" if reasons else ""),
        data={"lines": [{"product": p.product.pk, "item": p.asked_item_id,
                         "quantity": p.quantity, "unit_cost": str(p.unit_cost),
                         "routing": p.routing_note} for p in priced],
              "approval": reasons, "allow_other_suppliers": allow_other_suppliers},
    )
    if order.status == Order.Status.QUEUED:
        _release_on_commit(order)
    return order


def _release_on_commit(order: Order) -> None:
    """Make the order's new supplier orders due now, and dispatch them once committed."""
    now = timezone.now()
    order.vendor_orders.filter(status=Status.CREATED, next_poll_at__isnull=True,
                               claimed_at__isnull=True).update(next_poll_at=now)
    ids = list(order.vendor_orders.filter(next_poll_at=now).values_list("pk", flat=True))
    transaction.on_commit(lambda: claim_and_enqueue(ids))


def top_up_order(*, order: Order, user) -> list[OrderLine]:
    """Order what a partially delivered order is missing from the cheapest other offer of
    each short line's item, paid in the order's currency."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.PARTIALLY_COMPLETED:
            raise OrderError("Only a partially delivered order can be topped up.")
        if not can_top_up(user, order):
            raise PermissionDenied("You may not top up this order.")
        missing = order.quantity - order.delivered_quantity
        short_lines = [line for line in order.lines.select_related("product", "vendor", "item")
                       if line.quantity > line.delivered_quantity]
        router = Router.for_items(line.item_id for line in short_lines if line.item_id)
        lines = []
        for line in short_lines:
            short = min(line.quantity - line.delivered_quantity, missing)
            if not short:
                continue
            if line.item is None:
                raise OrderError(f"No other offer of {line.product.name} can take "
                                 f"{codes(short)}: it is matched to no catalog item.")
            priced = router.route(item=line.item, quantity=short, face_value=line.face_value,
                                  pay_currency=order.currency,
                                  exclude_vendor_ids=(line.vendor_id,))
            new_line = add_line(order, priced, routing_note=f"Top-up of {short} missing from "
                                f"{line.vendor}. {priced.routing_note}")
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
    vendor_orders = list(order.vendor_orders.select_for_update(of=("self",))
                         .select_related("line"))
    if order.status not in Order.Status.UNSENT or any(
        vo.status != Status.CREATED for vo in vendor_orders
    ):
        raise OrderError("This order has already been sent to its supplier.")
    for vo in vendor_orders:
        # The order's own row, below, names who acted; this one follows from it.
        transition(vo, Status.CANCELLED, order=order, message=f"cancelled with its order "
                   f"({message})", next_poll_at=None, claimed_at=None)
        ledger.settle(vendor=vo.vendor, currency=vo.currency, reserved=reserved(vo),
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
    if vo.status in Status.FINAL:
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
    refresh_order(order)
    transaction.on_commit(lambda: claim_and_enqueue([vo.pk]))
    return vo


def can_resolve(user, vendor_order: VendorOrder) -> bool:
    """An operator may settle a supplier order whose outcome is unknown and that waits for a
    person: send it again, or attach the supplier's own order."""
    return (is_portal_user(user) and user.has_perm("orders.change_vendororder")
            and vendor_order.status in Status.UNRESOLVED and bool(vendor_order.attention))


def _lock_unresolved(vendor_order: VendorOrder, user) -> tuple[Order, VendorOrder]:
    order = Order.objects.select_for_update().get(pk=vendor_order.order_id)
    vo = VendorOrder.objects.select_for_update(of=("self",)).select_related(
        "line__product", "vendor").get(pk=vendor_order.pk)
    if vo.status not in Status.UNRESOLVED or not vo.attention:
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
        transition(vo, Status.CREATED, order=order, action=audit.Action.RESOLVED, actor=user,
                   message="the supplier confirms it has no such order: sending it again",
                   attention="", next_poll_at=timezone.now(), claimed_at=None)
        refresh_order(order)
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
        if vo.status in Status.UNRESOLVED and vo.attention:
            raise PermissionDenied("Only an operator may resolve a supplier order.")
        raise OrderError("Only a supplier order whose outcome is unknown and that waits for a "
                         "person can be resolved.")
    taken = VendorOrder.objects.filter(vendor=vo.vendor, supplier_order_id=supplier_order_id)
    if other := taken.exclude(pk=vo.pk).first():
        raise OrderError(f"{vo.vendor} order {supplier_order_id} is already ours as "
                         f"{other.client_reference}.", "supplier_order_id")
    try:
        result = adapter_for(vo.vendor).fetch_order(supplier_order_id,
                                                    order=order_request(vo))
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
        transition(
            vo, Status.PROCESSING, order=order, action=audit.Action.RESOLVED, actor=user,
            message=f"the supplier has it as order {supplier_order_id} "
            f"({codes(vo.quantity)} of {vo.line.product.name}); attached by hand, not resent",
            supplier_order_id=supplier_order_id, attention="",
        )
        outcome = apply_result(vo, result, audit.Action.POLLED)
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
    asked, refused = 0, []
    for vo in vendor_orders_to_repoll(order):
        try:
            repoll_now(vendor_order=vo, user=user)
            asked += 1
        except OrderError as exc:
            refused.append(f"{vo.client_reference}: {exc.message}")
    return asked, refused




# Who may do what. Pages, admin pages and admin actions ask these; the commands above
# enforce them too, so that no door skips them. Each decides from the user (active staff,
# roles: portal.roles), the order's state and its supplier orders' states.

def _placed(user, order: Order) -> bool:
    return order.placed_by_id == user.pk


def can_order(user) -> bool:
    """Placing orders: the new-order form, the basket, bulk files, "Order again"."""
    return is_portal_user(user) and user.has_perm("orders.add_order")


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
    return (_may_cancel(user, order) and order.status in Order.Status.UNSENT
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
    return (order.status not in Order.Status.UNRELEASED
            and vendor_order.status not in Status.FINAL
            and (vendor_order.status != Status.CREATED or vendor_order.submitted_at is not None))


def vendor_orders_to_repoll(order: Order) -> list[VendorOrder]:
    """The sent, open supplier orders waiting for a person, or else every sent, open one;
    none for an order not approved (uses the order's prefetched supplier orders)."""
    open_ = [vo for vo in order.vendor_orders.all() if repollable(order, vo)]
    return [vo for vo in open_ if vo.attention] or open_


def can_repoll_vendor_order(user, vendor_order: VendorOrder, order: Order) -> bool:
    return repollable(order, vendor_order) and is_portal_user(user) and (
        (_placed(user, order) and user.has_perm("orders.view_order"))
        or user.has_perm("orders.change_vendororder")
    )


def can_repoll(user, order: Order) -> bool:
    """Whether the order has a supplier order ``user`` may have asked about again."""
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


def can_see_ledger(user) -> bool:
    """Ledger entries (what each order reserved, spent and released) are for those who see
    balances: operators."""
    return user.is_active and user.has_perm("vendors.view_balance")


def can_see_reports(user) -> bool:
    """Spend and supplier reports (orders.reports) are for approvers and operators: each sees
    them over the supplier orders they see (selectors.visible_vendor_orders), every one."""
    return is_portal_user(user) and user.has_perm("orders.view_reports")
