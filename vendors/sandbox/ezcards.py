"""EZ Cards API v2 simulator, written from the EZ Cards documents (instant order excerpts and
the OpenAPI description), not from the adapter.

Auth: every call sends ``x-api-key: ez_test_<name>`` and ``Authorization: Bearer tok_<name>``
(the same ``<name>``); the account ``<name>`` is created on first use with balances in USD, EUR
and CAD. Anything else is 401.

Every answer is wrapped ``{"requestId", "data"}``; errors are ``{"error", "message"}``.

Test products (besides a catalog of regular gift cards):
  EZTEST-INSTOCK      USD, in stock: an instant order is COMPLETED at once (numeric pinCode)
  EZTEST-DELAYED      USD, out of stock: PROCESSING, codes COMPLETED after DELAYED_SECONDS
  EZTEST-PROGRESSIVE  USD, codes complete one by one, PROGRESS_STEP seconds apart
  EZTEST-CANCELLED    USD, PROCESSING then CANCELLED after CANCEL_SECONDS, balance refunded
  EZTEST-EUR          EUR, in stock; pay in USD (payWithCurrency) for a cross-currency order
  EZTEST-GBP          GBP, a currency the account holds no balance in: 422 UNSUPPORTED_CURRENCY
                      unless payWithCurrency names one of its balances (then settled with FX)
Bulk orders (POST /v2/orders) always answer PROCESSING; in-stock codes follow a second later.
"""

import hashlib
import re
import secrets
import time
import uuid
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal

from vendors.sandbox import core
from vendors.sandbox.core import Request, Response, Router

SUPPLIER = "ezcards"
PREFIX = "/ezcards"
BASE_PATH = "/ezcards"
RATE_LIMIT = 60  # not documented by EZ Cards; a conservative per-account limit
SERVER_ERROR_STATUS = 500  # the only 5xx the documents list
DEMO_CREDENTIALS = {"api_key": "ez_test_demo", "token": "tok_demo"}

ACCOUNTS_NS = f"{SUPPLIER}:accounts"
STARTING_BALANCES = {"USD": "10000.00", "EUR": "5000.00", "CAD": "5000.00"}
DELAYED_SECONDS = 3.0
PROGRESS_STEP = 1.0
CANCEL_SECONDS = 2.0
BULK_DELAY = 1.0
API_KEY = re.compile(r"^ez_test_([A-Za-z0-9_-]{1,64})$")
CENT = Decimal("0.01")

router = Router()

# Rates are "EZ Rates" with four decimals, quote currency per one unit of base currency.
USD_RATES = {"USD": Decimal("1"), "EUR": Decimal("0.8610"), "CAD": Decimal("1.4102"),
             "GBP": Decimal("0.7460")}
PRODUCT_CURRENCIES = ["USD", "CAD", "EUR", "GBP"]
RATES_UPDATED_AT = "2025-10-03T04:00:07Z"


def rate(base: str, quote: str) -> Decimal:
    return (USD_RATES[quote] / USD_RATES[base]).quantize(Decimal("0.0001"), ROUND_HALF_UP)


# --- catalog -----------------------------------------------------------------------------

def _sku(seed: str) -> str:
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    digest = hashlib.sha256(seed.encode()).digest()
    chars = "".join(alphabet[b % len(alphabet)] for b in digest[:8])
    return f"{chars[:3]}-{chars[3:5]}-{chars[5:8]}"


def _tiers(price: Decimal) -> list[dict]:
    return [
        {"price": str(price), "fromQuantity": 1, "toQuantity": 9},
        {"price": str((price * Decimal("0.995")).quantize(CENT, ROUND_HALF_UP)),
         "fromQuantity": 10, "toQuantity": 99},
        {"price": str((price * Decimal("0.99")).quantize(CENT, ROUND_HALF_UP)),
         "fromQuantity": 100, "toQuantity": None},
    ]


