"""Kalixo v1 adapter against fake HTTP at the seam (the ``responses`` library)."""

import base64
import json
import time
from decimal import Decimal

import pytest
import requests
import responses

from common.http import Kind, SupplierError
from vendors.adapters.base import OrderRequest, SupplierStatus
from vendors.adapters.kalixo_v1 import KalixoV1

BASE = "https://api.kalixo.io"
LOGIN = f"{BASE}/v1/auth/login"
REFRESH = f"{BASE}/v1/auth/refresh"
CATALOG = f"{BASE}/v1/catalog/products"
PLACE = f"{BASE}/v1/orders/place-order"
RETRIEVE = f"{BASE}/v1/orders/retrieve-order"
PASSWORD = "s3cret-pass"
KEY = "kalixo_v1:7:tokens"


def jwt(exp: float) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256'})}.{part({'sub': '1', 'exp': int(exp)})}.signature"


@pytest.fixture
def adapter(token_cache) -> KalixoV1:
    return KalixoV1(base_url=BASE + "/", credentials={"email": "ops@example.com",
                                                      "password": PASSWORD},
                    cache=token_cache, account="7")


def add_login(access: str = "access-1", refresh: str = "refresh-1", status: int = 201) -> None:
    responses.add(responses.POST, LOGIN, json={"accessToken": access, "refreshToken": refresh},
                  status=status)


def order(**overrides) -> OrderRequest:
    values = {"client_reference": "PO-1", "product_id": "2", "sku": "GB-EN-4251604177278",
              "quantity": 3, "currency": "GBP", "face_value": Decimal("10.99")}
    values.update(overrides)
    return OrderRequest(**values)


def product(**overrides) -> dict:
    item = {"id": 2, "ean": "4251604177278", "name": "PSN £10.99", "brand": "PlayStation",
            "countryCode": "GB", "rrp": "10.99", "rrpCurrency": "GBP", "price": 1099,
            "currencyCode": "GBP", "buyingPrice": 1044, "denominationType": "fixed",
            "status": "active", "languages": [{"sku": "GB-EN-4251604177278"}]}
    item.update(overrides)
    return item


def pins(*codes: str) -> list[dict]:
    return [{"PIN": c} for c in codes]


def calls_to(url: str) -> list:
    return [c for c in responses.calls if c.request.url.split("?")[0] == url]


# --- tokens -----------------------------------------------------------------------------------

@responses.activate
def test_it_logs_in_and_sends_the_bearer_token(adapter, token_cache):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 0, "skip": 0, "take": 100,
                                                "products": []})
    assert list(adapter.fetch_catalog()) == []
    assert json.loads(calls_to(LOGIN)[0].request.body) == {"email": "ops@example.com",
                                                           "password": PASSWORD}
    assert calls_to(CATALOG)[0].request.headers["Authorization"] == "Bearer access-1"
    assert token_cache.get(KEY)["refresh"] == "refresh-1"


@responses.activate
def test_it_shares_cached_tokens_between_adapters(adapter, token_cache):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    other = KalixoV1(base_url=BASE, credentials=adapter.credentials, cache=token_cache,
                     account="7")
    list(other.fetch_catalog())
    assert len(calls_to(LOGIN)) == 1
    assert calls_to(CATALOG)[1].request.headers["Authorization"] == "Bearer access-1"


@responses.activate
def test_it_reads_the_expiry_of_jwt_tokens(adapter, token_cache):
    exp = time.time() + 600
    add_login(access=jwt(exp))
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    tokens = token_cache.get(KEY)
    assert tokens["access_expires"] == pytest.approx(int(exp))
    assert tokens["access_renew_at"] < tokens["access_expires"]


@responses.activate
def test_it_assumes_the_documented_lifetime_for_opaque_tokens(adapter, token_cache):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    tokens = token_cache.get(KEY)
    assert tokens["access_expires"] - time.time() == pytest.approx(4 * 3600, abs=5)
    assert tokens["refresh_expires"] - time.time() == pytest.approx(8 * 3600, abs=5)


