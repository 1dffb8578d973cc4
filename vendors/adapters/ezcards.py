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
from types import UnionType
from typing import Any

import requests

from portal.http import Kind, SupplierError
from portal.money import Money, MoneyError, currency_code, quantum, to_decimal
from vendors.adapters.base import (
    BalanceInfo,
    Capabilities,
    CodeInfo,
    HttpAdapter,
    OrderRequest,
    OrderResult,
    ProductInfo,
    Quote,
    SupplierStatus,
    map_status,
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


class Malformed(Exception):
    """An answer that does not have the documented shape (turned into a SupplierError)."""


def _field(obj: Any, name: str, kind: type | UnionType, *, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise Malformed(f"expected an object holding {name!r}")
    value = obj.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise Malformed(f"{name!r} is missing or has the wrong type")
    return value


def _text(value: Any) -> str:
    """An identifier the API types as a string but may send as a number."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Malformed("an identifier is missing or has the wrong type")
    return str(value)


def _pin(value: Any) -> str:
    """pinCode is typed as an integer by EZ Cards; the portal keeps PINs as strings."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise Malformed("pinCode has the wrong type")
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise Malformed("pinCode has the wrong type")


def _money(obj: Any, name: str) -> Money:
    value = _field(obj, name, dict)
    try:
        return Money(to_decimal(value.get("amount")), currency_code(value.get("currency")))
    except MoneyError as exc:
        raise Malformed(f"{name!r} is not a valid amount") from exc


def _created_at(item: Any) -> str:
    return str(item.get("createdAt") or "") if isinstance(item, dict) else ""


def _money_json(money: Money) -> dict[str, str]:
    return {"amount": str(money.amount), "currency": money.currency}


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

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, order_write: bool = False) -> Any:
        """The ``data`` of a 2xx answer (every answer is wrapped {requestId, data})."""
        payload = self.call_json(method, path, params=params, json_body=body,
                                 order_write=order_write)
        if not isinstance(payload, dict) or "data" not in payload:
            raise self.malformed(f"an answer without its data envelope ({path})",
                                 order_write=order_write)
        return payload["data"]

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
            data = self._call("GET", "/v2/products",
                              params={"limit": self.page_size, "page": number})
            try:
                items = _field(data, "items", list)
                total_pages = _field(data, "totalPage", int)
                return [self._product(item) for item in items], number < total_pages
            except Malformed as exc:
                raise self.malformed(f"a product page: {exc}") from exc

        for products in self.paged(page, what="EZ Cards products"):
            yield from products

    @staticmethod
    def _tiers(item: dict[str, Any], currency: str) -> list[dict[str, Any]]:
        tiers = []
        for tier in _field(item, "prices", list):
            try:
                price = to_decimal(_field(tier, "price", str | int | float))
            except MoneyError as exc:
                raise Malformed("a tier price is not an amount") from exc
            high = _field(tier, "toQuantity", int, optional=True)
            tiers.append({"from_quantity": _field(tier, "fromQuantity", int),
                          "to_quantity": high, "price": str(price), "currency": currency})
        return sorted(tiers, key=lambda t: t["from_quantity"])

    @staticmethod
    def _tier_for(tiers: list[dict[str, Any]], quantity: int) -> dict[str, Any] | None:
        for tier in tiers:
            high = tier["to_quantity"]
            if tier["from_quantity"] <= quantity and (high is None or quantity <= high):
                return tier
        return None

    def _product(self, item: Any) -> ProductInfo:
        sku = _text(_field(item, "sku", str | int))
        try:
            currency = currency_code(item.get("currency"))
            face = to_decimal(_field(item, "faceValue", str | int | float))
        except MoneyError as exc:
            raise Malformed(f"product {sku}: bad currency or face value") from exc
        tiers = self._tiers(item, currency)
        first = self._tier_for(tiers, 1)
        country = item.get("country") if isinstance(item.get("country"), str) else ""
        instant = item.get("isInstantDeliverySupported")
        terms = item.get("termConditions")
        extra_keys = ("format", "types", "percentageOffFaceValue", "brandCategory",
                      "brandSubCategory", "imageUrl", "descriptions", "instructions",
                      "isInstantDeliverySupported")
        return ProductInfo(
            supplier_product_id=sku, sku=sku,
            name=str(_field(item, "name", str)), brand=str(item.get("brand") or ""),
            country=country.upper() if len(country) == 2 else "",
            face_value=face, face_currency=currency,
            cost=Decimal(first["price"]) if first else None,
            cost_currency=currency if first else "",
            available=bool(tiers),
            delivery="instant" if instant is True else "delayed" if instant is False else "",
            terms="\n".join(t for t in terms if isinstance(t, str))
            if isinstance(terms, list) else "",
            price_tiers=tiers,
            extra={k: item[k] for k in extra_keys if k in item},
        )

    def fetch_balances(self) -> list[BalanceInfo]:
        data = self._call("GET", "/v2/balances")
        try:
            if not isinstance(data, list):
                raise Malformed("balances are not a list")
            return [BalanceInfo(currency=currency_code(_field(b, "currency", str)),
                                amount=to_decimal(_field(b, "balance", str | int | float)))
                    for b in data]
        except (Malformed, MoneyError) as exc:
            raise self.malformed(f"balances: {exc}") from exc

    # --- quote --------------------------------------------------------------------------------

    def quote(self, order: OrderRequest) -> Quote | None:
        sku = order.sku or order.product_id
        data = self._call("GET", "/v2/products", params={"sku": sku, "limit": 10, "page": 1})
        try:
            items = [i for i in _field(data, "items", list)
                     if isinstance(i, dict) and str(i.get("sku")) == sku]
            if not items:
                raise SupplierError(f"EZ Cards does not list SKU {sku}", kind=Kind.REFUSED,
                                    code="PRODUCT_NOT_FOUND")
            product = self._product(items[0])
        except Malformed as exc:
            raise self.malformed(f"a product: {exc}") from exc
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
            details.update({"unitPriceOriginal": _money_json(original),
                            "fx": {"pair": fx["pair"], "rate": str(fx["rate"]),
                                   "updatedAt": fx["updatedAt"]}})
        total = Money(unit.amount * order.quantity, pay)
        return Quote(unit_cost=unit, total_cost=total, details=details)

    def _rate(self, base: str, quote: str) -> dict[str, Any]:
        data = self._call("GET", "/v2/exchange-rates",
                          params={"pairs": f"{base}{quote},{quote}{base}"})
        try:
            rates = _field(data, "rates", list)
            updated = str(data.get("updatedAt") or "")
            by_pair = {str(_field(r, "pair", str)).upper().replace("/", ""): r for r in rates}
            if base + quote in by_pair:
                value = to_decimal(_field(by_pair[base + quote], "rate", str | int | float))
            elif quote + base in by_pair:  # only the inverse is quoted
                value = Decimal(1) / to_decimal(
                    _field(by_pair[quote + base], "rate", str | int | float))
            else:
                raise SupplierError(f"EZ Cards quotes no rate for {base}{quote}",
                                    kind=Kind.REFUSED, code="no_rate")
        except (Malformed, MoneyError) as exc:
            raise self.malformed(f"exchange rates: {exc}") from exc
        if value <= 0:
            raise self.malformed(f"a non-positive rate for {base}{quote}")
        return {"pair": base + quote, "rate": value, "updatedAt": updated}

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
            data = self._call("POST", path, body=body, order_write=True)
        except SupplierError as exc:
            # The dup check is always on, so a 409 means this reference is taken already.
            if exc.status_code == 409:
                return self._existing(order.client_reference)
            raise
        try:
            result = self._order(data, created=True)
        except Malformed as exc:
            raise self.malformed(f"an order answer: {exc}", order_write=True) from exc
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
        data = self._call("GET", "/v2/orders",
                          params={"clientOrderNumber": client_reference, "page": 1, "limit": 10})
        items = self._items(data)
        if not items:
            return None
        exact = [i for i in items if isinstance(i, dict)
                 and str(i.get("clientOrderNumber")) == client_reference]
        # The dup check keeps one order per reference; should there be more, take the first.
        chosen = min(exact or items, key=_created_at)
        return self._read(chosen)

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        data = self._call("GET", "/v2/orders",
                          params={"transactionId": supplier_order_id, "page": 1, "limit": 10})
        items = [i for i in self._items(data)
                 if isinstance(i, dict) and str(i.get("transactionId")) == supplier_order_id]
        if not items:
            raise SupplierError(f"EZ Cards does not list order {supplier_order_id}",
                                kind=Kind.REFUSED, status_code=404, code="NOT_FOUND")
        return self._read(items[0])

    def _items(self, data: Any) -> list[Any]:
        try:
            return _field(data, "items", list)
        except Malformed as exc:
            raise self.malformed(f"an order list: {exc}") from exc

    def _read(self, item: Any) -> OrderResult:
        try:
            result = self._order(item, created=False)
        except Malformed as exc:
            raise self.malformed(f"an order: {exc}") from exc
        return self._with_codes(result)

    def _order(self, data: Any, *, created: bool) -> OrderResult:
        """An order from a create or Get Orders answer, before its codes are read."""
        transaction_id = _text(_field(data, "transactionId", str | int))
        raw = _field(data, "status", str)
        products = _field(data, "products", list)
        total = 0
        for product in products:
            quantity = _field(product, "quantity", int)
            if quantity < 0:
                raise Malformed("a product quantity is negative")
            total += quantity
        cost = _money(data, "grandTotal")
        details: dict[str, Any] = {}
        pay_with = data.get("payWithCurrency")
        if isinstance(pay_with, str) and pay_with:
            details["payWithCurrency"] = pay_with
        if isinstance(data.get("fxSummary"), list):
            details["fxSummary"] = [
                {"pair": str(_field(fx, "pair", str)),
                 "rate": str(to_decimal(_field(fx, "rate", str | int | float))),
                 "asOfDate": str(fx.get("asOfDate") or "")}
                for fx in data["fxSummary"]
            ]
        lines = []
        for product in products:
            line = {"sku": _text(_field(product, "sku", str | int)),
                    "quantity": product["quantity"],
                    "unitPrice": _money_json(_money(product, "unitPrice"))}
            if isinstance(product.get("unitPriceOriginal"), dict):
                line["unitPriceOriginal"] = _money_json(_money(product, "unitPriceOriginal"))
            lines.append(line)
        if len(lines) == 1 and "unitPriceOriginal" in lines[0]:
            details["unitPriceOriginal"] = lines[0]["unitPriceOriginal"]
        if lines:
            details["products"] = lines
        if isinstance(data.get("ezOrderNumber"), str):
            details["ezOrderNumber"] = data["ezOrderNumber"]
        status = map_status(STATUSES, raw)
        return OrderResult(
            supplier_order_id=transaction_id, status=status, raw_status=raw,
            client_reference=str(data.get("clientOrderNumber") or ""),
            delivered=0, total=total, cost=cost, details=details,
        )

    def _with_codes(self, result: OrderResult) -> OrderResult:
        """The order combined with GetCodes: fulfilled only when every code is COMPLETED."""
        try:
            data = self._call("GET", f"/v2/orders/{result.supplier_order_id}/codes")
        except SupplierError as exc:
            if exc.status_code != 404 or result.status != SupplierStatus.CANCELLED:
                raise
            data = []  # a cancelled order may have no codes at all
        try:
            codes, pending, expected = self._codes(data)
        except Malformed as exc:
            raise self.malformed(f"codes: {exc}") from exc
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
    def _codes(data: Any) -> tuple[list[CodeInfo], int, int]:
        """(delivered codes, codes not ready, codes expected) from a GetCodes answer."""
        if not isinstance(data, list):
            raise Malformed("codes are not a list")
        codes: list[CodeInfo] = []
        pending = expected = 0
        for product in data:
            sku = _text(_field(product, "sku", str | int))
            entries = _field(product, "codes", list)
            expected += max(_field(product, "quantity", int), len(entries))
            for entry in entries:
                status = _field(entry, "status", str)
                code = entry.get("redeemCode")
                if status.strip().lower() != CODE_COMPLETED or code in (None, ""):
                    pending += 1  # redeemCode stays null until the code is COMPLETED
                    continue
                stock_id = entry.get("stockId")
                codes.append(CodeInfo(
                    code=_text(code), pin=_pin(entry.get("pinCode")), sku=sku,
                    serial="" if stock_id is None else _text(stock_id),
                ))
        return codes, pending, expected

    @staticmethod
    def _replace(result: OrderResult, **changes: Any) -> OrderResult:
        return replace(result, **changes)
