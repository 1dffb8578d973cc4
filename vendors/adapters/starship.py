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
from typing import Annotated, Any

import requests
from pydantic import RootModel, model_validator

from common.http import Kind, SupplierError, read_json
from common.money import Money, MoneyError, currency_code, round_money, to_decimal
from vendors.adapters.base import (
    Amount,
    Answer,
    BalanceInfo,
    Capabilities,
    CodeInfo,
    Currency,
    HttpAdapter,
    Ident,
    M,
    NonBlank,
    OpenAnswer,
    OrderRequest,
    OrderResult,
    ProductInfo,
    Quote,
    SupplierStatus,
    Text,
    map_status,
    only,
    or_default,
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

ISO = Annotated[Currency | None, only(str), or_default(None)]  # a code, or absent if no string


class Priced(OpenAnswer):
    """Something in a currency: an ISO code of its own, else an id from ``/currencies``."""

    currency: ISO = None
    currency_code: ISO = None
    currency_id: Any = None


class Wallet(Priced):
    amount: Amount


class Denomination(Answer):
    min_value: Amount
    max_value: Amount
    # a percentage (the charges API shows 2.5 -> 5.00 off 200.00)
    discount: Annotated[Amount, or_default(0)] = Decimal(0)


class Product(Priced):
    id: Ident
    available_denominations: list[Denomination]
    name: Text = ""
    brand: Text = ""
    delivery_time: Any = None
    validity: Text = ""
    is_active: Any = True


class CurrencyRow(Answer):
    id: int | str
    code: Any = None


class Charges(OpenAnswer):
    total_payable: Amount
    charges_details: Annotated[dict[str, Any], or_default({})] = {}


class Voucher(Answer):
    card_number: Any = None
    claim_url: Any = None
    pin_code: Text = ""
    voucher_reference_number: Text = ""
    expires_at: Any = None

    @model_validator(mode="after")
    def _has_code(self) -> "Voucher":
        code = self.card_number or self.claim_url
        if not isinstance(code, str) or not code:
            raise ValueError("a voucher has neither card_number nor claim_url")
        return self


class Listed(OpenAnswer):
    """An order as ``GET /orders`` lists it: enough to find ours."""

    id: Any = None
    reference_code: Any = None
    ref: Any = None


class Order(Priced, Listed):
    id: Ident
    status: str
    quantity: int | None = None
    vouchers: Annotated[list[Voucher], or_default([])] = []
    amount: Amount | None = None


class Tokens(Answer):
    access_token: NonBlank
    refresh_token: Any = None
    access_expires_at: Any = None
    refresh_expires_at: Any = None


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
        for item in self._pages(f"{API}/products", Product, limit=PAGE_LIMIT):
            yield from self._products(item, currencies)

    def fetch_balances(self) -> list[BalanceInfo]:
        currencies = _LazyCurrencies(self)
        totals: dict[str, Decimal] = {}
        for wallet in self._pages(f"{API}/wallets", Wallet, limit=PAGE_LIMIT):
            currency = self._currency_of(wallet, currencies)
            totals[currency] = totals.get(currency, Decimal(0)) + wallet.amount
        return [BalanceInfo(currency=c, amount=round_money(a, c)) for c, a in totals.items()]

    def quote(self, order: OrderRequest) -> Quote | None:
        product_id, denomination = _product_and_denomination(order)
        body = {"denomination": denomination, "quantity": order.quantity}
        data = self.parse(Charges, self._json("POST", f"{API}/products/{product_id}/charges",
                                              body=body), what="charges")
        details = data.charges_details
        currency = self._currency(details.get("destination_currency")
                                  or order.pay_with_currency or order.currency,
                                  "charges: destination_currency")
        total = round_money(data.total_payable, currency)
        sent = data.pick("total_amount", "discount_amount", "max_quantity")
        unit = round_money(total / order.quantity, currency)
        return Quote(
            unit_cost=Money(unit, currency), total_cost=Money(total, currency),
            details={
                "total_amount": str(sent.get("total_amount")),
                "discount_amount": str(sent.get("discount_amount")),
                "max_quantity": sent.get("max_quantity"),
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
        data = self.parse(Order, read_json(response, outcome_unknown=True),
                          what="order answer", order_write=True)
        fallback = order.pay_with_currency or order.currency
        result = self._order_result(data, fallback_currency=fallback, order_write=True)
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
        data = self.parse(Order, self._json("GET", f"{API}/orders/{supplier_order_id}"),
                          what="order")
        # The order answer states its amount but not always its currency: the wallet we pay
        # from, which is the pay-with currency or the order's own.
        fallback = (order.pay_with_currency or order.currency) if order else ""
        return self._order_result(data, fallback_currency=fallback)

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        # No documented reference filter: page through the orders (newest first) for our ref.
        pages = self._page_lists(f"{API}/orders", Listed, limit=PAGE_LIMIT)
        for page_number, items in enumerate(pages):
            for item in items:
                if client_reference in (item.reference_code, item.ref):
                    if item.id in (None, ""):
                        raise self.malformed("orders: our order has no id")
                    return self.fetch_order(str(item.id), order=order)
            if page_number + 1 >= LOOKUP_MAX_PAGES:
                raise SupplierError(
                    f"order not found in the newest {LOOKUP_MAX_PAGES * PAGE_LIMIT} orders; "
                    "the supplier has not confirmed there is none", kind=Kind.REFUSED,
                )
        return None

    # ------------------------------------------------------------------ orders

    def _order_result(self, data: Order, *, fallback_currency: str = "",
                      order_write: bool = False) -> OrderResult:
        codes = [CodeInfo(code=v.card_number or v.claim_url, pin=v.pin_code,
                          claim_url=str(v.claim_url or ""), serial=v.voucher_reference_number,
                          expires_at=_datetime(v.expires_at)) for v in data.vouchers]
        status, message = settle_status(map_status(STATUSES, data.status), delivered=len(codes),
                                        ordered=data.quantity)
        cost = self._cost(data, fallback_currency, order_write)
        cost_estimated = False
        if status is SupplierStatus.PARTIALLY_COMPLETED and cost is not None and data.quantity:
            # the refund is not stated: the undelivered share of the amount, rounded
            refund = round_money(cost.amount * (data.quantity - len(codes)) / data.quantity,
                                 cost.currency)
            cost, cost_estimated = Money(cost.amount - refund, cost.currency), True
        sent = data.pick("sub_status", "subStatus", "transaction_id", "product_id",
                         "denomination", "discount", "placed_at")
        return OrderResult(
            supplier_order_id=data.id,
            status=status,
            raw_status=data.status,
            client_reference=str(data.reference_code or data.ref or ""),
            codes=codes,
            delivered=len(codes),
            total=data.quantity,
            cost=cost,
            cost_estimated=cost_estimated,
            message=message,
            details={k: v for k, v in {
                "sub_status": str(sent.get("sub_status") or sent.get("subStatus") or ""),
                "transaction_id": sent.get("transaction_id"),
                "product_id": sent.get("product_id"),
                "denomination": _str_or_none(sent.get("denomination")),
                "discount": _str_or_none(sent.get("discount")),
                "amount": _str_or_none(data.amount),
                "placed_at": sent.get("placed_at"),
            }.items() if v not in (None, "")},
        )

    def _cost(self, data: Order, fallback_currency: str, order_write: bool) -> Money | None:
        currency = data.currency or data.currency_code or fallback_currency
        if data.amount is None or not currency:
            return None
        currency = self._currency(currency, "order: currency", order_write=order_write)
        return Money(round_money(data.amount, currency), currency)

    # ------------------------------------------------------------------ catalogue

    def _products(self, item: Product, currencies: "_LazyCurrencies") -> Iterator[ProductInfo]:
        currency = self._currency_of(item, currencies)
        delivery = str(item.delivery_time or "").strip().upper()
        common = {
            "name": item.name or item.id,
            "brand": item.brand,
            "face_currency": currency,
            "cost_currency": currency,
            "delivery": {"INSTANT": "instant", "DELAYED": "delayed"}.get(delivery, ""),
            "terms": item.validity,
            "available": item.is_active is not False,
        }
        extra = item.pick("category", "sub_category", "country_id", "currency_id",
                          "delivery_mode", "delivery_type", "delivery_time")
        open_ranges = 0
        for denomination in item.available_denominations:
            low, high = denomination.min_value, denomination.max_value
            percent = denomination.discount
            info_extra = {**extra, "discount_percent": str(percent)}
            if low == high:
                value = round_money(low, currency)
                sid = f"{item.id}:{value}"
                cost = round_money(value - value * percent / 100, currency)
                yield ProductInfo(supplier_product_id=sid, sku=sid, face_value=value, cost=cost,
                                  extra=info_extra, **common)
            else:
                sid = item.id if open_ranges == 0 else f"{item.id}:{low}-{high}"
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
        for item in self._pages(f"{API}/currencies", CurrencyRow, limit=PAGE_LIMIT):
            try:
                mapping[str(item.id)] = currency_code(item.code)
            except MoneyError:
                continue  # a currency Babel does not know cannot be priced; skip it
        self.cache.set(key, mapping, timeout=CURRENCY_CACHE_SECONDS)
        return mapping

    def _currency_of(self, item: Priced, currencies: "_LazyCurrencies") -> str:
        code = item.currency or item.currency_code or currencies.get(str(item.currency_id))
        if not code:
            raise self.malformed(f"unknown currency_id {item.currency_id!r}")
        return code

    def _currency(self, value: Any, where: str, *, order_write: bool = False) -> str:
        try:
            return currency_code(value)
        except MoneyError as exc:
            raise self.malformed(f"{where}: unknown currency {str(value)[:10]!r}",
                                 order_write=order_write) from exc

    # ------------------------------------------------------------------ paging

    def _page_lists(self, path: str, model: type[M], *, limit: int) -> Iterator[list[M]]:
        def page(number: int) -> tuple[list, bool]:
            response = self._send("GET", path, params={"page": number, "limit": limit})
            self.raise_for_response(response)
            items = self.parse(RootModel[list[model]], read_json(response), what=path).root
            has_more = response.headers.get("X-Has-More")
            total_pages = response.headers.get("X-Total-Pages")
            if has_more is not None:
                return items, has_more.strip().lower() == "true"
            if total_pages and total_pages.strip().isdigit():
                return items, number < int(total_pages)
            return items, len(items) >= limit

        return self.paged(page, max_pages=MAX_PAGES, what=path)

    def _pages(self, path: str, model: type[M], *, limit: int) -> Iterator[M]:
        for items in self._page_lists(path, model, limit=limit):
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
        data = self.parse(Tokens, read_json(response), what=f"{action} answer")
        access, refresh = data.access_token, data.refresh_token
        now = time.time()
        access_exp = _epoch(data.access_expires_at, now + DEFAULT_ACCESS_TTL)
        refresh_exp = _epoch(data.refresh_expires_at, now + DEFAULT_REFRESH_TTL)
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


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


