"""Starship Rewards (gift-card aggregator), API v1 under ``/api/v1``.

Two authentication generations, chosen by the vendor's stored credentials:
  * ``api_key`` + ``api_secret`` (newer): both headers on every call; every write is also signed
    with ``X-Timestamp`` and ``X-Signature: t=<ts>,v1=<HMAC-SHA256(secret, ts+method+path+body)>``.
  * ``username`` + ``password`` (older): JWT access/refresh tokens kept in ``self.cache``,
    refreshed before expiry (refresh rotates both), re-login when refresh fails and once after 401.

Fulfilment is inventory-first: a stock hit answers DELIVERED, a miss PENDING (polled later).
Products carry several denominations each; every fixed denomination becomes its own product
(``"<id>:<value>"``), an open range becomes one open product (``"<id>"``).
"""

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests

from portal.http import Kind, SupplierError, read_json
from portal.money import Money, MoneyError, currency_code, round_money, to_decimal
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

API = "/api/v1"
PAGE_LIMIT = 100  # documented maximum for orders; products and wallets allow more
MAX_PAGES = 500  # a runaway-paging guard: 50,000 rows
LOOKUP_MAX_PAGES = 100  # orders are listed newest first; ours is recent
DEFAULT_ACCESS_TTL = 15 * 60  # documented 15-30 minutes, when an answer omits its expiry
DEFAULT_REFRESH_TTL = 8 * 3600
CURRENCY_CACHE_SECONDS = 3600

# Primary statuses, read through base.map_status (any letter case).
STATUSES: dict[str, SupplierStatus] = {
    "placed": SupplierStatus.PROCESSING,
    "pending": SupplierStatus.PROCESSING,
    "processing": SupplierStatus.PROCESSING,
    # not final: it ends DELIVERED, or CANCELLED with the undelivered part refunded
    "partially_delivered": SupplierStatus.PROCESSING,
    "delivered": SupplierStatus.COMPLETED,
    "cancelled": SupplierStatus.CANCELLED,
    "canceled": SupplierStatus.CANCELLED,
    "failed": SupplierStatus.FAILED,
}


