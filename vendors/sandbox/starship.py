"""Starship Rewards simulator (gift-card aggregator), written from its public documentation.

Mounted under ``/starship``; the API lives under ``/api/v1`` as documented, so a vendor's base
URL is the sandbox URL plus ``BASE_PATH``.

Authentication, both generations (chosen by the credentials a request carries):
  * JWT: ``POST /api/v1/auth/login {username, password}`` -> access + refresh tokens;
    ``POST /api/v1/auth/refresh {refresh_token}`` rotates both (the old refresh token dies).
    Sandbox logins: username ``sandbox_<anything>`` with password ``sandbox``; the account is
    the username. The access-token lifetime (default 900 s) can be shortened per account with
    the control document key ``access_ttl`` (seconds), e.g. POST
    /_sandbox/starship/faults/sandbox_abc {"access_ttl": 2}; ``refresh_ttl`` likewise.
  * API key: ``X-API-Key: sk_test_<anything>`` + ``X-API-Secret: secret_<same anything>``; the
    account is the API key. Writes (POST/PUT/DELETE) must carry ``X-Timestamp`` (unix seconds,
    within 5 minutes) and ``X-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, ts+method+path+body)>``.

Test products (everything else in the catalogue delivers at once):
  1001 instant, fixed 10/25/50 USD, with PIN        1002 instant, open range 5-500 USD
  1003 delayed: PENDING -> PROCESSING -> DELIVERED (about 3 s)
  1004 out of stock: PENDING (VENDOR_ORDER_PENDING) -> PROCESSING -> DELIVERED (about 4 s)
  1005 partial (quantity >= 2): PARTIALLY_DELIVERED for about 3 s, then DELIVERED
  1006 partial then CANCELLED (about 3 s), the undelivered part refunded
  1007 PENDING then CANCELLED / REFUNDED (about 2 s)     1008 PENDING then FAILED / REFUNDED (1 s)
  1009 instant JPY 1000/3000 (no minor unit)        1010 instant INR 500/1000, paid from USD (FX)

Webhooks, as documented: when the account's control document names ``webhook_url`` and
``webhook_secret`` (e.g. POST /_sandbox/starship/faults/sk_test_abc {"webhook_url": "http://...",
"webhook_secret": "whsec"}), every order placed afterwards is followed by a background thread
of the serving process, which sends ``order.created`` and then ``order.pending``,
``order.delivered``, ``order.partially_delivered`` and ``order.cancelled`` as the order reaches
those statuses (PLACED, PROCESSING and FAILED have no documented event). Each delivery is a
POST of ``{"id": "evt_...", "event", "created_at", "data": <the order as GET /orders/{id}
answers it, vouchers included>}`` signed with ``X-Timestamp`` and ``X-Signature`` = hex
HMAC-SHA256(secret, timestamp + "." + body); an answer other than 2xx (or none) is retried
after 30 s, 2 min, 10 min, 1 h and 6 h, or after the seconds listed in ``webhook_retries``.
Every attempt is recorded: GET /_sandbox/starship/webhooks?account= lists them. The threads
live in the serving process: a restart forgets the deliveries still to make.
"""

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import requests

from vendors.sandbox import core
from vendors.sandbox.core import Request, Response, Router

SUPPLIER = "starship"
PREFIX = "/starship"
BASE_PATH = "/starship"
RATE_LIMIT = 60
SERVER_ERROR_STATUS = 502
DEMO_CREDENTIALS = {"api_key": "sk_test_demo", "api_secret": "secret_demo"}

router = Router()