def _product(sku: str, name: str, brand: str, category: str, country: str, currency: str,
             face: str, price: str, *, behaviour: str = "instock", pin: bool = False,
             tiers: list[dict] | None = None) -> dict:
    face_value, unit = Decimal(face), Decimal(price)
    off = ((face_value - unit) / face_value * 100).quantize(CENT, ROUND_HALF_UP)
    return {
        "sku": sku, "name": name, "brand": brand, "brandCategory": category,
        "brandSubCategory": None, "types": ["Gift Card"], "format": "D", "country": country,
        "currency": currency, "imageUrl": f"https://cdn.example.com/ezcards/{sku}.png",
        "prices": tiers or _tiers(unit), "faceValue": str(face_value),
        "percentageOffFaceValue": str(off), "isInstantDeliverySupported": True,
        "descriptions": [f"{brand} digital gift card worth {face} {currency}."],
        "instructions": [f"Redeem the code at {brand.lower().replace(' ', '')}.com."],
        "termConditions": ["Non-refundable. Not exchangeable for cash."],
        "_behaviour": behaviour, "_pin": pin,
    }


def _catalog() -> list[dict]:
    products = [
        _product("EZTEST-INSTOCK", "EZ Test In Stock $10", "EZ Test", "Test", "US", "USD",
                 "10.00", "9.50", pin=True, tiers=[
                     {"price": "9.50", "fromQuantity": 1, "toQuantity": 9},
                     {"price": "9.40", "fromQuantity": 10, "toQuantity": 49},
                     {"price": "9.25", "fromQuantity": 50, "toQuantity": None}]),
        _product("EZTEST-DELAYED", "EZ Test Out Of Stock $10", "EZ Test", "Test", "US", "USD",
                 "10.00", "9.60", behaviour="delayed"),
        _product("EZTEST-PROGRESSIVE", "EZ Test Progressive $5", "EZ Test", "Test", "US", "USD",
                 "5.00", "4.80", behaviour="progressive"),
        _product("EZTEST-CANCELLED", "EZ Test Cancelled $10", "EZ Test", "Test", "US", "USD",
                 "10.00", "9.70", behaviour="cancelled"),
        _product("EZTEST-EUR", "EZ Test Euro €10", "EZ Test", "Test", "DE", "EUR",
                 "10.00", "9.70"),
        _product("EZTEST-GBP", "EZ Test Sterling £10", "EZ Test", "Test", "GB", "GBP",
                 "10.00", "9.60"),
    ]
    brands = [
        ("Amazon", "Retail", "2.00", False), ("Apple", "Entertainment", "3.50", False),
        ("Google Play", "Entertainment", "4.00", False), ("Steam", "Gaming", "5.00", False),
        ("Xbox", "Gaming", "6.00", False), ("PlayStation", "Gaming", "5.50", False),
        ("Netflix", "Entertainment", "3.00", False), ("Spotify", "Entertainment", "4.50", False),
        ("Uber", "Travel", "2.50", False), ("Airbnb", "Travel", "1.50", False),
        ("Nintendo eShop", "Gaming", "4.00", False), ("Razer Gold", "Gaming", "7.00", True),
    ]
    countries = [("US", "USD", "$"), ("CA", "CAD", "C$"), ("DE", "EUR", "€"),
                 ("FR", "EUR", "€"), ("GB", "GBP", "£")]
    for brand, category, off, pin in brands:
        for country, currency, symbol in countries:
            for face in ("10", "25", "50"):
                price = (Decimal(face) * (100 - Decimal(off)) / 100).quantize(CENT, ROUND_HALF_UP)
                products.append(_product(
                    _sku(f"{brand}|{country}|{face}"), f"{brand} {country} {symbol}{face}",
                    brand, category, country, currency, f"{face}.00", str(price), pin=pin))
    return products


CATALOG = _catalog()
PRODUCTS = {p["sku"]: p for p in CATALOG}
assert len(PRODUCTS) == len(CATALOG), "catalog SKUs must be unique"


