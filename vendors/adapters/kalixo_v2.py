"""Kalixo Distribution API v2: asynchronous orders, polled until the codes are delivered.

Auth is one ``x-api-key`` header. Prices (catalog and order lines) are MINOR units in the
product's currency; wallet balances are MAJOR-unit JSON numbers. Our ``client_reference`` is the
``externalOrderCode``, Kalixo's idempotency key: a repeat answers 409 (or the existing order), and
``GET /orders/{reference}`` finds an order by ``orderId`` or by ``externalOrderCode``.
Codes arrive as ``products[].codes[{code}]``, or in older answers as ``products[].pin[{PIN}]``.

A fixed line's ``price`` must equal the catalog SELL price, while ``OrderRequest.unit_price`` is
our expected cost (``buyingPrice``): before such an order the product is read once, the order
refused if it now costs more, and its sell price sent. Open products send the chosen amount.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from portal.http import SupplierError, read_json, request
from portal.money import (
    MoneyError,
    currency_code,
    exponent,
    from_minor,
    round_money,
    to_decimal,
    to_minor,
)
from vendors.adapters.base import (
    Adapter,
    BalanceInfo,
    CodeInfo,
    OrderRequest,
    OrderResult,
    ProductInfo,
    SupplierStatus,
    map_status,
)

logger = logging.getLogger(__name__)

STATUSES: dict[str, SupplierStatus] = {
    "processing": SupplierStatus.PROCESSING,
    "completed": SupplierStatus.COMPLETED,
    "partially_completed": SupplierStatus.PARTIALLY_COMPLETED,
    "failed": SupplierStatus.FAILED,
}

PAGE_SIZE = 100  # the documented maximum ``take``
MAX_PAGES = 1000  # a guard against a supplier that never reports the end
CODE_KEYS = ("code", "PIN", "pin", "Pin")  # current shape first, then the older one


class Malformed(Exception):
    """An answer that does not have the documented shape (the message names the field)."""


@contextmanager
def _parsing(what: str, *, outcome_unknown: bool = False,
             status_code: int | None = None) -> Iterator[None]:
    """Turn any shape or money problem while reading an answer into a SupplierError."""
    try:
        yield
    except (Malformed, MoneyError, KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = str(exc) if isinstance(exc, Malformed | MoneyError) else type(exc).__name__
        raise SupplierError(
            f"Kalixo sent an unexpected {what} ({detail})",
            outcome_unknown=outcome_unknown, status_code=status_code, code="malformed",
        ) from exc


def _field(data: dict, name: str, kinds: Any, *, required: bool = True,
           default: Any = None) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise Malformed(f"missing {name}")
        return default
    if isinstance(value, bool) or not isinstance(value, kinds):  # JSON true is no number
        raise Malformed(f"{name} has the wrong type")
    return value


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _identifier(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise Malformed(f"{name} missing or of the wrong type")
    return str(value).strip()


def _minor_amount(value: Any, currency: str) -> Decimal:
    """Minor units (possibly fractional, as buyingPrice may be) in major units."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Malformed("an amount has the wrong type")
    amount = to_decimal(value)
    if amount == amount.to_integral_value():
        return from_minor(amount, currency)
    return amount.scaleb(-exponent(currency))


