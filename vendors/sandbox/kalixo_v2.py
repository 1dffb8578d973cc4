"""Kalixo Distribution API v2 (asynchronous orders), simulated from Kalixo's published docs.

Base URL: the sandbox URL + ``BASE_PATH`` (``/kalixo-v2/v2``). Every call sends ``x-api-key``;
any key ``kal_test_<name>`` (letters, digits, ``_``, ``-``) opens the sandbox account ``<name>``,
created on first use with a generous wallet. Anything else is ``401 Invalid API key``.

Routes: ``GET /v2/ping``, ``GET /v2/catalog/products`` (skip/take, take <= 100, filters),
``GET /v2/catalog/products/{id}``, ``GET /v2/wallet`` (MAJOR units), ``POST /v2/orders``
(202, prices in MINOR units), ``GET /v2/orders/{reference}`` (orderId or externalOrderCode),
``GET /v2/sandbox/scenarios``.

Orders are ready at ``estimatedReadyAt`` = 2 s + 0.2 s per unit after placing; their progress is
computed when they are read. Test products (brand "Kalixo Test", ``isSandboxProduct``):

  KTEST-OK       completed with codes
  KTEST-OPEN     open denomination 5.00-100.00 GBP, step 1.00: send the chosen line price
  KTEST-FAIL     failed with a reason; the wallet is refunded
  KTEST-PARTIAL  quantity >= 2: partially_completed, half delivered, the rest refunded
  KTEST-SLOW     processing ~10 s, then completed
  KTEST-STOCK    out of stock: still processing 4 s past its estimate, then completed
  KTEST-LEGACY   completed, codes in the older shape ``pin: [{"PIN": ...}]``

A repeated ``externalOrderCode`` answers ``409``; the wallet is debited the buying price at
order time. The rest of the catalog (over 100 products, GBP/EUR/USD/PLN/SEK/AUD/CAD/JPY...)
orders like KTEST-OK.
"""

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import wraps

from vendors.sandbox import core
from vendors.sandbox.core import Request, Response, Router

SUPPLIER = "kalixo_v2"
PREFIX = "/kalixo-v2"
BASE_PATH = "/kalixo-v2/v2"
RATE_LIMIT = 60
SERVER_ERROR_STATUS = 502
DEMO_CREDENTIALS = {"api_key": "kal_test_demo"}
router = Router()

KEY_PATTERN = re.compile(r"^kal_test_([A-Za-z0-9_-]{1,80})$")
ACCOUNTS = f"{SUPPLIER}:accounts"
ORDERS = f"{SUPPLIER}:orders"
REFERENCES = f"{SUPPLIER}:references"

BASE_SECONDS = Decimal("2")
PER_UNIT_SECONDS = Decimal("0.2")
SLOW_SECONDS = Decimal("10")
OUT_OF_STOCK_EXTRA_SECONDS = 4
LOW_BALANCE_THRESHOLD = 100
FAIL_REASON = "The order could not be completed."

LABELS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
}
# The simulator's own table of currency exponents (it shares no code with the portal).
EXPONENTS = {"GBP": 2, "EUR": 2, "USD": 2, "PLN": 2, "SEK": 2, "AUD": 2, "CAD": 2, "CHF": 2,
             "JPY": 0}
OPENING_BALANCE = {  # minor units
    "GBP": 5_000_000, "EUR": 5_000_000, "USD": 5_000_000, "PLN": 20_000_000,
    "SEK": 50_000_000, "AUD": 5_000_000, "CAD": 5_000_000, "CHF": 5_000_000, "JPY": 5_000_000,
}


# ----------------------------------------------------------------------------- catalog