def _public(product: dict) -> dict:
    return {k: v for k, v in product.items() if not k.startswith("_")}


def tier_price(product: dict, quantity: int) -> Decimal | None:
    for tier in product["prices"]:
        top = tier["toQuantity"]
        if tier["fromQuantity"] <= quantity and (top is None or quantity <= top):
            return Decimal(tier["price"])
    return None


# --- protocol helpers ----------------------------------------------------------------------

def ok(data: object) -> Response:
    return Response(200, {"requestId": str(uuid.uuid4()), "data": data})


ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "BAD_REQUEST",
               409: "CONFLICT", 422: "UNPROCESSABLE_ENTITY", 429: "TOO_MANY_REQUESTS",
               500: "INTERNAL_SERVER_ERROR"}


def error(status: int, message: str, code: str = "") -> Response:
    return Response(status, {"error": code or ERROR_CODES.get(status, "ERROR"),
                             "message": message})


def account_of(request: Request) -> str | None:
    match = API_KEY.match(request.header("x-api-key").strip())
    if not match:
        return None
    name = match.group(1)
    if request.header("Authorization").strip() != f"Bearer tok_{name}":
        return None
    return name


def _account(name: str) -> dict:
    """The account document, created with its starting balances on first use."""
    with core.transaction():
        doc = core.get(ACCOUNTS_NS, name)
        if doc is None:
            doc = core.put(ACCOUNTS_NS, name, {"name": name, "balances": dict(STARTING_BALANCES)})
    return doc


def _orders_ns(account: str) -> str:
    return f"{SUPPLIER}:orders:{account}"


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    value = int(raw)  # ValueError -> 400 by the caller
    if value < 1:
        raise ValueError(name)
    return value


def _page(items: list, page: int, limit: int) -> dict:
    start = (page - 1) * limit
    return {"total": len(items), "page": page, "pageSize": limit,
            "totalPage": (len(items) + limit - 1) // limit, "items": items[start:start + limit]}


def _money(amount: Decimal, currency: str) -> dict:
    return {"amount": str(amount.quantize(CENT)), "currency": currency}


# --- order progress, computed on read ------------------------------------------------------

def _refresh(account: str, order: dict) -> dict:
    """Issue the codes that are due, cancel and refund when due. Call inside a transaction."""
    now = time.time()
    changed = False
    if order.get("cancel_at") and now >= order["cancel_at"] and not order.get("cancelled"):
        order["cancelled"] = True
        refund = sum(Decimal(c["price"]) for c in order["codes"] if c["redeemCode"] is None)
        if refund:
            doc = _account(account)
            currency = order["payWithCurrency"]
            doc["balances"][currency] = str(Decimal(doc["balances"][currency]) + refund)
            core.put(ACCOUNTS_NS, account, doc)
            order["refunded"] = str(refund)
        changed = True
    if not order.get("cancelled"):
        for code in order["codes"]:
            if code["redeemCode"] is None and code["ready_at"] is not None \
                    and now >= code["ready_at"]:
                _issue(account, order, code)
                changed = True
    if changed:
        core.put(_orders_ns(account), order["transactionId"], order)
    return order


def _issue(account: str, order: dict, code: dict) -> None:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    code["redeemCode"] = "-".join(
        "".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(6))
    code["pinCode"] = 1000 + secrets.randbelow(9000) if PRODUCTS[code["sku"]]["_pin"] else None
    core.record_issued(SUPPLIER, account, order["transactionId"], code["redeemCode"],
                       "" if code["pinCode"] is None else str(code["pinCode"]))


def _status(order: dict, sku: str | None = None) -> str:
    codes = [c for c in order["codes"] if sku is None or c["sku"] == sku]
    if order.get("cancelled"):
        return "CANCELLED"
    if all(c["redeemCode"] is not None for c in codes):
        return "COMPLETED"
    return "PROCESSING"


def _load(account: str) -> list[dict]:
    with core.transaction():
        return [_refresh(account, o) for o in core.all_docs(_orders_ns(account))]


def _order_view(order: dict, *, created: bool, status: str | None = None) -> dict:
    """Create-order answers carry payWithCurrency and FX; Get Orders answers carry ezOrderNumber."""
    products = []
    for line in order["products"]:
        item = {"sku": line["sku"], "quantity": line["quantity"]}
        if created and line.get("unitPriceOriginal"):
            item["unitPriceOriginal"] = line["unitPriceOriginal"]
        item.update({"unitPrice": line["unitPrice"], "totalPrice": line["totalPrice"],
                     "status": _status(order, line["sku"])})
        products.append(item)
    view = {"transactionId": order["transactionId"],
            "clientOrderNumber": order["clientOrderNumber"]}
    if created:
        view["payWithCurrency"] = order["payWithCurrency"]
    else:
        view["ezOrderNumber"] = order["ezOrderNumber"]
    view.update({"grandTotal": order["grandTotal"], "createdAt": order["createdAt"],
                 "status": status or _status(order), "products": products})
    if created and order.get("fxSummary"):
        view["fxSummary"] = order["fxSummary"]
    return view


# --- endpoints -----------------------------------------------------------------------------

def _authorised(request: Request) -> str | None:
    name = account_of(request)
    if name is not None:
        _account(name)
    return name


UNAUTHORISED = "Invalid or missing x-api-key or bearer token."


@router.route("GET", "/v2/balances")
def get_balances(request: Request) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, UNAUTHORISED)
    _load(account)  # settle refunds that fell due
    balances = _account(account)["balances"]
    wanted = request.query.get("currency", "").upper()
    return ok([{"balance": str(Decimal(amount).quantize(CENT)), "currency": currency}
               for currency, amount in balances.items() if not wanted or currency == wanted])