@responses.activate
def test_it_refreshes_the_access_token_before_it_expires(adapter, token_cache):
    add_login()
    responses.add(responses.POST, REFRESH, json={"accessToken": "access-2",
                                                 "refreshToken": "refresh-2"}, status=201)
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    token_cache.data[KEY]["access_renew_at"] = time.time() - 1
    list(adapter.fetch_catalog())
    assert len(calls_to(LOGIN)) == 1
    assert calls_to(REFRESH)[0].request.headers["Authorization"] == "Bearer refresh-1"
    assert calls_to(CATALOG)[1].request.headers["Authorization"] == "Bearer access-2"
    assert token_cache.get(KEY)["refresh"] == "refresh-2"


@responses.activate
def test_it_keeps_the_refresh_token_when_a_refresh_returns_none(adapter, token_cache):
    add_login()
    responses.add(responses.POST, REFRESH, json={"accessToken": "access-2"}, status=201)
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    token_cache.data[KEY]["access_renew_at"] = 0
    list(adapter.fetch_catalog())
    assert token_cache.get(KEY)["access"] == "access-2"
    assert token_cache.get(KEY)["refresh"] == "refresh-1"


@responses.activate
def test_it_logs_in_again_when_the_refresh_is_refused(adapter, token_cache):
    add_login()
    add_login(access="access-3", refresh="refresh-3")
    responses.add(responses.POST, REFRESH, status=401, json={
        "statusCode": 401, "error": "Unauthorized", "message": "Invalid refresh token"})
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    token_cache.data[KEY]["access_renew_at"] = 0
    list(adapter.fetch_catalog())
    assert len(calls_to(REFRESH)) == 1
    assert len(calls_to(LOGIN)) == 2
    assert calls_to(CATALOG)[1].request.headers["Authorization"] == "Bearer access-3"


@responses.activate
def test_it_logs_in_directly_when_the_refresh_token_has_expired(adapter, token_cache):
    add_login()
    add_login(access="access-3")
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    token_cache.data[KEY].update(access_renew_at=0, refresh_renew_at=0)
    list(adapter.fetch_catalog())
    assert calls_to(REFRESH) == []
    assert len(calls_to(LOGIN)) == 2


@responses.activate
def test_it_does_not_hide_a_rate_limited_refresh_behind_a_login(adapter, token_cache):
    add_login()
    responses.add(responses.POST, REFRESH, status=429, headers={"Retry-After": "4"})
    responses.add(responses.GET, CATALOG, json={"count": 0, "products": []})
    list(adapter.fetch_catalog())
    token_cache.data[KEY]["access_renew_at"] = 0
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert err.value.retryable and err.value.retry_after == 4
    assert len(calls_to(LOGIN)) == 1


@responses.activate
def test_it_renews_after_a_401_and_retries_once(adapter, token_cache):
    add_login()
    responses.add(responses.POST, REFRESH, json={"accessToken": "access-2",
                                                 "refreshToken": "refresh-2"})
    responses.add(responses.GET, CATALOG, status=401, json={
        "statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"})
    responses.add(responses.GET, CATALOG, json={"count": 1, "products": [product()]})
    assert len(list(adapter.fetch_catalog())) == 1
    auth = [c.request.headers["Authorization"] for c in calls_to(CATALOG)]
    assert auth == ["Bearer access-1", "Bearer access-2"]


@responses.activate
def test_it_gives_up_after_a_second_401(adapter):
    add_login()
    responses.add(responses.POST, REFRESH, json={"accessToken": "access-2"})
    responses.add(responses.GET, CATALOG, status=401, json={
        "statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"})
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert err.value.status_code == 401 and err.value.code == "unauthorized"
    assert not err.value.retryable
    assert len(calls_to(CATALOG)) == 2