MARKETS = {  # country: (currency, language, redeemable, denominations in major units)
    "GB": ("GBP", "en", "United Kingdom", (10, 25, 50)),
    "IE": ("EUR", "en", "Ireland", (10, 25, 50)),
    "DE": ("EUR", "de", "Germany", (15, 25, 50)),
    "FR": ("EUR", "fr", "France", (15, 25, 50)),
    "ES": ("EUR", "es", "Spain", (20, 50)),
    "IT": ("EUR", "it", "Italy", (20, 50)),
    "US": ("USD", "en", "United States", (10, 25, 50, 100)),
    "PL": ("PLN", "pl", "Poland", (50, 100, 200)),
    "SE": ("SEK", "sv", "Sweden", (200, 500)),
    "AU": ("AUD", "en", "Australia", (20, 50)),
    "CA": ("CAD", "en", "Canada", (25, 50)),
    "JP": ("JPY", "ja", "Japan", (1000, 3000, 5000)),
}
BRANDS = [  # brand, short name, publisher, category, platform, product type, discount %, markets
    ("PlayStation", "PSN", "Sony", "Gaming", "PlayStation", "credit", 5,
     ("GB", "IE", "DE", "FR", "US", "JP", "PL")),
    ("Xbox", "XBOX", "Microsoft", "Gaming", "Xbox", "credit", 4,
     ("GB", "DE", "FR", "US", "CA", "AU")),
    ("Nintendo eShop", "ESHOP", "Nintendo", "Gaming", "Nintendo", "credit", 3,
     ("GB", "DE", "ES", "IT", "US", "JP")),
    ("Steam", "STEAM", "Valve", "Gaming", "PC", "credit", 3, ("GB", "DE", "US", "PL", "SE")),
    ("Google Play", "GPLAY", "Google", "Apps", "Android", "credit", 6, ("GB", "FR", "US", "JP")),
    ("Netflix", "NFLX", "Netflix", "Entertainment", "Streaming", "subscription", 4,
     ("GB", "IE", "DE", "US")),
    ("Spotify", "SPOT", "Spotify", "Entertainment", "Streaming", "subscription", 5,
     ("GB", "SE", "DE")),
    ("Roblox", "RBLX", "Roblox", "Gaming", "Roblox", "credit", 6, ("GB", "US", "AU", "CA")),
]

TEST_PRODUCTS = [  # id, code, name, price (minor), buying price (minor), behaviour
    (9001, "KTEST-OK", "Kalixo Test Success (Fixed) £10", 1000, 950, "ok"),
    (9002, "KTEST-OPEN", "Kalixo Test Success (Open)", None, None, "ok"),
    (9003, "KTEST-FAIL", "Kalixo Test Async Failure £10", 1000, 950, "fail"),
    (9004, "KTEST-PARTIAL", "Kalixo Test Partial £5", 500, 475, "partial"),
    (9005, "KTEST-SLOW", "Kalixo Test Slow £10", 1000, 950, "slow"),
    (9006, "KTEST-STOCK", "Kalixo Test Out Of Stock £10", 1000, 950, "stock"),
    (9007, "KTEST-LEGACY", "Kalixo Test Legacy Codes £10", 1000, 950, "legacy"),
]
OPEN_MIN, OPEN_MAX, OPEN_STEP, OPEN_DEFAULT, OPEN_DISCOUNT = 500, 10000, 100, 2500, 5


def _language(country: str, code: str, name: str, lang: str) -> dict:
    sku = f"{country}-{lang.upper()}-{code}"
    return {
        "languageCode": lang, "name": name, "sku": sku,
        "image": f"https://cdn.kalixo.io/static-images/{sku}.png",
        "description": f"{name}: a digital code delivered by email.",
        "tnc": "Non-refundable. Redeemable only in the stated country.",
        "redemptionInstructions": "Sign in to your account and enter the code.",
    }


