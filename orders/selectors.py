"""Reads for the staff pages: which orders a person sees, search, filters, the catalog.

Every list function returns a QuerySet whose related rows are fetched up front, so a page
runs the same number of queries whatever the number of rows on it. Reads only: nothing here
writes or calls a supplier.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services. Selectors import no other engine
module.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from statistics import median

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import ACCESS_ACTIONS
from common.crypto import default_keyring
from orders.models import LedgerEntry, Order, OrderLine, VendorOrder, Voucher
from portal.access import is_portal_user
from vendors.models import Balance, CatalogItem, Product, Vendor

# Columns the order list may be sorted by: URL name -> model field. None of them is ever
# NULL, and every sort ends with the id, so that (sort value, id) orders the rows strictly:
# the order list pages by seeking past the last row's pair (see order_page).
ORDER_SORTS = {
    "reference": "reference",
    "placed": "created_at",
    "status": "status",
    "total": "total_cost",
    "quantity": "quantity",
    "placed_by": "placed_by__username",
}
DEFAULT_ORDER_SORT = "-placed"


# Orders


def can_see_all_orders(user) -> bool:
    """Approvers (and superusers) see every order; everyone else only their own."""
    return is_portal_user(user) and user.has_perm("orders.approve_order")


def visible_orders(user, orders: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Of ``orders`` (all by default), those ``user`` sees: approvers (and superusers) see
    every order; everyone else only their own (the rule: can_see_all_orders)."""
    orders = Order.objects.all() if orders is None else orders
    if can_see_all_orders(user):
        return orders
    return orders.filter(placed_by=user) if user.is_authenticated else orders.none()


def can_see_all_vendor_orders(user) -> bool:
    """Operators see every supplier order, and so does whoever sees every order."""
    return user.has_perm("orders.change_vendororder") or can_see_all_orders(user)


def visible_vendor_orders(user, vendor_orders: QuerySet[VendorOrder] | None = None
                          ) -> QuerySet[VendorOrder]:
    """Of ``vendor_orders`` (all by default), those ``user`` sees: every supplier order for
    who may (can_see_all_vendor_orders); everyone else those of the orders they see."""
    vendor_orders = VendorOrder.objects.all() if vendor_orders is None else vendor_orders
    if can_see_all_vendor_orders(user):
        return vendor_orders
    return vendor_orders.filter(order__in=visible_orders(user).values("pk"))


def search_orders(orders: QuerySet[Order], term: str) -> QuerySet[Order]:
    """Our reference or the supplier's order id. Codes are searched by ``code`` (their blind
    index), never by a term in the URL. A subquery instead of a join keeps one row per
    order.

    References are made upper case (services.new_reference) and never edited, so a term in
    any case is looked up as typed and upper-cased, both equalities the unique index of
    ``reference`` answers (``iexact`` compares every row: a third of a second on a million
    orders). The two lookups are one UNION of ids, each answered by its own index: as
    ``reference IN (...) OR id IN (subquery)``, PostgreSQL reads every order (half a second
    on a million, and as much again for each code searched, see search_parameters)."""
    term = term.strip()
    if not term:
        return orders
    by_reference = Order.objects.filter(reference__in=sorted({term, term.upper()}))
    by_supplier_id = VendorOrder.objects.filter(supplier_order_id=term)
    return orders.filter(pk__in=by_reference.order_by().values("pk").union(
        by_supplier_id.order_by().values("order_id")))


def orders_with_code(orders: QuerySet[Order], code_index: str) -> QuerySet[Order]:
    """The orders holding the code whose blind index is ``code_index`` (never decrypting)."""
    if not code_index:
        return orders
    return orders.filter(
        pk__in=Voucher.objects.filter(code_index=code_index).values("order_id")
    )


def search_parameters(user, term: str) -> dict[str, str]:
    """Where a search box term goes in the order list's URL: ``q`` when it is the reference
    or the supplier's order id of an order ``user`` may see, otherwise ``code``, the term's
    blind index, so that a code never appears in a URL, a log or a browser's history."""
    term = term.strip()
    if not term:
        return {}
    if search_orders(visible_orders(user), term).exists():
        return {"q": term}
    return {"code": default_keyring().blind_index(term)}


