"""Kalixo API v1 simulator: bearer-token logins and synchronous orders that return their pins.

Written from ``kalixo-v1-orders.txt`` and the v1 notes in the vendor-docs README:

  POST /v1/auth/login            {email, password} -> {accessToken, refreshToken}
  POST /v1/auth/refresh          Authorization: Bearer <refreshToken> -> new tokens
  GET  /v1/catalog/products      ?skip=&take= -> {count, take, skip, products}
  POST /v1/orders/place-order    -> {orderId: "59400", products: [{price, productId, quantity,
                                     pin: [{PIN}]}]}
  GET  /v1/orders/retrieve-order ?id= -> {orderId: 59400, orderStatus, products: [...]}

Errors use Kalixo's body ``{statusCode, error, message}``. There is no wallet endpoint in v1;
each account still has a balance, debited the catalog's ``buyingPrice`` ("your buying price")
when an order is placed and refunded for whatever is not delivered. The order answers carry
the catalog (sell) ``price`` only: they never state what was charged.

Sandbox accounts: any email ``<anything>@sandbox.kalixo.test`` with the password ``sandbox``
(created at first login). Tokens are opaque strings kept in the sandbox state with their expiry;
lifetimes are short and set per account through the fault document (control API):
``{"access_ttl": 2, "refresh_ttl": 5}`` in seconds (defaults below).

Test products (``ean`` / sku ``GB-EN-<ean>``, all GBP):
  KTEST-OK       completed at once, codes in the place-order answer
  KTEST-FAIL     failed, no codes, refunded
  KTEST-PARTIAL  quantity >= 2: all but one code delivered, status ``error``, one unit refunded
  KTEST-ERROR    status ``error``, no codes, refunded
  KTEST-CANCEL   cancelled, no codes, refunded
  KTEST-SLOW     ``requested`` for a second, ``processing`` until SLOW_SECONDS, then completed
Codes start with ``SANDBOX-``.
"""

import re
import secrets
import time
from decimal import ROUND_HALF_UP, Decimal

from vendors.sandbox import core
from vendors.sandbox.core import STATUS_TEXT, Request, Response, Router

SUPPLIER = "kalixo_v1"
PREFIX = "/kalixo-v1"
BASE_PATH = "/kalixo-v1"
RATE_LIMIT = 60
SERVER_ERROR_STATUS = 502
DEMO_CREDENTIALS = {"email": "demo@sandbox.kalixo.test", "password": "sandbox"}

EMAIL = re.compile(r"^[^@\s/]+@sandbox\.kalixo\.test$", re.IGNORECASE)
PASSWORD = "sandbox"
ACCESS_TTL = 300  # seconds; production says about 4 hours
REFRESH_TTL = 900  # production: about 8 hours
SLOW_REQUESTED_SECONDS = 1.0
SLOW_SECONDS = 3.0
MAX_TAKE = 100
START_BALANCE_MAJOR = Decimal("1000000")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
EXPONENTS = {"GBP": 2, "EUR": 2, "USD": 2, "JPY": 0}

NS_ACCOUNTS = f"{SUPPLIER}:accounts"
NS_TOKENS = f"{SUPPLIER}:tokens"
NS_ORDERS = f"{SUPPLIER}:orders"
NS_REFS = f"{SUPPLIER}:refs"

router = Router()


# --- catalog -------------------------------------------------------------------------------

def _ean(seq: int) -> str:
    digits = f"425{seq:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def _rrp(minor: int, currency: str) -> str:
    exp = EXPONENTS[currency]
    return str(Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp)))


MARKETS = {"GBP": ("GB", "EN"), "EUR": ("DE", "DE"), "USD": ("US", "EN"), "JPY": ("JP", "JA")}

