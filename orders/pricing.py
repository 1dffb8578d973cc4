"""What a line costs and from whom: line requests, priced lines, routing, quotes.

Pricing reads the catalog and balances; the only supplier call it makes is a quote, for a
line paid in another currency than the product's (``price_in``). A user's quote serves the
new-order form, its confirmation and the placing for ``SUPPLIER_QUOTE_SECONDS`` (Django's
cache); a line carrying the total its confirmation showed is refused (``PriceChanged``) when
its price is no longer that total. It writes nothing to the database.

Dependency order of the engine (each imports only those before it): models, errors ->
selectors -> pricing -> lines -> dispatch, fulfilment -> services. Pricing imports neither services
nor the state machine.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache

from common.http import SupplierError
from common.money import format_money
from orders import selectors, spend
from orders.errors import OrderError
from orders.models import Order
from vendors import matching
from vendors.adapters import kinds_with
from vendors.adapters.base import OrderRequest
from vendors.models import Balance, CatalogItem, Product, Vendor
from vendors.services import adapter_for

# The supplier APIs that settle an order in another currency than the product's.
PAY_WITH_KINDS = kinds_with("pay_with_currency")


@dataclass(frozen=True)
class LineRequest:
    """One line as asked for: a product, or a brand and face value for the engine to route."""

    quantity: int
    product: Product | None = None
    brand: str = ""
    face_value: Decimal | None = None
    currency: str = ""
    pay_with_currency: str = ""
    # The user (pk) whose recent supplier quote may price this line; None asks afresh.
    quoted_for: int | None = None
    # The total a confirmation page showed, as ``confirmed_total`` wrote it; "" checks none.
    confirmed_total: str = ""


class PriceChanged(OrderError):
    """The line no longer costs the total its confirmation showed."""

    def __init__(self, line: "PricedLine") -> None:
        super().__init__(f"The price changed since it was confirmed: it is now "
                         f"{format_money(line.total, line.currency)}. Check the order and "
                         "place it again.")
        self.line = line


@dataclass(frozen=True)
class PricedLine:
    product: Product
    quantity: int
    face_value: Decimal | None
    unit_cost: Decimal
    currency: str  # what we pay in: the cost currency, or the pay-with currency
    routing_note: str = ""
    pay_with_currency: str = ""
    # What the buyer asked for (a fallback picks another offer of it); the offer's by default.
    item: CatalogItem | None = None
    note: str = ""
    reference: str = ""

    @property
    def asked_item_id(self) -> int | None:
        return self.item.pk if self.item is not None else self.product.item_id

    @property
    def total(self) -> Decimal:
        return self.unit_cost * self.quantity


def confirmed_total(line: PricedLine) -> str:
    """The total a confirmation page shows, posted back with "Place order"."""
    return f"{line.total} {line.currency}"


def routes_fingerprint(lines: Iterable[PricedLine]) -> str:
    """What a confirmation page of many lines showed (each line's offer, quantity, face
    value and cost), posted back with "Place": placing refuses lines routed otherwise since."""
    shown = "|".join(f"{p.product.pk}:{p.quantity}:{p.face_value}:{p.unit_cost}:{p.currency}"
                     for p in lines)
    return hashlib.sha256(shown.encode()).hexdigest()[:32]


def costs_as_confirmed(line: PricedLine, confirmed: str) -> bool:
    amount, _, currency = confirmed.strip().partition(" ")
    try:
        return currency == line.currency and Decimal(amount) == line.total
    except InvalidOperation:
        return False


def codes(count: int) -> str:
    return f"{count} code" if count == 1 else f"{count} codes"


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
    if face_value is not None and product.face_value is not None \
            and face_value != product.face_value:
        raise OrderError(f"{product.name} is a card of {product.face_value.normalize():f}, "
                         f"not {face_value.normalize():f}.", "face_value")
    return product.face_value


def price_line(request: LineRequest) -> PricedLine:
    """Price a line as it will be ordered, or refuse it (OrderError; PriceChanged when it
    carries a confirmed total it no longer costs)."""
    line = _price(request)
    if request.confirmed_total and not costs_as_confirmed(line, request.confirmed_total):
        raise PriceChanged(line)
    return line


def _price(request: LineRequest) -> PricedLine:
    """The pay-with rules are checked before the supplier is asked for a quote."""
    check_quantity(request.quantity)
    pay_with = request.pay_with_currency.upper()
    if request.product is not None:
        face_value = check_product(request.product, request.face_value)
        check_pay_with(request.product, pay_with)
        if pay_with and pay_with != request.product.cost_currency:
            return price_in(request.product, request.quantity, face_value, pay_with,
                            quoted_for=request.quoted_for)
        cost = unit_cost(request.product, face_value)
        return PricedLine(request.product, request.quantity, face_value, cost,
                          request.product.cost_currency)
    line = route(request)
    check_pay_with(line.product, pay_with)
    return line


def check_pay_with(product: Product, pay_with: str) -> None:
    """Only a supplier that settles in another currency takes a pay-with currency, and then
    only one it holds a balance in; without one, it must hold the product's cost currency.
    Balances not synced yet leave the supplier the last word."""
    vendor = product.vendor
    if vendor.kind not in PAY_WITH_KINDS:
        if pay_with:
            raise OrderError(f"{vendor} does not charge in another currency: leave the "
                             "pay-with currency empty.", "pay_with_currency")
        return
    held = selectors.balance_currencies(vendor)
    if not held:
        return
    if pay_with and pay_with not in held:
        raise OrderError(f"{vendor} cannot settle in {pay_with}: it holds balances in "
                         f"{', '.join(held)}.", "pay_with_currency")
    if not pay_with and product.cost_currency not in held:
        raise OrderError(f"{vendor} cannot settle {product.cost_currency} orders without a "
                         f"pay-with currency: choose one of {', '.join(held)}.",
                         "pay_with_currency")


def price_in(product: Product, quantity: int, face_value: Decimal | None,
             pay_with: str, *, quoted_for: int | None = None) -> PricedLine:
    """Ask the supplier what the line costs in another currency it can charge. For a user
    (``quoted_for``), the same question within SUPPLIER_QUOTE_SECONDS gets the same answer
    without asking again."""
    order = OrderRequest(
        client_reference="quote", product_id=product.supplier_product_id, sku=product.sku,
        quantity=quantity, currency=product.cost_currency, face_value=face_value,
        pay_with_currency=pay_with,
    )
    key = _quote_key(quoted_for, product, order) if quoted_for is not None else None
    cached = cache.get(key) if key else None
    if cached is None:
        cached = _ask_quote(product, order)
        if key:
            cache.set(key, cached, settings.SUPPLIER_QUOTE_SECONDS)
    amount, currency = cached
    return PricedLine(product, quantity, face_value, Decimal(amount), currency,
                      pay_with_currency=pay_with)


def _ask_quote(product: Product, order: OrderRequest) -> tuple[str, str]:
    """The supplier's unit cost of ``order``, as (amount, currency) text for the cache."""
    try:
        quote = adapter_for(product.vendor).quote(order)
    except SupplierError as exc:
        raise OrderError(f"{product.vendor} cannot charge this in {order.pay_with_currency}: "
                         f"{exc.message}", "pay_with_currency") from exc
    if quote is None:
        raise OrderError(f"{product.vendor} does not charge in another currency.",
                         "pay_with_currency")
    return str(quote.unit_cost.amount), quote.unit_cost.currency


