"""A user's basket: catalog items (or offers pinned by hand) with quantities, routed and
priced as a whole, then placed by one confirmation.

The basket lives in the database (``BasketLine``), so it survives a new session and "Order
again" can fill it. ``view`` routes every line with one ``pricing.Router`` (each line takes
its total off the balance it draws on, so two lines never plan to spend the same money) and
shows what placing would do: each line's offer or why none can take it, totals and approval
reasons per currency, the balances after, the user's recent orders of the same item and
quantity. ``place`` routes again and places only what the page showed (its fingerprint), as
one order per currency (orders.services.place_lines), and empties the basket in the same
transaction. Writes check ``services.can_order``.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction

from orders import pricing, selectors, services
from orders.errors import OrderError
from orders.models import BasketLine, Order
from orders.pricing import PricedLine
from vendors.models import CatalogItem, Product

MAX_LINES = 200


@dataclass
class BasketRow:
    line: BasketLine
    priced: PricedLine | None = None
    error: str = ""
    repeats: list[Order] = field(default_factory=list)


@dataclass
class BasketView:
    rows: list[BasketRow]
    totals: list[pricing.CurrencyTotal]
    balances: list[pricing.BalanceAfter]
    fingerprint: str

    @property
    def ready(self) -> bool:
        """Every line can be placed as shown."""
        return bool(self.rows) and all(row.priced for row in self.rows)

    @property
    def priced(self) -> list[PricedLine]:
        return [row.priced for row in self.rows if row.priced]



def lines_of(user) -> list[BasketLine]:
    return list(BasketLine.objects.filter(user=user).select_related(
        "item", "product__vendor"))


def view(user) -> BasketView:
    """The basket routed and priced as placing would, in a fixed number of queries."""
    lines = lines_of(user)
    router = pricing.Router.for_items(line.item_id for line in lines)
    rows = []
    for line in lines:
        row = BasketRow(line)
        try:
            row.priced = router.route(item=line.item, quantity=line.quantity,
                                      face_value=line.face_value, pinned=line.product)
        except OrderError as exc:
            row.error = exc.message
        rows.append(row)
    _add_repeats(user, rows)
    priced = [row.priced for row in rows if row.priced]
    return BasketView(rows=rows, totals=pricing.currency_totals(priced, user),
                      balances=pricing.balances_after(priced, router),
                      fingerprint=pricing.routes_fingerprint(priced))


def _add_repeats(user, rows: list[BasketRow]) -> None:
    """The user's own recent orders of the same item, quantity and face value: the basket
    may hold what was just bought."""
    recent = selectors.recent_lines_of_items(
        user=user, item_ids={row.line.item_id for row in rows},
        since=selectors.repeat_window_start())
    for row in rows:
        line = row.line
        face_value = row.priced.face_value if row.priced else line.face_value
        row.repeats = list({
            ordered.order_id: ordered.order for ordered in recent
            if ordered.item_id == line.item_id and ordered.quantity == line.quantity
            and (face_value is None or ordered.face_value == face_value)
        }.values())


# Writes


def _check(user) -> None:
    if not services.can_order(user):
        raise PermissionDenied("You may not place orders.")


@transaction.atomic
def add(*, user, item: CatalogItem, quantity: int, product: Product | None = None,
        face_value: Decimal | None = None) -> BasketLine:
    """Add ``quantity`` of ``item`` (or of its offer ``product``); the same item, offer and
    face value already in the basket grows by it instead."""
    _check(user)
    pricing.check_quantity(quantity)
    if product is not None and product.item_id != item.pk:
        raise OrderError(f"{product.name} is not an offer of {item}.", "product")
    if item.face_value is not None:
        face_value = None  # the item's own
    elif face_value is None:
        raise OrderError(f"{item} comes in a range of values: choose a face value.",
                         "face_value")
    same = BasketLine.objects.select_for_update().filter(
        user=user, item=item, product=product, face_value=face_value).first()
    if same is not None:
        pricing.check_quantity(same.quantity + quantity)
        same.quantity += quantity
        same.save(update_fields=["quantity"])
        return same
    if BasketLine.objects.filter(user=user).count() >= MAX_LINES:
        raise OrderError(f"A basket holds at most {MAX_LINES} lines: place it first.")
    return BasketLine.objects.create(user=user, item=item, product=product,
                                     face_value=face_value, quantity=quantity)


@transaction.atomic
def set_quantity(*, user, line_id: int, quantity: int) -> BasketLine:
    _check(user)
    pricing.check_quantity(quantity)
    line = BasketLine.objects.select_for_update().filter(pk=line_id, user=user).first()
    if line is None:  # removed meanwhile, in another tab or request
        raise OrderError("That line is no longer in the basket.")
    line.quantity = quantity
    line.save(update_fields=["quantity"])
    return line


def remove(*, user, line_id: int) -> None:
    _check(user)
    BasketLine.objects.filter(pk=line_id, user=user).delete()


def fill_from_order(*, user, order: Order) -> int:
    """"Order again": put the order's lines in the basket (a fallback line's quantity goes
    with the line it replaced, not twice). Returns how many lines were added."""
    if not services.can_view_order(user, order):
        raise PermissionDenied("You may not see this order.")
    added = 0
    for line in order.lines.select_related("item", "product").filter(replaces__isnull=True):
        item = line.item or line.product.item
        if item is None:
            continue
        add(user=user, item=item, quantity=line.quantity, face_value=line.face_value)
        added += 1
    if not added:
        raise OrderError("None of this order's lines is in the catalog any more.")
    return added


class BasketChanged(OrderError):
    """The basket now routes or costs otherwise than the page showed."""


def place(*, user, confirmation_token: str, fingerprint: str, allow_other_suppliers: bool,
          note: str = "", purchase_order: str = "") -> list[Order]:
    """Place the basket as shown (``fingerprint``): one order per currency, and empty it.
    BasketChanged when it routes otherwise now; AlreadyPlaced on a second use of the
    confirmation."""
    _check(user)
    placed = Order.objects.filter(confirmation_token=confirmation_token,
                                  placed_by=user).first()
    if placed is not None:
        raise services.AlreadyPlaced(placed)
    basket = view(user)
    if not basket.rows:
        raise OrderError("The basket is empty.")
    if not basket.ready:
        raise BasketChanged("Some lines cannot be placed: see each line's reason.")
    if basket.fingerprint != fingerprint:
        raise BasketChanged("The basket's offers or prices changed since it was shown: "
                            "check it and place it again.")
    with transaction.atomic(durable=True):  # the command: its orders are placed once, here
        orders = services.place_lines(
            user=user, priced=basket.priced, note=note, purchase_order=purchase_order,
            confirmation_token=confirmation_token, allow_other_suppliers=allow_other_suppliers)
        BasketLine.objects.filter(pk__in=[row.line.pk for row in basket.rows]).delete()
    return orders