def _product(pid: int, code: str, name: str, short: str, brand: str, publisher: str,
             category: str, platform: str, ptype: str, country: str, price: int | None,
             discount: int, tags: list[str], status: str = "active",
             open_range: tuple[int, int, int, int] | None = None, sandbox: bool = False) -> dict:
    currency, lang, redeemable, _ = MARKETS[country]
    buying = None
    discount_amount = None
    if price is not None:
        buying = int((Decimal(price) * (100 - discount) / 100).to_integral_value(ROUND_HALF_UP))
        discount_amount = price - buying
    product = {
        "id": pid, "productCode": code, "name": name, "shortName": short,
        "image": f"https://cdn.kalixo.io/static-images/{country}-{lang.upper()}-{code}.png",
        "price": price if price is not None else (open_range[3] if open_range else None),
        "currencyCode": currency, "buyingPrice": buying, "buyingCurrencyCode": currency,
        "discountAmount": discount_amount, "discountPercentage": discount,
        "currencyMismatch": False,
        "denominationType": "open" if open_range else "fixed",
        "denominationMinValue": open_range[0] if open_range else None,
        "denominationMaxValue": open_range[1] if open_range else None,
        "denominationStep": open_range[2] if open_range else None,
        "denominationDefaultValue": open_range[3] if open_range else None,
        "brand": brand, "publisher": publisher, "countryCode": country,
        "mainCategory": category, "subCategory": platform, "productCategory": platform,
        "productType": ptype, "platform": platform, "redeemable": redeemable,
        "preorder": False, "preorderCode": False, "expires": True, "expiryPolicy": "3 years",
        "tags": tags, "status": status, "promotion": False, "type": "digital",
        "languages": [_language(country, code, name, lang)],
    }
    if sandbox:
        product["isSandboxProduct"] = True
    return product


def _build_catalog() -> list[dict]:
    """The same catalog in every process: generated, never random."""
    products = []
    for pid, code, name, price, buying, _behaviour in TEST_PRODUCTS:
        open_range = (OPEN_MIN, OPEN_MAX, OPEN_STEP, OPEN_DEFAULT) if code == "KTEST-OPEN" else None
        product = _product(pid, code, name, code, "Kalixo Test", "Kalixo", "Test", "Test",
                           "credit", "GB", price, 5, ["sandbox"], open_range=open_range,
                           sandbox=True)
        if buying is not None:
            product["buyingPrice"], product["discountAmount"] = buying, price - buying
        products.append(product)
    pid = 2
    for b, (brand, short, publisher, category, platform, ptype, discount, countries) in enumerate(
        BRANDS
    ):
        for country in countries:
            currency, _lang, _r, denominations = MARKETS[country]
            for denomination in denominations:
                price = denomination * 10 ** EXPONENTS[currency]
                code = f"1002{b:02d}{pid:08d}"
                symbol = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥"}.get(currency, "")
                amount = f"{symbol}{denomination}" if symbol else f"{denomination} {currency}"
                tags = [category.lower()] + (["bestseller"] if denomination <= 25 else [])
                # every 17th product is withdrawn, as real catalogs have some
                status = "inactive" if pid % 17 == 0 else "active"
                products.append(_product(
                    pid, code, f"{brand} Gift Card {amount} ({country})", short, brand,
                    publisher, category, platform, ptype, country, price, discount, tags,
                    status=status,
                ))
                pid += 1
    return products


CATALOG = _build_catalog()
BY_ID = {p["id"]: p for p in CATALOG}
BEHAVIOUR = {pid: behaviour for pid, _c, _n, _p, _b, behaviour in TEST_PRODUCTS}


# ----------------------------------------------------------------------------- HTTP helpers