def _quote_key(user_pk: int, product: Product, order: OrderRequest) -> str:
    """Unique to the user, the product row as last synced, the vendor row and the question:
    the cache outlives database rows (tests, restores), and their pks are reused."""
    vendor = product.vendor
    question = "|".join(str(part) for part in (
        product.updated_at.isoformat(), vendor.created_at.isoformat(), order.product_id,
        order.sku, order.quantity, order.currency, order.face_value, order.pay_with_currency,
    ))
    digest = hashlib.sha256(question.encode()).hexdigest()[:32]
    return f"pricing:quote:{user_pk}:{product.pk}:{vendor.pk}:{digest}"


def route(request: LineRequest) -> PricedLine:
    """The cheapest offer, among the catalog items of the brand (as the matching rules
    normalise it) at the face value (in the currency, when given), that can take the line;
    each item routed by ``Router``."""
    if not request.brand or request.face_value is None:
        raise OrderError("Choose a product, or a brand and a face value.", "product")
    brand = matching.normal_brand(request.brand)
    items = [item for item in CatalogItem.objects.filter(
        face_value=request.face_value,
        **({"currency": request.currency} if request.currency else {}),
    ) if matching.normal_brand(item.brand) == brand]
    if not items:
        raise OrderError(
            f"No supplier offers {request.brand} {request.face_value} at the moment.", "brand"
        )
    return Router.for_items(item.pk for item in items).cheapest(
        items, quantity=request.quantity)