@responses.activate
def test_it_resends_an_order_refused_with_401(adapter):
    add_login()
    add_login(access="access-2", refresh="")
    responses.add(responses.POST, PLACE, status=401, json={"statusCode": 401,
                                                          "message": "Unauthorized"})
    responses.add(responses.POST, PLACE, json={"orderId": "59400", "products": [
        {"price": 1099, "productId": 2, "quantity": 1, "pin": pins("A-1")}]})
    adapter.cache.set(KEY, {"access": "old", "access_renew_at": time.time() + 999,
                            "refresh": "", "refresh_renew_at": 0})
    result = adapter.submit_order(order(quantity=1))
    assert result.status is SupplierStatus.COMPLETED
    assert len(calls_to(PLACE)) == 2
    assert calls_to(PLACE)[1].request.headers["Authorization"] == "Bearer access-1"


@responses.activate
def test_it_refuses_wrong_credentials_without_repeating_them(adapter):
    responses.add(responses.POST, LOGIN, status=401, json={
        "statusCode": 401, "error": "Unauthorized", "message": "Invalid email or password"})
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert err.value.status_code == 401 and not err.value.retryable
    assert "Invalid email or password" in str(err.value)
    assert PASSWORD not in str(err.value)


@responses.activate
def test_it_does_not_call_a_failed_login_an_unknown_order_outcome(adapter):
    responses.add(responses.POST, LOGIN, body=requests.ReadTimeout())
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.retryable and not err.value.outcome_unknown
    assert calls_to(PLACE) == []


@responses.activate
def test_it_rejects_a_login_answer_without_a_token(adapter):
    responses.add(responses.POST, LOGIN, json={"refreshToken": "r"})
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert err.value.code == "malformed" and not err.value.retryable


# --- catalog ----------------------------------------------------------------------------------

@responses.activate
def test_it_pages_through_the_catalog_and_converts_money(adapter):
    add_login()
    jpy = product(id=9, ean="4250000001149", price=1500, currencyCode="JPY", rrp="1500",
                  rrpCurrency="JPY", buyingPrice=1455, countryCode="JP",
                  languages=[{"sku": "JP-JA-4250000001149"}])
    responses.add(responses.GET, CATALOG, json={"count": 3, "skip": 0, "take": 2,
                                                "products": [product(), jpy]})
    responses.add(responses.GET, CATALOG, json={"count": 3, "skip": 2, "take": 2,
                                                "products": [product(id=3, status="inactive",
                                                                     buyingPrice=1044.5)]})
    items = list(adapter.fetch_catalog())
    assert [c.request.params["skip"] for c in calls_to(CATALOG)] == ["0", "2"]
    assert calls_to(CATALOG)[0].request.params["take"] == "100"
    psn, yen, retired = items
    assert psn.supplier_product_id == "2" and psn.sku == "GB-EN-4251604177278"
    assert psn.face_value == Decimal("10.99") and psn.face_currency == "GBP"
    assert psn.cost == Decimal("10.44") and psn.cost_currency == "GBP"
    assert psn.extra["rrp"] == "10.99" and psn.extra["ean"] == "4251604177278"
    assert psn.available and psn.denomination_type == "fixed"
    assert yen.face_value == Decimal("1500") and yen.face_currency == "JPY"
    assert yen.cost == Decimal("1455")
    assert not retired.available
    assert retired.cost == Decimal("10.445")


@responses.activate
def test_it_reads_open_denominations_in_minor_units(adapter):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 1, "products": [product(
        denominationType="open", price=None, denominationMinValue=500,
        denominationMaxValue=20000, denominationStep=100)]})
    (item,) = adapter.fetch_catalog()
    assert item.denomination_type == "open" and item.face_value is None
    assert (item.min_value, item.max_value, item.step) == (
        Decimal("5.00"), Decimal("200.00"), Decimal("1.00"))


@responses.activate
def test_it_stops_on_an_empty_catalog_page(adapter):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 500, "products": [product()]})
    responses.add(responses.GET, CATALOG, json={"count": 500, "products": []})
    assert len(list(adapter.fetch_catalog())) == 1
    assert len(calls_to(CATALOG)) == 2


@pytest.mark.parametrize("page", [
    {"count": 1},
    {"count": "many", "products": []},
    {"count": 1, "products": [product(currencyCode="XXX1")]},
    {"count": 1, "products": [product(price="ten")]},
    {"count": 1, "products": [product(price=10.5)]},
    {"count": 1, "products": [{"name": "no id"}]},
    ["not", "an", "object"],
])
@responses.activate
def test_it_turns_a_malformed_catalog_into_a_supplier_error(adapter, page):
    add_login()
    responses.add(responses.GET, CATALOG, json=page)
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert not err.value.retryable