# brand, publisher, category, discount %, {currency: face values in major units}
BRANDS = [
    ("PlayStation", "Sony", "Gaming", 4,
     {"GBP": [5, 10, 20, 25, 50, 100], "EUR": [10, 20, 50, 100], "USD": [10, 25, 50, 100]}),
    ("Xbox", "Microsoft", "Gaming", 5,
     {"GBP": [5, 10, 15, 25, 50], "EUR": [10, 25, 50], "USD": [10, 25, 50]}),
    ("Nintendo eShop", "Nintendo", "Gaming", 3,
     {"GBP": [15, 25, 50], "EUR": [15, 25, 50], "USD": [20, 35, 50]}),
    ("Steam", "Valve", "Gaming", 2,
     {"GBP": [5, 10, 20, 50], "EUR": [5, 10, 20, 50], "USD": [20, 50, 100]}),
    ("Roblox", "Roblox", "Gaming", 6,
     {"GBP": [10, 20, 25], "EUR": [10, 20, 25], "USD": [10, 25, 50]}),
    ("Fortnite V-Bucks", "Epic Games", "Gaming", 5,
     {"GBP": [Decimal("7.99"), Decimal("19.99"), Decimal("31.99")],
      "EUR": [Decimal("8.99"), Decimal("22.99")], "USD": [Decimal("8.99"), Decimal("22.99")]}),
    ("EA Play", "Electronic Arts", "Gaming", 4,
     {"GBP": [Decimal("3.99"), Decimal("19.99")], "EUR": [Decimal("4.99")],
      "USD": [Decimal("4.99"), Decimal("29.99")]}),
    ("Razer Gold", "Razer", "Gaming", 3, {"USD": [5, 10, 20, 50, 100], "EUR": [10, 20]}),
    ("Spotify", "Spotify", "Entertainment", 5,
     {"GBP": [10, 30, 60], "EUR": [10, 30, 60], "USD": [10, 30, 60]}),
    ("Netflix", "Netflix", "Entertainment", 3,
     {"GBP": [15, 25, 50], "EUR": [15, 25, 50], "USD": [25, 50, 100]}),
    ("Apple", "Apple", "Entertainment", 4,
     {"GBP": [10, 15, 25, 50, 100], "USD": [10, 25, 50, 100]}),
    ("Google Play", "Google", "Entertainment", 4,
     {"GBP": [10, 15, 25, 50], "EUR": [15, 25, 50], "USD": [10, 25, 50]}),
    ("Twitch", "Amazon", "Entertainment", 5, {"GBP": [10, 25], "USD": [25, 50]}),
]

TEST_PRODUCTS = [
    (1, "KTEST-OK", "Kalixo Test Success (Fixed) £10.99", 1099),
    (2, "KTEST-FAIL", "Kalixo Test Failure £5.00", 500),
    (3, "KTEST-PARTIAL", "Kalixo Test Partial £10.00", 1000),
    (4, "KTEST-SLOW", "Kalixo Test Slow £10.00", 1000),
    (5, "KTEST-ERROR", "Kalixo Test Error £5.00", 500),
    (6, "KTEST-CANCEL", "Kalixo Test Cancelled £5.00", 500),
]
BEHAVIOURS = {"KTEST-FAIL": "fail", "KTEST-PARTIAL": "partial", "KTEST-SLOW": "slow",
              "KTEST-ERROR": "error", "KTEST-CANCEL": "cancel"}


def _product(pid: int, ean: str, name: str, brand: str, publisher: str, category: str,
             currency: str, minor: int, discount: int, status: str = "active",
             sandbox: bool = False) -> dict:
    country, language = MARKETS[currency]
    buying = int((Decimal(minor) * (100 - discount) / 100).quantize(Decimal(1), ROUND_HALF_UP))
    return {
        "id": pid,
        "ean": ean,
        "name": name,
        "brand": brand,
        "publisher": publisher,
        "mainCategory": category,
        "countryCode": country,
        "rrp": _rrp(minor, currency),
        "rrpCurrency": currency,
        "price": minor,
        "currencyCode": currency,
        "buyingPrice": buying,
        "denominationType": "fixed",
        "status": status,
        "isSandboxProduct": sandbox,
        "languages": [{
            "languageCode": language,
            "sku": f"{country}-{language}-{ean}",
            "description": name,
        }],
    }