ACCESS_TTL = 900
REFRESH_TTL = 24 * 3600
SIGNATURE_WINDOW = 300
IDEMPOTENCY_TTL = 24 * 3600
KEY_RE = re.compile(r"^sk_test_([A-Za-z0-9_\-]{1,64})$")
USER_RE = re.compile(r"^sandbox_[A-Za-z0-9_\-]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# id, code, name, decimal places, value of one unit in USD
CURRENCIES = [
    (1, "USD", "US Dollar", 2, Decimal("1")),
    (2, "EUR", "Euro", 2, Decimal("1.08")),
    (3, "GBP", "Pound Sterling", 2, Decimal("1.27")),
    (4, "JPY", "Japanese Yen", 0, Decimal("0.0067")),
    (5, "INR", "Indian Rupee", 2, Decimal("0.012")),
]
CURRENCY_BY_ID = {c[0]: c for c in CURRENCIES}
CONVERSION_FEE_PERCENT = Decimal("1")
WALLET_START = {1: Decimal("100000.00"), 2: Decimal("50000.00"), 3: Decimal("50000.00"),
                4: Decimal("10000000")}
DEFAULT_WALLET_CURRENCY = 1
MAX_QUANTITY = 50


def _product(pid: int, name: str, currency_id: int, denominations: list, *, delayed=False,
             pin=False, behaviour="instant", category="Gift Cards") -> dict:
    return {
        "id": pid, "name": name, "category": category, "sub_category": "Sandbox",
        "country_id": {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}[currency_id], "currency_id": currency_id,
        "currency_code": CURRENCY_BY_ID[currency_id][1],
        "delivery_mode": "ONLINE", "delivery_type": "code_with_pin" if pin else "code",
        "delivery_time": "DELAYED" if delayed else "INSTANT", "validity": "12 months",
        "available_denominations": [
            {"min_value": float(lo), "max_value": float(hi), "discount": float(disc)}
            for lo, hi, disc in denominations
        ],
        "_behaviour": behaviour,
    }


def _fixed(*values, discount="2.5") -> list:
    return [(Decimal(v), Decimal(v), Decimal(discount)) for v in values]


PRODUCTS = [
    _product(1001, "Sandbox Instant Gift Card", 1, _fixed("10", "25", "50"), pin=True),
    _product(1002, "Sandbox Open Range Card", 1, [(Decimal(5), Decimal(500), Decimal(3))]),
    _product(1003, "Sandbox Delayed Card", 1, _fixed("10", "25"), delayed=True,
             behaviour="delayed"),
    _product(1004, "Sandbox Out Of Stock Card", 1, _fixed("10", "25"), delayed=True,
             behaviour="out_of_stock"),
    _product(1005, "Sandbox Partial Then Delivered Card", 1, _fixed("10"), delayed=True,
             behaviour="partial"),
    _product(1006, "Sandbox Partial Then Cancelled Card", 1, _fixed("10"), delayed=True,
             behaviour="partial_cancel"),
    _product(1007, "Sandbox Cancelled Card", 1, _fixed("10"), delayed=True,
             behaviour="cancel"),
    _product(1008, "Sandbox Failed Card", 1, _fixed("10"), delayed=True, behaviour="fail"),
    _product(1009, "Sandbox Yen Card", 4, _fixed("1000", "3000", discount="5")),
    _product(1010, "Sandbox Rupee Card", 5, _fixed("500", "1000", discount="4")),
] + [
    _product(2000 + n, f"Sandbox Catalogue Card {n}", (1, 2, 3)[n % 3],
             _fixed(*(("10", "20", "50") if n % 2 else ("25",)), discount=str(1 + n % 5)),
             category=("Gift Cards", "Gaming", "Entertainment")[n % 3])
    for n in range(1, 111)
]
PRODUCT_BY_ID = {p["id"]: p for p in PRODUCTS}

# Behaviour timelines: (seconds since placed, status, sub_status, share delivered 0..1)
TIMELINES = {
    "instant": [(0, "DELIVERED", "INVENTORY_FULFILLED", 1)],
    "delayed": [(0, "PENDING", "INITIAL", 0), (1, "PROCESSING", "PROCESSING", 0),
                (3, "DELIVERED", "COMPLETED", 1)],
    "out_of_stock": [(0, "PENDING", "VENDOR_ORDER_PENDING", 0),
                     (2, "PROCESSING", "VENDOR_ORDER_CREATED", 0),
                     (4, "DELIVERED", "VENDOR_VOUCHER_FETCHED", 1)],
    "partial": [(0, "PARTIALLY_DELIVERED", "PARTIAL", 0.5), (3, "DELIVERED", "COMPLETED", 1)],
    "partial_cancel": [(0, "PARTIALLY_DELIVERED", "PARTIAL", 0.5),
                       (3, "CANCELLED", "REFUNDED", 0.5)],
    "cancel": [(0, "PENDING", "VENDOR_ORDER_PENDING", 0), (2, "CANCELLED", "REFUNDED", 0)],
    "fail": [(0, "PENDING", "INITIAL", 0), (1, "FAILED", "REFUNDED", 0)],
}
REFUNDED_STATUSES = {"CANCELLED", "FAILED"}


# ---------------------------------------------------------------- answers


def error(status: int, message: str, code: str = "", messages: dict | None = None) -> Response:
    """The documented envelope: {"error": {"name", "code", "message"[, "messages"]}}."""
    defaults = {
        400: ("ValidationException", "E_VALIDATION_FAILURE"),
        401: ("UnauthorizedException", "E_UNAUTHORIZED_ACCESS"),
        403: ("ForbiddenException", "E_FORBIDDEN"),
        404: ("NotFoundError", "E_ROW_NOT_FOUND"),
        405: ("MethodNotAllowedError", "E_METHOD_NOT_ALLOWED"),
        409: ("ConflictError", "E_CONFLICT"),
        429: ("ThrottleException", "E_TOO_MANY_REQUESTS"),
    }
    name, default_code = defaults.get(status, ("InternalServerError", "E_INTERNAL_SERVER_ERROR"))
    if status == 502:
        name, default_code = "BadGatewayError", "E_BAD_GATEWAY"
    body: dict[str, Any] = {"name": name, "code": code or default_code, "message": message}
    if messages:
        body["messages"] = messages
    return Response(status, {"error": body})


def _idempotency_error(code: str, message: str) -> Response:
    # documented: the IDEMPOTENCY_KEY_* errors use {error: {code, message, details}}
    return Response(400, {"error": {"code": code, "message": message,
                                    "details": {"header": "Idempotency-Key"}}})


def _field_error(field: str, rule: str, message: str) -> Response:
    return error(400, "Input validation failed.", "E_VALIDATION_FAILURE",
                 {field: [{"rule": rule, "field": field, "message": message}]})


def _paged(items: list, request: Request, *, default_limit: int, max_limit: int) -> Response:
    try:
        page = int(request.query.get("page", 1))
        limit = int(request.query.get("limit", default_limit))
    except ValueError:
        return _field_error("page", "number", "page and limit must be numbers")
    if page < 1:
        return _field_error("page", "min", "page must be at least 1")
    if limit < 1 or limit > max_limit:
        return _field_error("limit", "range", f"limit must be between 1 and {max_limit}")
    total = len(items)
    pages = max(1, math.ceil(total / limit))
    chunk = items[(page - 1) * limit: page * limit]
    headers = {
        "X-Page": str(page), "X-Per-Page": str(limit), "X-Total-Count": str(total),
        "X-Total-Pages": str(pages), "X-Page-Size": str(len(chunk)),
        "X-Has-More": "true" if page < pages else "false",
    }
    return Response(200, chunk, headers)


def _money(amount: Decimal, currency_id: int) -> Decimal:
    places = CURRENCY_BY_ID[currency_id][3]
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _s(amount: Decimal) -> str:
    """Newer documents: amounts as 2-decimal strings."""
    return str(amount.quantize(Decimal("0.01")))


def _n(amount: Decimal) -> float:
    """Older documents: amounts as JSON numbers (the float is only the wire form)."""
    return float(amount)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- accounts and auth


def _account_doc(account: str) -> dict:
    doc = core.get("starship_accounts", account)
    if doc is None:
        with core.transaction():
            doc = core.get("starship_accounts", account)
            if doc is None:
                wallets = [
                    {"id": core.next_number("starship:wallet"), "currency_id": cid,
                     "amount": str(amount), "type": "PREPAID"}
                    for cid, amount in WALLET_START.items()
                ]
                doc = core.put("starship_accounts", account, {"account": account,
                                                                "wallets": wallets})
    return doc


def _signature_ok(request: Request, secret: str) -> str:
    """'' when a write is correctly signed, else the reason."""
    ts = request.header("X-Timestamp")
    sig = request.header("X-Signature")
    if not ts or not sig:
        return "X-Timestamp and X-Signature are required on writes"
    parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
    if parts.get("t") != ts or not ts.isdigit():
        return "signature timestamp mismatch"
    if abs(time.time() - int(ts)) > SIGNATURE_WINDOW:
        return "request timestamp outside the allowed window"
    body = request.body.decode("utf-8", "replace")
    for path in (request.path, PREFIX + request.path):  # behind our mount prefix, either form
        message = f"{ts}{request.method}{path}{body}".encode()
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, parts.get("v1", "")):
            return ""
    return "invalid request signature"