class _RetryAfterHeaders(dict):
    """429 headers: app.py sets Retry-After after asking for the body; keep the message true."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.headers)
        self.response = response

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        if key.lower() == "retry-after":
            self.response.data = Response(429, _body(
                429, f"Rate limit exceeded. Retry after {value}s.")).data


def _body(status: int, message: str, label: str = "") -> dict:
    return {"statusCode": status, "error": label or LABELS.get(status, "Error"),
            "message": message}


def error(status: int, message: str, code: str = "") -> Response:
    """An error in Kalixo's shape: {statusCode, error, message}."""
    if status == 429:
        response = Response(429, _body(429, "Rate limit exceeded. Retry after 60s."))
        window_end = int(time.time() // 60 * 60 + 60)
        response.headers.update({"X-RateLimit-Limit": str(RATE_LIMIT),
                                 "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": str(window_end)})
        response.headers = _RetryAfterHeaders(response)
        return response
    if status in (500, 502) and message.startswith("Upstream"):
        message = "Order processing is temporarily unavailable. Please try again later."
    return Response(status, _body(status, message, code))


def account_of(request: Request) -> str | None:
    match = KEY_PATTERN.match(request.header("x-api-key").strip())
    return match.group(1) if match else None


def _rate_headers(account: str) -> dict[str, str]:
    """X-RateLimit-* from the window counter app.py keeps (read only)."""
    now = time.time()
    window_start = int(now - now % 60)
    limit = int(core.faults(SUPPLIER, account).get("rate_limit_per_minute", RATE_LIMIT) or 0)
    row = core.connection().execute(
        "SELECT value FROM counters WHERE key=?", (f"rate:{SUPPLIER}:{account}:{window_start}",)
    ).fetchone()
    used = row[0] if row else 0
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(window_start + 60)}


def authed(handler: Callable[..., Response]) -> Callable[..., Response]:
    """401 without a valid key; otherwise call the handler with the account, add rate headers."""

    @wraps(handler)
    def wrapper(request: Request, **params: str) -> Response:
        key = request.header("x-api-key").strip()
        if not key:
            return error(401, "Missing API key")
        account = account_of(request)
        if account is None:
            return error(401, "Invalid API key")
        response = handler(request, account, **params)
        response.headers.update(_rate_headers(account))
        return response

    return wrapper


# ----------------------------------------------------------------------------- state

def _account(name: str) -> dict:
    """The account's document, created with an opening balance on first use."""
    with core.transaction():
        doc = core.get(ACCOUNTS, name)
        if doc is None:
            doc = core.put(ACCOUNTS, name, {"name": name, "balances": dict(OPENING_BALANCE),
                                            "created": time.time()})
    return doc


def _major(minor: int, currency: str) -> float:
    # JSON numbers in major units, as Kalixo sends them (e.g. 196.01).
    return float(Decimal(minor).scaleb(-EXPONENTS.get(currency, 2)))


def _wallet(name: str, with_threshold: bool = False) -> dict:
    balances = _account(name)["balances"]
    major = {cur: _major(v, cur) for cur, v in sorted(balances.items())}
    low = any(Decimal(str(v)) < LOW_BALANCE_THRESHOLD for v in major.values())
    wallet = {"balances": major, "lowBalance": low}
    if with_threshold:
        wallet["threshold"] = LOW_BALANCE_THRESHOLD
    return wallet


def _new_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "SANDBOX-" + "-".join(groups)


def _settle(order: dict) -> dict:
    """Deliver a due order once: codes issued, undelivered units refunded. In a transaction."""
    if order["settled"] or time.time() < order["completes_at"]:
        return order
    account = core.get(ACCOUNTS, order["account"])
    for line in order["lines"]:
        quantity = line["quantity"]
        behaviour = BEHAVIOUR.get(line["productId"], "ok")
        if behaviour == "fail":
            delivered = 0
        elif behaviour == "partial" and quantity >= 2:
            delivered = quantity // 2
        else:
            delivered = quantity
        line["delivered"] = delivered
        line["codes"] = []
        for _ in range(delivered):
            code = _new_code()
            core.record_issued(SUPPLIER, order["account"], str(order["id"]), code)
            line["codes"].append(code)
        refund = line["buyingPrice"] * (quantity - delivered)
        if refund:
            currency = line["buyingCurrency"]
            account["balances"][currency] = account["balances"].get(currency, 0) + refund
    delivered = sum(line["delivered"] for line in order["lines"])
    order["delivered"] = delivered
    order["status"] = ("completed" if delivered == order["total"]
                       else "failed" if delivered == 0 else "partially_completed")
    order["settled"] = True
    core.put(ACCOUNTS, account["name"], account)
    core.put(ORDERS, f"{order['account']}:{order['id']}", order)
    return order