def price_items_now(items: Sequence[CatalogItem]) -> None:
    """Give each fixed-value item of a page what ordering one code would do now (two queries
    for the page): ``best_cost``, ``best_cost_currency`` and ``available_count`` become
    routing's (``Router.takers``), ``routed_offer_id`` is the offer it would pick,
    ``why_unavailable`` says why no offer would take it, and ``why_not`` maps each offer that
    would not to why. Range items keep the catalog's
    figures: what they cost depends on the value chosen."""
    fixed = [item for item in items if item.face_value is not None]
    router = Router.for_items(item.pk for item in fixed)
    for item in fixed:
        takers, unfit = router.takers(item)
        item.available_count = len(takers)
        item.best_cost, item.best_cost_currency = (
            (takers[0][0], takers[0][1].cost_currency) if takers else (None, item.currency))
        item.routed_offer_id = takers[0][1].pk if takers else None
        item.why_not = {offer.pk: problem for offer, problem in unfit}
        item.why_unavailable = "" if takers else (
            "; ".join(f"{offer.vendor}: {problem}" for offer, problem in unfit)
            or "it has no offer")


class Router:
    """Routes lines of catalog items to their offers: the offers and balances are read once
    (``for_items``: two queries, whatever the number of lines), then each line in memory. A
    routed line takes its total off the balance it draws on, so that a later line sees what
    earlier ones left: a basket never plans to spend a balance twice. Skips what placing
    would refuse (unavailable, disabled supplier, no price, value out of range, a currency
    the supplier cannot settle, a balance that cannot cover the line) and says so."""

    def __init__(self, offers: dict[int, list[Product]], balances: list[Balance]) -> None:
        self.offers = offers
        self.available = {(b.vendor_id, b.currency): b.available for b in balances}
        self.start = dict(self.available)  # before any line was routed
        self.held: dict[int, set[str]] = {}
        for balance in balances:
            self.held.setdefault(balance.vendor_id, set()).add(balance.currency)

    @classmethod
    def for_items(cls, item_ids: Iterable[int]) -> "Router":
        offers: dict[int, list[Product]] = {}
        for product in Product.objects.filter(item_id__in=set(item_ids)).select_related(
            "vendor", "item"
        ).order_by("vendor__name", "pk"):
            offers.setdefault(product.item_id, []).append(product)
        vendor_ids = {p.vendor_id for products in offers.values() for p in products}
        return cls(offers, list(Balance.objects.filter(vendor_id__in=vendor_ids)))

    def offers_of(self, item: CatalogItem) -> list[Product]:
        return self.offers.get(item.pk, [])

    def route(self, *, item: CatalogItem, quantity: int, face_value: Decimal | None = None,
              pinned: Product | None = None, pay_currency: str = "",
              exclude_vendor_ids: Iterable[int] = ()) -> PricedLine:
        """The cheapest offer of ``item`` (or ``pinned``, one of its offers) that can take
        the line, as a priced line; OrderError saying why none can. ``pay_currency``: only
        offers charging in it (a fallback stays in its order's currency)."""
        check_quantity(quantity)
        if item.face_value is None and face_value is None:
            raise OrderError(f"{item} comes in a range of values: choose a face value.",
                             "face_value")
        if item.face_value is not None:
            if face_value is not None and face_value != item.face_value:
                raise OrderError(f"{item} has the face value {item.face_value}, not "
                                 f"{face_value}.", "face_value")
            face_value = item.face_value
        if pinned is not None and pinned.item_id != item.pk:
            raise OrderError(f"{pinned.name} is not an offer of {item}.", "product")
        offers = [pinned] if pinned is not None else self.offers_of(item)
        candidates, unfit = self._ranked(item, offers, face_value, pay_currency,
                                         set(exclude_vendor_ids))
        skipped = [f"{offer.vendor}: {problem}" for offer, problem in unfit]
        for cost, offer in candidates:
            key = (offer.vendor_id, offer.cost_currency)
            available = self.available.get(key)
            total = cost * quantity
            if available is not None and available < total:
                skipped.append(f"{offer.vendor}: balance "
                               f"{format_money(available, offer.cost_currency)}")
                continue
            if available is not None:
                self.available[key] = available - total
            price = format_money(cost, offer.cost_currency)
            if pinned is not None:
                note = f"Chosen offer: {offer.vendor} at {price}"
            else:
                note = f"Cheapest of {len(candidates)} offers: {offer.vendor} at {price}"
            if skipped:
                note += f"; skipped {'; '.join(skipped)}"
            return PricedLine(offer, quantity, face_value, cost, offer.cost_currency,
                              note[:300], item=item)
        why = "; ".join(skipped) if skipped else "it has no offer"
        raise OrderError(f"No offer of {item} can take {codes(quantity)}: {why}.", "quantity")

    def takers(self, item: CatalogItem
               ) -> tuple[list[tuple[Decimal, Product]], list[tuple[Product, str]]]:
        """What routing one code of a fixed-value ``item`` would do now, for the catalog's
        pages: the (cost, offer) pairs that could take it, the first being the one routing
        picks, and each other offer with why it could not. Takes nothing off the balances."""
        candidates, unfit = self._ranked(item, self.offers_of(item), item.face_value, "",
                                         set())
        takers = []
        for cost, offer in candidates:
            available = self.available.get((offer.vendor_id, offer.cost_currency))
            if available is not None and available < cost:
                unfit.append((offer, f"balance {format_money(available, offer.cost_currency)}"))
            else:
                takers.append((cost, offer))
        return takers, unfit

    def _ranked(self, item: CatalogItem, offers: list[Product], face_value: Decimal | None,
                pay_currency: str, excluded: set[int]
                ) -> tuple[list[tuple[Decimal, Product]], list[tuple[Product, str]]]:
        """The offers fit to take the line, with their unit costs, in the order routing tries
        them (the item's own currency first, then cheapest); the others with why not."""
        unfit, candidates = [], []
        for offer in offers:
            problem = self._unfit(offer, face_value, pay_currency, excluded)
            if problem:
                unfit.append((offer, problem))
            else:
                candidates.append((unit_cost(offer, face_value), offer))
        candidates.sort(key=lambda c: (c[1].cost_currency != item.currency, c[0],
                                       c[1].vendor.name))
        return candidates, unfit

    def cheapest(self, items: list[CatalogItem], *, quantity: int) -> PricedLine:
        """The cheapest of routing the line to each of ``items`` (alternatives: each is
        tried against the same balances, only the chosen one takes its total off)."""
        start, routed, refusals = dict(self.available), [], []
        for item in items:
            self.available = dict(start)
            try:
                routed.append(self.route(item=item, quantity=quantity))
            except OrderError as exc:
                refusals.append(exc.message)
        self.available = start
        if not routed:
            raise OrderError(" ".join(refusals), "quantity")
        best = min(routed, key=lambda line: (line.currency != line.item.currency,
                                             line.unit_cost))
        key = (best.product.vendor_id, best.currency)
        if self.available.get(key) is not None:
            self.available[key] -= best.total
        return best

    def _unfit(self, offer: Product, face_value: Decimal | None, pay_currency: str,
               excluded: set[int]) -> str:
        """Why ``offer`` cannot take the line ("" when it can)."""
        if offer.vendor_id in excluded:
            return "already tried"
        if not offer.available or not offer.vendor.enabled:
            return "not available"
        if offer.cost is None:
            return "no price"
        if pay_currency and offer.cost_currency != pay_currency:
            return f"charges in {offer.cost_currency}"
        held = self.held.get(offer.vendor_id)
        if offer.vendor.kind in PAY_WITH_KINDS and held and offer.cost_currency not in held:
            return f"holds no {offer.cost_currency} balance"
        try:
            check_product(offer, face_value)
        except OrderError as exc:
            return exc.message
        return ""