class Starship(HttpAdapter):
    kind = "starship"
    label = "Starship Rewards"
    name = "Starship"
    capabilities = Capabilities(lookup_by_reference=True, balances=True, webhooks=True,
                                order_listing=True)
    credential_fields = ("username", "password", "api_key", "api_secret")
    credential_sets = (("api_key", "api_secret"), ("username", "password"))
    refresh_after_401 = False

    def uses_session(self) -> bool:
        return not (self.credentials.get("api_key") and self.credentials.get("api_secret"))

    # ------------------------------------------------------------------ operations

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        currencies = _LazyCurrencies(self)
        for item in self._pages(f"{API}/products", limit=PAGE_LIMIT):
            yield from self._products(item, currencies)

    def fetch_balances(self) -> list[BalanceInfo]:
        currencies = _LazyCurrencies(self)
        totals: dict[str, Decimal] = {}
        for wallet in self._pages(f"{API}/wallets", limit=PAGE_LIMIT):
            if not isinstance(wallet, dict):
                raise _malformed("a wallet is not an object")
            currency = self._currency_of(wallet, currencies)
            amount = _amount(wallet.get("amount"), "wallet amount")
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        return [BalanceInfo(currency=c, amount=round_money(a, c)) for c, a in totals.items()]

    def quote(self, order: OrderRequest) -> Quote | None:
        product_id, denomination = _product_and_denomination(order)
        body = {"denomination": denomination, "quantity": order.quantity}
        data = _object(self._json("POST", f"{API}/products/{product_id}/charges", body=body),
                       "charges")
        details = data.get("charges_details") or {}
        if not isinstance(details, dict):
            raise _malformed("charges_details is not an object")
        currency = _currency(details.get("destination_currency") or order.pay_with_currency
                             or order.currency)
        total = round_money(_amount(data.get("total_payable"), "total_payable"), currency)
        unit = round_money(total / order.quantity, currency)
        return Quote(
            unit_cost=Money(unit, currency), total_cost=Money(total, currency),
            details={
                "total_amount": str(data.get("total_amount")),
                "discount_amount": str(data.get("discount_amount")),
                "max_quantity": data.get("max_quantity"),
                "source_currency": details.get("source_currency"),
                "destination_currency": details.get("destination_currency"),
                "forex_rate": _str_or_none(details.get("forex_rate")),
                "conversion_fee": _str_or_none(details.get("conversion_fee")),
            },
        )

    def submit_order(self, order: OrderRequest) -> OrderResult:
        product_id, denomination = _product_and_denomination(order)
        if order.quantity < 1:
            raise SupplierError("quantity must be at least 1", kind=Kind.REFUSED)
        body: dict[str, Any] = {
            "product_id": int(product_id) if product_id.isdigit() else product_id,
            "denomination": denomination,
            "quantity": order.quantity,
            "ref": order.client_reference,
        }
        response = self._send(
            "POST", f"{API}/orders", body=body, order_write=True,
            headers={"Idempotency-Key": _idempotency_key(order.client_reference)},
        )
        if response.status_code == 409 or _is_duplicate_ref(response):
            found = self.lookup_order(order.client_reference, order=order)
            if found is None:
                raise SupplierError(
                    "Starship reported a duplicate reference but no order was found",
                    kind=Kind.OUTCOME_UNKNOWN, status_code=response.status_code,
                )
            return found
        self.raise_for_response(response)
        data = _object(read_json(response, outcome_unknown=True), "order", outcome_unknown=True)
        fallback = order.pay_with_currency or order.currency
        result = self._order_result(data, fallback_currency=fallback, outcome_unknown=True)
        if map_status(STATUSES, result.raw_status) is SupplierStatus.COMPLETED and not result.codes:
            # the create answer carries no vouchers; on a stock hit they are readable at once
            try:
                return self.fetch_order(result.supplier_order_id, order=order)
            except SupplierError:
                # the order exists and is paid: let the portal poll for the vouchers
                return replace(result, status=SupplierStatus.PROCESSING,
                               message="delivered; vouchers not read yet")
        return result

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        data = _object(self._json("GET", f"{API}/orders/{supplier_order_id}"), "order")
        # The order answer states its amount but not always its currency: the wallet we pay
        # from, which is the pay-with currency or the order's own.
        fallback = (order.pay_with_currency or order.currency) if order else ""
        return self._order_result(data, fallback_currency=fallback)

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        # No documented reference filter: page through the orders (newest first) for our ref.
        for page_number, items in enumerate(self._page_lists(f"{API}/orders", limit=PAGE_LIMIT)):
            for item in items:
                if not isinstance(item, dict):
                    raise _malformed("an order is not an object")
                if client_reference in (item.get("reference_code"), item.get("ref")):
                    if item.get("id") in (None, ""):
                        raise _malformed("an order has no id")
                    return self.fetch_order(str(item["id"]), order=order)
            if page_number + 1 >= LOOKUP_MAX_PAGES:
                raise SupplierError(
                    f"order not found in the newest {LOOKUP_MAX_PAGES * PAGE_LIMIT} orders; "
                    "the supplier has not confirmed there is none", kind=Kind.REFUSED,
                )
        return None

    # ------------------------------------------------------------------ orders

    def _order_result(self, data: dict, *, fallback_currency: str = "",
                      outcome_unknown: bool = False) -> OrderResult:
        order_id = data.get("id")
        raw_status = data.get("status")
        if order_id in (None, "") or not isinstance(raw_status, str):
            raise _malformed("order answer without id or status", outcome_unknown)
        reference = data.get("reference_code") or data.get("ref") or ""
        quantity = data.get("quantity")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
            raise _malformed("order quantity is not a whole number", outcome_unknown)
        vouchers = data.get("vouchers") or []
        if not isinstance(vouchers, list):
            raise _malformed("vouchers is not a list", outcome_unknown)
        codes = [_code(v) for v in vouchers]
        status, message = settle_status(map_status(STATUSES, raw_status), delivered=len(codes),
                                        ordered=quantity)
        cost = self._cost(data, fallback_currency, outcome_unknown)
        cost_estimated = False
        if status is SupplierStatus.PARTIALLY_COMPLETED:
            if cost is not None and quantity:
                # the refund is not stated: the undelivered share of the amount, rounded
                refund = round_money(cost.amount * (quantity - len(codes)) / quantity,
                                     cost.currency)
                cost, cost_estimated = Money(cost.amount - refund, cost.currency), True
        sub_status = data.get("sub_status") or data.get("subStatus") or ""
        return OrderResult(
            supplier_order_id=str(order_id),
            status=status,
            raw_status=raw_status,
            client_reference=str(reference),
            codes=codes,
            delivered=len(codes),
            total=quantity,
            cost=cost,
            cost_estimated=cost_estimated,
            message=message,
            details={k: v for k, v in {
                "sub_status": str(sub_status),
                "transaction_id": data.get("transaction_id"),
                "product_id": data.get("product_id"),
                "denomination": _str_or_none(data.get("denomination")),
                "discount": _str_or_none(data.get("discount")),
                "amount": _str_or_none(data.get("amount")),
                "placed_at": data.get("placed_at"),
            }.items() if v not in (None, "")},
        )

    def _cost(self, data: dict, fallback_currency: str, outcome_unknown: bool) -> Money | None:
        if data.get("amount") is None:
            return None
        raw_currency = data.get("currency") or data.get("currency_code") or fallback_currency
        if not raw_currency:
            return None
        try:
            currency = currency_code(raw_currency)
            return Money(round_money(to_decimal(data["amount"]), currency), currency)
        except MoneyError as exc:
            raise _malformed(f"order amount or currency unreadable ({exc})",
                             outcome_unknown) from exc

    # ------------------------------------------------------------------ catalogue

    def _products(self, item: Any, currencies: "_LazyCurrencies") -> Iterator[ProductInfo]:
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            raise _malformed("a product is not an object with an id")
        pid = str(item["id"])
        currency = self._currency_of(item, currencies)
        denominations = item.get("available_denominations")
        if not isinstance(denominations, list):
            raise _malformed(f"product {pid} has no available_denominations list")
        delivery = str(item.get("delivery_time") or "").strip().upper()
        common = {
            "name": str(item.get("name") or pid),
            "brand": str(item.get("brand") or ""),
            "face_currency": currency,
            "cost_currency": currency,
            "delivery": {"INSTANT": "instant", "DELAYED": "delayed"}.get(delivery, ""),
            "terms": str(item.get("validity") or ""),
            "available": item.get("is_active", True) is not False,
        }
        extra = {k: item.get(k) for k in ("category", "sub_category", "country_id", "currency_id",
                                          "delivery_mode", "delivery_type", "delivery_time")
                 if item.get(k) is not None}
        open_ranges = 0
        for denomination in denominations:
            if not isinstance(denomination, dict):
                raise _malformed(f"product {pid} has a malformed denomination")
            low = _amount(denomination.get("min_value"), "min_value")
            high = _amount(denomination.get("max_value"), "max_value")
            # the discount is a percentage (the charges API shows 2.5 -> 5.00 off 200.00)
            percent = _amount(denomination.get("discount", 0) or 0, "discount")
            info_extra = {**extra, "discount_percent": str(percent)}
            if low == high:
                value = round_money(low, currency)
                sid = f"{pid}:{value}"
                cost = round_money(value - value * percent / 100, currency)
                yield ProductInfo(supplier_product_id=sid, sku=sid, face_value=value, cost=cost,
                                  extra=info_extra, **common)
            else:
                sid = pid if open_ranges == 0 else f"{pid}:{low}-{high}"
                open_ranges += 1
                yield ProductInfo(
                    supplier_product_id=sid, sku=sid, denomination_type="open",
                    min_value=round_money(low, currency), max_value=round_money(high, currency),
                    extra=info_extra, **common,
                )

    def _currencies(self) -> dict[str, str]:
        """Starship's currency ids -> ISO codes, from GET /api/v1/currencies (cached)."""
        key = self._key("currencies")
        cached = self.cache.get(key)
        if isinstance(cached, dict) and cached:
            return cached
        mapping: dict[str, str] = {}
        for item in self._pages(f"{API}/currencies", limit=PAGE_LIMIT):
            if not isinstance(item, dict) or item.get("id") is None:
                raise _malformed("a currency is not an object with an id")
            try:
                mapping[str(item["id"])] = currency_code(item.get("code"))
            except MoneyError:
                continue  # a currency Babel does not know cannot be priced; skip it
        self.cache.set(key, mapping, timeout=CURRENCY_CACHE_SECONDS)
        return mapping

    @staticmethod
    def _currency_of(item: dict, currencies: "_LazyCurrencies") -> str:
        for field in ("currency", "currency_code"):
            if isinstance(item.get(field), str) and item[field]:
                return _currency(item[field])
        code = currencies.get(str(item.get("currency_id")))
        if not code:
            raise _malformed(f"unknown currency_id {item.get('currency_id')!r}")
        return code

    # ------------------------------------------------------------------ paging

    def _page_lists(self, path: str, *, limit: int) -> Iterator[list]:
        def page(number: int) -> tuple[list, bool]:
            response = self._send("GET", path, params={"page": number, "limit": limit})
            self.raise_for_response(response)
            items = read_json(response)
            if not isinstance(items, list):
                raise _malformed(f"{path} did not answer a list")
            has_more = response.headers.get("X-Has-More")
            total_pages = response.headers.get("X-Total-Pages")
            if has_more is not None:
                return items, has_more.strip().lower() == "true"
            if total_pages and total_pages.strip().isdigit():
                return items, number < int(total_pages)
            return items, len(items) >= limit

        return self.paged(page, max_pages=MAX_PAGES, what=path)

    def _pages(self, path: str, *, limit: int) -> Iterator[Any]:
        for items in self._page_lists(path, limit=limit):
            yield from items

    # ------------------------------------------------------------------ HTTP and auth

    def _send(self, method: str, path: str, *, params: dict | None = None,
              body: dict | None = None, headers: dict[str, str] | None = None,
              order_write: bool = False) -> requests.Response:
        data = _json_bytes(body) if body is not None else None
        if data is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        return self.call(method, path, params=params, data=data, headers=headers,
                         order_write=order_write)

    def _json(self, method: str, path: str, *, body: dict | None = None) -> Any:
        response = self._send(method, path, body=body)
        self.raise_for_response(response)
        return read_json(response)

    def auth_headers(self, method: str, path: str, data: bytes) -> dict[str, str]:
        key, secret = self.credentials.get("api_key"), self.credentials.get("api_secret")
        if key and secret:
            headers = {"X-API-Key": key, "X-API-Secret": secret}
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                headers.update(sign(secret, method, path, data))
            return headers
        if self.credentials.get("username") and self.credentials.get("password"):
            return self.bearer()
        raise SupplierError("Starship credentials need api_key + api_secret or "
                            "username + password", kind=Kind.REFUSED, code="E_CREDENTIALS")

    def _key(self, name: str) -> str:
        return f"{self.kind}:{self.account}:{name}"

    def fresh_access(self, tokens: dict) -> str | None:
        lifetime = tokens.get("lifetime") or DEFAULT_ACCESS_TTL
        if tokens.get("access_token") and \
                time.time() < tokens["access_expires_at"] - min(60.0, lifetime / 4):
            return tokens["access_token"]
        return None

    def sent_token(self, tokens: dict) -> str | None:
        return tokens.get("access_token")

    def refresh(self, tokens: dict) -> str | None:
        if tokens.get("refresh_token") and time.time() < tokens.get("refresh_expires_at", 0) - 5:
            return self._token_request("refresh", {"refresh_token": tokens["refresh_token"]})
        return None

    def login(self) -> str:
        return self._token_request("login", {"username": self.credentials["username"],
                                             "password": self.credentials["password"]})

    def _token_request(self, action: str, body: dict) -> str:
        response = self.call("POST", f"{API}/auth/{action}", data=_json_bytes(body),
                             headers={"Content-Type": "application/json"}, authenticate=False)
        if response.status_code >= 400:
            code, _ = _error_of(response)
            raise SupplierError(f"Starship {action} refused (HTTP {response.status_code})",
                                kind=self.error(response, code).kind,
                                status_code=response.status_code, code=code)
        data = _object(read_json(response), f"{action} answer")
        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise _malformed(f"{action} answer without access_token")
        now = time.time()
        access_exp = _epoch(data.get("access_expires_at"), now + DEFAULT_ACCESS_TTL)
        refresh_exp = _epoch(data.get("refresh_expires_at"), now + DEFAULT_REFRESH_TTL)
        if not isinstance(refresh, str) or not refresh:
            refresh, refresh_exp = "", access_exp
        self.store_tokens({"access_token": access, "refresh_token": refresh,
                           "access_expires_at": access_exp, "refresh_expires_at": refresh_exp,
                           "lifetime": max(1.0, access_exp - now)}, expires_at=refresh_exp)
        return access

    def raise_for_response(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        code, message = _error_of(response)
        raise SupplierError(
            f"Starship HTTP {response.status_code} {code or ''}: {message}".strip(),
            kind=self.error(response, code).kind, status_code=response.status_code, code=code,
        )


# ---------------------------------------------------------------------- helpers


class _LazyCurrencies:
    """Currency ids -> ISO codes, read from ``/currencies`` only when an item carries no ISO
    code of its own: a catalog whose products all do needs no answer from there."""

    def __init__(self, adapter: Starship) -> None:
        self.adapter = adapter
        self.mapping: dict[str, str] | None = None

    def get(self, currency_id: str) -> str | None:
        if self.mapping is None:
            self.mapping = self.adapter._currencies()
        return self.mapping.get(currency_id)



def sign(secret: str, method: str, path: str, body: bytes, timestamp: int | None = None
         ) -> dict[str, str]:
    """The newer generation's write signature headers."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    message = ts.encode() + method.upper().encode() + path.encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {"X-Timestamp": ts, "X-Signature": f"t={ts},v1={digest}"}


def _json_bytes(body: dict) -> bytes:
    """A flat JSON object whose Decimals go out as exact JSON numbers (never through float)."""
    parts = []
    for key, value in body.items():
        encoded = format(value, "f") if isinstance(value, Decimal) else json.dumps(value)
        parts.append(f"{json.dumps(key)}:{encoded}")
    return ("{" + ",".join(parts) + "}").encode()


def _idempotency_key(reference: str) -> str:
    """Our reference as the key; one that does not fit 8-256 chars is hashed (deterministic)."""
    if 8 <= len(reference) <= 256:
        return reference
    return "portal-" + hashlib.sha256(reference.encode()).hexdigest()


def _product_and_denomination(order: OrderRequest) -> tuple[str, Decimal]:
    product_id, _, suffix = str(order.product_id).partition(":")
    if not product_id:
        raise SupplierError("order has no Starship product id", kind=Kind.REFUSED)
    if suffix and "-" not in suffix:
        try:
            fixed = to_decimal(suffix)
        except MoneyError as exc:
            raise SupplierError(f"malformed Starship product id {order.product_id!r}",
                                kind=Kind.REFUSED) from exc
        if order.denomination is not None and to_decimal(order.denomination) != fixed:
            raise SupplierError("denomination does not match the product's fixed value",
                                kind=Kind.REFUSED)
        return product_id, fixed
    if order.denomination is None:
        raise SupplierError("an open-range Starship product needs a denomination",
                            kind=Kind.REFUSED)
    return product_id, to_decimal(order.denomination)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """(code, message) from {"error": {"name", "code", "message"}}, tolerant of other shapes."""
    try:
        data = response.json()
    except ValueError:
        return "", "no JSON error body"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("name") or "")
        message = str(err.get("message") or "")
    elif isinstance(data, dict):
        code, message = str(data.get("code") or ""), str(data.get("message") or err or "")
    else:
        code, message = "", ""
    return code[:80], message[:200]


def _is_duplicate_ref(response: requests.Response) -> bool:
    """A 4xx saying our ``ref`` was used already (validation rule "unique" on ref)."""
    if response.status_code not in (400, 422):
        return False
    try:
        err = response.json().get("error") or {}
        rules = (err.get("messages") or {}).get("ref") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(r, dict) and r.get("rule") == "unique" for r in rules)


def _code(voucher: Any) -> CodeInfo:
    if not isinstance(voucher, dict):
        raise _malformed("a voucher is not an object")
    card, claim = voucher.get("card_number"), voucher.get("claim_url")
    code = card or claim
    if not isinstance(code, str) or not code:
        raise _malformed("a voucher has neither card_number nor claim_url")
    return CodeInfo(
        code=code,
        pin=str(voucher.get("pin_code") or ""),
        claim_url=str(claim or ""),
        serial=str(voucher.get("voucher_reference_number") or ""),
        expires_at=_datetime(voucher.get("expires_at")),
    )


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _epoch(value: Any, default: float) -> float:
    """An expiry as unix seconds, from epoch seconds / milliseconds or an ISO-8601 string."""
    if isinstance(value, bool) or value in (None, ""):
        return default
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            number = float(value)
            return number / 1000 if number > 1e11 else number
        except ValueError:
            parsed = _datetime(value)
            if parsed and parsed.tzinfo:
                return parsed.timestamp()
    return default


def _amount(value: Any, what: str) -> Decimal:
    try:
        return to_decimal(value)
    except MoneyError as exc:
        raise _malformed(f"{what} is not an amount") from exc


def _currency(value: Any) -> str:
    try:
        return currency_code(value)
    except MoneyError as exc:
        raise _malformed(f"unknown currency {str(value)[:10]!r}") from exc


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _object(data: Any, what: str, outcome_unknown: bool = False) -> dict:
    if not isinstance(data, dict):
        raise _malformed(f"{what} is not a JSON object", outcome_unknown)
    return data


def _malformed(message: str, outcome_unknown: bool = False) -> SupplierError:
    error = SupplierError(f"Starship sent a malformed answer: {message}", kind=Kind.MALFORMED,
                          code="malformed")
    return error.after_write() if outcome_unknown else error
