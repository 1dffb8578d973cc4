"""EZ Cards API v2: instant orders (one code) and asynchronous bulk orders.

Every call sends ``x-api-key`` and ``Authorization: Bearer <token>``; the token is a long-lived
credential issued by EZ Cards (there is no login endpoint), so nothing is cached. Every answer
is wrapped ``{"requestId", "data"}``. Codes are read with GetCodes and arrive progressively: an
order is fulfilled only when every one of its codes is COMPLETED.
"""

import logging
from collections.abc import Iterator
from dataclasses import replace
from decimal import ROUND_UP, Decimal
from typing import Annotated, Any, Generic, TypeVar

import requests
from pydantic import BeforeValidator, Field, PlainValidator

from common.http import Kind, SupplierError
from common.money import Money, MoneyError, currency_code, quantum
from vendors.adapters.base import (
    Amount,
    Answer,
    BalanceInfo,
    Capabilities,
    CodeInfo,
    Currency,
    HttpAdapter,
    Ident,
    OpenAnswer,
    OrderRequest,
    OrderResult,
    ProductInfo,
    Quote,
    SupplierStatus,
    Text,
    map_status,
    only,
    settle_status,
)

logger = logging.getLogger(__name__)

STATUSES: dict[str, SupplierStatus] = {
    "processing": SupplierStatus.PROCESSING,
    "completed": SupplierStatus.COMPLETED,
    "cancelled": SupplierStatus.CANCELLED,
}

CODE_COMPLETED = "completed"
DUPLICATE = "CLIENT_ORDER_NUMBER_DUPLICATE"
UNSUPPORTED_CURRENCY = "UNSUPPORTED_CURRENCY"

T = TypeVar("T")