def _find(account: str, reference: str) -> dict | None:
    with core.transaction():
        order = core.get(ORDERS, f"{account}:{reference}") if reference.isdigit() else None
        if order is None:
            ref = core.get(REFERENCES, f"{account}:{reference}")
            order = core.get(ORDERS, f"{account}:{ref['orderId']}") if ref else None
        return _settle(order) if order else None


def list_orders(account: str | None) -> list[dict]:
    docs = [d for d in core.all_docs(ORDERS) if account is None or d["account"] == account]
    result = []
    for doc in docs:
        order = _find(doc["account"], str(doc["id"])) or doc
        result.append({
            "id": order["id"], "reference": order["reference"], "status": order["status"],
            "quantity": order["total"], "delivered": order.get("delivered", 0),
            "account": order["account"], "currency": order["currency"],
            "products": [line["productId"] for line in order["lines"]],
        })
    return result


def charged(account: str) -> dict:
    """What the account was charged per order (buying prices, less refunds) and its balances,
    in major units as decimal strings: the control API's ``charges``."""
    result = []
    for doc in core.all_docs(ORDERS):
        if doc["account"] != account:
            continue
        order = _find(account, str(doc["id"])) or doc
        charged: dict[str, int] = {}
        for line in order["lines"]:
            units = line.get("delivered", 0) if order["settled"] else line["quantity"]
            cur = line["buyingCurrency"]
            charged[cur] = charged.get(cur, 0) + line["buyingPrice"] * units
        for cur, minor in charged.items():
            result.append({"id": str(order["id"]), "reference": order["reference"],
                           "currency": cur, "charged": _decimal(minor, cur)})
    balances = _account(account)["balances"]
    return {"orders": result, "balances": {c: _decimal(v, c) for c, v in balances.items()},
            "opening": {c: _decimal(v, c) for c, v in OPENING_BALANCE.items()}}


def _decimal(minor: int, currency: str) -> str:
    exponent = EXPONENTS.get(currency, 2)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def _iso(epoch: float) -> str:
    """Like Kalixo's (JavaScript) timestamps: 2026-06-02T11:05:00.000Z."""
    when = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")


def _order_body(order: dict, account: str, status: str | None = None) -> dict:
    status = status or order["status"]
    body = {"orderId": order["id"], "externalOrderCode": order["reference"], "status": status}
    if status == "processing":
        body["estimatedReadyAt"] = _iso(order["ready_at"])
        body["message"] = "Order is still processing"
    elif status == "failed":
        body["reason"] = FAIL_REASON
    elif order["settled"]:
        if status == "partially_completed":
            body["delivered"], body["total"] = order["delivered"], order["total"]
        lines = []
        for line in order["lines"]:
            item = {"productId": line["productId"], "price": line["price"],
                    "quantity": line["quantity"]}
            if BEHAVIOUR.get(line["productId"]) == "legacy":
                item["pin"] = [{"PIN": c} for c in line["codes"]]
            else:
                item["codes"] = [{"code": c} for c in line["codes"]]
            lines.append(item)
        body["products"] = lines
    body["wallet"] = _wallet(account)
    return body


# ----------------------------------------------------------------------------- routes

@router.route("GET", "/v2/ping")
@authed
def ping(request: Request, account: str) -> Response:
    return Response(200, {"status": "ok", "timestamp": _iso(time.time())})


def _matches(product: dict, field: str, wanted: str) -> bool:
    values = {v.strip().lower() for v in wanted.split(",") if v.strip()}
    if not values:
        return True
    if field == "language":
        have = {lang["languageCode"].lower() for lang in product["languages"]}
    elif field == "tag":
        have = {t.lower() for t in product["tags"]}
    elif field == "category":
        have = {product["mainCategory"].lower(), product["subCategory"].lower()}
    elif field == "country":
        have = {product["countryCode"].lower()}
    else:
        have = {product["brand"].lower()}
    return bool(have & values)