@router.route("GET", "/v2/products")
def get_products(request: Request) -> Response:
    if _authorised(request) is None:
        return error(401, UNAUTHORISED)
    try:
        limit = _int_param(request, "limit", 1000)
        page = _int_param(request, "page", 1)
    except ValueError:
        return error(400, "limit and page must be positive integers.")
    items = CATALOG
    if request.query.get("sku"):
        wanted = {s.strip() for s in request.query["sku"].split(",") if s.strip()}
        items = [p for p in CATALOG if p["sku"] in wanted]
    return ok(_page([_public(p) for p in items], page, limit))


@router.route("GET", "/v2/exchange-rates")
def get_exchange_rates(request: Request) -> Response:
    if _authorised(request) is None:
        return error(401, UNAUTHORISED)
    pairs: list[tuple[str, str]] = []
    if request.query.get("pairs"):
        for pair in request.query["pairs"].split(","):
            pair = pair.strip().upper()
            if len(pair) != 6 or pair[:3] not in USD_RATES or pair[3:] not in USD_RATES:
                return error(400, f"Unsupported currency pair {pair[:12]!r}.")
            pairs.append((pair[:3], pair[3:]))
    else:
        base, quote = request.query.get("base", "").upper(), request.query.get("quote", "").upper()
        pairs = [(b, q) for b in USD_RATES for q in USD_RATES
                 if b != q and (not base or b == base) and (not quote or q == quote)]
    return ok({"updatedAt": RATES_UPDATED_AT, "productCurrencies": PRODUCT_CURRENCIES,
               "rates": [{"pair": b + q, "base": b, "quote": q, "rate": str(rate(b, q))}
                         for b, q in pairs]})