@responses.activate
def test_it_turns_a_catalog_that_is_not_json_into_a_supplier_error(adapter):
    add_login()
    responses.add(responses.GET, CATALOG, body="<html>oops</html>")
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert not err.value.retryable and not err.value.outcome_unknown


# --- submit -----------------------------------------------------------------------------------

@responses.activate
def test_it_places_an_order_and_reads_the_codes_in_the_answer(adapter):
    add_login()
    responses.add(responses.POST, PLACE, status=201, json={"orderId": "59400", "products": [
        {"price": 1099, "productId": 2, "quantity": 3, "pin": pins("A-1", "A-2", "A-3")}]})
    result = adapter.submit_order(order())
    body = json.loads(calls_to(PLACE)[0].request.body)
    assert body == {
        "externalOrderCode": "PO-1", "currency": "GBP", "price": 3297,
        "orderProducts": [{"productId": 2, "quantity": 3, "currency": "GBP", "price": 1099,
                           "sku": "GB-EN-4251604177278"}],
    }
    assert result.supplier_order_id == "59400"
    assert result.status is SupplierStatus.COMPLETED
    assert result.client_reference == "PO-1"
    assert {c.code for c in result.codes} == {"A-1", "A-2", "A-3"}, "codes differ"
    assert (result.delivered, result.total) == (3, 3)
    assert result.cost is None and result.details["listed_total"] == "32.97"
    assert calls_to(RETRIEVE) == []


@responses.activate
def test_it_reads_the_documented_multi_product_answer(adapter):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "59400", "products": [
        {"price": 1099, "productId": 1, "quantity": 1, "pin": pins("X-1")},
        {"price": 3299, "productId": 2, "quantity": 2, "pin": pins("X-2", "X-3")}]})
    result = adapter.submit_order(order(quantity=1))
    assert result.status is SupplierStatus.COMPLETED
    assert (result.delivered, result.total) == (3, 3)
    assert result.cost is None and result.details["listed_total"] == "76.97"


@responses.activate
def test_it_sends_jpy_prices_without_decimals(adapter):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "1", "products": [
        {"price": 1500, "productId": 9, "quantity": 2, "pin": pins("J-1", "J-2")}]})
    result = adapter.submit_order(order(product_id="9", currency="jpy", quantity=2,
                                        face_value=Decimal("1500")))
    body = json.loads(calls_to(PLACE)[0].request.body)
    assert body["price"] == 3000 and body["orderProducts"][0]["price"] == 1500
    assert body["currency"] == "JPY"
    assert result.cost is None and result.details["listed_total"] == "3000"


@responses.activate
def test_it_omits_prices_when_we_have_none(adapter):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "1", "products": [
        {"price": 1099, "productId": 2, "quantity": 1, "pin": pins("A-1")}]})
    adapter.submit_order(order(quantity=1, face_value=None, sku=""))
    body = json.loads(calls_to(PLACE)[0].request.body)
    assert "price" not in body and "price" not in body["orderProducts"][0]
    assert "sku" not in body["orderProducts"][0]


@pytest.mark.parametrize(("retrieved", "expected"), [
    ("failed", SupplierStatus.FAILED),
    ("processing", SupplierStatus.PROCESSING),
    ("requested", SupplierStatus.PROCESSING),
    ("cancelled", SupplierStatus.CANCELLED),
    ("error", SupplierStatus.FAILED),
])
@responses.activate
def test_it_asks_retrieve_order_when_the_answer_lacks_codes(adapter, retrieved, expected):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "59401", "products": [
        {"price": 500, "productId": 2, "quantity": 1, "pin": []}]})
    responses.add(responses.GET, RETRIEVE, json={"orderId": 59401, "orderStatus": retrieved,
                                                 "products": [{"price": 500, "productId": 2,
                                                               "quantity": 1, "pin": []}]})
    result = adapter.submit_order(order(quantity=1, face_value=Decimal("5")))
    assert calls_to(RETRIEVE)[0].request.params == {"id": "59401"}
    assert result.status is expected and result.raw_status == retrieved
    assert result.supplier_order_id == "59401" and result.client_reference == "PO-1"
    assert result.cost is None and result.details["listed_total"] == "5.00"