def _pin(value: Any) -> str:
    """pinCode is typed as an integer by EZ Cards; the portal keeps PINs as strings."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("pinCode is not a number or a string")
    return str(value)


Pin = Annotated[str, PlainValidator(_pin)]
Blankable = Annotated[Ident | None, BeforeValidator(lambda value: None if value == "" else value)]


class Wrapped(Answer, Generic[T]):
    """Every EZ Cards answer: {"requestId", "data"}."""

    data: T


class Price(Answer):
    amount: Amount
    currency: Currency

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    def as_json(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency}


class Tier(Answer):
    price: Amount
    fromQuantity: int
    toQuantity: int | None = None


class Product(OpenAnswer):
    sku: Ident
    name: str
    currency: Currency
    faceValue: Amount
    prices: list[Tier]
    brand: Text = ""
    country: Annotated[str | None, only(str)] = None
    isInstantDeliverySupported: Any = None
    termConditions: Annotated[list[Any] | None, only(list)] = None


class Listing(Answer):
    items: list[Any]


class ProductPage(Answer):
    items: list[Product]
    totalPage: int


class Balance(Answer):
    currency: Currency
    balance: Amount


class Rate(Answer):
    pair: str
    rate: Amount


class Rates(Answer):
    rates: list[Rate]
    updatedAt: Text = ""


class Fx(Rate):
    asOfDate: Text = ""


class Line(Answer):
    sku: Ident
    quantity: Annotated[int, Field(ge=0)]
    unitPrice: Price
    unitPriceOriginal: Annotated[Price | None, only(dict)] = None


class Order(Answer):
    transactionId: Ident
    status: str
    products: list[Line]
    grandTotal: Price
    clientOrderNumber: Text = ""
    payWithCurrency: Annotated[str | None, only(str)] = None
    fxSummary: Annotated[list[Fx] | None, only(list)] = None
    ezOrderNumber: Annotated[str | None, only(str)] = None


class Code(Answer):
    status: str
    redeemCode: Blankable = None  # null until the code is COMPLETED
    pinCode: Pin = ""
    stockId: Blankable = None


class CodeLine(Answer):
    sku: Ident
    quantity: int
    codes: list[Code]


class EZCards(HttpAdapter):
    kind = "ezcards"
    label = "EZ Cards"
    name = "EZ Cards"
    capabilities = Capabilities(lookup_by_reference=True, balances=True, pay_with_currency=True,
                                order_listing=True, one_code_per_request=True)
    credential_fields = ("api_key", "token")

    page_size = 100

    def auth_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        key, token = self.credentials.get("api_key"), self.credentials.get("token")
        if not key or not token:
            raise SupplierError("EZ Cards credentials need an api_key and a token",
                                kind=Kind.REFUSED, code="config")
        return {"x-api-key": key, "Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, model: Any, *, what: str,
              params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
              order_write: bool = False) -> Any:
        """The ``data`` of a 2xx answer (every answer is wrapped {requestId, data}), read
        into ``model``."""
        payload = self.call_json(method, path, params=params, json_body=body,
                                 order_write=order_write)
        return self.parse(Wrapped[model], payload, what=what, order_write=order_write).data

    def raise_for_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        code = body.get("error") if isinstance(body.get("error"), str) else ""
        detail = body.get("message") if isinstance(body.get("message"), str) else ""
        detail = f": {detail[:200]}" if detail else ""
        if status in (401, 403):
            message = f"EZ Cards refused the API key or token (HTTP {status})"
        elif code == UNSUPPORTED_CURRENCY:
            message = ("EZ Cards cannot settle this order in that currency "
                       "(UNSUPPORTED_CURRENCY): pay with one of the account's balance "
                       f"currencies{detail}")
        elif code == DUPLICATE:
            message = "EZ Cards already has an order with this clientOrderNumber"
        elif status == 404:
            message = f"EZ Cards does not know this resource{detail}"
        else:
            message = f"EZ Cards rejected the request (HTTP {status}{', ' + code if code else ''})"
            message += detail
        kind = self.error(response, code).kind
        raise SupplierError(message, kind=kind, status_code=status, code=code or str(status))

    # --- catalog and balances ---------------------------------------------------------------

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        def page(number: int) -> tuple[list, bool]:
            data = self._call("GET", "/v2/products", ProductPage, what="product page",
                              params={"limit": self.page_size, "page": number})
            return [self._product(item) for item in data.items], number < data.totalPage

        for products in self.paged(page, what="EZ Cards products"):
            yield from products

    @staticmethod
    def _tier_for(tiers: list[dict[str, Any]], quantity: int) -> dict[str, Any] | None:
        for tier in tiers:
            high = tier["to_quantity"]
            if tier["from_quantity"] <= quantity and (high is None or quantity <= high):
                return tier
        return None

    def _product(self, item: Product) -> ProductInfo:
        tiers = sorted(({"from_quantity": t.fromQuantity, "to_quantity": t.toQuantity,
                         "price": str(t.price), "currency": item.currency}
                        for t in item.prices), key=lambda t: t["from_quantity"])
        first = self._tier_for(tiers, 1)
        country = item.country or ""
        instant = item.isInstantDeliverySupported
        extra_keys = ("format", "types", "percentageOffFaceValue", "brandCategory",
                      "brandSubCategory", "imageUrl", "descriptions", "instructions",
                      "isInstantDeliverySupported")
        extra = {k: getattr(item, k) for k in extra_keys if k in item.model_fields_set}
        return ProductInfo(
            supplier_product_id=item.sku, sku=item.sku, name=item.name, brand=item.brand,
            country=country.upper() if len(country) == 2 else "",
            face_value=item.faceValue, face_currency=item.currency,
            cost=Decimal(first["price"]) if first else None,
            cost_currency=item.currency if first else "",
            available=bool(tiers),
            delivery="instant" if instant is True else "delayed" if instant is False else "",
            terms="\n".join(t for t in item.termConditions or [] if isinstance(t, str)),
            price_tiers=tiers,
            extra=extra,
        )

    def fetch_balances(self) -> list[BalanceInfo]:
        data = self._call("GET", "/v2/balances", list[Balance], what="balances")
        return [BalanceInfo(currency=b.currency, amount=b.balance) for b in data]

    # --- quote --------------------------------------------------------------------------------

    def quote(self, order: OrderRequest) -> Quote | None:
        sku = order.sku or order.product_id
        data = self._call("GET", "/v2/products", Listing, what="product listing",
                          params={"sku": sku, "limit": 10, "page": 1})
        items = [i for i in data.items if isinstance(i, dict) and str(i.get("sku")) == sku]
        if not items:
            raise SupplierError(f"EZ Cards does not list SKU {sku}", kind=Kind.REFUSED,
                                code="PRODUCT_NOT_FOUND")
        product = self._product(self.parse(Product, items[0], what="product"))
        tier = self._tier_for(product.price_tiers, order.quantity)
        if tier is None:
            raise SupplierError(f"EZ Cards has no price for {order.quantity} of {sku}",
                                kind=Kind.REFUSED, code="no_price")
        original = Money(Decimal(tier["price"]), product.face_currency)
        try:
            pay = currency_code(order.pay_with_currency or product.face_currency)
        except MoneyError as exc:
            raise SupplierError("EZ Cards cannot quote in an unknown currency",
                                kind=Kind.REFUSED, code=UNSUPPORTED_CURRENCY) from exc
        details: dict[str, Any] = {"tier": tier, "payWithCurrency": pay}
        unit = original
        if pay != original.currency:
            fx = self._rate(original.currency, pay)
            # EZ Cards rounds converted prices up (documented: 9.70 EUR at 1.1829 = 11.48 USD).
            unit = Money((original.amount * fx["rate"]).quantize(quantum(pay), ROUND_UP), pay)
            details.update({"unitPriceOriginal": {"amount": str(original.amount),
                                                  "currency": original.currency},
                            "fx": {"pair": fx["pair"], "rate": str(fx["rate"]),
                                   "updatedAt": fx["updatedAt"]}})
        total = Money(unit.amount * order.quantity, pay)
        return Quote(unit_cost=unit, total_cost=total, details=details)

    def _rate(self, base: str, quote: str) -> dict[str, Any]:
        data = self._call("GET", "/v2/exchange-rates", Rates, what="exchange rates",
                          params={"pairs": f"{base}{quote},{quote}{base}"})
        by_pair = {r.pair.upper().replace("/", ""): r.rate for r in data.rates}
        if base + quote in by_pair:
            value = by_pair[base + quote]
        elif quote + base in by_pair:  # only the inverse is quoted
            inverse = by_pair[quote + base]
            value = Decimal(1) / inverse if inverse > 0 else inverse
        else:
            raise SupplierError(f"EZ Cards quotes no rate for {base}{quote}",
                                kind=Kind.REFUSED, code="no_rate")
        if value <= 0:
            raise self.malformed(f"a non-positive rate for {base}{quote}")
        return {"pair": base + quote, "rate": value, "updatedAt": data.updatedAt}

    # --- orders -------------------------------------------------------------------------------

    def submit_order(self, order: OrderRequest) -> OrderResult:
        if order.quantity < 1:
            raise SupplierError("quantity must be at least one", kind=Kind.REFUSED,
                                code="invalid")
        sku = order.sku or order.product_id
        body: dict[str, Any] = {"clientOrderNumber": order.client_reference,
                                "enableClientOrderNumberDupCheck": True}
        if order.quantity == 1:
            path = "/v2/orders/instant"
            body["sku"] = sku
        else:
            path = "/v2/orders"
            body["products"] = [{"sku": sku, "quantity": order.quantity}]
        if order.pay_with_currency:
            body["payWithCurrency"] = order.pay_with_currency.upper()
        try:
            data = self._call("POST", path, Order, what="order answer", body=body,
                              order_write=True)
        except SupplierError as exc:
            # The dup check is always on, so a 409 means this reference is taken already.
            if exc.status_code == 409:
                return self._existing(order.client_reference)
            raise
        result = self._order(data)
        if result.status != SupplierStatus.COMPLETED:
            return result
        try:  # an instant order in stock: its code can be read at once
            return self._with_codes(result)
        except SupplierError as exc:
            logger.warning("EZ Cards order %s: codes not read yet (%s)",
                           result.supplier_order_id, exc.message)
            return self._replace(result, status=SupplierStatus.PROCESSING, delivered=0,
                                 message="order completed; codes not read yet")

    def _existing(self, reference: str) -> OrderResult:
        found = self.lookup_order(reference)
        if found is None:
            raise SupplierError(
                "EZ Cards reported a duplicate clientOrderNumber but lists no such order",
                kind=Kind.OUTCOME_UNKNOWN, cause=Kind.UNAVAILABLE, status_code=409,
                code=DUPLICATE,
            )
        return found

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        items = self._call("GET", "/v2/orders", Listing, what="order list", params={
            "clientOrderNumber": client_reference, "page": 1, "limit": 10}).items
        if not items:
            return None
        exact = [i for i in items if isinstance(i, dict)
                 and str(i.get("clientOrderNumber")) == client_reference]
        # The dup check keeps one order per reference; should there be more, take the first.
        chosen = min(exact or items,
                     key=lambda i: str(i.get("createdAt") or "") if isinstance(i, dict) else "")
        return self._read(chosen)

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        listed = self._call("GET", "/v2/orders", Listing, what="order list", params={
            "transactionId": supplier_order_id, "page": 1, "limit": 10}).items
        items = [i for i in listed
                 if isinstance(i, dict) and str(i.get("transactionId")) == supplier_order_id]
        if not items:
            raise SupplierError(f"EZ Cards does not list order {supplier_order_id}",
                                kind=Kind.REFUSED, status_code=404, code="NOT_FOUND")
        return self._read(items[0])

    def _read(self, item: Any) -> OrderResult:
        return self._with_codes(self._order(self.parse(Order, item, what="order")))

    @staticmethod
    def _order(data: Order) -> OrderResult:
        """An order from a create or Get Orders answer, before its codes are read."""
        details: dict[str, Any] = {}
        if data.payWithCurrency:
            details["payWithCurrency"] = data.payWithCurrency
        if data.fxSummary is not None:
            details["fxSummary"] = [{"pair": fx.pair, "rate": str(fx.rate),
                                     "asOfDate": fx.asOfDate} for fx in data.fxSummary]
        lines = []
        for product in data.products:
            line = {"sku": product.sku, "quantity": product.quantity,
                    "unitPrice": product.unitPrice.as_json()}
            if product.unitPriceOriginal is not None:
                line["unitPriceOriginal"] = product.unitPriceOriginal.as_json()
            lines.append(line)
        if len(lines) == 1 and "unitPriceOriginal" in lines[0]:
            details["unitPriceOriginal"] = lines[0]["unitPriceOriginal"]
        if lines:
            details["products"] = lines
        if data.ezOrderNumber is not None:
            details["ezOrderNumber"] = data.ezOrderNumber
        return OrderResult(
            supplier_order_id=data.transactionId, status=map_status(STATUSES, data.status),
            raw_status=data.status, client_reference=data.clientOrderNumber, delivered=0,
            total=sum(p.quantity for p in data.products), cost=data.grandTotal.money,
            details=details,
        )

    def _with_codes(self, result: OrderResult) -> OrderResult:
        """The order combined with GetCodes: fulfilled only when every code is COMPLETED."""
        try:
            data = self._call("GET", f"/v2/orders/{result.supplier_order_id}/codes",
                              list[CodeLine], what="codes")
        except SupplierError as exc:
            if exc.status_code != 404 or result.status != SupplierStatus.CANCELLED:
                raise
            data = []  # a cancelled order may have no codes at all
        codes, pending, expected = self._codes(data)
        total = max(result.total or 0, expected)
        delivered = len(codes)
        # codes arrive progressively: any not listed as COMPLETED yet is still to come
        status, why = settle_status(result.status, delivered=delivered, ordered=total,
                                    pending=max(pending, total - delivered) if total else 1)
        message = why or result.message
        cost = result.cost
        if status != SupplierStatus.COMPLETED and delivered < total:
            # the grand total covers every code; what was not delivered is refunded
            cost = self._delivered_cost(result, delivered)
        return self._replace(result, status=status, codes=codes, delivered=delivered,
                             total=total, message=message, cost=cost)

    @staticmethod
    def _delivered_cost(result: OrderResult, delivered: int) -> Money | None:
        """The delivered codes at their stated unit price (one-product orders), else None."""
        lines = result.details.get("products") or []
        if len(lines) != 1:
            return None
        unit = lines[0]["unitPrice"]
        return Money(Decimal(unit["amount"]) * delivered, unit["currency"])

    @staticmethod
    def _codes(data: list[CodeLine]) -> tuple[list[CodeInfo], int, int]:
        """(delivered codes, codes not ready, codes expected) from a GetCodes answer."""
        codes: list[CodeInfo] = []
        pending = expected = 0
        for product in data:
            expected += max(product.quantity, len(product.codes))
            for entry in product.codes:
                if entry.status.strip().lower() != CODE_COMPLETED or entry.redeemCode is None:
                    pending += 1  # redeemCode stays null until the code is COMPLETED
                    continue
                codes.append(CodeInfo(code=entry.redeemCode, pin=entry.pinCode,
                                      sku=product.sku, serial=entry.stockId or ""))
        return codes, pending, expected

    @staticmethod
    def _replace(result: OrderResult, **changes: Any) -> OrderResult:
        return replace(result, **changes)