def _authenticate(request: Request) -> tuple[str | None, str]:
    """(account, '') or (None, reason)."""
    key = request.header("X-API-Key")
    if key:
        match = KEY_RE.match(key)
        secret = request.header("X-API-Secret")
        if not match or not hmac.compare_digest(secret, f"secret_{match.group(1)}"):
            return None, "invalid API key or secret"
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            reason = _signature_ok(request, secret)
            if reason:
                return None, reason
        return key, ""
    auth = request.header("Authorization")
    if auth.lower().startswith("bearer "):
        token = core.get("starship_tokens", auth[7:].strip())
        if not token or token["kind"] != "access":
            return None, "invalid access token"
        if token["expires"] < time.time():
            return None, "access token expired"
        return token["account"], ""
    return None, "authentication required"


def account_of(request: Request) -> str | None:
    return _authenticate(request)[0]


def _issue_tokens(account: str) -> dict:
    faults = core.faults(SUPPLIER, account)
    now = time.time()
    access_exp = now + float(faults.get("access_ttl") or ACCESS_TTL)
    refresh_exp = now + float(faults.get("refresh_ttl") or REFRESH_TTL)
    access, refresh = "sat_" + secrets.token_urlsafe(24), "srt_" + secrets.token_urlsafe(24)
    core.put("starship_tokens", access, {"account": account, "kind": "access",
                                         "expires": access_exp})
    core.put("starship_tokens", refresh, {"account": account, "kind": "refresh",
                                          "expires": refresh_exp})
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
            "access_expires_at": _iso(access_exp), "refresh_expires_at": _iso(refresh_exp)}