def _create(request: Request, *, instant: bool) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, UNAUTHORISED)
    try:
        body = request.json()
    except ValueError:
        return error(400, "The request body must be JSON.")
    if not isinstance(body, dict):
        return error(400, "The request body must be a JSON object.")
    if instant:
        lines = [{"sku": body.get("sku"), "quantity": 1}]
    else:
        lines = body.get("products")
        if not isinstance(lines, list) or not lines:
            return error(400, "products must be a non-empty list.")
    for line in lines:
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            return error(400, "Every product needs a sku.")
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return error(400, "quantity must be a positive integer.")
        if line["sku"] not in PRODUCTS:
            return error(400, f"Unknown sku {line['sku'][:40]!r}.", "PRODUCT_NOT_FOUND")
    currencies = {PRODUCTS[line["sku"]]["currency"] for line in lines}
    if len(currencies) > 1:
        return error(400, "One order can only contain products in a single currency.")
    product_currency = currencies.pop()
    reference = body.get("clientOrderNumber")
    if reference is not None and not isinstance(reference, str):
        return error(400, "clientOrderNumber must be a string.")
    pay_with = body.get("payWithCurrency")
    if pay_with is not None and not isinstance(pay_with, str):
        return error(400, "payWithCurrency must be a string.")

    with core.transaction():
        doc = _account(account)
        if reference and body.get("enableClientOrderNumberDupCheck") is True and any(
            o["clientOrderNumber"] == reference for o in core.all_docs(_orders_ns(account))
        ):
            return Response(409, {"error": "CLIENT_ORDER_NUMBER_DUPLICATE",
                                  "clientOrderNumber": reference})
        balances = doc["balances"]
        pay = (pay_with or product_currency).upper()
        if pay not in balances:
            return error(422, "payWithCurrency is required or not supported for this account.",
                         "UNSUPPORTED_CURRENCY")
        fx = rate(product_currency, pay) if pay != product_currency else None
        now = time.time()
        order_lines, codes, total = [], [], Decimal("0")
        for line in lines:
            product = PRODUCTS[line["sku"]]
            original = tier_price(product, line["quantity"])
            if original is None:
                return error(400, f"No price for quantity {line['quantity']}.")
            # The documented example (9.70 EUR at 1.1829 = 11.48 USD) rounds up.
            unit = (original * fx).quantize(CENT, ROUND_UP) if fx else original
            line_total = unit * line["quantity"]
            total += line_total
            order_lines.append({
                "sku": line["sku"], "quantity": line["quantity"],
                "unitPriceOriginal": _money(original, product_currency) if fx else None,
                "unitPrice": _money(unit, pay), "totalPrice": _money(line_total, pay)})
            for i in range(line["quantity"]):
                codes.append({"stockId": core.next_number(f"{SUPPLIER}:stock"),
                              "sku": line["sku"], "price": str(unit), "redeemCode": None,
                              "pinCode": None,
                              "ready_at": _ready_at(now, product["_behaviour"], i, instant)})
        if Decimal(balances[pay]) < total:
            return error(400, "Insufficient balance.", "INSUFFICIENT_BALANCE")
        balances[pay] = str(Decimal(balances[pay]) - total)
        core.put(ACCOUNTS_NS, account, doc)
        transaction_id = str(100000 + core.next_number(f"{SUPPLIER}:transaction"))
        behaviours = {PRODUCTS[line["sku"]]["_behaviour"] for line in lines}
        order = {
            "transactionId": transaction_id, "ezOrderNumber": f"EZ{transaction_id}",
            "account": account, "clientOrderNumber": reference or "",
            "payWithCurrency": pay, "grandTotal": _money(total, pay),
            "createdAt": core.now_iso(), "created": now, "instant": instant,
            "products": order_lines, "codes": codes,
            "cancel_at": now + CANCEL_SECONDS if "cancelled" in behaviours else None,
            "fxSummary": [{"pair": f"{product_currency}/{pay}", "rate": float(fx),
                           "asOfDate": RATES_UPDATED_AT[:10]}] if fx else None,
        }
        core.put(_orders_ns(account), transaction_id, order)
        order = _refresh(account, order)
    status = _status(order) if instant else "PROCESSING"
    return ok(_order_view(order, created=True, status=status))


