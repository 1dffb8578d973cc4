"""Kalixo Distribution API v2: asynchronous orders, polled until the codes are delivered.

Auth is one ``x-api-key`` header. Prices (catalog and order lines) are MINOR units in the
product's currency; wallet balances are MAJOR-unit JSON numbers. Our ``client_reference`` is the
``externalOrderCode``, Kalixo's idempotency key: a repeat answers 409 (or the existing order), and
``GET /orders/{reference}`` finds an order by ``orderId`` or by ``externalOrderCode``.
Codes arrive as ``products[].codes[{code}]``, or in older answers as ``products[].pin[{PIN}]``.

A fixed line's ``price`` must equal the catalog SELL price: the order's ``face_value`` (the
synced catalog price) is sent as is, and Kalixo's own price check is the guard, so an order
costs two requests (submission, one poll). Only an order without it reads the product first
(refused if it now costs more than ``unit_price``). Open products send the chosen amount.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

import requests
from pydantic import AfterValidator

from common.http import Kind, SupplierError, read_json
from common.money import (
    MoneyError,
    currency_code,
    round_money,
    to_decimal,
    to_minor,
)
from vendors.adapters.base import (
    Answer,
    BalanceInfo,
    Capabilities,
    CodeInfo,
    HttpAdapter,
    OrderRequest,
    OrderResult,
    ProductInfo,
    SupplierStatus,
    map_status,
    minor_to_major,
    settle_status,
)

logger = logging.getLogger(__name__)

STATUSES: dict[str, SupplierStatus] = {
    "processing": SupplierStatus.PROCESSING,
    "completed": SupplierStatus.COMPLETED,
    "partially_completed": SupplierStatus.PARTIALLY_COMPLETED,
    "failed": SupplierStatus.FAILED,
}

PAGE_SIZE = 100  # the documented maximum ``take``
CODE_KEYS = ("code", "PIN", "pin", "Pin")  # current shape first, then the older one


class Malformed(Exception):
    """An answer that does not have the documented shape (the message names the field)."""


@contextmanager
def _parsing(what: str, *, outcome_unknown: bool = False) -> Iterator[None]:
    """Turn a money problem (or a shape rule the models cannot state) into a SupplierError."""
    try:
        yield
    except (Malformed, MoneyError) as exc:
        error = SupplierError(f"Kalixo sent an unexpected {what} ({exc})", kind=Kind.MALFORMED,
                              code="malformed")
        raise (error.after_write() if outcome_unknown else error) from exc


def _nonblank(value: int | str) -> str:
    if str(value).strip() == "":
        raise ValueError("empty identifier")
    return str(value).strip()


Ident = Annotated[int | str, AfterValidator(_nonblank)]
Amount = int | float | str


class Page(Answer):
    count: int
    products: list[dict[str, Any]]


class Product(Answer):
    id: Ident
    price: Amount | None = None
    currencyCode: str | None = None
    buyingPrice: Amount | None = None
    buyingCurrencyCode: str | None = None
    denominationMinValue: Amount | None = None
    denominationMaxValue: Amount | None = None
    denominationStep: Amount | None = None


class Wallet(Answer):
    balances: dict[str, Amount]


class Line(Answer):
    productId: Ident | None = None
    quantity: int | None = None
    price: Any = None
    codes: list[Any] | None = None
    pin: list[Any] | None = None
    PIN: list[Any] | None = None


class Order(Answer):
    orderId: Ident | None = None
    status: str
    externalOrderCode: Ident | None = None
    products: list[Line] | None = None
    delivered: int | None = None
    total: int | None = None
    reason: Any = None
    message: Any = None
    estimatedReadyAt: Any = None
    wallet: Any = None


def _major_amount(value: Amount, currency: str) -> Decimal:
    """A major-unit JSON number (wallet balances, 196.01) as an exact Decimal."""
    amount = to_decimal(value)
    rounded = round_money(amount, currency)
    return rounded if rounded == amount else amount


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 timestamp as an aware datetime (UTC when no offset); None when unreadable.

    ``estimatedReadyAt`` is advice for polling, so a bad one is not worth failing an order for.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class KalixoV2(HttpAdapter):
    kind = "kalixo_v2"
    label = "Kalixo v2 (asynchronous)"
    name = "Kalixo"
    capabilities = Capabilities(lookup_by_reference=True, balances=True)
    credential_fields = ("api_key",)

    def auth_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        key = str(self.credentials.get("api_key") or "").strip()
        if not key:
            raise SupplierError("Kalixo v2 vendor has no API key configured",
                                kind=Kind.REFUSED, code="credentials")
        return {"x-api-key": key}

    def raise_for_response(self, response: requests.Response) -> None:
        """Kalixo's 4xx shape: {statusCode, error, message}."""
        if response.status_code < 400:
            return
        body = _json_or_none(response)
        body = body if isinstance(body, dict) else {}
        label = str(body.get("error") or "")[:60]
        raise self.error(response, label, str(body.get("message") or ""))

    # ------------------------------------------------------------------ catalog

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        skip = 0

        def page(_: int) -> tuple[list, bool]:
            nonlocal skip
            body = self.parse(Page, self.call_json(
                "GET", "/catalog/products", params={"skip": skip, "take": PAGE_SIZE},
            ), what="catalog page")
            items = [self._product(p) for p in body.products]
            skip += len(items)
            return items, skip < body.count

        for items in self.paged(page, first=0, what="Kalixo catalog"):
            yield from items

    def _product(self, data: dict) -> ProductInfo:
        fields = self.parse(Product, data, what="catalog product")
        with _parsing("catalog product"):
            return self._product_info(data, fields)

    @staticmethod
    def _product_info(data: dict, fields: Product) -> ProductInfo:
        pid = fields.id
        try:
            currency = currency_code(fields.currencyCode)
        except MoneyError as exc:
            raise Malformed(f"product {pid} has an unknown currency") from exc
        is_open = str(data.get("denominationType") or "fixed").strip().lower() == "open"
        languages = [lang for lang in data.get("languages") or [] if isinstance(lang, dict)]
        first = languages[0] if languages else {}
        sku = str(data.get("productCode") or first.get("sku") or pid)

        face_value = cost = None
        cost_currency = ""
        if not is_open:
            if fields.price is None:
                raise Malformed(f"product {pid} has no price")
            face_value = minor_to_major(fields.price, currency)
        if fields.buyingPrice is not None and not is_open:
            cost_currency = currency_code(fields.buyingCurrencyCode or currency)
            cost = minor_to_major(fields.buyingPrice, cost_currency)

        def bound(name: str) -> Decimal | None:
            value = getattr(fields, name)
            return minor_to_major(value, currency) if is_open and value is not None else None

        extra = {
            key: data[key] for key in (
                "productCode", "shortName", "discountAmount", "discountPercentage",
                "currencyMismatch", "denominationDefaultValue", "mainCategory", "subCategory",
                "productType", "platform", "redeemable", "tags", "status", "serviceFee",
                "serviceFeeType", "serviceFeeValue", "promotion", "isSandboxProduct", "image",
            ) if data.get(key) is not None
        }
        extra["language_skus"] = [str(lang.get("sku")) for lang in languages if lang.get("sku")]
        return ProductInfo(
            supplier_product_id=pid,
            sku=sku,
            name=str(data.get("name") or first.get("name") or sku),
            brand=str(data.get("brand") or ""),
            country=str(data.get("countryCode") or "").upper(),
            face_value=face_value,
            face_currency=currency,
            cost=cost,
            cost_currency=cost_currency,
            denomination_type="open" if is_open else "fixed",
            min_value=bound("denominationMinValue"),
            max_value=bound("denominationMaxValue"),
            step=bound("denominationStep"),
            available=str(data.get("status") or "").strip().lower() == "active",
            terms=str(first.get("tnc") or first.get("redemptionInstructions") or ""),
            extra=extra,
        )

    # ------------------------------------------------------------------ wallet

    def fetch_balances(self) -> list[BalanceInfo]:
        wallet = self.parse(Wallet, self.call_json("GET", "/wallet"), what="wallet")
        with _parsing("wallet"):
            result = []
            for cur, value in sorted(wallet.balances.items()):
                code = currency_code(cur)
                result.append(BalanceInfo(currency=code, amount=_major_amount(value, code)))
        return result

    # ------------------------------------------------------------------ orders

    def _order_body(self, order: OrderRequest) -> dict[str, Any]:
        currency = currency_code(order.currency)
        if isinstance(order.quantity, bool) or not isinstance(order.quantity, int) \
                or order.quantity < 1:
            raise SupplierError("order quantity must be a whole number of at least 1",
                                kind=Kind.REFUSED, code="request")
        try:
            product_id: int | str = int(order.product_id)
        except (TypeError, ValueError):
            product_id = order.product_id
        line: dict[str, Any] = {"productId": product_id, "quantity": order.quantity}
        if order.denomination is not None:  # open products: the chosen amount is the price
            line["price"] = to_minor(order.denomination, currency)
        elif order.face_value is not None:  # the synced sell price: Kalixo checks it
            line["price"] = to_minor(order.face_value, currency)
        elif order.unit_price is not None:
            line["price"] = self._catalog_price(str(product_id), order.unit_price)
        body: dict[str, Any] = {
            "externalOrderCode": order.client_reference,
            "currency": currency,
            "orderProducts": [line],
        }
        if "price" in line:
            body["price"] = line["price"] * order.quantity
        return body

    def _catalog_price(self, product_id: str, expected_cost: Decimal) -> int:
        """The sell price to send for a fixed product, once its cost is what we expect.

        Kalixo checks a fixed line's ``price`` against the catalog SELL price (``price``), while
        we expect to pay the BUYING price (``buyingPrice``, our ``unit_price``). So read the
        product first: refuse when it now costs more than expected, else send its price.
        """
        data = self.parse(Product, self.call_json(
            "GET", f"/catalog/products/{quote(product_id, safe='')}"), what="catalog product")
        if not isinstance(data.price, int):
            raise self.malformed(f"catalog product {product_id}: price is no whole number")
        with _parsing("catalog product"):
            currency = currency_code(data.buyingCurrencyCode or data.currencyCode)
            cost = None if data.buyingPrice is None else minor_to_major(data.buyingPrice, currency)
        if cost is not None and cost > expected_cost:
            raise SupplierError(
                f"Kalixo product {product_id} now costs {cost} {currency}, more than the "
                f"expected {expected_cost}; refresh the catalog", kind=Kind.REFUSED,
                code="price_changed",
            )
        return data.price

    def submit_order(self, order: OrderRequest) -> OrderResult:
        try:
            body = self._order_body(order)
        except MoneyError as exc:
            raise SupplierError(f"order cannot be priced ({exc})", kind=Kind.REFUSED,
                                code="request") from exc
        response = self.call("POST", "/orders", json_body=body, order_write=True)
        if response.status_code == 409:
            logger.info("Kalixo v2: order already exists; looking it up by reference")
            found = self.lookup_order(order.client_reference)
            if found is None:
                raise SupplierError(
                    "Kalixo reported a duplicate order but cannot find it",
                    kind=Kind.OUTCOME_UNKNOWN, cause=Kind.UNAVAILABLE, status_code=409,
                    code="Conflict",
                )
            return found
        self.raise_for_response(response)
        data = read_json(response, outcome_unknown=True)
        answer = self.parse(Order, data, what="order answer", order_write=True)
        with _parsing("order answer", outcome_unknown=True):
            result = self._order(answer)
        if result.client_reference and result.client_reference != order.client_reference:
            raise self.malformed("an answer with another order's reference", order_write=True)
        return result

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        data = self.call_json("GET", f"/orders/{quote(str(supplier_order_id), safe='')}")
        answer = self.parse(Order, data, what="order")
        with _parsing("order"):
            return self._order(answer, fallback_id=str(supplier_order_id))

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        response = self.call("GET", f"/orders/{quote(client_reference, safe='')}")
        body = _json_or_none(response)
        if response.status_code == 404 and isinstance(body, dict) \
                and body.get("statusCode") == 404:  # Kalixo's own 404, not a proxy's page
            return None
        self.raise_for_response(response)
        data = read_json(response)
        answer = self.parse(Order, data, what="order")
        with _parsing("order"):
            # Without an orderId in the answer, the reference still finds the order later.
            result = self._order(answer, fallback_id=client_reference)
        # A numeric reference could match another order's orderId instead of ours.
        if result.client_reference and result.client_reference != client_reference:
            raise SupplierError(
                "Kalixo found an order with another reference for this lookup",
                kind=Kind.MALFORMED, code="ambiguous_reference",
            )
        return result

    def _order(self, data: Order, fallback_id: str = "") -> OrderResult:
        """An order answer (202 on placing, 200 on polling) in the portal's terms."""
        order_id = data.orderId or fallback_id
        if not order_id:
            raise Malformed("missing orderId")
        status = map_status(STATUSES, data.status)
        codes: list[CodeInfo] = []
        lines = []
        for line in data.products or []:
            line_codes = self._codes(line)
            codes.extend(line_codes)
            lines.append({"productId": line.productId or "", "price": line.price,
                          "quantity": line.quantity, "delivered": len(line_codes)})
        quantities = sum(line.quantity or 0 for line in data.products or [])
        total = data.total if data.total is not None else (quantities or None)
        delivered = data.delivered
        if delivered is None and status != SupplierStatus.PROCESSING:
            delivered = len(codes)
        if status == SupplierStatus.COMPLETED and data.products is None:
            raise Malformed("a completed order without products")
        status, why = settle_status(status, delivered=len(codes), ordered=total)
        message = why or str(data.reason or data.message or "")
        if status == SupplierStatus.PARTIALLY_COMPLETED and len(codes) != delivered:
            message = message or f"{len(codes)} codes sent for {delivered} delivered"

        details: dict[str, Any] = {"lines": lines} if lines else {}
        wallet = data.wallet
        if isinstance(wallet, dict) and isinstance(wallet.get("balances"), dict):
            details["wallet"] = {
                str(cur): str(to_decimal(v)) for cur, v in wallet["balances"].items()
                if not isinstance(v, bool) and isinstance(v, int | float | str)
            }
            if isinstance(wallet.get("lowBalance"), bool):
                details["low_balance"] = wallet["lowBalance"]
        return OrderResult(
            supplier_order_id=order_id,
            status=status,
            raw_status=data.status,
            client_reference=data.externalOrderCode or "",
            estimated_ready_at=parse_timestamp(data.estimatedReadyAt),
            codes=codes,
            delivered=delivered,
            total=total,
            message=message[:500],
            details=details,
        )

    @staticmethod
    def _codes(line: Line) -> list[CodeInfo]:
        """Codes from ``codes: [{code}]`` or the older ``pin: [{PIN}]`` (both accepted)."""
        sku = line.productId or ""
        items = line.codes if line.codes is not None else line.pin if line.pin is not None \
            else line.PIN or []
        codes = []
        for item in items:
            value = item
            if isinstance(item, dict):
                value = next((item[k] for k in CODE_KEYS if item.get(k) not in (None, "")), None)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise Malformed("a code entry has no code")
            codes.append(CodeInfo(code=value.strip(), sku=sku))
        return codes


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
