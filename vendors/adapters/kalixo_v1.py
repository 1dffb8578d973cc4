"""Kalixo API v1: bearer-token logins and synchronous orders that answer with their pins.

Paths (base URL ``https://api.kalixo.io``):
  POST /v1/auth/login {email, password} -> {accessToken, refreshToken}
  POST /v1/auth/refresh (Authorization: Bearer <refreshToken>)
  GET  /v1/catalog/products?skip=&take=
  POST /v1/orders/place-order -> {orderId: "59400", products: [{price, productId, quantity,
                                  pin: [{PIN}]}]}
  GET  /v1/orders/retrieve-order?id= -> the same shape with orderStatus and an integer orderId

v1 has no wallet endpoint, no documented idempotency and no lookup by our reference: a
place-order that times out leaves the outcome unknown until a person reconciles it. Our
reference still goes out as ``externalOrderCode``.
"""

import base64
import binascii
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any

import requests
from pydantic import AfterValidator, BeforeValidator, Field

from common.http import Kind, SupplierError, read_json
from common.money import MoneyError, currency_code, from_minor, to_decimal, to_minor
from vendors.adapters.base import (
    Amount,
    Answer,
    BalanceInfo,
    Capabilities,
    CodeInfo,
    Currency,
    HttpAdapter,
    Ident,
    NonBlank,
    OpenAnswer,
    OrderRequest,
    OrderResult,
    ProductInfo,
    SupplierStatus,
    Text,
    map_status,
    minor_to_major,
    only,
    or_default,
    settle_status,
)

STATUSES: dict[str, SupplierStatus] = {
    "requested": SupplierStatus.PROCESSING,
    "processing": SupplierStatus.PROCESSING,
    "completed": SupplierStatus.COMPLETED,
    "cancelled": SupplierStatus.CANCELLED,
    "failed": SupplierStatus.FAILED,
    # "there was an error in the order process": final, and not a delivery. Codes that did
    # arrive with it make the order partially completed (see _order_status).
    "error": SupplierStatus.FAILED,
}

PAGE_SIZE = 100
# Documented lifetimes, used when a token does not say when it expires.
ACCESS_LIFETIME = 4 * 3600
REFRESH_LIFETIME = 8 * 3600
RENEW_MARGIN = 300  # renew this long before expiry (at most a fifth of the lifetime)
ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               409: "duplicate", 422: "unprocessable"}


def _seconds(value: Any) -> float | None:
    positive = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if positive else None


def _whole(value: Decimal) -> Decimal:
    if value != value.to_integral_value():
        raise ValueError("minor units must be whole")
    return value


def _pin(entry: Any) -> Any:
    """The code of a pin entry: {PIN}, {pin} or {code} (the answers' generations), or bare."""
    if isinstance(entry, dict):
        return next((entry[k] for k in ("PIN", "pin", "code") if entry.get(k) is not None), None)
    return entry


Pins = list[Annotated[NonBlank, BeforeValidator(_pin)]] | None
OnlyText = Annotated[str, only(str, "")]
MinorPrice = int | Annotated[float, Field(allow_inf_nan=False)]


class Session(OpenAnswer):
    accessToken: NonBlank
    refreshToken: OnlyText = ""


class Product(Answer):
    id: Ident
    currencyCode: Currency
    buyingCurrencyCode: Currency | None = None
    denominationType: Text = "fixed"
    price: Annotated[Amount, AfterValidator(_whole)] | None = None  # minor units
    buyingPrice: Amount | None = None  # minor units, possibly fractional
    denominationMinValue: Amount | None = None
    denominationMaxValue: Amount | None = None
    denominationStep: Amount | None = None
    rrp: Annotated[Amount | None, or_default(None)] = None
    rrpCurrency: Text = ""
    languages: Annotated[list[Any], only(list, [])] = []
    ean: Text = ""
    name: Text = ""
    brand: Text = ""
    countryCode: Text = ""
    status: Text = ""


class Page(Answer):
    count: int | None = None
    products: list[Product]


class Line(Answer):
    quantity: Annotated[int, Field(ge=0)]
    price: MinorPrice | None = None
    productId: Any = None
    sku: Text = ""
    # v1 sends pin: [{PIN}]; newer Kalixo answers use pin: [{pin}] or codes: [{code}]
    pin: Pins = None
    pins: Pins = None
    codes: Pins = None

    def code_values(self) -> list[str]:
        return next((e for e in (self.pin, self.pins, self.codes) if e is not None), [])


class Order(Answer):
    orderId: Ident
    products: list[Line]
    orderStatus: Any = None  # place-order documents none
    externalOrderCode: OnlyText = ""
    currency: Text = ""
    currencyCode: Text = ""
    message: Text = ""


class RetrievedOrder(Order):
    orderStatus: Any  # retrieve-order always states it