def _json_object(request: Request) -> dict | None:
    try:
        body = json.loads(request.body or b"null", parse_float=Decimal)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@router.route("POST", "/api/v1/auth/login")
def login(request: Request) -> Response:
    body = _json_object(request)
    if body is None:
        return error(400, "Request body is not valid JSON.", "SYNTAX_ERROR")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _field_error("username", "required", "username and password are required")
    if not USER_RE.match(username) or password != "sandbox":
        return error(401, "Invalid credentials.")
    _account_doc(username)
    with core.transaction():
        return Response(200, _issue_tokens(username))


@router.route("POST", "/api/v1/auth/refresh")
def refresh(request: Request) -> Response:
    body = _json_object(request)
    if body is None or not isinstance(body.get("refresh_token"), str):
        return _field_error("refresh_token", "required", "refresh_token is required")
    with core.transaction() as conn:
        token = core.get("starship_tokens", body["refresh_token"])
        if not token or token["kind"] != "refresh" or token["expires"] < time.time():
            return error(401, "Invalid or expired refresh token.")
        conn.execute("DELETE FROM docs WHERE ns=? AND id=?",
                     ("starship_tokens", body["refresh_token"]))
        return Response(200, _issue_tokens(token["account"]))


def _require(request: Request) -> tuple[str | None, Response | None]:
    account, reason = _authenticate(request)
    if account is None:
        return None, error(401, reason or "Unauthorized access.")
    _account_doc(account)
    return account, None


# ---------------------------------------------------------------- reference data, catalogue


@router.route("GET", "/api/v1/currencies")
def currencies(request: Request) -> Response:
    _, denied = _require(request)
    if denied:
        return denied
    items = [{"id": cid, "code": code, "name": name, "decimal_places": places,
              "exchange_rate": _n((Decimal(1) / usd).quantize(Decimal("0.0001"))),
              "base_currency": "USD", "is_active": True}
             for cid, code, name, places, usd in CURRENCIES]
    return _paged(items, request, default_limit=50, max_limit=10000)


def _public(product: dict) -> dict:
    return {k: v for k, v in product.items() if not k.startswith("_")}


@router.route("GET", "/api/v1/products")
def products(request: Request) -> Response:
    _, denied = _require(request)
    if denied:
        return denied
    items = PRODUCTS
    if request.query.get("currency_id"):
        items = [p for p in items if str(p["currency_id"]) == request.query["currency_id"]]
    if request.query.get("category"):
        items = [p for p in items if p["category"].lower() == request.query["category"].lower()]
    return _paged([_public(p) for p in items], request, default_limit=50, max_limit=10000)


@router.route("GET", "/api/v1/products/{pid}")
def product(request: Request, pid: str) -> Response:
    _, denied = _require(request)
    if denied:
        return denied
    item = PRODUCT_BY_ID.get(int(pid)) if pid.isdigit() else None
    if item is None:
        return error(404, "Product not found.")
    return Response(200, _public(item))


def _denomination_ok(item: dict, denomination: Decimal) -> bool:
    for d in item["available_denominations"]:
        lo, hi = Decimal(repr(d["min_value"])), Decimal(repr(d["max_value"]))
        if lo <= denomination <= hi:
            return True
    return False


def _discount(item: dict, denomination: Decimal) -> Decimal:
    for d in item["available_denominations"]:
        lo, hi = Decimal(repr(d["min_value"])), Decimal(repr(d["max_value"]))
        if lo <= denomination <= hi:
            return Decimal(repr(d["discount"]))
    return Decimal(0)


