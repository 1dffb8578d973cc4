"""The EZ Cards adapter against fake HTTP (the `responses` library at the portal's seam)."""

import json
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from vendors.adapters.base import Kind, OrderRequest, SupplierError, SupplierStatus, map_status
from vendors.adapters.ezcards import STATUSES, EZCards

BASE = "https://sandboxapi.ezcards.io"
HEADERS = {"x-api-key": "ez_test_abc", "Authorization": "Bearer tok_abc"}


@pytest.fixture
def adapter(token_cache) -> EZCards:
    return EZCards(base_url=BASE + "/", credentials={"api_key": "ez_test_abc", "token": "tok_abc"},
                   cache=token_cache, account="7")


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def wrap(data) -> dict:
    return {"requestId": "c4c7b997-79a5-4bde-9f17-47ad7eac9ed4", "data": data}


def money(amount: str, currency: str = "USD") -> dict:
    return {"amount": amount, "currency": currency}


def order_data(status: str = "COMPLETED", *, tx: str = "1234", ref: str = "po-1", quantity=1,
               **extra) -> dict:
    return {
        "transactionId": tx, "clientOrderNumber": ref, "grandTotal": money("9.75"),
        "createdAt": "2025-10-06T09:00:00Z", "status": status,
        "products": [{"sku": "8PX-UF-Y5U", "quantity": quantity, "unitPrice": money("9.75"),
                      "totalPrice": money("9.75"), "status": status}],
        **extra,
    }


def code(stock_id: int, status: str = "COMPLETED", redeem="J72D-I83E-N87F", pin=1234) -> dict:
    if status != "COMPLETED":
        redeem = pin = None
    return {"stockId": stock_id, "status": status, "redeemCode": redeem, "pinCode": pin}


def codes_data(*codes, quantity=None) -> list:
    return [{"sku": "8PX-UF-Y5U", "quantity": quantity or len(codes), "codes": list(codes)}]


def listing(*orders) -> dict:
    return {"total": len(orders), "page": 1, "pageSize": 10, "totalPage": 1, "items": list(orders)}


def request(quantity: int = 1, pay: str = "", ref: str = "po-1") -> OrderRequest:
    return OrderRequest(client_reference=ref, product_id="8PX-UF-Y5U", sku="8PX-UF-Y5U",
                        quantity=quantity, currency="USD", pay_with_currency=pay)


def product(sku="8PX-UF-Y5U", currency="USD", prices=None, **extra) -> dict:
    return {
        "sku": sku, "name": "Amazon US $10", "brand": "Amazon", "brandCategory": "Retail",
        "types": ["Gift Card"], "format": "D", "country": "US", "currency": currency,
        "faceValue": "10.00", "percentageOffFaceValue": "2.50",
        "isInstantDeliverySupported": True, "descriptions": ["d"], "instructions": ["i"],
        "termConditions": ["No refunds.", "No cash."],
        "prices": prices if prices is not None else [
            {"price": "9.75", "fromQuantity": 1, "toQuantity": 9},
            {"price": "9.70", "fromQuantity": 10, "toQuantity": None}],
        **extra,
    }


def body_of(call) -> dict:
    return json.loads(call.request.body)


# --- auth, envelope, errors -----------------------------------------------------------------

def test_it_sends_the_api_key_and_the_bearer_token_on_every_call(adapter, fake):
    fake.get(BASE + "/v2/balances", json=wrap([]),
             match=[matchers.header_matcher(HEADERS)])
    assert adapter.fetch_balances() == []


def test_it_refuses_to_call_without_both_credentials(token_cache, fake):
    adapter = EZCards(base_url=BASE, credentials={"api_key": "ez_test_abc"}, cache=token_cache)
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert not caught.value.retryable and len(fake.calls) == 0


def test_it_reports_rejected_credentials_without_retrying_or_leaking_them(adapter, fake):
    fake.get(BASE + "/v2/balances", status=401,
             json={"error": "UNAUTHORIZED", "message": "Invalid token"})
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert caught.value.status_code == 401 and not caught.value.retryable
    assert "tok_abc" not in str(caught.value) and "ez_test_abc" not in str(caught.value)
    assert len(fake.calls) == 1