@responses.activate
def test_it_keeps_a_placed_order_processing_when_retrieve_fails(adapter):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "59402", "products": [
        {"price": 500, "productId": 2, "quantity": 2, "pin": pins("P-1")}]})
    responses.add(responses.GET, RETRIEVE, status=502, json={"statusCode": 502})
    result = adapter.submit_order(order(quantity=2, face_value=Decimal("5")))
    assert result.status is SupplierStatus.PROCESSING
    assert result.supplier_order_id == "59402"
    assert [c.code for c in result.codes] == ["P-1"], "codes differ"


@responses.activate
def test_it_uses_a_status_the_place_order_answer_carries(adapter):
    add_login()
    responses.add(responses.POST, PLACE, json={"orderId": "59403", "orderStatus": "failed",
                                               "products": [{"price": 500, "productId": 2,
                                                             "quantity": 1, "pin": []}]})
    result = adapter.submit_order(order(quantity=1))
    assert result.status is SupplierStatus.FAILED
    assert calls_to(RETRIEVE) == []


@responses.activate
def test_it_reports_a_duplicate_reference_as_an_unknown_outcome(adapter):
    add_login()
    responses.add(responses.POST, PLACE, status=409, json={
        "statusCode": 409, "error": "Conflict",
        "message": "An order with this external order code already exists."})
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.code == "duplicate" and err.value.status_code == 409
    assert err.value.outcome_unknown and not err.value.retryable


@pytest.mark.parametrize(("status", "code"), [
    (400, "bad_request"), (403, "forbidden"), (404, "not_found"), (422, "unprocessable")])
@responses.activate
def test_it_reports_a_refused_order_as_not_placed(adapter, status, code):
    add_login()
    responses.add(responses.POST, PLACE, status=status, json={
        "statusCode": status, "error": "x", "message": "Product 2 price mismatch: expected 1099"})
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.code == code and err.value.status_code == status
    assert not err.value.retryable and not err.value.outcome_unknown
    assert "price mismatch" in err.value.message


@responses.activate
def test_it_copes_with_an_error_body_that_is_not_json(adapter):
    add_login()
    responses.add(responses.POST, PLACE, status=400, body="Bad Request")
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.status_code == 400 and not err.value.outcome_unknown


@responses.activate
def test_it_passes_on_a_429_with_its_retry_after(adapter):
    add_login()
    responses.add(responses.POST, PLACE, status=429, headers={"Retry-After": "7"}, json={
        "statusCode": 429, "error": "Too Many Requests", "message": "Too many requests"})
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.retryable and err.value.retry_after == 7
    assert not err.value.outcome_unknown


@pytest.mark.parametrize("failure", [
    {"body": requests.ReadTimeout()},
    {"body": requests.ConnectionError()},
    {"status": 502, "json": {"statusCode": 502, "message": "Upstream provider error"}},
    {"status": 500, "json": {"statusCode": 500, "message": "Internal server error"}},
])
@responses.activate
def test_it_marks_a_failed_submission_as_an_unknown_outcome(adapter, failure):
    add_login()
    responses.add(responses.POST, PLACE, **failure)
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.outcome_unknown and err.value.retryable


@pytest.mark.parametrize("answer", [
    b'{"orderId": "5940',
    json.dumps({"products": []}).encode(),
    json.dumps({"orderId": "", "products": []}).encode(),
    json.dumps({"orderId": "1"}).encode(),
    json.dumps({"orderId": "1", "products": [{"productId": 2, "pin": []}]}).encode(),
    json.dumps({"orderId": "1", "products": [{"quantity": 1, "pin": [{"PIN": None}]}]}).encode(),
    json.dumps({"orderId": "1", "products": [{"quantity": 1, "pin": "ABC"}]}).encode(),
    json.dumps({"orderId": "1", "products": [{"quantity": 1, "price": "x"}]}).encode(),
    json.dumps([1, 2]).encode(),
])
@responses.activate
def test_it_marks_a_malformed_order_answer_as_an_unknown_outcome(adapter, answer):
    add_login()
    responses.add(responses.POST, PLACE, body=answer, content_type="application/json")
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.outcome_unknown and not err.value.retryable