def _pick_wallet(account_doc: dict, item: dict, wallet_id: Any) -> dict | None:
    wallets = account_doc["wallets"]
    if wallet_id is not None:
        return next((w for w in wallets if str(w["id"]) == str(wallet_id)), None)
    return (next((w for w in wallets if w["currency_id"] == item["currency_id"]), None)
            or next(w for w in wallets if w["currency_id"] == DEFAULT_WALLET_CURRENCY))


def _charges(item: dict, denomination: Decimal, quantity: int, wallet: dict) -> dict:
    """The pricing cascade: face value, client discount, FX into the wallet currency, fee."""
    source, dest = item["currency_id"], wallet["currency_id"]
    face = _money(denomination * quantity, source)
    percent = _discount(item, denomination)
    discount_amount = _money(face * percent / 100, source)
    net = face - discount_amount
    rate, fee = None, Decimal(0)
    if source != dest:
        rate = (CURRENCY_BY_ID[source][4] / CURRENCY_BY_ID[dest][4]).quantize(Decimal("0.000001"))
        converted = _money(net * rate, dest)
        fee = _money(converted * CONVERSION_FEE_PERCENT / 100, dest)
        payable = converted + fee
    else:
        payable = net
    return {
        "non_discounted_total": face, "discount_amount": discount_amount, "total_amount": net,
        "discount": percent, "total_payable": payable, "rate": rate, "fee": fee,
        "source": CURRENCY_BY_ID[source][1], "dest": CURRENCY_BY_ID[dest][1],
    }


def _read_order_input(body: dict) -> tuple[dict | None, Decimal, int, Response | None]:
    try:
        pid = int(body.get("product_id"))
    except (TypeError, ValueError):
        return None, Decimal(0), 0, _field_error("product_id", "required", "product_id > 0")
    item = PRODUCT_BY_ID.get(pid)
    if item is None:  # documented: 400 for a product that does not exist (historical)
        return None, Decimal(0), 0, error(400, "Product not found.", "E_ROW_NOT_FOUND")
    try:
        denomination = Decimal(str(body.get("denomination")))
        if not denomination.is_finite() or denomination <= 0:
            raise InvalidOperation
    except InvalidOperation:
        return None, Decimal(0), 0, _field_error("denomination", "min", "denomination > 0")
    quantity = body.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        return None, Decimal(0), 0, _field_error("quantity", "min", "quantity must be >= 1")
    if not _denomination_ok(item, denomination):
        return None, Decimal(0), 0, error(400, "Denomination not available for this product.",
                                          "E_ROW_NOT_FOUND")
    if quantity > MAX_QUANTITY:
        return None, Decimal(0), 0, _field_error("quantity", "max",
                                                 f"quantity exceeds the bulk limit {MAX_QUANTITY}")
    return item, denomination, quantity, None


@router.route("POST", "/api/v1/products/{pid}/charges")
def charges(request: Request, pid: str) -> Response:
    account, denied = _require(request)
    if denied:
        return denied
    body = _json_object(request)
    if body is None:
        return error(400, "Request body is not valid JSON.", "SYNTAX_ERROR")
    item, denomination, quantity, problem = _read_order_input({**body, "product_id": pid})
    if problem:
        return problem
    wallet = _pick_wallet(_account_doc(account), item, body.get("wallet_id"))
    if wallet is None:
        return _field_error("wallet_id", "exists", "wallet not found")
    c = _charges(item, denomination, quantity, wallet)
    return Response(200, {
        "non_discounted_total": _n(c["non_discounted_total"]),
        "discount_amount": _n(c["discount_amount"]), "total_amount": _n(c["total_amount"]),
        "discount": _n(c["discount"]), "gst_amount": 0.0,
        "total_payable": _n(c["total_payable"]), "max_quantity": MAX_QUANTITY,
        "net_amount": _n(c["total_amount"]), "handling_fee_amount": 0.0,
        "charges_details": {
            "source_currency": c["source"], "destination_currency": c["dest"],
            "forex_rate": _n(c["rate"]) if c["rate"] is not None else None,
            "conversion_fee": _n(c["fee"]) if c["rate"] is not None else None,
        },
    })


@router.route("GET", "/api/v1/wallets")
def wallets(request: Request) -> Response:
    account, denied = _require(request)
    if denied:
        return denied
    items = [{"id": w["id"], "currency_id": w["currency_id"], "amount": _n(Decimal(w["amount"])),
              "type": w["type"]} for w in _account_doc(account)["wallets"]]
    items.sort(key=lambda w: -w["id"])
    return _paged(items, request, default_limit=50, max_limit=10000)


