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
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import requests

from portal.http import Kind, SupplierError, read_json
from portal.money import (
    MoneyError,
    currency_code,
    exponent,
    from_minor,
    to_decimal,
    to_minor,
)
from vendors.adapters.base import (
    BalanceInfo,
    Capabilities,
    CodeInfo,
    HttpAdapter,
    OrderRequest,
    OrderResult,
    ProductInfo,
    SupplierStatus,
    map_status,
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
                   json_body: Any = None) -> dict:
        try:
            body = self.call_json("POST", path, headers=headers, json_body=json_body,
                                  authenticate=False)
        except SupplierError as exc:
            raise SupplierError(f"Kalixo v1 authentication failed: {exc.message}",
                                kind=exc.kind, retry_after=exc.retry_after,
                                status_code=exc.status_code, code=exc.code) from exc
        if not isinstance(body, dict) or not _nonempty_str(body.get("accessToken")):
            raise self.malformed("a login answer without an access token")
        return body

    def _store(self, body: dict, previous: dict | None = None) -> str:
        now = time.time()
        access = body["accessToken"]
        refresh = body.get("refreshToken")
        if _nonempty_str(refresh):
            refresh_expires = _expiry(refresh, body, ("refreshExpiresIn", "refreshTokenExpiresIn"),
                                      REFRESH_LIFETIME, now)
        elif previous and previous.get("refresh"):
            refresh, refresh_expires = previous["refresh"], previous["refresh_expires"]
        else:
            refresh, refresh_expires = "", now
        access_expires = _expiry(access, body, ("expiresIn", "accessTokenExpiresIn"),
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
            body = self.call_json("GET", "/v1/catalog/products",
                                  params={"skip": skip, "take": PAGE_SIZE})
            if not isinstance(body, dict) or not isinstance(body.get("products"), list):
                raise self.malformed("a catalog page without a products list")
            count = body.get("count")
            if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
                raise self.malformed("a catalog page with a bad count")
            items = [_product(item) for item in body["products"]]
            skip += len(items)
            return items, count is None or skip < count

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
        data = read_json(response, outcome_unknown=True)
        result = _order_result(data, client_reference=order.client_reference,
                               currency=body["currency"], sku=order.sku, submission=True)
        if result.status is not SupplierStatus.PROCESSING or "orderStatus" in data:
            return result
        # The documented place-order answer carries no status: when not every code came
        # back, ask retrieve-order what became of it.
        try:
            fetched = self.fetch_order(result.supplier_order_id)
        except SupplierError:
            return result
        return _with(fetched, client_reference=order.client_reference, details=result.details,
                     sku=order.sku)

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        order_id = str(supplier_order_id).strip()
        if not order_id.isdigit():
            raise SupplierError(f"Kalixo v1 order ids are numbers, not {order_id[:40]!r}",
                                kind=Kind.REFUSED, code="bad_request")
        data = self.call_json("GET", "/v1/orders/retrieve-order", params={"id": order_id})
        if isinstance(data, dict) and "orderStatus" not in data:
            raise self.malformed("an order without orderStatus")
        return _order_result(data, client_reference="", currency="", sku="", submission=False)

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        raise SupplierError(
            "Kalixo v1 cannot look an order up by our reference; reconcile it by hand",
            kind=Kind.REFUSED, code="no_lookup",
        )

    def quote(self, order: OrderRequest) -> None:
        return None


# --- helpers -------------------------------------------------------------------------------

def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


def _expiry(token: str, body: dict, fields: tuple[str, ...], default: float, now: float) -> float:
    exp = _jwt_exp(token)
    if exp is not None:
        return exp
    for name in fields:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return now + float(value)
    return now + default


def _renew_at(now: float, expires: float) -> float:
    lifetime = max(0.0, expires - now)
    return expires - min(RENEW_MARGIN, lifetime / 5)


def _malformed(message: str, submission: bool) -> SupplierError:
    error = SupplierError(f"Kalixo v1 sent a malformed answer: {message}", kind=Kind.MALFORMED,
                          code="malformed")
    return error.after_write() if submission else error


def _minor_to_major(value: object, currency: str) -> Decimal:
    """Minor units to major; buying prices may carry fractions of a minor unit."""
    try:
        return from_minor(value, currency)
    except MoneyError:
        amount = to_decimal(value)  # raises MoneyError when it is no number at all
        return amount.scaleb(-exponent(currency))


def _product(item: object) -> ProductInfo:
    if not isinstance(item, dict) or not (_is_int(item.get("id"))
                                          or _nonempty_str(item.get("id"))):
        raise SupplierError("Kalixo v1 sent a catalog product without an id",
                            kind=Kind.MALFORMED, code="malformed")
    pid = item["id"]
    try:
        currency = currency_code(item.get("currencyCode"))
        open_value = str(item.get("denominationType") or "fixed").lower() == "open"
        face = None if open_value or item.get("price") is None else from_minor(item["price"],
                                                                               currency)
        cost_currency = currency_code(item.get("buyingCurrencyCode") or currency)
        cost = (None if item.get("buyingPrice") is None
                else _minor_to_major(item["buyingPrice"], cost_currency))
        bounds = {
            name: (None if item.get(field) is None else _minor_to_major(item[field], currency))
            for name, field in (("min_value", "denominationMinValue"),
                                ("max_value", "denominationMaxValue"),
                                ("step", "denominationStep"))
        }
        rrp = item.get("rrp")
        rrp_value = None if rrp in (None, "") else to_decimal(rrp)
    except MoneyError as exc:
        raise SupplierError(f"Kalixo v1 product {str(pid)[:40]}: {exc}",
                            kind=Kind.MALFORMED, code="malformed") from exc
    languages = item.get("languages") if isinstance(item.get("languages"), list) else []
    skus = [lang["sku"] for lang in languages if isinstance(lang, dict)
            and _nonempty_str(lang.get("sku"))]
    ean = str(item.get("ean") or "")
    return ProductInfo(
        supplier_product_id=str(pid),
        sku=skus[0] if skus else ean or str(pid),
        name=str(item.get("name") or ""),
        brand=str(item.get("brand") or ""),
        country=str(item.get("countryCode") or ""),
        face_value=face,
        face_currency=currency,
        cost=cost,
        cost_currency=cost_currency if cost is not None else "",
        denomination_type="open" if open_value else "fixed",
        available=str(item.get("status") or "").lower() == "active",
        delivery="instant",
        extra={
            "ean": ean,
            "rrp": None if rrp_value is None else str(rrp_value),
            "rrp_currency": str(item.get("rrpCurrency") or ""),
            "status": str(item.get("status") or ""),
            "skus": skus,
        },
        **bounds,
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
    if not _is_int(order.quantity) or order.quantity < 1:
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


def _codes(line: dict, sku: str, submission: bool) -> list[CodeInfo]:
    # v1 sends pin: [{PIN}]; newer Kalixo answers use pin: [{pin}] or codes: [{code}].
    raw = line.get("pin", line.get("pins", line.get("codes")))
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _malformed("a product's pins are not a list", submission)
    codes = []
    for entry in raw:
        value = (entry.get("PIN", entry.get("pin", entry.get("code")))
                 if isinstance(entry, dict) else entry)
        if not _nonempty_str(value):
            raise _malformed("a pin without a code", submission)
        codes.append(CodeInfo(code=value, sku=sku))
    return codes


def _order_result(data: object, *, client_reference: str, currency: str, sku: str,
                  submission: bool) -> OrderResult:
    if not isinstance(data, dict):
        raise _malformed("the order is not an object", submission)
    order_id = data.get("orderId")
    if not (_is_int(order_id) or _nonempty_str(order_id)):
        raise _malformed("no orderId", submission)
    products = data.get("products")
    if not isinstance(products, list):
        raise _malformed("no products list", submission)
    reference = data.get("externalOrderCode")
    currency = currency or str(data.get("currency") or data.get("currencyCode") or "")
    codes: list[CodeInfo] = []
    total = 0
    total_minor = Decimal(0)
    unit_prices = []
    for line in products:
        if not isinstance(line, dict):
            raise _malformed("a product is not an object", submission)
        quantity, price = line.get("quantity"), line.get("price")
        if not _is_int(quantity) or quantity < 0:
            raise _malformed("a product without a quantity", submission)
        if price is not None and not (_is_int(price) or isinstance(price, float)):
            raise _malformed("a product price is not a number", submission)
        if price is not None and isinstance(price, float) and not math.isfinite(price):
            raise _malformed("a product price is not a number", submission)
        line_sku = str(line.get("sku") or sku or "")
        codes.extend(_codes(line, line_sku, submission))
        total += quantity
        if price is not None:
            total_minor += to_decimal(price) * quantity
            unit_prices.append({"productId": line.get("productId"), "price_minor": price})
    raw_status = data.get("orderStatus")
    if raw_status is None:
        # place-order documents no status: every code back means done, else still going
        mapped = (SupplierStatus.COMPLETED if total and len(codes) >= total
                  else SupplierStatus.PROCESSING)
        raw = ""
    else:
        raw = str(raw_status)
        mapped = map_status(STATUSES, raw_status)
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
        supplier_order_id=str(order_id).strip(),
        status=status,
        raw_status=raw[:50],
        client_reference=client_reference or (reference if isinstance(reference, str) else ""),
        codes=codes,
        delivered=len(codes),
        total=total,
        message=(why or str(data.get("message") or ""))[:200],
        details=details,
    )


def _with(result: OrderResult, *, client_reference: str, details: dict,
          sku: str) -> OrderResult:
    return replace(
        result, client_reference=client_reference, details={**details, **result.details},
        codes=[replace(c, sku=c.sku or sku) for c in result.codes],
    )