@dataclass(frozen=True)
class OrderFilters:
    status: str = ""
    vendor: Vendor | None = None
    product: Product | None = None
    placed_by: object = None
    currency: str = ""
    placed_from: date | None = None
    placed_to: date | None = None
    q: str = ""
    code: str = ""  # a code's blind index
    sort: str = DEFAULT_ORDER_SORT


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_orders(orders: QuerySet[Order], filters: OrderFilters) -> QuerySet[Order]:
    if filters.status:
        orders = orders.filter(status=filters.status)
    # EXISTS, not IN: the database walks the sorted index of orders and probes each one's
    # lines until the page is full, instead of collecting the ids of every line of the
    # vendor (a third of a million) and sorting their orders (a second on a million orders).
    if filters.vendor is not None:
        orders = orders.filter(Exists(
            OrderLine.objects.filter(order=OuterRef("pk"), vendor=filters.vendor)))
    if filters.product is not None:
        orders = orders.filter(Exists(
            OrderLine.objects.filter(order=OuterRef("pk"), product=filters.product)))
    if filters.placed_by is not None:
        orders = orders.filter(placed_by=filters.placed_by)
    if filters.currency:
        orders = orders.filter(currency=filters.currency.upper())
    if filters.placed_from:
        orders = orders.filter(created_at__gte=_day_start(filters.placed_from))
    if filters.placed_to:
        orders = orders.filter(created_at__lt=_day_start(filters.placed_to + timedelta(days=1)))
    orders = search_orders(orders, filters.q)
    orders = orders_with_code(orders, filters.code)
    return sort_orders(orders, filters.sort)


def normal_sort(sort: str) -> str:
    """``sort`` when it names a whitelisted column (``-`` first for descending), else the
    default."""
    return sort if sort.removeprefix("-") in ORDER_SORTS else DEFAULT_ORDER_SORT


def sort_orders(orders: QuerySet[Order], sort: str) -> QuerySet[Order]:
    sort = normal_sort(sort)
    direction = "-" if sort.startswith("-") else ""
    return orders.order_by(f"{direction}{ORDER_SORTS[sort.removeprefix('-')]}", f"{direction}id")


def with_list_details(orders: QuerySet[Order]) -> QuerySet[Order]:
    """What the order list shows of each order: who placed it, its lines' products and
    vendors."""
    return orders.select_related("placed_by").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product", "vendor"))
    )


@dataclass(frozen=True)
class Page:
    rows: list
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def page_of(queryset: QuerySet, number: int, size: int) -> Page:
    """One page without counting the whole set: fetch one row more to learn if a next exists."""
    number = max(1, number)
    start = (number - 1) * size
    rows = list(queryset[start:start + size + 1])
    return Page(rows=rows[:size], number=number, has_next=len(rows) > size)


# Keyset (seek) pagination of the order list: a page is "the ``size`` rows after (or before)
# this (sort value, id)", which the database finds with an index instead of reading and
# dropping every row before an OFFSET. The position travels in the URL as an opaque cursor:
# the sort, the row's sort value and its id, signed so that a cursor altered or made up by
# hand, or left over from another sort, is refused (the list then shows its first page).

CURSOR_SALT = "orders.order_list.cursor"
# The latest completed supplier orders an item page reads to tell each offer's time to codes.
OFFER_RECORD_SAMPLE = 2000


@dataclass(frozen=True)
class KeysetPage:
    rows: list
    has_next: bool
    has_previous: bool
    next_cursor: str  # the last row's position: the next page is ``after`` it
    previous_cursor: str  # the first row's position: the previous page is ``before`` it
    keyset = True  # for the pager template: cursors instead of page numbers


def _sort_field(sort: str):
    """The model field of a whitelisted sort, following a relation (``placed_by__username``)."""
    model, field = Order, None
    for name in ORDER_SORTS[sort.removeprefix("-")].split("__"):
        field = model._meta.get_field(name)
        model = field.related_model
    return field


def _sort_value(row: Order, sort: str):
    value = row
    for name in ORDER_SORTS[sort.removeprefix("-")].split("__"):
        value = getattr(value, name)
    return value


def order_cursor(row: Order, sort: str) -> str:
    """The opaque position of ``row`` in the order list sorted by ``sort``."""
    sort = normal_sort(sort)
    value = _sort_value(row, sort)
    value = value.isoformat() if isinstance(value, datetime) else str(value)
    return signing.Signer(salt=CURSOR_SALT).sign_object([sort, value, row.pk])