@router.route("GET", "/v2/catalog/products")
@authed
def catalog(request: Request, account: str) -> Response:
    try:
        skip = int(request.query.get("skip", "0"))
        take = int(request.query.get("take", "20"))
    except ValueError:
        return error(400, "Validation failed (numeric string is expected)")
    if skip < 0 or take < 1:
        return error(400, "Validation failed (numeric string is expected)")
    take = min(take, 100)
    products = CATALOG
    for field in ("country", "language", "brand", "category", "tag"):
        if request.query.get(field):
            products = [p for p in products if _matches(p, field, request.query[field])]
    search = request.query.get("search", "").strip().lower()
    if search:
        products = [p for p in products
                    if search in p["name"].lower() or search in p["productCode"].lower()]
    return Response(200, {"count": len(products), "skip": skip, "take": take,
                          "products": products[skip:skip + take]})


@router.route("GET", "/v2/catalog/products/{product_id}")
@authed
def catalog_product(request: Request, account: str, product_id: str) -> Response:
    if not product_id.isdigit():
        return error(400, "Validation failed (numeric string is expected)")
    product = BY_ID.get(int(product_id))
    if product is None:
        return error(404, f"Product {product_id} was not found in your catalog")
    return Response(200, product)


@router.route("GET", "/v2/wallet")
@authed
def wallet(request: Request, account: str) -> Response:
    return Response(200, _wallet(account, with_threshold=True))


@router.route("GET", "/v2/sandbox/scenarios")
@authed
def scenarios(request: Request, account: str) -> Response:
    outcomes = {"ok": "completed", "fail": "failed", "partial": "partially_completed",
                "slow": "completed after ~10s", "stock": "processing past estimate, then completed",
                "legacy": "completed (pin[] shape)"}
    return Response(200, {"scenarios": [
        {"productId": pid, "ean": code, "name": name, "expectedOutcome": outcomes[behaviour],
         "sampleLine": {"productId": pid, "quantity": 2 if behaviour == "partial" else 1,
                        "price": price if price is not None else OPEN_DEFAULT}}
        for pid, code, name, price, _b, behaviour in TEST_PRODUCTS
    ]})


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _validate_lines(body: dict, currency: str) -> list[dict] | Response:
    """The order lines priced and checked, or the documented 400/404 answer."""
    items = body.get("orderProducts")
    if not isinstance(items, list) or not items:
        return error(400, "orderProducts must not be empty")
    lines = []
    for item in items:
        pid = _as_int(item.get("productId")) if isinstance(item, dict) else None
        quantity = _as_int(item.get("quantity")) if isinstance(item, dict) else None
        if pid is None or quantity is None or quantity < 1:
            return error(400, "Each line requires a productId and a quantity of at least 1")
        product = BY_ID.get(pid)
        if product is None:
            return error(404, f"Product {item.get('productId')} was not found in your catalog")
        requested = str(item.get("currency") or currency).upper()
        if requested != product["currencyCode"]:
            return error(400, f"Product {pid} is priced in {product['currencyCode']}, "
                              f"not {requested}")
        if product["status"] != "active":
            return error(400, f"Product {pid} is not currently available.")
        price = item.get("price")
        if price is not None and _as_int(price) is None:
            return error(400, "The order could not be validated. "
                              "Check product ids, prices, and currency.")
        price = _as_int(price) if price is not None else None
        if product["denominationType"] == "open":
            if price is None:
                return error(400, f"Product {pid} is open-denomination and requires a price")
            if price < product["denominationMinValue"]:
                return error(400, f"Price for product {pid} is below the minimum allowed "
                                  f"({product['denominationMinValue']})")
            if price > product["denominationMaxValue"]:
                return error(400, f"Price for product {pid} exceeds the maximum allowed "
                                  f"({product['denominationMaxValue']})")
            if (price - product["denominationMinValue"]) % product["denominationStep"]:
                return error(400, "The order could not be validated. "
                                  "Check product ids, prices, and currency.")
            buying = int((Decimal(price) * (100 - product["discountPercentage"]) / 100)
                         .to_integral_value(ROUND_HALF_UP))
        else:
            if price is not None and price != product["price"]:
                return error(400, f"Product {pid} price mismatch: expected {product['price']}")
            price = product["price"]
            buying = product["buyingPrice"]
        lines.append({"productId": pid, "price": price, "quantity": quantity,
                      "buyingPrice": buying, "buyingCurrency": product["buyingCurrencyCode"]})
    return lines