# ---------------------------------------------------------------- orders


def _orders_ns(account: str) -> str:
    return f"starship_orders:{account}"


def _voucher(order: dict, n: int) -> dict:
    card = "".join(secrets.choice("0123456789") for _ in range(16))
    pin = "".join(secrets.choice("0123456789") for _ in range(6)) if order["pin"] else ""
    return {
        "card_number": card, "pin_code": pin or None,
        "claim_url": f"https://claim.sandbox.starship.invalid/v/{secrets.token_urlsafe(12)}",
        "voucher_reference_number": f"VRN-{order['id']}-{n}",
        "expires_at": _iso(order["placed"] + 365 * 86400),
    }


def _advance(account: str, order_id: int) -> dict | None:
    """Bring a stored order up to date: issue due vouchers, refund what will not be delivered."""
    with core.transaction():
        order = core.get(_orders_ns(account), str(order_id))
        if order is None:
            return None
        elapsed = time.time() - order["placed"]
        step = [s for s in TIMELINES[order["behaviour"]] if s[0] <= elapsed][-1]
        _, status, sub_status, share = step
        due = math.floor(order["quantity"] * share) if share < 1 else order["quantity"]
        while len(order["vouchers"]) < due:
            voucher = _voucher(order, len(order["vouchers"]) + 1)
            order["vouchers"].append(voucher)
            core.record_issued(SUPPLIER, account, str(order["id"]), voucher["card_number"],
                               voucher["pin_code"] or "")
        if status in REFUNDED_STATUSES and not order.get("refunded"):
            undelivered = order["quantity"] - len(order["vouchers"])
            refund = Decimal(order["amount"]) * undelivered / order["quantity"]
            doc = _account_doc(account)
            for w in doc["wallets"]:
                if w["id"] == order["wallet_id"]:
                    places = CURRENCY_BY_ID[w["currency_id"]][3]
                    refund = refund.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
                    w["amount"] = str(Decimal(w["amount"]) + refund)
            core.put("starship_accounts", account, doc)
            order["refunded"] = str(refund)
        order["status"], order["sub_status"] = status, sub_status
        core.put(_orders_ns(account), str(order["id"]), order)
    return order


def _view(order: dict, *, newer: bool, with_vouchers: bool, status_override: str = "") -> dict:
    money = _s if newer else _n
    status = status_override or order["status"]
    body = {
        "id": order["id"], ("reference_code" if newer else "ref"): order["ref"],
        # the documented answer states the amount charged, not its currency (the wallet's)
        "transaction_id": order["transaction_id"], "amount": money(Decimal(order["amount"])),
        "product_id": order["product_id"],
        "product_name": order["product_name"],
        "denomination": money(Decimal(order["denomination"])), "quantity": order["quantity"],
        "discount": money(Decimal(order["discount"])),
        # the newer read endpoints answer lower case, the create endpoint upper case
        "status": status.lower() if newer else status, "sub_status": order["sub_status"],
        "placed_at": _iso(order["placed"]),
    }
    if order.get("email"):
        body["email"] = order["email"]
    if with_vouchers:
        delivered = order["status"] in ("DELIVERED", "PARTIALLY_DELIVERED", "CANCELLED")
        body["vouchers"] = [dict(v) for v in order["vouchers"]] if delivered else []
    return body