def read_cursor(cursor: str, sort: str) -> tuple[object, int] | None:
    """(sort value, id) of a cursor made by order_cursor for this ``sort``; None for
    anything else."""
    try:
        cursor_sort, value, pk = signing.Signer(salt=CURSOR_SALT).unsign_object(cursor)
        if cursor_sort != normal_sort(sort) or type(pk) is not int or type(value) is not str:
            return None
        return _sort_field(cursor_sort).to_python(value), pk
    except (signing.BadSignature, ValidationError, ValueError, TypeError):
        return None


def _seek(field: str, value, pk: int, *, greater: bool) -> Q:
    """Rows whose (field, id) comes after (value, pk), ascending when ``greater``. The first
    condition alone is what an index on ``field`` can range-scan."""
    if greater:
        return Q(**{f"{field}__gte": value}) & (
            Q(**{f"{field}__gt": value}) | Q(**{field: value, "id__gt": pk}))
    return Q(**{f"{field}__lte": value}) & (
        Q(**{f"{field}__lt": value}) | Q(**{field: value, "id__lt": pk}))


def order_page(orders: QuerySet[Order], sort: str, *, size: int, after: str = "",
               before: str = "") -> KeysetPage:
    """The page of ``orders`` (filtered, see filter_orders) sorted by ``sort``: the rows
    after the cursor ``after``, or before the cursor ``before``, or else the first page.
    One query whatever the depth: no COUNT, and one row more than ``size`` tells whether
    there is a page further on. A bad cursor (or both) gives the first page."""
    sort = normal_sort(sort)
    orders = sort_orders(orders, sort)
    field = ORDER_SORTS[sort.removeprefix("-")]
    descending = sort.startswith("-")
    position = read_cursor(after or before, sort) if bool(after) != bool(before) else None
    backward = position is not None and bool(before)
    first = orders
    if position is not None:
        # Forward on an ascending sort, or backward on a descending one: greater pairs.
        orders = orders.filter(_seek(field, *position, greater=descending == backward))
    if backward:
        orders = orders.reverse()  # the nearest rows first: (field, id) the other way
    rows = list(orders[:size + 1])
    more, rows = len(rows) > size, rows[:size]
    if position is not None and (not rows or backward and not more and len(rows) < size):
        # Nothing left after the cursor, or back at the start with a short page: rows were
        # added or deleted since the link was made. The first page, full, instead.
        return order_page(first, sort, size=size)
    if backward:
        rows.reverse()
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, position is not None
    return KeysetPage(
        rows=rows, has_next=has_next, has_previous=has_previous,
        next_cursor=order_cursor(rows[-1], sort) if rows and has_next else "",
        previous_cursor=order_cursor(rows[0], sort) if rows and has_previous else "",
    )


def order_detail(user, pk: int) -> Order:
    """One visible order with everything its page shows, in a fixed number of queries."""
    return visible_orders(user).select_related(
        "placed_by", "approved_by", "rejected_by"
    ).prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product", "vendor",
                                                                    "replaces__vendor")),
        Prefetch("vendor_orders", queryset=VendorOrder.objects.select_related("vendor")),
        # The page shows codes masked: their ciphertext has no business there.
        Prefetch("vouchers", queryset=Voucher.objects.defer(
            "code_encrypted", "pin_encrypted", "claim_url_encrypted")),
        Prefetch("events", queryset=AuditEvent.objects.select_related("actor")
                 .order_by("created_at", "id")),
    ).get(pk=pk)


@dataclass(frozen=True)
class OrderMoney:
    """What an order's money did, in one currency, from its ledger entries: what is still
    set aside, what the suppliers charged, and what was set aside and given back."""

    currency: str
    reserved: Decimal
    charged: Decimal
    released: Decimal
    estimated: bool  # a charge the supplier did not state: the portal's estimate


def order_money(order: Order) -> list[OrderMoney]:
    totals: dict[str, dict[str, Decimal]] = {}
    estimated: set[str] = set()
    rows = (LedgerEntry.objects.filter(order=order).order_by().values("balance__currency", "kind")
            .annotate(total=Sum("amount"), estimates=Count("pk", filter=Q(estimated=True))))
    for row in rows:
        currency = row["balance__currency"]
        totals.setdefault(currency, {})[row["kind"]] = row["total"]
        if row["estimates"]:
            estimated.add(currency)
    kinds = LedgerEntry.Kind
    money = []
    for currency, total in sorted(totals.items()):
        reserve, debit, release = (total.get(k, Decimal("0"))
                                   for k in (kinds.RESERVE, kinds.DEBIT, kinds.RELEASE))
        # A supplier may charge a little over what was set aside: nothing is then held.
        money.append(OrderMoney(currency, max(reserve - debit - release, Decimal("0")),
                                debit, release, currency in estimated))
    return money