def _build_catalog() -> list[dict]:
    products = [
        _product(pid, ean, name, "Kalixo Test", "Kalixo", "Test", "GBP", minor, 5, sandbox=True)
        for pid, ean, name, minor in TEST_PRODUCTS
    ]
    pid, seq = 10, 0
    symbols = {"GBP": "£", "EUR": "€", "USD": "$"}
    for brand, publisher, category, discount, values in BRANDS:
        for currency, faces in values.items():
            for face in faces:
                minor = int(Decimal(face).scaleb(EXPONENTS[currency]))
                name = f"{brand} {symbols[currency]}{_rrp(minor, currency).removesuffix('.00')}"
                products.append(_product(pid, _ean(seq), name, brand, publisher, category,
                                         currency, minor, discount))
                pid, seq = pid + 1, seq + 1
    products.append(_product(pid, _ean(seq), "Nintendo eShop ¥1500 (Japan)", "Nintendo eShop",
                             "Nintendo", "Gaming", "JPY", 1500, 3))
    products.append(_product(pid + 1, _ean(seq + 1), "Xbox Game Pass Core £19.99 (retired)",
                             "Xbox", "Microsoft", "Gaming", "GBP", 1999, 5, status="inactive"))
    return products


CATALOG = _build_catalog()
PRODUCTS = {p["id"]: p for p in CATALOG}


# --- answers -------------------------------------------------------------------------------

def error(status: int, message: str, code: str = "") -> Response:
    return Response(status, {"statusCode": status, "error": STATUS_TEXT.get(status, "Error"),
                             "message": message})


def _bearer(request: Request) -> str:
    value = request.header("Authorization")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _token_account(token: str, kind: str) -> str | None:
    if not token:
        return None
    doc = core.get(NS_TOKENS, token)
    if not doc or doc.get("kind") != kind or doc.get("expires", 0) <= time.time():
        return None
    return doc["account"]


def _login_account(request: Request) -> str | None:
    try:
        body = request.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not EMAIL.match(email.strip()) or password != PASSWORD:
        return None
    return email.strip().lower()


def account_of(request: Request) -> str | None:
    if request.path.rstrip("/") == "/v1/auth/login":
        return _login_account(request)
    if request.path.rstrip("/") == "/v1/auth/refresh":
        return _token_account(_bearer(request), "refresh")
    return _token_account(_bearer(request), "access")


def _issue_tokens(account: str) -> dict:
    settings = core.faults(SUPPLIER, account)
    now = time.time()
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with core.transaction():
        core.put(NS_TOKENS, access, {"account": account, "kind": "access",
                                     "expires": now + float(settings.get("access_ttl",
                                                                         ACCESS_TTL))})
        core.put(NS_TOKENS, refresh, {"account": account, "kind": "refresh",
                                      "expires": now + float(settings.get("refresh_ttl",
                                                                          REFRESH_TTL))})
    return {"accessToken": access, "refreshToken": refresh}


def _ensure_account(account: str) -> dict:
    with core.transaction():
        doc = core.get(NS_ACCOUNTS, account)
        if doc is None:
            doc = core.put(NS_ACCOUNTS, account, {
                "email": account, "created": time.time(),
                "balances": {cur: int(START_BALANCE_MAJOR.scaleb(exp))
                             for cur, exp in EXPONENTS.items()},
            })
    return doc


@router.route("POST", "/v1/auth/login")
def login(request: Request) -> Response:
    try:
        body = request.json()
    except ValueError:
        return error(400, "Request body must be JSON")
    if not isinstance(body, dict) or not body.get("email") or not body.get("password"):
        return error(400, "email and password are required")
    account = _login_account(request)
    if account is None:
        return error(401, "Invalid email or password")
    _ensure_account(account)
    return Response(201, _issue_tokens(account))


@router.route("POST", "/v1/auth/refresh")
def refresh(request: Request) -> Response:
    account = account_of(request)
    if account is None:
        return error(401, "Invalid or expired refresh token")
    return Response(201, _issue_tokens(account))


def _authorised(request: Request) -> str | None:
    return _token_account(_bearer(request), "access")


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


@router.route("GET", "/v1/catalog/products")
def catalog(request: Request) -> Response:
    if _authorised(request) is None:
        return error(401, "Unauthorized")
    skip, take = _int_param(request, "skip", 0), _int_param(request, "take", 20)
    if skip is None or take is None:
        return error(400, "skip and take must be non-negative integers")
    take = min(take, MAX_TAKE)
    return Response(200, {"count": len(CATALOG), "take": take, "skip": skip,
                          "products": CATALOG[skip:skip + take]})