@router.route("POST", "/api/v1/orders")
def create_order(request: Request) -> Response:
    account, denied = _require(request)
    if denied:
        return denied
    key = request.header("Idempotency-Key")
    if not key:
        return _idempotency_error("IDEMPOTENCY_KEY_REQUIRED",
                                  "Idempotency-Key header is required for this endpoint.")
    if len(key) < 8:
        return _idempotency_error("IDEMPOTENCY_KEY_TOO_SHORT", "Idempotency-Key is too short.")
    if len(key) > 256:
        return _idempotency_error("IDEMPOTENCY_KEY_TOO_LONG", "Idempotency-Key is too long.")
    body = _json_object(request)
    if body is None:
        return error(400, "Request body is not valid JSON.", "SYNTAX_ERROR")
    with core.transaction():
        stored = core.get(f"starship_idem:{account}", key)
        if stored and time.time() - stored["at"] < IDEMPOTENCY_TTL:
            return Response(stored["status"], stored["body"])
        item, denomination, quantity, problem = _read_order_input(body)
        if problem:
            return problem
        ref = body.get("ref")
        if ref is not None and (not isinstance(ref, str) or not ref.strip()):
            return _field_error("ref", "string", "ref must be a non-empty string")
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or not EMAIL_RE.match(email)):
            return _field_error("email", "email", "email must be a valid email address")
        ref = ref or (str(int(time.time())) + secrets.token_hex(12).upper())
        if core.get(f"starship_refs:{account}", ref):
            return _field_error("ref", "unique", "ref has already been used")
        doc = _account_doc(account)
        wallet = _pick_wallet(doc, item, body.get("wallet_id"))
        if wallet is None:
            return _field_error("wallet_id", "exists", "wallet not found")
        c = _charges(item, denomination, quantity, wallet)
        if Decimal(wallet["amount"]) < c["total_payable"]:
            return error(400, "Insufficient wallet balance.", "INSUFFICIENT_BALANCE")
        wallet["amount"] = str(Decimal(wallet["amount"]) - c["total_payable"])
        core.put("starship_accounts", account, doc)
        order_id = core.next_number("starship:order")
        order = {
            "id": order_id, "ref": ref, "transaction_id": core.next_number("starship:txn"),
            "amount": str(c["total_payable"]), "currency": c["dest"],
            "wallet_id": wallet["id"], "product_id": item["id"], "product_name": item["name"],
            "denomination": str(denomination), "quantity": quantity,
            "discount": str(c["discount_amount"]), "behaviour": item["_behaviour"],
            "pin": item["delivery_type"] == "code_with_pin", "vouchers": [],
            "status": "PLACED", "sub_status": "INITIAL", "placed": time.time(),
            "email": email or "", "idempotency_key": key,
        }
        core.put(_orders_ns(account), str(order_id), order)
        core.put(f"starship_refs:{account}", ref, {"order_id": order_id})
        order = _advance(account, order_id)
        answer = _view(order, newer=False, with_vouchers=False)
        answer["vouchers"] = []  # vouchers are read with GET /api/v1/orders/{id}
        core.put(f"starship_idem:{account}", key, {"status": 200, "body": answer,
                                                   "at": time.time()})
    hooks = _webhook_settings(account)
    if hooks:
        threading.Thread(target=_follow, args=(account, order_id, hooks), daemon=True,
                         name=f"starship-webhooks-{order_id}").start()
    return Response(200, answer)


def _unknown_status(account: str) -> str:
    return "on_hold" if core.take_fault(SUPPLIER, account, "unknown_status") else ""


@router.route("GET", "/api/v1/orders")
def orders(request: Request) -> Response:
    account, denied = _require(request)
    if denied:
        return denied
    items = sorted(core.all_docs(_orders_ns(account)), key=lambda o: -o["id"])
    items = [_advance(account, o["id"]) for o in items]
    status = request.query.get("status", "").upper()
    if status:
        items = [o for o in items if o["status"] == status]
    if request.query.get("product_id"):
        items = [o for o in items if str(o["product_id"]) == request.query["product_id"]]
    override = _unknown_status(account)
    views = [_view(o, newer=True, with_vouchers=False, status_override=override) for o in items]
    return _paged(views, request, default_limit=10, max_limit=100)


@router.route("GET", "/api/v1/orders/{order_id}")
def order_detail(request: Request, order_id: str) -> Response:
    account, denied = _require(request)
    if denied:
        return denied
    if not order_id.isdigit() or int(order_id) <= 0:
        return _field_error("id", "min", "Order ID must be > 0")
    order = _advance(account, int(order_id))
    if order is None:
        return error(404, "Order not found.")
    return Response(200, _view(order, newer=True, with_vouchers=True,
                               status_override=_unknown_status(account)))


def charged(account: str) -> dict:
    """What the account was charged per order (amount less refund) and its wallets' totals
    per currency, as decimal strings: the control API's ``charges``."""
    result = []
    for stored in core.all_docs(_orders_ns(account)):
        o = _advance(account, stored["id"]) or stored
        charged = Decimal(o["amount"]) - Decimal(o.get("refunded") or "0")
        result.append({"id": str(o["id"]), "reference": o["ref"], "currency": o["currency"],
                       "charged": str(charged)})
    balances: dict[str, Decimal] = {}
    for wallet in _account_doc(account)["wallets"]:
        code = CURRENCY_BY_ID[wallet["currency_id"]][1]
        balances[code] = balances.get(code, Decimal(0)) + Decimal(wallet["amount"])
    opening = {CURRENCY_BY_ID[cid][1]: str(amount) for cid, amount in WALLET_START.items()}
    return {"orders": result, "balances": {c: str(v) for c, v in balances.items()},
            "opening": opening}