class KalixoV1(HttpAdapter):
    kind = "kalixo_v1"
    label = "Kalixo v1 (synchronous)"
    name = "Kalixo v1"
    capabilities = Capabilities(lookup_by_reference=False, balances=False)
    credential_fields = ("email", "password")

    # --- session: a login, refreshed while the refresh token lasts ---------------------------

    def auth_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return self.bearer()

    def fresh_access(self, tokens: dict) -> str | None:
        return tokens["access"] if tokens.get("access_renew_at", 0) > time.time() else None

    def sent_token(self, tokens: dict) -> str | None:
        return tokens.get("access")

    def refresh(self, tokens: dict) -> str | None:
        if not tokens.get("refresh") or tokens.get("refresh_renew_at", 0) <= time.time():
            return None
        return self._store(self._auth_call(
            "/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh']}"},
        ), previous=tokens)

    def login(self) -> str:
        return self._store(self._auth_call(
            "/v1/auth/login",
            json_body={"email": self.credentials.get("email", ""),
                       "password": self.credentials.get("password", "")},
        ))

    def _auth_call(self, path: str, *, headers: dict[str, str] | None = None,
                   json_body: Any = None) -> Session:
        try:
            body = self.call_json("POST", path, headers=headers, json_body=json_body,
                                  authenticate=False)
        except SupplierError as exc:
            raise SupplierError(f"Kalixo v1 authentication failed: {exc.message}",
                                kind=exc.kind, retry_after=exc.retry_after,
                                status_code=exc.status_code, code=exc.code) from exc
        return self.parse(Session, body, what="login answer")

    def _store(self, body: Session, previous: dict | None = None) -> str:
        now = time.time()
        access = body.accessToken
        refresh = body.refreshToken
        if refresh.strip():
            refresh_expires = _expiry(refresh, body.pick(
                "refreshExpiresIn", "refreshTokenExpiresIn"), REFRESH_LIFETIME, now)
        elif previous and previous.get("refresh"):
            refresh, refresh_expires = previous["refresh"], previous["refresh_expires"]
        else:
            refresh, refresh_expires = "", now
        access_expires = _expiry(access, body.pick("expiresIn", "accessTokenExpiresIn"),
                                 ACCESS_LIFETIME, now)
        self.store_tokens({
            "access": access,
            "access_expires": access_expires,
            "access_renew_at": _renew_at(now, access_expires),
            "refresh": refresh,
            "refresh_expires": refresh_expires,
            "refresh_renew_at": _renew_at(now, refresh_expires),
        }, expires_at=max(access_expires, refresh_expires))
        return access

    def raise_for_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        message = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str | list):
            raw = body["message"]
            message = "; ".join(map(str, raw)) if isinstance(raw, list) else raw
        raise self.error(response, ERROR_CODES.get(status, f"http_{status}"), message[:200])

    # --- catalog -----------------------------------------------------------------------------

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        skip = 0

        def page(_: int) -> tuple[list, bool]:
            nonlocal skip
            body = self.parse(Page, self.call_json(
                "GET", "/v1/catalog/products", params={"skip": skip, "take": PAGE_SIZE},
            ), what="catalog page")
            items = [_product(item) for item in body.products]
            skip += len(items)
            return items, body.count is None or skip < body.count

        for items in self.paged(page, first=0, what="Kalixo v1 catalog"):
            yield from items

    def fetch_balances(self) -> list[BalanceInfo]:
        return []  # v1 has no wallet endpoint

    # --- orders ------------------------------------------------------------------------------

    def submit_order(self, order: OrderRequest) -> OrderResult:
        body = _order_body(order)
        response = self.call("POST", "/v1/orders/place-order", json_body=body, order_write=True)
        if response.status_code == 409:
            raise SupplierError(
                "Kalixo v1 says an order with this reference already exists; v1 cannot look "
                "orders up by reference, so reconcile it by hand",
                kind=Kind.OUTCOME_UNKNOWN, status_code=409, code="duplicate",
            )
        self.raise_for_response(response)
        answer = self.parse(Order, read_json(response, outcome_unknown=True),
                            what="order answer", order_write=True)
        result = _order_result(answer, client_reference=order.client_reference,
                               currency=body["currency"], sku=order.sku)
        if result.status is not SupplierStatus.PROCESSING \
                or "orderStatus" in answer.model_fields_set:
            return result
        # The documented place-order answer carries no status: when not every code came
        # back, ask retrieve-order what became of it.
        try:
            fetched = self.fetch_order(result.supplier_order_id)
        except SupplierError:
            return result
        return replace(fetched, client_reference=order.client_reference,
                       details={**result.details, **fetched.details},
                       codes=[replace(c, sku=c.sku or order.sku) for c in fetched.codes])

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        order_id = str(supplier_order_id).strip()
        if not order_id.isdigit():
            raise SupplierError(f"Kalixo v1 order ids are numbers, not {order_id[:40]!r}",
                                kind=Kind.REFUSED, code="bad_request")
        answer = self.parse(RetrievedOrder, self.call_json(
            "GET", "/v1/orders/retrieve-order", params={"id": order_id}), what="order")
        return _order_result(answer, client_reference="", currency="", sku="")

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        raise SupplierError(
            "Kalixo v1 cannot look an order up by our reference; reconcile it by hand",
            kind=Kind.REFUSED, code="no_lookup",
        )

    def quote(self, order: OrderRequest) -> None:
        return None