def _delay(behaviour: str, index: int, instant: bool) -> float | None:
    if behaviour == "cancelled":
        return None  # never delivered
    if behaviour == "delayed":
        return DELAYED_SECONDS
    if behaviour == "progressive":
        return PROGRESS_STEP * (index + 1)
    return 0.0 if instant else BULK_DELAY


def _ready_at(now: float, behaviour: str, index: int, instant: bool) -> float | None:
    delay = _delay(behaviour, index, instant)
    return None if delay is None else now + delay


@router.route("POST", "/v2/orders/instant")
def create_instant_order(request: Request) -> Response:
    return _create(request, instant=True)


@router.route("POST", "/v2/orders")
def create_bulk_order(request: Request) -> Response:
    return _create(request, instant=False)


@router.route("GET", "/v2/orders")
def get_orders(request: Request) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, UNAUTHORISED)
    try:
        limit = _int_param(request, "limit", 10)
        page = _int_param(request, "page", 1)
    except ValueError:
        return error(400, "limit and page must be positive integers.")
    orders = sorted(_load(account), key=lambda o: o["created"], reverse=True)
    if request.query.get("transactionId"):
        orders = [o for o in orders if o["transactionId"] == request.query["transactionId"]]
    if request.query.get("clientOrderNumber"):
        orders = [o for o in orders
                  if o["clientOrderNumber"] == request.query["clientOrderNumber"]]
    weird = orders and core.take_fault(SUPPLIER, account, "unknown_status")
    items = [_order_view(o, created=False, status="ON_HOLD" if weird else None) for o in orders]
    return ok(_page(items, page, limit))


@router.route("GET", "/v2/orders/{transaction_id}/codes")
def get_codes(request: Request, transaction_id: str) -> Response:
    account = _authorised(request)
    if account is None:
        return error(401, UNAUTHORISED)
    with core.transaction():
        order = core.get(_orders_ns(account), transaction_id)
        if order is None:
            return error(404, "The specified codes could not be found.")
        order = _refresh(account, order)
    sku_filter = request.query.get("sku")
    stock_ids = {s.strip() for s in request.query.get("stockIds", "").split(",") if s.strip()}
    data = []
    for line in order["products"]:
        if sku_filter and line["sku"] != sku_filter:
            continue
        codes = [{"stockId": c["stockId"],
                  "status": "COMPLETED" if c["redeemCode"] is not None else "PROCESSING",
                  "redeemCode": c["redeemCode"], "pinCode": c["pinCode"]}
                 for c in order["codes"]
                 if c["sku"] == line["sku"] and (not stock_ids or str(c["stockId"]) in stock_ids)]
        data.append({"sku": line["sku"], "quantity": line["quantity"], "codes": codes})
    return ok(data)


def charged(account: str) -> dict:
    """What the account was charged per order (grand total less refunds) and its balances,
    as decimal strings: the control API's ``charges``."""
    result = []
    for order in _load(account):
        charged = Decimal(order["grandTotal"]["amount"]) - Decimal(order.get("refunded", "0"))
        result.append({"id": order["transactionId"], "reference": order["clientOrderNumber"],
                       "currency": order["payWithCurrency"],
                       "charged": str(charged.quantize(CENT))})
    balances = _account(account)["balances"]
    return {"orders": result,
            "balances": {c: str(Decimal(v).quantize(CENT)) for c, v in balances.items()},
            "opening": dict(STARTING_BALANCES)}


def list_orders(account: str | None) -> list[dict]:
    names = [account] if account else [a["name"] for a in core.all_docs(ACCOUNTS_NS)]
    result = []
    for name in names:
        for order in _load(name):
            result.append({
                "id": order["transactionId"], "reference": order["clientOrderNumber"],
                "status": _status(order), "account": name,
                "quantity": sum(line["quantity"] for line in order["products"]),
                "delivered": sum(1 for c in order["codes"] if c["redeemCode"] is not None),
                "grandTotal": order["grandTotal"], "instant": order["instant"],
            })
    return result