def list_orders(account: str | None) -> list[dict]:
    accounts = [account] if account else [a["account"] for a in core.all_docs("starship_accounts")]
    result = []
    for name in accounts:
        for stored in core.all_docs(_orders_ns(name)):
            o = _advance(name, stored["id"]) or stored
            result.append({"id": o["id"], "reference": o["ref"], "status": o["status"],
                           "sub_status": o["sub_status"], "quantity": o["quantity"],
                           "delivered": len(o["vouchers"]), "product_id": o["product_id"],
                           "amount": o["amount"], "currency": o["currency"],
                           "refunded": o.get("refunded", ""), "account": name,
                           "delivered_at": _delivered_at(o)})
    return result


def _delivered_at(order: dict) -> float | None:
    """When (epoch seconds) the order's last voucher became readable; None until then."""
    if len(order["vouchers"]) < order["quantity"]:
        return None
    full = next(s for s in TIMELINES[order["behaviour"]] if s[3] == 1)
    return order["placed"] + full[0]


# ---------------------------------------------------------------- webhooks

WEBHOOK_RETRIES = (30, 120, 600, 3600, 6 * 3600)
WEBHOOK_EVENTS = {"PENDING": "order.pending", "DELIVERED": "order.delivered",
                  "PARTIALLY_DELIVERED": "order.partially_delivered",
                  "CANCELLED": "order.cancelled"}
WEBHOOK_TIMEOUT = 10


def _webhook_settings(account: str) -> dict | None:
    settings = core.faults(SUPPLIER, account)
    if not settings.get("webhook_url") or not settings.get("webhook_secret"):
        return None
    retries = settings.get("webhook_retries")
    return {"url": str(settings["webhook_url"]), "secret": str(settings["webhook_secret"]),
            "retries": [float(r) for r in retries] if isinstance(retries, list)
            else list(WEBHOOK_RETRIES)}


def _follow(account: str, order_id: int, hooks: dict) -> None:
    """Send the order's events as its timeline reaches them (a thread per order)."""
    order = _advance(account, order_id)
    _emit(account, order, "order.created", hooks)
    sent = set()
    for offset, *_ in TIMELINES[order["behaviour"]]:
        time.sleep(max(0.0, order["placed"] + offset - time.time()))
        current = _advance(account, order_id)
        name = WEBHOOK_EVENTS.get(current["status"])
        if name and name not in sent:
            sent.add(name)
            _emit(account, current, name, hooks)


def _emit(account: str, order: dict, name: str, hooks: dict) -> None:
    event_id = "evt_" + secrets.token_hex(12)
    body = json.dumps({
        "id": event_id, "event": name, "created_at": _iso(time.time()),
        "data": _view(order, newer=True, with_vouchers=True),
    }).encode()
    with core.transaction():
        core.put(f"starship_webhooks:{account}", event_id, {
            "event_id": event_id, "event": name, "order_id": order["id"],
            "occurred_at": time.time(), "attempts": [],
        })
    threading.Thread(target=_deliver, args=(account, event_id, body, hooks), daemon=True,
                     name=f"starship-webhook-{event_id}").start()


def _deliver(account: str, event_id: str, body: bytes, hooks: dict) -> None:
    """POST one event until it is answered 2xx or the retries run out."""
    for wait in [0.0, *hooks["retries"]]:
        time.sleep(wait)
        timestamp = str(int(time.time()))
        signature = hmac.new(hooks["secret"].encode(), timestamp.encode() + b"." + body,
                             hashlib.sha256).hexdigest()
        try:
            answer = requests.post(hooks["url"], data=body, timeout=WEBHOOK_TIMEOUT, headers={
                "Content-Type": "application/json", "X-Timestamp": timestamp,
                "X-Signature": signature,
            }).status_code
        except requests.RequestException as exc:
            answer = type(exc).__name__
        with core.transaction():
            doc = core.get(f"starship_webhooks:{account}", event_id)
            doc["attempts"].append({"at": time.time(), "answer": answer})
            core.put(f"starship_webhooks:{account}", event_id, doc)
        if isinstance(answer, int) and 200 <= answer < 300:
            return


def webhook_deliveries(account: str | None) -> list[dict]:
    """Every event sent for ``account`` (every account when None), oldest first, with each
    attempt's time and answer: the control API's ``webhooks``."""
    accounts = [account] if account else [a["account"] for a in core.all_docs("starship_accounts")]
    return [doc for name in accounts for doc in core.all_docs(f"starship_webhooks:{name}")]