@dataclass(frozen=True)
class CurrencyTotal:
    """What routed lines paid in one currency come to: one order, and its approval."""

    currency: str
    total: Decimal
    quantity: int
    lines: int
    approval_reasons: list[str]


@dataclass(frozen=True)
class BalanceAfter:
    """A supplier balance before and after routed lines (None: not reported)."""

    vendor: Vendor
    currency: str
    before: Decimal | None
    after: Decimal | None
    spent: Decimal


def currency_totals(lines: Iterable[PricedLine], user) -> list[CurrencyTotal]:
    """The totals per currency of ``lines`` (routed for ``user``), with why each currency's
    order would wait for approval."""
    by_currency: dict[str, list[PricedLine]] = {}
    for line in lines:
        by_currency.setdefault(line.currency, []).append(line)
    totals = []
    for currency, grouped in sorted(by_currency.items()):
        total = sum((line.total for line in grouped), Decimal("0"))
        totals.append(CurrencyTotal(
            currency=currency, total=total, quantity=sum(line.quantity for line in grouped),
            lines=len(grouped),
            approval_reasons=spend.approval_reasons(user=user, currency=currency, total=total),
        ))
    return totals


def balances_after(lines: Iterable[PricedLine], router: Router) -> list[BalanceAfter]:
    """Each balance ``lines`` draw on, as ``router`` found it and as they leave it."""
    spent: dict[tuple[int, str], Decimal] = {}
    vendors: dict[int, Vendor] = {}
    for line in lines:
        key = (line.product.vendor_id, line.currency)
        spent[key] = spent.get(key, Decimal("0")) + line.total
        vendors[line.product.vendor_id] = line.product.vendor
    balances = [BalanceAfter(vendor=vendors[vendor_id], currency=currency,
                             before=router.start.get((vendor_id, currency)),
                             after=router.available.get((vendor_id, currency)), spent=amount)
                for (vendor_id, currency), amount in spent.items()]
    return sorted(balances, key=lambda b: (b.vendor.name, b.currency))