# --- helpers -------------------------------------------------------------------------------

def _jwt_exp(token: str) -> float | None:
    """The ``exp`` claim when the token is a JWT (read, not verified: we only schedule)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _expiry(token: str, lifetimes: dict[str, Any], default: float, now: float) -> float:
    """The token's own expiry, else the first lifetime the answer gave, else ``default``."""
    exp = _jwt_exp(token)
    if exp is not None:
        return exp
    return now + next((s for s in map(_seconds, lifetimes.values()) if s), default)


def _renew_at(now: float, expires: float) -> float:
    lifetime = max(0.0, expires - now)
    return expires - min(RENEW_MARGIN, lifetime / 5)


def _product(item: Product) -> ProductInfo:
    currency = item.currencyCode
    open_value = item.denominationType.lower() == "open"
    face = None if open_value or item.price is None else from_minor(item.price, currency)
    cost_currency = item.buyingCurrencyCode or currency
    cost = None if item.buyingPrice is None else minor_to_major(item.buyingPrice, cost_currency)
    skus = [lang["sku"] for lang in item.languages if isinstance(lang, dict)
            and isinstance(lang.get("sku"), str) and lang["sku"].strip()]

    def bound(value: Decimal | None) -> Decimal | None:
        return None if value is None else minor_to_major(value, currency)

    return ProductInfo(
        supplier_product_id=item.id,
        sku=skus[0] if skus else item.ean or item.id,
        name=item.name,
        brand=item.brand,
        country=item.countryCode,
        face_value=face,
        face_currency=currency,
        cost=cost,
        cost_currency=cost_currency if cost is not None else "",
        denomination_type="open" if open_value else "fixed",
        min_value=bound(item.denominationMinValue),
        max_value=bound(item.denominationMaxValue),
        step=bound(item.denominationStep),
        available=item.status.lower() == "active",
        delivery="instant",
        extra={
            "ean": item.ean,
            "rrp": None if item.rrp is None else str(item.rrp),
            "rrp_currency": item.rrpCurrency,
            "status": item.status,
            "skus": skus,
        },
    )


def _order_body(order: OrderRequest) -> dict:
    try:
        currency = currency_code(order.currency)
        # Kalixo checks a line's price against the catalog's price, the face value; an
        # open-denomination line carries the chosen amount.
        listed = order.denomination if order.denomination is not None else order.face_value
        unit = None if listed is None else to_minor(listed, currency)
    except MoneyError as exc:
        raise SupplierError(f"cannot order in {order.currency!r}: {exc}",
                            kind=Kind.REFUSED, code="bad_request") from exc
    pid = str(order.product_id).strip()
    if not pid.isdigit():
        raise SupplierError("Kalixo v1 product ids are numbers", kind=Kind.REFUSED,
                            code="bad_request")
    if isinstance(order.quantity, bool) or not isinstance(order.quantity, int) \
            or order.quantity < 1:
        raise SupplierError("quantity must be at least 1", kind=Kind.REFUSED,
                            code="bad_request")
    line: dict[str, Any] = {"productId": int(pid), "quantity": order.quantity,
                            "currency": currency}
    if order.sku:
        line["sku"] = order.sku
    body: dict[str, Any] = {"externalOrderCode": order.client_reference, "currency": currency,
                            "orderProducts": [line]}
    if unit is not None:
        line["price"] = unit
        body["price"] = unit * order.quantity
    return body


def _order_result(data: Order, *, client_reference: str, currency: str,
                  sku: str) -> OrderResult:
    currency = currency or data.currency or data.currencyCode
    codes: list[CodeInfo] = []
    total = 0
    total_minor = Decimal(0)
    unit_prices = []
    for line in data.products:
        line_sku = line.sku or sku or ""
        codes.extend(CodeInfo(code=value, sku=line_sku) for value in line.code_values())
        total += line.quantity
        if line.price is not None:
            total_minor += to_decimal(line.price) * line.quantity
            unit_prices.append({"productId": line.productId, "price_minor": line.price})
    if data.orderStatus is None:
        # place-order documents no status: every code back means done, else still going
        mapped = (SupplierStatus.COMPLETED if total and len(codes) >= total
                  else SupplierStatus.PROCESSING)
        raw = ""
    else:
        raw = str(data.orderStatus)
        mapped = map_status(STATUSES, data.orderStatus)
    status, why = settle_status(mapped, delivered=len(codes), ordered=total)
    details: dict[str, Any] = {"unit_prices": unit_prices} if unit_prices else {}
    if currency and unit_prices:
        # The lines carry the catalog (sell) price, not what the wallet is charged, so the
        # total is kept for the record only and no cost is claimed.
        try:
            details["listed_total"] = str(from_minor(total_minor, currency))
        except MoneyError:
            pass
    return OrderResult(
        supplier_order_id=data.orderId.strip(),
        status=status,
        raw_status=raw[:50],
        client_reference=client_reference or data.externalOrderCode,
        codes=codes,
        delivered=len(codes),
        total=total,
        message=(why or data.message)[:200],
        details=details,
    )