def ledger_entries(order: Order) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(order=order).select_related(
        "balance", "vendor_order").order_by("created_at", "id")


def visible_vendor_order(user, pk: int) -> VendorOrder:
    return VendorOrder.objects.select_related("vendor", "line__product").get(
        pk=pk, order__in=visible_orders(user).values("pk")
    )


def visible_voucher(user, pk) -> Voucher:
    return Voucher.objects.select_related("order").get(
        pk=pk, order__in=visible_orders(user).values("pk")
    )


def similar_recent_orders(*, product: Product, quantity: int,
                          within: timedelta = timedelta(hours=1)) -> QuerySet[Order]:
    """Orders by anyone for the same product and quantity, placed recently: a likely repeat."""
    since = timezone.now() - within
    return Order.objects.filter(
        created_at__gte=since,
        pk__in=OrderLine.objects.filter(product=product, quantity=quantity).values("order_id"),
    ).exclude(status__in=(Order.Status.CANCELLED, Order.Status.REJECTED)).select_related(
        "placed_by"
    )


def repeated_orders(*, user, product: Product, quantity: int, face_value: Decimal | None,
                    since: datetime) -> list[Order]:
    """The user's own orders of the same product, quantity and face value placed since
    ``since`` (a second tab, or a second click on another confirmation page)."""
    return list(Order.objects.filter(
        placed_by=user, created_at__gte=since,
        pk__in=OrderLine.objects.filter(product=product, quantity=quantity,
                                        face_value=face_value).values("order_id"),
    ).exclude(status__in=(Order.Status.CANCELLED, Order.Status.REJECTED))[:5])


def recent_lines_of_items(*, user, item_ids, since: datetime) -> list[OrderLine]:
    """The user's own order lines of these catalog items placed since ``since``, with their
    orders (rejected and cancelled orders left out): one query for a whole basket."""
    return list(OrderLine.objects.filter(
        order__placed_by=user, order__created_at__gte=since, item_id__in=set(item_ids),
    ).exclude(order__status__in=(Order.Status.CANCELLED, Order.Status.REJECTED))
        .select_related("order"))


def repeat_window_start() -> datetime:
    return timezone.now() - timedelta(minutes=settings.ORDER_REPEAT_WARNING_MINUTES)


# Dashboard


def balances() -> QuerySet[Balance]:
    return Balance.objects.filter(vendor__enabled=True).select_related("vendor")


def orders_in_flight(user, limit: int = 20) -> QuerySet[Order]:
    return visible_orders(user).filter(status__in=Order.Status.OPEN).select_related(
        "placed_by"
    )[:limit]


def orders_needing_attention(user, limit: int = 20) -> QuerySet[Order]:
    return visible_orders(user).filter(status=Order.Status.NEEDS_ATTENTION).select_related(
        "placed_by"
    )[:limit]


def recent_events(user, limit: int = 15) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor", "order").exclude(
        action__in=ACCESS_ACTIONS  # logins and role changes are for the audit page
    )
    if not can_see_all_orders(user):
        events = events.filter(order__placed_by=user)
    return events[:limit]


# Catalog


@dataclass(frozen=True)
class CatalogFilters:
    q: str = ""
    brand: str = ""
    country: str = ""
    currency: str = ""
    face_value: Decimal | None = None
    vendor: Vendor | None = None
    availability: str = ""  # "", "available" or "unavailable"


def _offers_of_item(**filters) -> QuerySet[Product]:
    """Offers of the outer item at enabled suppliers."""
    return Product.objects.filter(item=OuterRef("pk"), vendor__enabled=True, **filters)