def _major_amount(value: Any, currency: str) -> Decimal:
    """A major-unit JSON number (wallet balances, 196.01) as an exact Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Malformed("a balance has the wrong type")
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


class KalixoV2(Adapter):
    kind = "kalixo_v2"
    one_code_per_request = False
    has_lookup = True
    has_balances = True
    credential_fields = ("api_key",)

    # ------------------------------------------------------------------ HTTP

    def _headers(self) -> dict[str, str]:
        key = str(self.credentials.get("api_key") or "").strip()
        if not key:
            raise SupplierError("Kalixo v2 vendor has no API key configured", code="credentials")
        return {"x-api-key": key, "Accept": "application/json"}

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json_body: Any = None) -> requests.Response:
        return request(method, f"{self.base_url}{path}", headers=self._headers(),
                       params=params, json_body=json_body)

    def _error(self, response: requests.Response, *, outcome_unknown: bool = False
               ) -> SupplierError:
        """A SupplierError from a 4xx answer in Kalixo's {statusCode, error, message} shape."""
        label, message = "", ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            label = str(body.get("error") or "")[:60]
            message = str(body.get("message") or "")[:300]
        text = f"Kalixo answered HTTP {response.status_code}"
        if message:
            text += f": {message}"
        return SupplierError(
            text, retryable=False, outcome_unknown=outcome_unknown,
            status_code=response.status_code, code=label or str(response.status_code),
        )

    def _get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self._send("GET", path, params=params)
        if response.status_code != 200:
            raise self._error(response)
        return read_json(response)

    @staticmethod
    def _is_documented_404(response: requests.Response) -> bool:
        """A 404 in Kalixo's own error shape, not a proxy's page for a wrong URL."""
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("statusCode") == 404

    # ------------------------------------------------------------------ catalog

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        skip = 0
        for _ in range(MAX_PAGES):
            page = self._get_json("/catalog/products", params={"skip": skip, "take": PAGE_SIZE})
            with _parsing("catalog page"):
                page = _object(page, "catalog page")
                count = _field(page, "count", int)
                products = _field(page, "products", list)
                items = [self._product(_object(p, "product")) for p in products]
            yield from items
            skip += len(products)
            if not products or skip >= count:
                return
        raise SupplierError("Kalixo catalog paging did not end", code="malformed")

    @staticmethod
    def _product(data: dict) -> ProductInfo:
        pid = _identifier(data.get("id"), "product id")
        try:
            currency = currency_code(data.get("currencyCode"))
        except MoneyError as exc:
            raise Malformed(f"product {pid} has an unknown currency") from exc
        is_open = str(data.get("denominationType") or "fixed").strip().lower() == "open"
        languages = [lang for lang in data.get("languages") or [] if isinstance(lang, dict)]
        first = languages[0] if languages else {}
        sku = str(data.get("productCode") or first.get("sku") or pid)

        face_value = cost = None
        cost_currency = ""
        if not is_open:
            face_value = _minor_amount(_field(data, "price", int | float | str), currency)
        if data.get("buyingPrice") is not None and not is_open:
            cost_currency = currency_code(data.get("buyingCurrencyCode") or currency)
            cost = _minor_amount(data["buyingPrice"], cost_currency)

        def bound(name: str) -> Decimal | None:
            value = data.get(name)
            return _minor_amount(value, currency) if is_open and value is not None else None

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
        body = self._get_json("/wallet")
        with _parsing("wallet"):
            balances = _field(_object(body, "wallet"), "balances", dict)
            result = []
            for cur, value in sorted(balances.items()):
                code = currency_code(cur)
                result.append(BalanceInfo(currency=code, amount=_major_amount(value, code)))
        return result

    # ------------------------------------------------------------------ orders

    def _order_body(self, order: OrderRequest) -> dict[str, Any]:
        currency = currency_code(order.currency)
        if isinstance(order.quantity, bool) or not isinstance(order.quantity, int) \
                or order.quantity < 1:
            raise SupplierError("order quantity must be a whole number of at least 1",
                                code="request")
        try:
            product_id: int | str = int(order.product_id)
        except (TypeError, ValueError):
            product_id = order.product_id
        line: dict[str, Any] = {"productId": product_id, "quantity": order.quantity}
        if order.denomination is not None:  # open products: the chosen amount is the price
            line["price"] = to_minor(order.denomination, currency)
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
        response = self._send("GET", f"/catalog/products/{quote(product_id, safe='')}")
        if response.status_code != 200:
            raise self._error(response)
        data = read_json(response)
        with _parsing("catalog product", status_code=200):
            data = _object(data, "catalog product")
            price = _field(data, "price", int)
            currency = currency_code(data.get("buyingCurrencyCode") or data.get("currencyCode"))
            buying = data.get("buyingPrice")
            cost = _minor_amount(buying, currency) if buying is not None else None
        if cost is not None and cost > expected_cost:
            raise SupplierError(
                f"Kalixo product {product_id} now costs {cost} {currency}, more than the "
                f"expected {expected_cost}; refresh the catalog", code="price_changed",
            )
        return price

    def submit_order(self, order: OrderRequest) -> OrderResult:
        try:
            body = self._order_body(order)
        except MoneyError as exc:
            raise SupplierError(f"order cannot be priced ({exc})", code="request") from exc
        # request() maps timeouts and 5xx after this POST to outcome_unknown=True
        response = self._send("POST", "/orders", json_body=body)
        if response.status_code == 409:
            logger.info("Kalixo v2: order already exists; looking it up by reference")
            found = self.lookup_order(order.client_reference)
            if found is None:
                raise SupplierError(
                    "Kalixo reported a duplicate order but cannot find it", retryable=True,
                    outcome_unknown=True, status_code=409, code="Conflict",
                )
            return found
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        data = read_json(response, outcome_unknown=True)
        with _parsing("order answer", outcome_unknown=True,
                      status_code=response.status_code):
            result = self._order(_object(data, "order answer"))
        if result.client_reference and result.client_reference != order.client_reference:
            raise SupplierError("Kalixo answered with another order's reference",
                                outcome_unknown=True, code="malformed")
        return result

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        response = self._send("GET", f"/orders/{quote(str(supplier_order_id), safe='')}")
        if response.status_code != 200:
            raise self._error(response)
        data = read_json(response)
        with _parsing("order", status_code=200):
            return self._order(_object(data, "order"), fallback_id=str(supplier_order_id))

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        response = self._send("GET", f"/orders/{quote(client_reference, safe='')}")
        if response.status_code == 404 and self._is_documented_404(response):
            return None
        if response.status_code != 200:
            raise self._error(response)
        data = read_json(response)
        with _parsing("order", status_code=200):
            # Without an orderId in the answer, the reference still finds the order later.
            result = self._order(_object(data, "order"), fallback_id=client_reference)
        # A numeric reference could match another order's orderId instead of ours.
        if result.client_reference and result.client_reference != client_reference:
            raise SupplierError(
                "Kalixo found an order with another reference for this lookup",
                code="ambiguous_reference",
            )
        return result

    def _order(self, data: dict, fallback_id: str = "") -> OrderResult:
        """An order answer (202 on placing, 200 on polling) in the portal's terms."""
        if data.get("orderId") is not None:
            order_id = _identifier(data.get("orderId"), "orderId")
        elif fallback_id:
            order_id = fallback_id
        else:
            raise Malformed("missing orderId")
        raw_status = _field(data, "status", str)
        status = map_status(STATUSES, raw_status)
        reference = data.get("externalOrderCode")
        reference = "" if reference is None else _identifier(reference, "externalOrderCode")

        codes: list[CodeInfo] = []
        quantities = 0
        lines = []
        for line in _field(data, "products", list, required=False, default=[]):
            line = _object(line, "order line")
            quantity = _field(line, "quantity", int, required=False)
            quantities += quantity or 0
            product_id = line.get("productId")
            sku = "" if product_id is None else _identifier(product_id, "productId")
            line_codes = self._codes(line, sku)
            codes.extend(line_codes)
            lines.append({"productId": sku, "price": line.get("price"), "quantity": quantity,
                          "delivered": len(line_codes)})

        delivered = _field(data, "delivered", int, required=False)
        total = _field(data, "total", int, required=False)
        if total is None and quantities:
            total = quantities
        if delivered is None and status != SupplierStatus.PROCESSING:
            delivered = len(codes)
        message = str(data.get("reason") or data.get("message") or "")

        if status == SupplierStatus.COMPLETED:
            if "products" not in data:
                raise Malformed("a completed order without products")
            if total is not None and len(codes) != total:
                # Completed without every code is not a success: a person must look.
                status = SupplierStatus.UNKNOWN
                message = f"completed, but {len(codes)} of {total} codes were sent"
        elif status == SupplierStatus.PARTIALLY_COMPLETED and len(codes) != delivered:
            message = message or f"{len(codes)} codes sent for {delivered} delivered"

        details: dict[str, Any] = {"lines": lines} if lines else {}
        wallet = data.get("wallet")
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
            raw_status=raw_status,
            client_reference=reference,
            estimated_ready_at=parse_timestamp(data.get("estimatedReadyAt")),
            codes=codes,
            delivered=delivered,
            total=total,
            message=message[:500],
            details=details,
        )

    @staticmethod
    def _codes(line: dict, sku: str) -> list[CodeInfo]:
        """Codes from ``codes: [{code}]`` or the older ``pin: [{PIN}]`` (both accepted)."""
        items = line.get("codes")
        if items is None:
            items = line.get("pin", line.get("PIN"))
        if items is None:
            return []
        if not isinstance(items, list):
            raise Malformed("codes is not a list")
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