# Quotes


@dataclass(frozen=True)
class Quote:
    line: PricedLine
    balance_available: Decimal | None
    similar: list[Order]
    repeats: list[Order] = field(default_factory=list)
    approval_reasons: list[str] = field(default_factory=list)

    @property
    def balance_after(self) -> Decimal | None:
        if self.balance_available is None:
            return None
        return self.balance_available - self.line.total


def quote(request: LineRequest, user=None) -> Quote:
    """Price a line as place_order would, with the balance it leaves and similar recent
    orders; for a ``user``, also their own repeats of it and why it would wait for approval.
    Raises OrderError for anything place_order would refuse."""
    line = price_line(request)
    balance = Balance.objects.filter(
        vendor=line.product.vendor, currency=line.currency
    ).first()
    repeats, reasons = [], []
    if user is not None:
        repeats = selectors.repeated_orders(
            user=user, product=line.product, quantity=line.quantity,
            face_value=line.face_value, since=selectors.repeat_window_start(),
        )
        reasons = spend.approval_reasons(user=user, currency=line.currency, total=line.total)
    similar = list(selectors.similar_recent_orders(
        product=line.product, quantity=line.quantity,
    ).exclude(pk__in=[o.pk for o in repeats])[:5])
    return Quote(line=line, balance_available=balance.available if balance else None,
                 similar=similar, repeats=repeats, approval_reasons=reasons)
