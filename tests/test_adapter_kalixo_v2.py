"""Kalixo v2 adapter unit tests: fake HTTP at the seam with ``responses``, no database."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import responses

from vendors.adapters.base import OrderRequest, SupplierError, SupplierStatus, map_status
from vendors.adapters.kalixo_v2 import STATUSES, KalixoV2, parse_timestamp

BASE = "https://sandbox.kalixo.test/v2"
KEY = "kal_test_unit_secret_key"


@pytest.fixture
def adapter(token_cache) -> KalixoV2:
    return KalixoV2(base_url=BASE + "/", credentials={"api_key": KEY}, cache=token_cache,
                    account="v1")


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # read before a fixed-price order: sells at 10.00, costs us 9.50
        rsps.get(f"{BASE}/catalog/products/9001", json=product(9001, price=1000, buyingPrice=950))
        yield rsps


def order(reference: str = "REF-1", **kwargs) -> OrderRequest:
    values = {"client_reference": reference, "product_id": "9001", "sku": "KTEST-OK",
              "quantity": 1, "currency": "GBP", "unit_price": Decimal("9.50")}
    values.update(kwargs)
    return OrderRequest(**values)


def product(pid: int, **kwargs) -> dict:
    data = {"id": pid, "productCode": f"1002{pid:010d}", "name": f"Card {pid}",
            "brand": "PlayStation", "price": 1099, "currencyCode": "GBP", "buyingPrice": 1044,
            "buyingCurrencyCode": "GBP", "denominationType": "fixed", "countryCode": "GB",
            "status": "active",
            "languages": [{"languageCode": "en", "sku": f"GB-EN-{pid}", "tnc": "Terms"}]}
    data.update(kwargs)
    return data


def error_body(status: int, label: str, message: str) -> dict:
    return {"statusCode": status, "error": label, "message": message}


ACCEPTED = {"orderId": 59400, "externalOrderCode": "REF-1", "status": "processing",
            "estimatedReadyAt": "2026-06-02T11:05:00Z",
            "wallet": {"balances": {"GBP": 196.01}, "lowBalance": False}}


# ---------------------------------------------------------------- catalog and money

def test_it_pages_through_the_whole_catalog(adapter, mocked):
    pages = {0: [product(i) for i in range(1, 101)], 100: [product(i) for i in range(101, 131)]}
    seen = []

    def page(request):
        skip = int(request.params["skip"])
        seen.append((skip, int(request.params["take"])))
        assert request.headers["x-api-key"] == KEY
        return 200, {}, json.dumps({"count": 130, "skip": skip, "take": 100,
                                    "products": pages[skip]})

    mocked.add_callback(responses.GET, f"{BASE}/catalog/products", callback=page)
    products = list(adapter.fetch_catalog())
    assert seen == [(0, 100), (100, 100)]
    assert len(products) == 130
    assert products[0].supplier_product_id == "1"
    assert products[0].face_value == Decimal("10.99") and products[0].face_currency == "GBP"
    assert products[0].cost == Decimal("10.44") and products[0].cost_currency == "GBP"
    assert products[0].terms == "Terms"


def test_it_stops_paging_when_a_page_is_empty(adapter, mocked):
    mocked.get(f"{BASE}/catalog/products",
               json={"count": 500, "skip": 0, "take": 100, "products": []})
    assert list(adapter.fetch_catalog()) == []
    assert len(mocked.calls) == 1


def test_it_converts_catalog_money_with_each_currencys_exponent(adapter, mocked):
    items = [
        product(1, price=5000, buyingPrice=4750, currencyCode="JPY", buyingCurrencyCode="JPY"),
        product(2, buyingPrice=9412.5, price=10000),
        product(3, denominationType="open", price=2500, buyingPrice=None,
                denominationMinValue=500, denominationMaxValue=10000, denominationStep=100),
        product(4, status="inactive"),
    ]
    mocked.get(f"{BASE}/catalog/products",
               json={"count": 4, "skip": 0, "take": 100, "products": items})
    jpy, fractional, open_, inactive = adapter.fetch_catalog()
    assert (jpy.face_value, jpy.cost, jpy.face_currency) == (Decimal("5000"), Decimal("4750"),
                                                             "JPY")
    assert fractional.cost == Decimal("94.125")
    assert open_.denomination_type == "open" and open_.face_value is None
    assert (open_.min_value, open_.max_value, open_.step) == (
        Decimal("5.00"), Decimal("100.00"), Decimal("1.00"))
    assert inactive.available is False and jpy.available is True


@pytest.mark.parametrize("page", [
    {"count": 1, "skip": 0, "take": 100},  # no products
    {"count": "1", "skip": 0, "take": 100, "products": []},  # wrong type
    {"count": 1, "products": [product(1, currencyCode="XXQ")]},  # unknown currency
    {"count": 1, "products": [product(1, price=None)]},  # fixed product without price
    {"count": 1, "products": ["not an object"]},
    [1, 2],
])
def test_it_refuses_a_malformed_catalog_page(adapter, mocked, page):
    mocked.get(f"{BASE}/catalog/products", json=page)
    with pytest.raises(SupplierError) as info:
        list(adapter.fetch_catalog())
    assert info.value.retryable is False and info.value.outcome_unknown is False


def test_it_reads_wallet_balances_as_major_units(adapter, mocked):
    mocked.get(f"{BASE}/wallet", json={"balances": {"GBP": 196.01, "JPY": 150000, "EUR": 1234.5},
                                       "lowBalance": False, "threshold": 100})
    balances = {b.currency: b.amount for b in adapter.fetch_balances()}
    assert balances == {"GBP": Decimal("196.01"), "JPY": Decimal("150000"),
                        "EUR": Decimal("1234.50")}
    assert all(isinstance(v, Decimal) for v in balances.values())
    assert str(balances["GBP"]) == "196.01"


@pytest.mark.parametrize("body", [{"balances": [1]}, {"balances": {"GBP": "lots"}},
                                  {"balances": {"GBP": True}}, {}, "x"])
def test_it_refuses_a_malformed_wallet(adapter, mocked, body):
    mocked.get(f"{BASE}/wallet", json=body)
    with pytest.raises(SupplierError) as info:
        adapter.fetch_balances()
    assert info.value.retryable is False


# ---------------------------------------------------------------- placing orders

def test_it_places_an_order_and_reads_the_estimate(adapter, mocked):
    mocked.post(f"{BASE}/orders", json=ACCEPTED, status=202)
    result = adapter.submit_order(order())
    assert [c.request.method for c in mocked.calls] == ["GET", "POST"]
    sent = json.loads(mocked.calls[1].request.body)
    # Kalixo checks the line price against the catalog SELL price, not our cost (9.50)
    assert sent == {"externalOrderCode": "REF-1", "currency": "GBP", "price": 1000,
                    "orderProducts": [{"productId": 9001, "quantity": 1, "price": 1000}]}
    assert mocked.calls[1].request.headers["x-api-key"] == KEY
    assert result.status == SupplierStatus.PROCESSING
    assert result.supplier_order_id == "59400" and result.client_reference == "REF-1"
    assert result.estimated_ready_at == datetime(2026, 6, 2, 11, 5, tzinfo=UTC)
    assert result.details["wallet"] == {"GBP": "196.01"}


def test_it_refuses_to_order_when_the_cost_rose(adapter, mocked):
    mocked.replace(responses.GET, f"{BASE}/catalog/products/9001",
                   json=product(9001, price=1000, buyingPrice=990))
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.code == "price_changed" and info.value.outcome_unknown is False
    assert [c.request.method for c in mocked.calls] == ["GET"]


@pytest.mark.parametrize(("status", "body"), [
    (404, error_body(404, "Not Found", "Product 9001 was not found in your catalog")),
    (200, {"id": 9001, "price": "1000"}),
    (200, "nonsense"),
])
def test_it_places_nothing_when_the_product_cannot_be_read(adapter, mocked, status, body):
    mocked.replace(responses.GET, f"{BASE}/catalog/products/9001", status=status, json=body)
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is False and info.value.retryable is False
    assert [c.request.method for c in mocked.calls] == ["GET"]


def test_it_orders_an_open_product_by_its_chosen_amount(adapter, mocked):
    mocked.post(f"{BASE}/orders", json=ACCEPTED, status=202)
    adapter.submit_order(order(product_id="9002", quantity=2, unit_price=None,
                               denomination=Decimal("25")))
    sent = json.loads(mocked.calls[0].request.body)
    assert sent["orderProducts"][0]["price"] == 2500 and sent["price"] == 5000
    assert len(mocked.calls) == 1  # no catalog read for an open amount


def test_it_sends_yen_without_minor_digits(adapter, mocked):
    mocked.replace(responses.GET, f"{BASE}/catalog/products/9001", json=product(
        9001, price=5000, buyingPrice=4750, currencyCode="JPY", buyingCurrencyCode="JPY"))
    mocked.post(f"{BASE}/orders", json=ACCEPTED, status=202)
    adapter.submit_order(order(currency="JPY", unit_price=Decimal("4750")))
    assert json.loads(mocked.calls[1].request.body)["orderProducts"][0]["price"] == 5000


def test_it_omits_the_price_when_none_is_known(adapter, mocked):
    mocked.post(f"{BASE}/orders", json=ACCEPTED, status=202)
    adapter.submit_order(order(unit_price=None))
    sent = json.loads(mocked.calls[0].request.body)
    assert "price" not in sent and "price" not in sent["orderProducts"][0]


def test_it_looks_a_duplicate_up_by_reference(adapter, mocked):
    mocked.post(f"{BASE}/orders", status=409, json=error_body(
        409, "Conflict", "An order with this external order code already exists."))
    mocked.get(f"{BASE}/orders/REF-1", json={
        "orderId": 59400, "externalOrderCode": "REF-1", "status": "completed",
        "products": [{"productId": 9001, "price": 1000, "quantity": 1,
                      "codes": [{"code": "SANDBOX-AAAA"}]}]})
    result = adapter.submit_order(order())
    assert [c.request.method for c in mocked.calls] == ["GET", "POST", "GET"]
    assert mocked.calls[2].request.url == f"{BASE}/orders/REF-1"
    assert result.status == SupplierStatus.COMPLETED and result.supplier_order_id == "59400"
    assert [c.code for c in result.codes] == ["SANDBOX-AAAA"], "codes differ"


def test_it_reports_a_duplicate_it_cannot_find_as_unknown(adapter, mocked):
    mocked.post(f"{BASE}/orders", status=409, json=error_body(409, "Conflict", "exists"))
    mocked.get(f"{BASE}/orders/REF-1", status=404,
               json=error_body(404, "Not Found", "Order REF-1 not found"))
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is True


@pytest.mark.parametrize(("status", "label", "message"), [
    (400, "Bad Request", "Product 9001 price mismatch: expected 1000"),
    (401, "Unauthorized", "Invalid API key"),
    (403, "Forbidden", "API ordering is disabled for your account."),
    (404, "Not Found", "Product 9001 was not found in your catalog"),
    (422, "Unprocessable Entity", "Product 9001 is not available for purchase."),
])
def test_it_refuses_documented_errors_without_retrying(adapter, mocked, status, label, message):
    mocked.post(f"{BASE}/orders", status=status, json=error_body(status, label, message))
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    exc = info.value
    assert (exc.retryable, exc.outcome_unknown, exc.status_code, exc.code) == (
        False, False, status, label)
    assert message in str(exc) and KEY not in str(exc)


def test_it_waits_as_told_after_429(adapter, mocked):
    mocked.get(f"{BASE}/wallet", status=429, headers={
        "Retry-After": "30", "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1717315200"},
        json=error_body(429, "Too Many Requests", "Rate limit exceeded. Retry after 30s."))
    with pytest.raises(SupplierError) as info:
        adapter.fetch_balances()
    assert info.value.retryable is True and info.value.retry_after == 30
    assert info.value.status_code == 429


def test_it_treats_502_after_a_post_as_an_unknown_outcome(adapter, mocked):
    mocked.post(f"{BASE}/orders", status=502, json=error_body(
        502, "Bad Gateway", "Order could not be created. Please try again later."))
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.retryable is True and info.value.outcome_unknown is True


def test_it_retries_a_502_on_a_read(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", status=502, json=error_body(502, "Bad Gateway", "x"))
    with pytest.raises(SupplierError) as info:
        adapter.fetch_order("59400")
    assert info.value.retryable is True and info.value.outcome_unknown is False


def test_it_treats_a_timeout_after_a_post_as_an_unknown_outcome(adapter, mocked):
    mocked.post(f"{BASE}/orders", body=requests.ReadTimeout("slow"))
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is True and info.value.retryable is True


def test_it_treats_malformed_json_after_a_post_as_an_unknown_outcome(adapter, mocked):
    mocked.post(f"{BASE}/orders", status=202, body='{"status": "compl')
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is True and info.value.retryable is False


@pytest.mark.parametrize("body", [
    {"externalOrderCode": "REF-1", "status": "processing"},  # no orderId
    {"orderId": 59400, "externalOrderCode": "REF-1"},  # no status
    {"orderId": {"id": 1}, "status": "processing"},
    {"orderId": 59400, "status": 3},
    [ACCEPTED],
])
def test_it_refuses_an_accepted_answer_missing_fields(adapter, mocked, body):
    mocked.post(f"{BASE}/orders", status=202, json=body)
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is True and info.value.retryable is False


def test_it_refuses_an_answer_for_another_reference(adapter, mocked):
    mocked.post(f"{BASE}/orders", status=202, json={**ACCEPTED, "externalOrderCode": "OTHER"})
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order())
    assert info.value.outcome_unknown is True


def test_it_needs_an_api_key(token_cache, mocked):
    adapter = KalixoV2(base_url=BASE, credentials={}, cache=token_cache)
    with pytest.raises(SupplierError) as info:
        adapter.fetch_balances()
    assert len(mocked.calls) == 0 and info.value.retryable is False


# ---------------------------------------------------------------- reading orders

def test_it_reads_a_processing_order_without_an_order_id(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={"status": "processing",
                                             "message": "Order is still processing"})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.PROCESSING and result.supplier_order_id == "59400"
    assert result.codes == [] and result.message == "Order is still processing"
    assert result.estimated_ready_at is None


def test_it_reads_codes_in_the_current_shape(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={
        "orderId": 59400, "externalOrderCode": "REF-1", "status": "completed",
        "products": [{"productId": 2, "price": 10000, "quantity": 2,
                      "codes": [{"code": "C-1"}, {"code": "C-2"}]}]})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.COMPLETED
    assert [c.code for c in result.codes] == ["C-1", "C-2"], "codes differ"
    assert (result.delivered, result.total) == (2, 2)
    assert {c.sku for c in result.codes} == {"2"}
    assert "C-1" not in repr(result)


@pytest.mark.parametrize("entries", [[{"PIN": "P-1"}], [{"pin": "P-1"}], ["P-1"]])
def test_it_reads_codes_in_the_older_pin_shape(adapter, mocked, entries):
    mocked.get(f"{BASE}/orders/59400", json={
        "orderId": 59400, "status": "completed",
        "products": [{"productId": 2, "price": 10000, "quantity": 1, "pin": entries}]})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.COMPLETED
    assert [c.code for c in result.codes] == ["P-1"], "codes differ"


def test_it_reads_a_partial_delivery(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={
        "orderId": 59400, "externalOrderCode": "REF-1", "status": "partially_completed",
        "delivered": 3, "total": 5,
        "products": [{"productId": 2, "price": 10000, "quantity": 5,
                      "codes": [{"code": "A"}, {"code": "B"}, {"code": "C"}]}]})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.PARTIALLY_COMPLETED
    assert (result.delivered, result.total, len(result.codes)) == (3, 5, 3)


def test_it_reads_a_failure_and_its_reason(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={
        "orderId": 59400, "externalOrderCode": "REF-1", "status": "failed",
        "reason": "The order could not be completed."})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.FAILED
    assert result.message == "The order could not be completed." and result.codes == []


def test_it_marks_an_unknown_status_as_unknown(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={"orderId": 59400, "status": "on_hold"})
    result = adapter.fetch_order("59400")
    assert result.status == SupplierStatus.UNKNOWN and result.raw_status == "on_hold"


def test_it_does_not_trust_a_completion_with_missing_codes(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={
        "orderId": 59400, "status": "completed",
        "products": [{"productId": 2, "quantity": 2, "codes": [{"code": "A"}]}]})
    assert adapter.fetch_order("59400").status == SupplierStatus.UNKNOWN


@pytest.mark.parametrize("body", [
    {"orderId": 59400, "status": "completed"},  # no products
    {"orderId": 59400, "status": "completed", "products": [{"quantity": 1, "codes": [{}]}]},
    {"orderId": 59400, "status": "completed", "products": [{"quantity": 1, "codes": "A"}]},
    {"orderId": 59400, "status": "completed", "products": "A"},
    {"orderId": 59400, "status": "partially_completed", "delivered": "3", "products": []},
])
def test_it_refuses_an_order_with_missing_or_wrong_fields(adapter, mocked, body):
    mocked.get(f"{BASE}/orders/59400", json=body)
    with pytest.raises(SupplierError) as info:
        adapter.fetch_order("59400")
    assert info.value.retryable is False and info.value.outcome_unknown is False


def test_it_refuses_malformed_json_on_a_read(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", body="<html>oops</html>")
    with pytest.raises(SupplierError) as info:
        adapter.fetch_order("59400")
    assert info.value.outcome_unknown is False and info.value.retryable is False


def test_it_finds_nothing_when_kalixo_confirms_no_order(adapter, mocked):
    mocked.get(f"{BASE}/orders/REF%2F9", status=404,
               json=error_body(404, "Not Found", "Order REF/9 not found"))
    assert adapter.lookup_order("REF/9") is None


def test_it_does_not_take_a_bare_404_for_a_missing_order(adapter, mocked):
    mocked.get(f"{BASE}/orders/REF-1", status=404, body="Not Found")
    with pytest.raises(SupplierError) as info:
        adapter.lookup_order("REF-1")
    assert info.value.status_code == 404


def test_it_refuses_a_lookup_that_matches_another_orders_id(adapter, mocked):
    mocked.get(f"{BASE}/orders/59400", json={"orderId": 59400, "externalOrderCode": "X-1",
                                             "status": "processing"})
    with pytest.raises(SupplierError):
        adapter.lookup_order("59400")


def test_it_looks_an_order_up_by_reference(adapter, mocked):
    mocked.get(f"{BASE}/orders/REF-1", json={**ACCEPTED, "message": "Order is still processing"})
    result = adapter.lookup_order("REF-1")
    assert result is not None and result.supplier_order_id == "59400"
    assert result.client_reference == "REF-1"


def test_it_offers_no_quote(adapter):
    assert adapter.quote(order()) is None
    assert (adapter.has_lookup, adapter.has_balances, adapter.one_code_per_request) == (
        True, True, False)
    assert adapter.credential_fields == ("api_key",)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-06-02T11:05:00Z", datetime(2026, 6, 2, 11, 5, tzinfo=UTC)),
    ("2026-06-02T11:05:00.250Z", datetime(2026, 6, 2, 11, 5, 0, 250000, tzinfo=UTC)),
    ("2026-06-02T12:05:00+01:00", datetime(2026, 6, 2, 11, 5, tzinfo=UTC)),
    ("2026-06-02T11:05:00", datetime(2026, 6, 2, 11, 5, tzinfo=UTC)),
    ("soon", None), (12, None), (None, None),
])
def test_it_parses_estimates_to_aware_datetimes(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


@pytest.mark.parametrize(("value", "expected"), [
    ("processing", SupplierStatus.PROCESSING), ("COMPLETED", SupplierStatus.COMPLETED),
    ("Partially_Completed", SupplierStatus.PARTIALLY_COMPLETED),
    ("failed", SupplierStatus.FAILED), ("cancelled", SupplierStatus.UNKNOWN),
])
def test_it_maps_every_documented_status(value, expected):
    assert map_status(STATUSES, value) == expected