# --- orders --------------------------------------------------------------------------------

def _new_code() -> str:
    groups = ("".join(secrets.choice(CODE_ALPHABET) for _ in range(5)) for _ in range(4))
    return "SANDBOX-" + "-".join(groups)


def _issue(order: dict, line: dict, count: int) -> None:
    for _ in range(count):
        code = _new_code()
        core.record_issued(SUPPLIER, order["account"], str(order["id"]), code)
        line["codes"].append(code)


def _line_state(order: dict, line: dict, now: float) -> str:
    """A line's state, delivering slow lines once their time has come."""
    if line["behaviour"] != "slow" or line["state"] != "pending":
        return line["state"]
    age = now - order["created"]
    if age < SLOW_REQUESTED_SECONDS:
        return "requested"
    if age < SLOW_SECONDS:
        return "processing"
    _issue(order, line, line["quantity"] - len(line["codes"]))
    line["state"] = "completed"
    return "completed"


def _settle(order: dict) -> str:
    """The order's status now; on the first final status, refund what was not delivered.

    Call inside a transaction and store the order afterwards.
    """
    if order.get("final"):
        return order["status"]
    states = [_line_state(order, line, time.time()) for line in order["lines"]]
    if "requested" in states and all(s in ("requested", "completed") for s in states):
        status = "requested"
    elif any(s in ("requested", "processing") for s in states):
        status = "processing"
    elif len(set(states)) == 1:
        status = states[0]
    else:
        status = "error"
    order["status"] = status
    if status in ("requested", "processing"):
        return status
    order["final"] = True
    undelivered = sum(_buying(line) * (line["quantity"] - len(line["codes"]))
                      for line in order["lines"])
    if undelivered:
        account = core.get(NS_ACCOUNTS, order["account"])
        balances = account["balances"]
        balances[order["currency"]] = balances.get(order["currency"], 0) + undelivered
        core.put(NS_ACCOUNTS, order["account"], account)
        order["refunded"] = undelivered
    return status


def _buying(line: dict) -> int:
    """A line's unit charge; orders stored before lines kept it were charged their price."""
    return line.get("buyingPrice", line["price"])


def _products_view(order: dict) -> list[dict]:
    return [{"price": line["price"], "productId": line["productId"],
             "quantity": line["quantity"], "pin": [{"PIN": c} for c in line["codes"]]}
            for line in order["lines"]]


def _validate_lines(body: dict) -> tuple[list[dict], str] | Response:
    lines = body.get("orderProducts")
    currency = body.get("currency")
    if not isinstance(lines, list) or not lines:
        return error(400, "orderProducts must not be empty")
    if not isinstance(currency, str) or not currency:
        return error(400, "currency is required")
    checked = []
    for raw in lines:
        if not isinstance(raw, dict):
            return error(400, "Each line requires a productId and a quantity of at least 1")
        pid, quantity = raw.get("productId"), raw.get("quantity")
        if (not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(quantity, int)
                or isinstance(quantity, bool) or quantity < 1):
            return error(400, "Each line requires a productId and a quantity of at least 1")
        product = PRODUCTS.get(pid)
        if product is None:
            return error(400, f"Product {pid} was not found in your catalog")
        if product["status"] != "active":
            return error(422, f"Product {pid} is not available for purchase.")
        line_currency = raw.get("currency", currency)
        if product["currencyCode"] != currency or line_currency != currency:
            return error(400, f"Product {pid} cannot be ordered in the requested currency.")
        price = raw.get("price", product["price"])
        if price != product["price"]:
            return error(400, f"Product {pid} price mismatch: expected {product['price']}")
        behaviour = BEHAVIOURS.get(product["ean"], "ok")
        if behaviour == "partial" and quantity < 2:
            behaviour = "ok"
        checked.append({"productId": pid, "ean": product["ean"], "price": product["price"],
                        "buyingPrice": product["buyingPrice"], "quantity": quantity,
                        "behaviour": behaviour, "codes": [],
                        "state": "pending"})
    return checked, currency