def catalog(filters: CatalogFilters) -> QuerySet[CatalogItem]:
    """Catalog items across suppliers, each knowing its best cost (the cheapest available
    offer, in the item's own currency where one is), its number of offers and how many are
    available. A row per item, whatever the number of offers: filters on offers are
    existence checks."""
    items = CatalogItem.objects.filter(Exists(_offers_of_item()))
    if filters.q:
        items = items.filter(Q(name__icontains=filters.q) | Q(brand__icontains=filters.q) | Exists(
            _offers_of_item().filter(Q(name__icontains=filters.q) | Q(sku__iexact=filters.q)
                                     | Q(supplier_product_id__iexact=filters.q))))
    if filters.brand:
        items = items.filter(brand__iexact=filters.brand)
    if filters.country:
        items = items.filter(country__iexact=filters.country)
    if filters.currency:
        items = items.filter(currency__iexact=filters.currency)
    if filters.face_value is not None:
        items = items.filter(face_value=filters.face_value)
    if filters.vendor is not None:
        items = items.filter(Exists(_offers_of_item(vendor=filters.vendor)))
    available = Exists(_offers_of_item(available=True))
    if filters.availability == "available":
        items = items.filter(available)
    elif filters.availability == "unavailable":
        items = items.exclude(available)
    priced = _offers_of_item(available=True, cost__isnull=False)
    in_own_currency = priced.filter(cost_currency=OuterRef("currency")).order_by("cost")
    cheapest = priced.order_by("cost")
    count = _offers_of_item().order_by().values("item").annotate(n=Count("pk")).values("n")
    return items.annotate(
        best_cost=Coalesce(Subquery(in_own_currency.values("cost")[:1]),
                           Subquery(cheapest.values("cost")[:1])),
        best_cost_currency=Case(When(Exists(in_own_currency), then=F("currency")),
                                default=Subquery(cheapest.values("cost_currency")[:1])),
        offer_count=Coalesce(Subquery(count, output_field=IntegerField()), Value(0)),
        available_count=Coalesce(Subquery(
            count.filter(available=True), output_field=IntegerField()), Value(0)),
    ).order_by("brand", "country", "currency", "face_value", "name", "pk")


def catalog_item(pk: int) -> CatalogItem:
    return CatalogItem.objects.get(pk=pk)


@dataclass(frozen=True)
class OfferRecord:
    """How one offer did lately: its supplier orders in the window, how many failed, and the
    time from submission to codes (p50) of those completed."""

    orders: int
    failed: int
    seconds_to_codes: float | None

    @property
    def failure_rate(self) -> Decimal | None:
        return (Decimal(self.failed) / self.orders).quantize(Decimal("0.001")) \
            if self.orders else None


def item_offers(item: CatalogItem, *, days: int = 30) -> list[tuple[Product, OfferRecord]]:
    """The offers of ``item`` at enabled suppliers, cheapest first, each with its record over
    the last ``days`` days: three queries whatever the number of offers or orders."""
    offers = list(item.offers.filter(vendor__enabled=True).select_related("vendor")
                  .order_by(F("cost").asc(nulls_last=True), "vendor__name"))
    since = timezone.now() - timedelta(days=days)
    recent = VendorOrder.objects.filter(line__product__in=offers, created_at__gte=since)
    counts = {row["line__product"]: row for row in recent.order_by().values(
        "line__product").annotate(n=Count("pk"), failed=Count(
            "pk", filter=Q(status=VendorOrder.Status.FAILED)))}
    durations: dict[int, list[float]] = {}
    for product_id, submitted, completed in recent.filter(
        submitted_at__isnull=False, completed_at__isnull=False,
        status__in=(VendorOrder.Status.COMPLETED, VendorOrder.Status.PARTIALLY_COMPLETED),
    ).order_by("-created_at").values_list("line__product", "submitted_at", "completed_at")[
            :OFFER_RECORD_SAMPLE]:
        durations.setdefault(product_id, []).append((completed - submitted).total_seconds())
    return [(offer, OfferRecord(
        orders=counts.get(offer.pk, {}).get("n", 0),
        failed=counts.get(offer.pk, {}).get("failed", 0),
        seconds_to_codes=median(durations[offer.pk]) if offer.pk in durations else None,
    )) for offer in offers]


def product_detail(pk: int) -> Product:
    return Product.objects.select_related("vendor", "item").get(pk=pk)


def other_offers(product: Product) -> QuerySet[Product]:
    """The other offers of the product's catalog item."""
    if product.item_id is None:
        return Product.objects.none()
    return Product.objects.filter(item=product.item_id, vendor__enabled=True).exclude(
        pk=product.pk).select_related("vendor").order_by("cost")


def orderable_products() -> QuerySet[Product]:
    return Product.objects.filter(available=True, vendor__enabled=True).select_related(
        "vendor"
    ).order_by("brand", "name", "vendor__name")


def brands() -> Sequence[str]:
    return list(
        Product.objects.filter(available=True).exclude(brand="").order_by("brand")
        .values_list("brand", flat=True).distinct()
    )


def balance_currencies(vendor: Vendor) -> list[str]:
    return sorted(Balance.objects.filter(vendor=vendor).values_list("currency", flat=True))