@pytest.mark.parametrize("bad", [
    {"product_id": "PSN-10"}, {"quantity": 0}, {"currency": "POUNDS"}])
@responses.activate
def test_it_refuses_an_order_it_cannot_express_before_sending_it(adapter, bad):
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order(**bad))
    assert not err.value.outcome_unknown
    assert len(responses.calls) == 0


# --- fetch ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("requested", SupplierStatus.PROCESSING),
    ("processing", SupplierStatus.PROCESSING),
    ("completed", SupplierStatus.COMPLETED),
    ("cancelled", SupplierStatus.CANCELLED),
    ("failed", SupplierStatus.FAILED),
    ("error", SupplierStatus.FAILED),
    ("COMPLETED", SupplierStatus.COMPLETED),
    ("on_hold", SupplierStatus.UNKNOWN),
    ("", SupplierStatus.UNKNOWN),
])
@responses.activate
def test_it_maps_every_documented_status(adapter, raw, expected):
    add_login()
    delivered = pins("C-1") if raw.lower() == "completed" else []
    responses.add(responses.GET, RETRIEVE, json={"orderId": 59400, "orderStatus": raw,
                                                 "products": [{"price": 1099, "productId": 2,
                                                               "quantity": 1,
                                                               "pin": delivered}]})
    result = adapter.fetch_order("59400")
    assert result.status is expected
    assert result.supplier_order_id == "59400" and result.raw_status == raw


@responses.activate
def test_it_reads_the_documented_retrieve_answer(adapter):
    add_login()
    responses.add(responses.GET, RETRIEVE, json={"orderId": 59400, "orderStatus": "completed",
                                                 "products": [
        {"price": 1099, "productId": 1, "quantity": 1, "pin": pins("R-1")},
        {"price": 3299, "productId": 2, "quantity": 2, "pin": pins("R-2", "R-3")}]})
    result = adapter.fetch_order("59400")
    assert result.status is SupplierStatus.COMPLETED
    assert sorted(c.code for c in result.codes) == ["R-1", "R-2", "R-3"], "codes differ"
    assert (result.delivered, result.total) == (3, 3)
    assert result.cost is None  # retrieve-order does not say the currency
    assert result.details["unit_prices"][1] == {"productId": 2, "price_minor": 3299}


@pytest.mark.parametrize(("raw", "expected"), [
    ("error", SupplierStatus.PARTIALLY_COMPLETED),
    ("failed", SupplierStatus.PARTIALLY_COMPLETED),
    ("cancelled", SupplierStatus.PARTIALLY_COMPLETED),
    ("completed", SupplierStatus.UNKNOWN),  # fewer codes than ordered: base.settle_status
    ("processing", SupplierStatus.PROCESSING),
    ("on_hold", SupplierStatus.UNKNOWN),
])
@responses.activate
def test_it_treats_some_codes_with_an_end_status_as_partial(adapter, raw, expected):
    add_login()
    responses.add(responses.GET, RETRIEVE, json={"orderId": 1, "orderStatus": raw, "products": [
        {"price": 1000, "productId": 3, "quantity": 3, "pin": pins("Q-1", "Q-2")}]})
    result = adapter.fetch_order("1")
    assert result.status is expected
    assert (result.delivered, result.total) == (2, 3)


@pytest.mark.parametrize("shape", [
    {"pin": [{"pin": "N-1"}]}, {"codes": [{"code": "N-1"}]}, {"pin": ["N-1"]}])
@responses.activate
def test_it_accepts_the_newer_code_shapes(adapter, shape):
    add_login()
    line = {"price": 1000, "productId": 3, "quantity": 1, **shape}
    responses.add(responses.GET, RETRIEVE, json={"orderId": 1, "orderStatus": "completed",
                                                 "products": [line]})
    result = adapter.fetch_order("1")
    assert [c.code for c in result.codes] == ["N-1"], "codes differ"
    assert result.status is SupplierStatus.COMPLETED