@router.route("POST", "/v1/orders/place-order")
def place_order(request: Request) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, "Unauthorized")
    try:
        body = request.json()
    except ValueError:
        return error(400, "Request body must be JSON")
    if not isinstance(body, dict):
        return error(400, "Request body must be a JSON object")
    reference = body.get("externalOrderCode")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        return error(400, "externalOrderCode must be a non-empty string")
    checked = _validate_lines(body)
    if isinstance(checked, Response):
        return checked
    lines, currency = checked
    total = sum(_buying(line) * line["quantity"] for line in lines)
    order_id = 59400 + core.next_number(f"{SUPPLIER}:order")
    with core.transaction():
        if reference and core.get(NS_REFS, f"{account}:{reference}"):
            return error(409, "An order with this external order code already exists.")
        acct = core.get(NS_ACCOUNTS, account) or _ensure_account(account)
        if acct["balances"].get(currency, 0) < total:
            return error(422, "Your account order limit has been exceeded. "
                              "Contact support for assistance.")
        acct["balances"][currency] -= total
        core.put(NS_ACCOUNTS, account, acct)
        order = {"id": order_id, "account": account, "reference": reference or "",
                 "currency": currency, "created": time.time(), "lines": lines,
                 "debited": total, "refunded": 0, "final": False, "status": "requested"}
        for line in lines:
            if line["behaviour"] == "ok":
                _issue(order, line, line["quantity"])
                line["state"] = "completed"
            elif line["behaviour"] == "partial":
                _issue(order, line, line["quantity"] - 1)
                line["state"] = "error"
            elif line["behaviour"] in ("fail", "error", "cancel"):
                line["state"] = {"fail": "failed", "error": "error",
                                 "cancel": "cancelled"}[line["behaviour"]]
        _settle(order)
        core.put(NS_ORDERS, str(order_id), order)
        if reference:
            core.put(NS_REFS, f"{account}:{reference}", {"orderId": order_id})
    # The documented place-order answer: orderId as a string, no orderStatus.
    return Response(201, {"orderId": str(order_id), "products": _products_view(order)})


@router.route("GET", "/v1/orders/retrieve-order")
def retrieve_order(request: Request) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, "Unauthorized")
    raw = request.query.get("id", "").strip()
    if not raw.isdigit():
        return error(400, "id must be a number")
    with core.transaction():
        order = core.get(NS_ORDERS, str(int(raw)))
        if order is None or order["account"] != account:
            return error(404, f"Order {raw} not found")
        status = _settle(order)
        core.put(NS_ORDERS, str(order["id"]), order)
    if core.take_fault(SUPPLIER, account, "unknown_status"):
        status = "on_hold"
    return Response(200, {"orderId": order["id"], "orderStatus": status,
                          "products": _products_view(order)})


def _major(minor: int, currency: str) -> str:
    return _rrp(minor, currency) if currency in EXPONENTS else str(minor)


def charged(account: str) -> dict:
    """What the account was charged per order (debited less refunded) and its balances, in
    major units as decimal strings: the control API's ``charges``."""
    result = [{"id": o["id"], "reference": o["reference"], "currency": o["currency"],
               "charged": str(Decimal(o["debited"]) - Decimal(o["refunded"]))}
              for o in list_orders(account)]
    doc = _ensure_account(account)
    return {"orders": result,
            "balances": {c: _major(v, c) for c, v in doc["balances"].items()},
            "opening": {c: _major(int(START_BALANCE_MAJOR.scaleb(e)), c)
                        for c, e in EXPONENTS.items()}}


def list_orders(account: str | None) -> list[dict]:
    result = []
    with core.transaction():
        for order in core.all_docs(NS_ORDERS):
            if account and order["account"] != account:
                continue
            status = _settle(order)
            core.put(NS_ORDERS, str(order["id"]), order)
            result.append({
                "id": str(order["id"]), "reference": order["reference"], "status": status,
                "quantity": sum(line["quantity"] for line in order["lines"]),
                "delivered": sum(len(line["codes"]) for line in order["lines"]),
                "currency": order["currency"],
                "debited": _major(order["debited"], order["currency"]),
                "refunded": _major(order["refunded"], order["currency"]),
                "account": order["account"],
            })
    return result
