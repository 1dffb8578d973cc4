"""Reads for the staff pages: which orders a person sees, search, filters, catalog, quotes.

Every list function returns a QuerySet whose related rows are fetched up front, so a page
runs the same number of queries whatever the number of rows on it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    IntegerField,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders import services
from orders.models import Order, OrderLine, VendorOrder, Voucher
from portal.crypto import default_keyring
from portal.models import AuditEvent
from vendors.models import Balance, Product, Vendor

OPEN_ORDER_STATUSES = (
    Order.Status.PENDING_APPROVAL, Order.Status.QUEUED, Order.Status.IN_PROGRESS,
)
# Columns the order list may be sorted by: URL name -> model field.
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
    return user.has_perm("orders.approve_order")


def visible_orders(user) -> QuerySet[Order]:
    """Approvers (and superusers) see every order; everyone else only their own."""
    orders = Order.objects.all()
    return orders if can_see_all_orders(user) else orders.filter(placed_by=user)


def search_orders(orders: QuerySet[Order], term: str) -> QuerySet[Order]:
    """Our reference or the supplier's order id. Codes are searched by ``code`` (their blind
    index), never by a term in the URL. A subquery instead of a join keeps one row per
    order."""
    term = term.strip()
    if not term:
        return orders
    return orders.filter(Q(reference__iexact=term) | Q(
        pk__in=VendorOrder.objects.filter(supplier_order_id=term).values("order_id")
    ))


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
    if filters.vendor is not None:
        orders = orders.filter(
            pk__in=OrderLine.objects.filter(vendor=filters.vendor).values("order_id")
        )
    if filters.product is not None:
        orders = orders.filter(
            pk__in=OrderLine.objects.filter(product=filters.product).values("order_id")
        )
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


def sort_orders(orders: QuerySet[Order], sort: str) -> QuerySet[Order]:
    name = sort.removeprefix("-")
    if name not in ORDER_SORTS:
        sort, name = DEFAULT_ORDER_SORT, DEFAULT_ORDER_SORT.removeprefix("-")
    direction = "-" if sort.startswith("-") else ""
    return orders.order_by(f"{direction}{ORDER_SORTS[name]}", f"{direction}id")


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


def order_detail(user, pk: int) -> Order:
    """One visible order with everything its page shows, in a fixed number of queries."""
    return visible_orders(user).select_related("placed_by", "approved_by").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product", "vendor")),
        Prefetch("vendor_orders", queryset=VendorOrder.objects.select_related("vendor")),
        # The page shows codes masked: their ciphertext has no business there.
        Prefetch("vouchers", queryset=Voucher.objects.defer(
            "code_encrypted", "pin_encrypted", "claim_url_encrypted")),
        Prefetch("events", queryset=AuditEvent.objects.select_related("actor")
                 .order_by("created_at", "id")),
    ).get(pk=pk)


def vendor_orders_to_repoll(order: Order) -> list[VendorOrder]:
    """The open supplier orders waiting for a person, or else every open one (uses the
    order's prefetched supplier orders)."""
    open_ = [vo for vo in order.vendor_orders.all() if vo.status not in services.FINAL]
    return [vo for vo in open_ if vo.attention] or open_


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


# Dashboard


def balances() -> QuerySet[Balance]:
    return Balance.objects.filter(vendor__enabled=True).select_related("vendor")


def orders_in_flight(user, limit: int = 20) -> QuerySet[Order]:
    return visible_orders(user).filter(status__in=OPEN_ORDER_STATUSES).select_related(
        "placed_by"
    )[:limit]


def orders_needing_attention(user, limit: int = 20) -> QuerySet[Order]:
    return visible_orders(user).filter(status=Order.Status.NEEDS_ATTENTION).select_related(
        "placed_by"
    )[:limit]


def recent_events(user, limit: int = 15) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor", "order")
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


def _offers_of_same_card() -> QuerySet[Product]:
    """Available offers of the same brand, face value and currency, priced in one currency."""
    return Product.objects.filter(
        available=True, vendor__enabled=True, cost__isnull=False,
        brand=OuterRef("brand"), face_value=OuterRef("face_value"),
        face_currency=OuterRef("face_currency"), cost_currency=OuterRef("cost_currency"),
    ).exclude(brand="").order_by().values("brand")


def catalog(filters: CatalogFilters) -> QuerySet[Product]:
    """Products across suppliers; the same card from several suppliers sorts together, each
    row knowing the cheapest cost of its group and how many offers the group has."""
    products = Product.objects.select_related("vendor").filter(vendor__enabled=True)
    if filters.q:
        products = products.filter(
            Q(name__icontains=filters.q) | Q(brand__icontains=filters.q)
            | Q(sku__iexact=filters.q) | Q(supplier_product_id__iexact=filters.q)
        )
    if filters.brand:
        products = products.filter(brand__iexact=filters.brand)
    if filters.country:
        products = products.filter(country__iexact=filters.country)
    if filters.currency:
        products = products.filter(face_currency__iexact=filters.currency)
    if filters.face_value is not None:
        products = products.filter(face_value=filters.face_value)
    if filters.vendor is not None:
        products = products.filter(vendor=filters.vendor)
    if filters.availability == "available":
        products = products.filter(available=True)
    elif filters.availability == "unavailable":
        products = products.filter(available=False)
    group = _offers_of_same_card()
    return products.annotate(
        cheapest_cost=Subquery(
            group.annotate(low=Min("cost")).values("low")[:1],
            output_field=DecimalField(max_digits=18, decimal_places=4),
        ),
        offer_count=Coalesce(
            Subquery(group.annotate(n=Count("pk")).values("n")[:1],
                     output_field=IntegerField()),
            Value(0),
        ),
    ).order_by("brand", "face_currency", "face_value", "cost", "vendor__name", "name")


def product_detail(pk: int) -> Product:
    return Product.objects.select_related("vendor").get(pk=pk)


def other_offers(product: Product) -> QuerySet[Product]:
    if not product.brand or product.face_value is None:
        return Product.objects.none()
    return Product.objects.filter(
        brand=product.brand, face_value=product.face_value,
        face_currency=product.face_currency, vendor__enabled=True,
    ).exclude(pk=product.pk).select_related("vendor").order_by("cost")


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


# Quotes


@dataclass(frozen=True)
class Quote:
    line: services.PricedLine
    balance_available: Decimal | None
    similar: list[Order]

    @property
    def balance_after(self) -> Decimal | None:
        if self.balance_available is None:
            return None
        return self.balance_available - self.line.total


def quote(request: services.LineRequest) -> Quote:
    """Price a line as place_order would, with the balance it leaves and similar recent
    orders. Raises services.OrderError for anything place_order would refuse."""
    line = services.price_line(request)
    balance = Balance.objects.filter(
        vendor=line.product.vendor, currency=line.currency
    ).first()
    similar = list(similar_recent_orders(product=line.product, quantity=line.quantity)[:5])
    return Quote(line=line, balance_available=balance.available if balance else None,
                 similar=similar)