def test_it_reports_the_rate_limit_with_retry_after(adapter, fake):
    fake.get(BASE + "/v2/balances", status=429, headers={"Retry-After": "7"},
             json={"error": "TOO_MANY_REQUESTS", "message": "slow down"})
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert caught.value.retryable and caught.value.retry_after == 7


def test_it_rejects_an_answer_without_the_data_envelope(adapter, fake):
    fake.get(BASE + "/v2/balances", json=[{"balance": "1.00", "currency": "USD"}])
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert not caught.value.retryable and not caught.value.outcome_unknown


def test_it_rejects_a_body_that_is_not_json(adapter, fake):
    fake.get(BASE + "/v2/balances", body="<html>oops</html>")
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert not caught.value.retryable


def test_it_reads_an_undocumented_400_body_without_failing(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", status=400, body="Bad Request")
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.status_code == 400 and caught.value.code == "400"
    assert not caught.value.retryable and not caught.value.outcome_unknown


# --- balances and catalog -------------------------------------------------------------------

def test_it_reads_balances_in_several_currencies_as_decimals(adapter, fake):
    fake.get(BASE + "/v2/balances", json=wrap([{"balance": "10000.00", "currency": "USD"},
                                               {"balance": "5000.10", "currency": "cad"}]))
    balances = {b.currency: b.amount for b in adapter.fetch_balances()}
    assert balances == {"USD": Decimal("10000.00"), "CAD": Decimal("5000.10")}
    assert all(isinstance(v, Decimal) for v in balances.values())


@pytest.mark.parametrize("data", [{"balance": "1"}, [{"currency": "USD"}],
                                  [{"balance": "abc", "currency": "USD"}],
                                  [{"balance": "1.00", "currency": "XXQ"}]])
def test_it_rejects_malformed_balances(adapter, fake, data):
    fake.get(BASE + "/v2/balances", json=wrap(data))
    with pytest.raises(SupplierError):
        adapter.fetch_balances()


def test_it_pages_through_the_catalog_and_maps_price_tiers(adapter, fake):
    adapter.page_size = 2
    pages = {1: [product("A"), product("B", currency="EUR")], 2: [product("C")]}
    for page, items in pages.items():
        fake.get(BASE + "/v2/products", match=[matchers.query_param_matcher(
            {"limit": "2", "page": str(page)})],
            json=wrap({"total": 3, "page": page, "pageSize": 2, "totalPage": 2,
                       "items": items}))
    products = list(adapter.fetch_catalog())
    assert [p.sku for p in products] == ["A", "B", "C"]
    first = products[0]
    assert first.supplier_product_id == "A" and first.cost == Decimal("9.75")
    assert first.cost_currency == "USD" and first.face_value == Decimal("10.00")
    assert first.price_tiers == [
        {"from_quantity": 1, "to_quantity": 9, "price": "9.75", "currency": "USD"},
        {"from_quantity": 10, "to_quantity": None, "price": "9.70", "currency": "USD"}]
    assert first.delivery == "instant" and first.terms == "No refunds.\nNo cash."
    assert first.country == "US" and first.extra["percentageOffFaceValue"] == "2.50"
    assert products[1].cost_currency == "EUR"


def test_it_stops_on_an_empty_page(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap({"total": 9, "page": 1, "pageSize": 100,
                                               "totalPage": 5, "items": []}))
    assert list(adapter.fetch_catalog()) == []
    assert len(fake.calls) == 1


def test_it_costs_a_product_without_a_tier_for_one_as_unknown(adapter, fake):
    item = product(prices=[{"price": "9.00", "fromQuantity": 5, "toQuantity": None}],
                   isInstantDeliverySupported=False)
    fake.get(BASE + "/v2/products", json=wrap(listing(item)))
    info = next(adapter.fetch_catalog())
    assert info.cost is None and info.delivery == "delayed"


@pytest.mark.parametrize("item", [
    {"name": "no sku"},
    product(prices="9.75"),
    product(prices=[{"price": "x", "fromQuantity": 1}]),
    product(prices=[{"price": "1.00", "fromQuantity": "1"}]),
    product(currency="ZZZ"),
    product(faceValue=None),
])
def test_it_rejects_malformed_products(adapter, fake, item):
    fake.get(BASE + "/v2/products", json=wrap(listing(item)))
    with pytest.raises(SupplierError) as caught:
        list(adapter.fetch_catalog())
    assert not caught.value.retryable


# --- quote --------------------------------------------------------------------------------------

def test_it_quotes_the_tier_for_the_quantity(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap(listing(product())))
    quote = adapter.quote(request(quantity=12))
    assert quote.unit_cost.amount == Decimal("9.70")
    assert quote.total_cost.amount == Decimal("116.40") and quote.total_cost.currency == "USD"
    assert fake.calls[0].request.params["sku"] == "8PX-UF-Y5U"


def test_it_quotes_across_currencies_with_the_ez_rate_rounded_up(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap(listing(product(
        currency="EUR", prices=[{"price": "9.70", "fromQuantity": 1, "toQuantity": None}]))))
    fake.get(BASE + "/v2/exchange-rates", json=wrap({
        "updatedAt": "2025-10-06T00:00:00Z", "productCurrencies": ["USD", "EUR"],
        "rates": [{"pair": "EURUSD", "base": "EUR", "quote": "USD", "rate": "1.1829"}]}))
    quote = adapter.quote(request(quantity=2, pay="USD"))
    assert quote.unit_cost.amount == Decimal("11.48")  # 11.47413 rounded up, as documented
    assert quote.total_cost.amount == Decimal("22.96") and quote.total_cost.currency == "USD"
    assert quote.details["unitPriceOriginal"] == {"amount": "9.70", "currency": "EUR"}
    assert quote.details["fx"]["rate"] == "1.1829"


def test_it_inverts_a_rate_quoted_the_other_way_round(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap(listing(product(currency="CAD"))))
    fake.get(BASE + "/v2/exchange-rates", json=wrap({
        "updatedAt": "x", "rates": [{"pair": "USDCAD", "base": "USD", "quote": "CAD",
                                     "rate": "1.2500"}]}))
    quote = adapter.quote(request(pay="USD"))
    assert quote.unit_cost.amount == Decimal("7.80")  # 9.75 / 1.25


def test_it_will_not_quote_an_unknown_sku(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap(listing()))
    with pytest.raises(SupplierError) as caught:
        adapter.quote(request())
    assert caught.value.code == "PRODUCT_NOT_FOUND"


# --- submit ----------------------------------------------------------------------------------

def test_it_places_an_instant_order_and_reads_its_code(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", json=wrap(order_data(payWithCurrency="USD")))
    fake.get(BASE + "/v2/orders/1234/codes", json=wrap(codes_data(code(1))))
    result = adapter.submit_order(request())
    assert body_of(fake.calls[0]) == {"clientOrderNumber": "po-1", "sku": "8PX-UF-Y5U",
                                      "enableClientOrderNumberDupCheck": True}
    assert result.status == SupplierStatus.COMPLETED and result.supplier_order_id == "1234"
    assert (result.delivered, result.total) == (1, 1)
    assert result.codes[0].code == "J72D-I83E-N87F" and result.codes[0].pin == "1234"
    assert result.codes[0].serial == "1" and result.codes[0].sku == "8PX-UF-Y5U"
    assert result.cost.amount == Decimal("9.75") and result.cost.currency == "USD"
    assert "J72D" not in repr(result)


def test_it_keeps_an_instant_order_processing_when_out_of_stock(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", json=wrap(order_data("PROCESSING")))
    result = adapter.submit_order(request())
    assert result.status == SupplierStatus.PROCESSING and result.codes == []
    assert len(fake.calls) == 1


def test_it_sends_more_than_one_code_as_a_bulk_order(adapter, fake):
    fake.post(BASE + "/v2/orders", json=wrap(order_data("PROCESSING", quantity=5)))
    result = adapter.submit_order(request(quantity=5, pay="eur"))
    assert body_of(fake.calls[0]) == {
        "clientOrderNumber": "po-1", "enableClientOrderNumberDupCheck": True,
        "products": [{"sku": "8PX-UF-Y5U", "quantity": 5}], "payWithCurrency": "EUR"}
    assert result.status == SupplierStatus.PROCESSING and result.total == 5


def test_it_records_the_cross_currency_settlement(adapter, fake):
    data = order_data(payWithCurrency="USD", fxSummary=[
        {"pair": "EUR/USD", "rate": 1.1829, "asOfDate": "2025-10-06"}])
    data["grandTotal"] = money("11.48")
    data["products"][0].update(unitPriceOriginal=money("9.70", "EUR"),
                               unitPrice=money("11.48"), totalPrice=money("11.48"))
    fake.post(BASE + "/v2/orders/instant", json=wrap(data))
    fake.get(BASE + "/v2/orders/1234/codes", json=wrap(codes_data(code(1))))
    result = adapter.submit_order(request(pay="USD"))
    assert body_of(fake.calls[0])["payWithCurrency"] == "USD"
    assert result.cost.amount == Decimal("11.48") and result.cost.currency == "USD"
    assert result.details["payWithCurrency"] == "USD"
    assert result.details["unitPriceOriginal"] == {"amount": "9.70", "currency": "EUR"}
    assert result.details["fxSummary"] == [
        {"pair": "EUR/USD", "rate": "1.1829", "asOfDate": "2025-10-06"}]
    json.dumps(result.details)  # stored in a JSONField


def test_it_reports_an_unsupported_currency_clearly(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", status=422, json={
        "error": "UNSUPPORTED_CURRENCY",
        "message": "payWithCurrency is required or not supported for this account."})
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request(pay="JPY"))
    error = caught.value
    assert error.code == "UNSUPPORTED_CURRENCY" and error.status_code == 422
    assert not error.retryable and not error.outcome_unknown
    assert "currency" in error.message


def test_it_returns_the_existing_order_on_a_duplicate_reference(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", status=409,
              json={"error": "CLIENT_ORDER_NUMBER_DUPLICATE", "clientOrderNumber": "po-1"})
    fake.get(BASE + "/v2/orders", match=[matchers.query_param_matcher(
        {"clientOrderNumber": "po-1", "page": "1", "limit": "10"})],
        json=wrap(listing(order_data(tx="555", ezOrderNumber="EZ555"))))
    fake.get(BASE + "/v2/orders/555/codes", json=wrap(codes_data(code(9))))
    result = adapter.submit_order(request())
    assert result.supplier_order_id == "555" and result.status == SupplierStatus.COMPLETED
    assert len(result.codes) == 1 and result.details["ezOrderNumber"] == "EZ555"


def test_it_flags_a_duplicate_it_cannot_find(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", status=409,
              json={"error": "CLIENT_ORDER_NUMBER_DUPLICATE", "clientOrderNumber": "po-1"})
    fake.get(BASE + "/v2/orders", json=wrap(listing()))
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.outcome_unknown


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_treats_a_server_error_after_post_as_unknown(adapter, fake, status):
    fake.post(BASE + "/v2/orders/instant", status=status, json={"error": "X"})
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.outcome_unknown and caught.value.retryable


def test_it_treats_a_timeout_after_post_as_unknown(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", body=requests.ReadTimeout("slow"))
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.outcome_unknown and caught.value.retryable


@pytest.mark.parametrize("body", [b'{"requestId": "x", "da', json.dumps({"requestId": "x"}),
                                  json.dumps(wrap({"status": "COMPLETED"})),
                                  json.dumps(wrap(order_data(status=7))),
                                  json.dumps(wrap(order_data(grandTotal=money("x"))))])
def test_it_treats_a_malformed_answer_to_an_order_as_unknown(adapter, fake, body):
    fake.post(BASE + "/v2/orders/instant", body=body)
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.outcome_unknown and not caught.value.retryable


def test_it_keeps_a_completed_order_open_when_its_codes_cannot_be_read(adapter, fake):
    fake.post(BASE + "/v2/orders/instant", json=wrap(order_data()))
    fake.get(BASE + "/v2/orders/1234/codes", status=500)
    result = adapter.submit_order(request())
    assert result.status == SupplierStatus.PROCESSING and result.supplier_order_id == "1234"


# --- fetch and lookup -----------------------------------------------------------------------

def fake_order(fake, data: dict, codes: list | None = None, tx: str = "1234") -> None:
    fake.get(BASE + "/v2/orders", match=[matchers.query_param_matcher(
        {"transactionId": tx, "page": "1", "limit": "10"})], json=wrap(listing(data)))
    if codes is not None:
        fake.get(BASE + f"/v2/orders/{tx}/codes", json=wrap(codes))


def test_it_combines_the_order_status_with_its_codes(adapter, fake):
    fake_order(fake, order_data(quantity=2), codes_data(code(1), code(2, redeem="K2")))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.COMPLETED and result.delivered == 2
    assert sorted(c.code for c in result.codes) == ["J72D-I83E-N87F", "K2"]


def test_it_is_not_fulfilled_until_every_code_is_completed(adapter, fake):
    fake_order(fake, order_data("COMPLETED", quantity=3),
               codes_data(code(1), code(2, "PROCESSING"), code(3, "PROCESSING")))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.PROCESSING
    assert (result.delivered, result.total, len(result.codes)) == (1, 3, 1)


def test_it_counts_codes_the_supplier_has_not_listed_yet(adapter, fake):
    fake_order(fake, order_data("COMPLETED", quantity=1),
               codes_data(code(1), quantity=2))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.PROCESSING and result.total == 2


def test_it_reads_codes_that_arrive_while_processing(adapter, fake):
    fake_order(fake, order_data("PROCESSING", quantity=2),
               codes_data(code(1), code(2, "PROCESSING")))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.PROCESSING and len(result.codes) == 1


@pytest.mark.parametrize(("pin", "expected"), [(1234, "1234"), ("0042", "0042"), (None, ""),
                                               (56.0, "56")])
def test_it_keeps_the_pin_as_a_string(adapter, fake, pin, expected):
    fake_order(fake, order_data(), codes_data(code(1, pin=pin)))
    assert adapter.fetch_order("1234").codes[0].pin == expected


def test_it_reports_a_cancelled_order(adapter, fake):
    fake_order(fake, order_data("CANCELLED"), codes_data(code(1, "PROCESSING")))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.CANCELLED and result.codes == []


def test_it_reports_a_cancelled_order_without_codes(adapter, fake):
    fake_order(fake, order_data("CANCELLED"))
    fake.get(BASE + "/v2/orders/1234/codes", status=404, json={"error": "NOT_FOUND"})
    assert adapter.fetch_order("1234").status == SupplierStatus.CANCELLED


def test_it_keeps_the_codes_of_an_order_cancelled_part_way(adapter, fake):
    fake_order(fake, order_data("CANCELLED", quantity=2),
               codes_data(code(1), code(2, "PROCESSING")))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.PARTIALLY_COMPLETED and len(result.codes) == 1


def test_it_never_takes_an_unknown_status_for_success(adapter, fake):
    fake_order(fake, order_data("ON_HOLD"), codes_data(code(1)))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.UNKNOWN and result.raw_status == "ON_HOLD"


@pytest.mark.parametrize("raw", ["PROCESSING", "COMPLETED", "CANCELLED", "completed"])
def test_it_maps_every_documented_status(raw):
    expected = {"processing": SupplierStatus.PROCESSING, "completed": SupplierStatus.COMPLETED,
                "cancelled": SupplierStatus.CANCELLED}[raw.lower()]
    assert map_status(STATUSES, raw) == expected


def test_it_reports_an_order_the_supplier_does_not_list(adapter, fake):
    fake.get(BASE + "/v2/orders", json=wrap(listing()))
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_order("1234")
    assert caught.value.status_code == 404 and not caught.value.retryable


@pytest.mark.parametrize("codes", [
    {"sku": "x"},
    [{"sku": "8PX-UF-Y5U", "quantity": 1, "codes": [{"stockId": 1}]}],
    [{"sku": "8PX-UF-Y5U", "codes": []}],
    codes_data(code(1, pin=True)),
    codes_data(code(1, pin=[1])),
])
def test_it_rejects_malformed_codes(adapter, fake, codes):
    fake_order(fake, order_data(), codes)
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_order("1234")
    assert not caught.value.retryable and "J72D" not in str(caught.value)


def test_it_treats_a_completed_code_without_a_redeem_code_as_pending(adapter, fake):
    fake_order(fake, order_data(), codes_data(code(1, redeem=None)))
    result = adapter.fetch_order("1234")
    assert result.status == SupplierStatus.PROCESSING and result.codes == []


def test_it_rejects_an_order_list_without_items(adapter, fake):
    fake.get(BASE + "/v2/orders", json=wrap({"total": 0}))
    with pytest.raises(SupplierError):
        adapter.fetch_order("1234")


def test_it_rejects_an_order_missing_fields(adapter, fake):
    data = order_data()
    del data["grandTotal"]
    fake_order(fake, data)
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_order("1234")
    assert not caught.value.outcome_unknown


def test_it_looks_an_order_up_by_our_reference(adapter, fake):
    fake.get(BASE + "/v2/orders", match=[matchers.query_param_matcher(
        {"clientOrderNumber": "po-1", "page": "1", "limit": "10"})],
        json=wrap(listing(order_data("PROCESSING", tx="77"))))
    fake.get(BASE + "/v2/orders/77/codes", json=wrap(codes_data(code(1, "PROCESSING"))))
    result = adapter.lookup_order("po-1")
    assert result.supplier_order_id == "77" and result.status == SupplierStatus.PROCESSING
    assert result.client_reference == "po-1"


def test_it_confirms_no_order_only_on_an_empty_list(adapter, fake):
    fake.get(BASE + "/v2/orders", json=wrap(listing()))
    assert adapter.lookup_order("po-1") is None
    fake.replace(responses.GET, BASE + "/v2/orders", status=503)
    with pytest.raises(SupplierError):
        adapter.lookup_order("po-1")


# --- the status table ------------------------------------------------------------------------


def test_it_looks_up_on_a_409_without_the_documented_body(adapter, fake):
    fake.post(BASE + "/v2/orders", status=409, body="Conflict")
    fake.get(BASE + "/v2/orders", json=wrap(listing(order_data("PROCESSING", tx="88",
                                                               quantity=2))))
    fake.get(BASE + "/v2/orders/88/codes", json=wrap(codes_data(
        code(1, "PROCESSING"), code(2, "PROCESSING"))))
    result = adapter.submit_order(request(quantity=2))
    assert result.supplier_order_id == "88" and result.total == 2


def test_it_will_not_quote_in_an_unknown_currency(adapter, fake):
    fake.get(BASE + "/v2/products", json=wrap(listing(product())))
    with pytest.raises(SupplierError) as caught:
        adapter.quote(request(pay="ZZZ"))
    assert caught.value.code == "UNSUPPORTED_CURRENCY" and not caught.value.retryable


@pytest.mark.parametrize(("body", "path"), [
    ({"requestId": "x"}, "data"),
    (wrap(order_data(grandTotal=money("x"))), "data.grandTotal.amount"),
    (wrap({**order_data(), "products": [{"sku": "8PX-UF-Y5U", "quantity": 1}]}),
     "data.products.0.unitPrice"),
])
def test_it_names_the_path_of_a_malformed_order_answer(adapter, fake, body, path):
    fake.post(BASE + "/v2/orders/instant", json=body)
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(request())
    assert caught.value.outcome_unknown and caught.value.cause is Kind.MALFORMED
    assert f"malformed answer: order answer: {path}: " in caught.value.message


def test_it_names_the_path_of_a_malformed_code_without_showing_it(adapter, fake):
    fake_order(fake, order_data(), codes_data(code(1), code(2, pin=[1])))
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_order("1234")
    assert caught.value.kind is Kind.MALFORMED
    assert "codes: data.0.codes.1.pinCode: " in caught.value.message
    assert "J72D" not in str(caught.value)