@responses.activate
def test_it_reports_an_unknown_order(adapter):
    add_login()
    responses.add(responses.GET, RETRIEVE, status=404, json={
        "statusCode": 404, "error": "Not Found", "message": "Order 1 not found"})
    with pytest.raises(SupplierError) as err:
        adapter.fetch_order("1")
    assert err.value.code == "not_found" and err.value.status_code == 404
    assert not err.value.retryable


@pytest.mark.parametrize("answer", [
    {"orderId": 1, "products": []},
    {"orderId": 1, "orderStatus": "completed"},
    {"orderStatus": "completed", "products": []},
    {"orderId": True, "orderStatus": "completed", "products": []},
])
@responses.activate
def test_it_turns_a_retrieve_answer_with_missing_fields_into_an_error(adapter, answer):
    add_login()
    responses.add(responses.GET, RETRIEVE, json=answer)
    with pytest.raises(SupplierError) as err:
        adapter.fetch_order("1")
    assert not err.value.retryable and not err.value.outcome_unknown


@responses.activate
def test_it_turns_a_retrieve_answer_that_is_not_json_into_an_error(adapter):
    add_login()
    responses.add(responses.GET, RETRIEVE, body='{"orderId": 1, "orderSt')
    with pytest.raises(SupplierError) as err:
        adapter.fetch_order("1")
    assert not err.value.retryable


@responses.activate
def test_it_passes_on_a_5xx_when_reading_as_retryable_but_not_unknown(adapter):
    add_login()
    responses.add(responses.GET, RETRIEVE, status=502, json={"statusCode": 502})
    with pytest.raises(SupplierError) as err:
        adapter.fetch_order("1")
    assert err.value.retryable and not err.value.outcome_unknown


def test_it_refuses_a_non_numeric_order_id(adapter):
    with pytest.raises(SupplierError):
        adapter.fetch_order("abc")


# --- what v1 does not have ----------------------------------------------------------------

def test_it_says_v1_has_no_lookup_wallet_or_quote(adapter):
    assert adapter.has_lookup is False and adapter.has_balances is False
    assert adapter.one_code_per_request is False
    assert adapter.credential_fields == ("email", "password")
    assert adapter.fetch_balances() == []
    assert adapter.quote(order()) is None
    with pytest.raises(SupplierError) as err:
        adapter.lookup_order("PO-1")
    assert err.value.code == "no_lookup"


def test_it_keeps_codes_out_of_reprs(adapter):
    from vendors.adapters.base import CodeInfo
    assert "TOP-SECRET" not in repr(CodeInfo(code="TOP-SECRET"))
    assert PASSWORD not in repr(adapter)


@pytest.mark.parametrize(("answer", "path"), [
    ({"products": []}, "orderId"),
    ({"orderId": "1", "products": [{"quantity": -1}]}, "products.0.quantity"),
    ({"orderId": "1", "products": [{"quantity": 1, "pin": [{"PIN": 4417}]}]},
     "products.0.pin.0"),
])
@responses.activate
def test_it_names_the_path_of_a_malformed_order_answer(adapter, answer, path):
    add_login()
    responses.add(responses.POST, PLACE, json=answer)
    with pytest.raises(SupplierError) as err:
        adapter.submit_order(order())
    assert err.value.outcome_unknown and err.value.cause is Kind.MALFORMED
    assert f"malformed answer: order answer: {path}: " in err.value.message
    assert "4417" not in err.value.message


@responses.activate
def test_it_names_the_path_of_a_malformed_catalog_product(adapter):
    add_login()
    responses.add(responses.GET, CATALOG, json={"count": 2, "products": [
        product(), product(id=3, price=10.5)]})
    with pytest.raises(SupplierError) as err:
        list(adapter.fetch_catalog())
    assert err.value.kind is Kind.MALFORMED and not err.value.outcome_unknown
    assert "catalog page: products.1.price: " in err.value.message