def _eta_seconds(lines: list[dict]) -> tuple[Decimal, Decimal]:
    """(seconds until estimatedReadyAt, seconds until actually delivered)."""
    units = sum(line["quantity"] for line in lines)
    eta = BASE_SECONDS + PER_UNIT_SECONDS * units
    behaviours = {BEHAVIOUR.get(line["productId"]) for line in lines}
    if "slow" in behaviours:
        eta += SLOW_SECONDS - BASE_SECONDS
    done = eta + OUT_OF_STOCK_EXTRA_SECONDS if "stock" in behaviours else eta
    return eta, done


@router.route("POST", "/v2/orders")
@authed
def place_order(request: Request, account: str) -> Response:
    try:
        body = request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error(400, "The order could not be validated. Check product ids, prices, "
                          "and currency.")
    reference = body.get("externalOrderCode")
    currency = body.get("currency")
    if not isinstance(reference, str) or not reference.strip() or not isinstance(currency, str):
        return error(400, "The order could not be placed. Check your request and try again.")
    if core.get(REFERENCES, f"{account}:{reference}"):
        return error(409, "An order with this external order code already exists.")
    lines = _validate_lines(body, currency)
    if isinstance(lines, Response):
        return lines
    total_price = sum(line["price"] * line["quantity"] for line in lines)
    if body.get("price") is not None and _as_int(body.get("price")) != total_price:
        return error(400, f"Order price mismatch: expected total {total_price}")
    eta, done = _eta_seconds(lines)
    now = time.time()
    with core.transaction():
        if core.get(REFERENCES, f"{account}:{reference}"):  # a concurrent twin won
            return error(409, "An order with this external order code already exists.")
        doc = _account(account)
        debits: dict[str, int] = {}
        for line in lines:
            debits[line["buyingCurrency"]] = (debits.get(line["buyingCurrency"], 0)
                                              + line["buyingPrice"] * line["quantity"])
        for cur, amount in debits.items():
            if doc["balances"].get(cur, 0) < amount:
                return error(422, "Your account order limit has been exceeded. "
                                  "Contact support for assistance.")
        for cur, amount in debits.items():
            doc["balances"][cur] -= amount
        core.put(ACCOUNTS, account, doc)
        order_id = 59000 + core.next_number(f"{SUPPLIER}:order")
        order = {
            "id": order_id, "account": account, "reference": reference,
            "currency": currency.upper(), "lines": lines, "status": "processing",
            "total": sum(line["quantity"] for line in lines), "delivered": 0,
            "created": now, "ready_at": now + float(eta), "completes_at": now + float(done),
            "settled": False,
        }
        core.put(ORDERS, f"{account}:{order_id}", order)
        core.put(REFERENCES, f"{account}:{reference}", {"orderId": order_id})
    return Response(202, {
        "orderId": order_id, "externalOrderCode": reference, "status": "processing",
        "estimatedReadyAt": _iso(order["ready_at"]), "wallet": _wallet(account),
    })


@router.route("GET", "/v2/orders/{reference}")
@authed
def get_order(request: Request, account: str, reference: str) -> Response:
    order = _find(account, reference)
    if order is None:
        return error(404, f"Order {reference} not found")
    status = None
    if core.take_fault(SUPPLIER, account, "unknown_status"):
        status = "on_hold"  # a status the docs do not list
    body = _order_body(order, account, status)
    if status:
        body["message"] = "Order is on hold"
    return Response(200, body)

