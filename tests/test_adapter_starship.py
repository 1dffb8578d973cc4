"""Starship adapter unit tests: fake HTTP at the seam with ``responses``."""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
import requests
import responses

from vendors.adapters.base import Kind, OrderRequest, SupplierError, SupplierStatus
from vendors.adapters.starship import Starship

BASE = "https://api.starship.test"
KEYS = {"api_key": "sk_live_abc", "api_secret": "topsecret"}
LOGIN = {"username": "client", "password": "pw"}


def adapter(cache, credentials=None) -> Starship:
    return Starship(base_url=BASE, credentials=credentials or KEYS, cache=cache, account="7")


def order_request(**kw) -> OrderRequest:
    values = {"client_reference": "portal-ref-0001", "product_id": "1001:25.00", "sku": "",
              "quantity": 2, "currency": "USD"}
    values.update(kw)
    return OrderRequest(**values)


def paged(url, items, page, pages):
    responses.get(
        url, json=items,
        match=[responses.matchers.query_param_matcher({"page": str(page), "limit": "100"})],
        headers={"X-Page": str(page), "X-Per-Page": "100", "X-Total-Count": "0",
                 "X-Total-Pages": str(pages), "X-Has-More": "true" if page < pages else "false"},
    )


def currencies():
    paged(f"{BASE}/api/v1/currencies",
          [{"id": 1, "code": "USD"}, {"id": 4, "code": "JPY"}, {"id": 9, "code": "XXQ"}], 1, 1)


def order_body(**kw):
    body = {"id": 55, "reference_code": "portal-ref-0001", "transaction_id": 9,
            "amount": "48.75", "currency": "USD", "product_id": 1001, "denomination": "25.00",
            "quantity": 2, "discount": "1.25", "vouchers": [], "status": "pending",
            "sub_status": "INITIAL", "placed_at": "2024-01-15T10:30:00Z"}
    body.update(kw)
    return body


VOUCHERS = [
    {"card_number": "CARD-A", "pin_code": "1111", "claim_url": "https://c/a",
     "voucher_reference_number": "VRN-1", "expires_at": "2025-12-31T23:59:59Z"},
    {"card_number": "CARD-B", "pin_code": None, "claim_url": None,
     "voucher_reference_number": "VRN-2", "expires_at": None},
]


# ---------------------------------------------------------------- catalogue and balances


@responses.activate
def test_it_pages_the_catalogue_and_splits_denominations(token_cache):
    currencies()
    paged(f"{BASE}/api/v1/products", [
        {"id": 1001, "name": "Card", "currency_id": 1, "delivery_time": "INSTANT",
         "validity": "1y", "available_denominations": [
             {"min_value": 10.00, "max_value": 10.00, "discount": 2.5},
             {"min_value": "25.00", "max_value": "25.00", "discount": "2.5"}]},
    ], 1, 2)
    paged(f"{BASE}/api/v1/products", [
        {"id": 1002, "name": "Open", "currency_id": 1, "delivery_time": "delayed",
         "available_denominations": [{"min_value": 5, "max_value": 500, "discount": 3}]},
        {"id": 1009, "name": "Yen", "currency_id": 4, "delivery_time": "INSTANT",
         "available_denominations": [{"min_value": 1000, "max_value": 1000, "discount": 5}]},
    ], 2, 2)
    products = {p.supplier_product_id: p for p in adapter(token_cache).fetch_catalog()}
    assert set(products) == {"1001:10.00", "1001:25.00", "1002", "1009:1000"}
    assert products["1001:25.00"].face_value == Decimal("25.00")
    assert products["1001:25.00"].cost == Decimal("24.38")  # 25.00 less 2.5 %
    assert products["1001:10.00"].delivery == "instant"
    assert products["1002"].denomination_type == "open"
    assert products["1002"].min_value == Decimal("5.00")
    assert products["1002"].max_value == Decimal("500.00")
    assert products["1002"].delivery == "delayed"
    assert products["1009:1000"].face_currency == "JPY"
    assert products["1009:1000"].cost == Decimal("950")


@responses.activate
def test_it_refuses_a_product_with_an_unknown_currency_id(token_cache):
    currencies()
    paged(f"{BASE}/api/v1/products", [{"id": 1, "currency_id": 77,
                                       "available_denominations": []}], 1, 1)
    with pytest.raises(SupplierError) as exc:
        list(adapter(token_cache).fetch_catalog())
    assert not exc.value.retryable
    assert "currency_id" in exc.value.message


@responses.activate
def test_it_reads_wallets_as_numbers_or_strings_and_sums_per_currency(token_cache):
    currencies()
    paged(f"{BASE}/api/v1/wallets", [
        {"id": 101, "currency_id": 1, "amount": 5000.10, "type": "PREPAID"},
        {"id": 102, "currency_id": 1, "amount": "0.20", "type": "POSTPAID"},
        {"id": 103, "currency_id": 4, "amount": 120000, "type": "PREPAID"},
    ], 1, 1)
    balances = {b.currency: b.amount for b in adapter(token_cache).fetch_balances()}
    assert balances == {"USD": Decimal("5000.30"), "JPY": Decimal("120000")}


@responses.activate
def test_it_refuses_a_wallets_answer_that_is_not_a_list(token_cache):
    currencies()
    responses.get(f"{BASE}/api/v1/wallets", json={"wallets": []})
    with pytest.raises(SupplierError, match="wallets: the answer: Input should be a valid list"):
        adapter(token_cache).fetch_balances()


# ---------------------------------------------------------------- signing and submit


@responses.activate
def test_it_signs_writes_and_sends_the_reference_as_idempotency_key(token_cache):
    responses.post(f"{BASE}/api/v1/orders", json=order_body(
        ref="portal-ref-0001", reference_code=None, status="PENDING", amount=48.75))
    result = adapter(token_cache).submit_order(order_request())
    sent = responses.calls[0].request
    assert sent.headers["Idempotency-Key"] == "portal-ref-0001"
    assert sent.headers["X-API-Key"] == "sk_live_abc"
    body = sent.body
    assert json.loads(body) == {"product_id": 1001, "denomination": 25.0, "quantity": 2,
                                "ref": "portal-ref-0001"}
    assert b'"denomination":25.00' in body  # the Decimal goes out exactly, not via float
    ts = sent.headers["X-Timestamp"]
    assert abs(int(ts) - time.time()) < 5
    expected = hmac.new(b"topsecret", f"{ts}POST/api/v1/orders".encode() + body,
                        hashlib.sha256).hexdigest()
    assert sent.headers["X-Signature"] == f"t={ts},v1={expected}"
    assert result.status is SupplierStatus.PROCESSING
    assert result.client_reference == "portal-ref-0001"
    assert result.cost.amount == Decimal("48.75") and result.cost.currency == "USD"
    assert result.details["sub_status"] == "INITIAL"


@responses.activate
def test_it_does_not_sign_reads(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body())
    adapter(token_cache).fetch_order("55")
    headers = responses.calls[0].request.headers
    assert "X-Signature" not in headers and headers["X-API-Secret"] == "topsecret"


@responses.activate
def test_it_reads_the_vouchers_of_an_order_delivered_at_once(token_cache):
    responses.post(f"{BASE}/api/v1/orders", json=order_body(status="DELIVERED", amount=48.75))
    responses.get(f"{BASE}/api/v1/orders/55",
                  json=order_body(status="delivered", vouchers=VOUCHERS))
    result = adapter(token_cache).submit_order(order_request())
    assert result.status is SupplierStatus.COMPLETED
    assert (result.delivered, result.total) == (2, 2)
    assert [c.code for c in result.codes] == ["CARD-A", "CARD-B"], "codes differ"
    assert result.codes[0].pin == "1111" and result.codes[1].pin == ""
    assert result.codes[0].claim_url == "https://c/a"
    assert result.codes[0].serial == "VRN-1"
    assert result.codes[0].expires_at.year == 2025
    assert "CARD-A" not in repr(result)


@responses.activate
def test_it_lets_the_portal_poll_when_delivered_vouchers_cannot_be_read_yet(token_cache):
    responses.post(f"{BASE}/api/v1/orders", json=order_body(status="DELIVERED"))
    responses.get(f"{BASE}/api/v1/orders/55", status=503)
    result = adapter(token_cache).submit_order(order_request())
    assert result.status is SupplierStatus.PROCESSING
    assert result.supplier_order_id == "55"


@responses.activate
def test_it_hashes_a_reference_too_short_for_an_idempotency_key(token_cache):
    responses.post(f"{BASE}/api/v1/orders", json=order_body(reference_code="r1"))
    adapter(token_cache).submit_order(order_request(client_reference="r1"))
    sent = responses.calls[0].request
    assert len(sent.headers["Idempotency-Key"]) >= 8
    assert json.loads(sent.body)["ref"] == "r1"


@responses.activate
def test_it_sends_the_denomination_of_an_open_product(token_cache):
    responses.post(f"{BASE}/api/v1/orders", json=order_body())
    adapter(token_cache).submit_order(order_request(product_id="1002",
                                                    denomination=Decimal("12.50")))
    assert b'"denomination":12.50' in responses.calls[0].request.body


def test_it_refuses_an_open_product_without_a_denomination(token_cache):
    with pytest.raises(SupplierError, match="denomination"):
        adapter(token_cache).submit_order(order_request(product_id="1002"))


@pytest.mark.parametrize("raw, expected", [
    ("PLACED", SupplierStatus.PROCESSING),
    ("pending", SupplierStatus.PROCESSING),
    ("Processing", SupplierStatus.PROCESSING),
    ("partially_delivered", SupplierStatus.PROCESSING),
    ("PARTIALLY_DELIVERED", SupplierStatus.PROCESSING),
    ("CANCELLED", SupplierStatus.CANCELLED),
    ("failed", SupplierStatus.FAILED),
    ("on_hold", SupplierStatus.UNKNOWN),
    ("", SupplierStatus.UNKNOWN),
])
@responses.activate
def test_it_maps_every_documented_status(token_cache, raw, expected):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(status=raw, sub_status="REFUNDED"))
    result = adapter(token_cache).fetch_order("55")
    assert result.status is expected
    assert result.raw_status == raw
    assert result.details["sub_status"] == "REFUNDED"


@responses.activate
def test_it_reports_a_partial_delivery_with_its_codes_while_processing(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(
        status="PARTIALLY_DELIVERED", sub_status="PARTIAL", vouchers=VOUCHERS[:1]))
    result = adapter(token_cache).fetch_order("55")
    assert result.status is SupplierStatus.PROCESSING
    assert (result.delivered, result.total) == (1, 2)


@responses.activate
def test_it_treats_a_cancellation_after_partial_delivery_as_partially_completed(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(
        status="cancelled", sub_status="REFUNDED", vouchers=VOUCHERS[:1]))
    result = adapter(token_cache).fetch_order("55")
    assert result.status is SupplierStatus.PARTIALLY_COMPLETED
    assert result.delivered == 1 and result.total == 2


@responses.activate
def test_it_never_calls_delivered_without_all_vouchers_a_success(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(status="DELIVERED", vouchers=[]))
    assert adapter(token_cache).fetch_order("55").status is SupplierStatus.UNKNOWN


@responses.activate
def test_it_reads_amounts_given_as_numbers_with_the_currency_exponent(token_cache):
    responses.get(f"{BASE}/api/v1/orders/56", json=order_body(
        id=56, amount=2850.0, currency="JPY", status="PENDING"))
    assert adapter(token_cache).fetch_order("56").cost.amount == Decimal("2850")


# ---------------------------------------------------------------- duplicates and lookup


@responses.activate
def test_it_looks_the_order_up_when_the_reference_is_already_used(token_cache):
    responses.post(f"{BASE}/api/v1/orders", status=400, json={"error": {
        "name": "ValidationException", "code": "E_VALIDATION_FAILURE", "message": "failed",
        "messages": {"ref": [{"rule": "unique", "field": "ref", "message": "used"}]}}})
    paged(f"{BASE}/api/v1/orders", [order_body(id=54, reference_code="other")], 1, 2)
    paged(f"{BASE}/api/v1/orders", [order_body(id=55)], 2, 2)
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(status="PROCESSING"))
    result = adapter(token_cache).submit_order(order_request())
    assert result.supplier_order_id == "55"
    assert result.status is SupplierStatus.PROCESSING


@responses.activate
def test_it_looks_the_order_up_on_409(token_cache):
    responses.post(f"{BASE}/api/v1/orders", status=409,
                   json={"error": {"name": "ConflictError", "code": "E_CONFLICT",
                                   "message": "duplicate"}})
    paged(f"{BASE}/api/v1/orders", [order_body(id=55, reference_code=None,
                                               ref="portal-ref-0001")], 1, 1)
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body())
    assert adapter(token_cache).submit_order(order_request()).supplier_order_id == "55"


@responses.activate
def test_it_confirms_no_order_only_after_the_last_page(token_cache):
    paged(f"{BASE}/api/v1/orders", [order_body(id=54, reference_code="a")], 1, 2)
    paged(f"{BASE}/api/v1/orders", [order_body(id=53, reference_code="b")], 2, 2)
    assert adapter(token_cache).lookup_order("portal-ref-0001") is None
    assert len(responses.calls) == 2


# ---------------------------------------------------------------- errors


@responses.activate
def test_it_passes_on_retry_after_from_a_429(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", status=429, headers={"Retry-After": "7"},
                  json={"error": {"name": "ThrottleException", "code": "E_TOO_MANY_REQUESTS",
                                  "message": "slow down"}})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).fetch_order("55")
    assert exc.value.retryable and exc.value.retry_after == 7 and exc.value.status_code == 429


@pytest.mark.parametrize("failure", [requests.ReadTimeout("slow"),
                                     requests.ConnectionError("reset")])
@responses.activate
def test_it_marks_a_lost_order_answer_as_outcome_unknown(token_cache, failure):
    responses.post(f"{BASE}/api/v1/orders", body=failure)
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.outcome_unknown and exc.value.retryable


@responses.activate
def test_it_marks_a_5xx_after_an_order_as_outcome_unknown(token_cache):
    responses.post(f"{BASE}/api/v1/orders", status=502, json={"error": {"code": "E_BAD_GATEWAY"}})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.outcome_unknown and exc.value.retryable and exc.value.status_code == 502


@responses.activate
def test_it_marks_a_malformed_order_answer_as_outcome_unknown(token_cache):
    responses.post(f"{BASE}/api/v1/orders", body='{"status": "compl')
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.outcome_unknown and not exc.value.retryable


@pytest.mark.parametrize("body", [{"status": "PENDING"}, {"id": 55}, [1, 2],
                                  {"id": 55, "status": "PENDING", "quantity": "two"},
                                  {"id": 55, "status": "PENDING", "vouchers": {"a": 1}}])
@responses.activate
def test_it_refuses_an_order_answer_missing_fields(token_cache, body):
    responses.post(f"{BASE}/api/v1/orders", json=body)
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.outcome_unknown and "malformed" in exc.value.message


@responses.activate
def test_it_refuses_a_malformed_read_without_claiming_an_unknown_outcome(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", body="<html>oops</html>")
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).fetch_order("55")
    assert not exc.value.outcome_unknown and not exc.value.retryable


@responses.activate
def test_it_refuses_a_voucher_without_a_code(token_cache):
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(
        status="DELIVERED", vouchers=[{"card_number": None, "pin_code": "9"}]))
    with pytest.raises(SupplierError, match="neither card_number"):
        adapter(token_cache).fetch_order("55")


@pytest.mark.parametrize("status, error, code", [
    (400, {"code": "IDEMPOTENCY_KEY_REQUIRED", "message": "missing", "details": {}},
     "IDEMPOTENCY_KEY_REQUIRED"),
    (400, {"name": "ValidationException", "code": "E_VALIDATION_FAILURE",
           "message": "bad", "messages": {"quantity": [{"rule": "min"}]}}, "E_VALIDATION_FAILURE"),
    (401, {"name": "UnauthorizedException", "code": "E_UNAUTHORIZED_ACCESS",
           "message": "no"}, "E_UNAUTHORIZED_ACCESS"),
    (400, {"name": "InsufficientBalance", "code": "INSUFFICIENT_BALANCE", "message": "poor"},
     "INSUFFICIENT_BALANCE"),
])
@responses.activate
def test_it_reads_both_error_envelopes(token_cache, status, error, code):
    responses.post(f"{BASE}/api/v1/orders", status=status, json={"error": error})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.code == code and exc.value.status_code == status
    assert not exc.value.retryable and not exc.value.outcome_unknown
    assert "topsecret" not in exc.value.message


@responses.activate
def test_it_reports_an_unknown_order(token_cache):
    responses.get(f"{BASE}/api/v1/orders/999", status=404, json={"error": {
        "name": "NotFoundError", "code": "E_ROW_NOT_FOUND", "message": "Order not found."}})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).fetch_order("999")
    assert exc.value.status_code == 404 and exc.value.code == "E_ROW_NOT_FOUND"


# ---------------------------------------------------------------- quote


@responses.activate
def test_it_quotes_with_fx_details(token_cache):
    responses.post(f"{BASE}/api/v1/products/1010/charges", json={
        "total_amount": 960.0, "discount_amount": 40.0, "total_payable": "11.64",
        "max_quantity": 50, "charges_details": {"source_currency": "INR",
                                                "destination_currency": "USD",
                                                "forex_rate": 0.012, "conversion_fee": 0.12}})
    quote = adapter(token_cache).quote(order_request(product_id="1010:500.00", currency="INR"))
    assert json.loads(responses.calls[0].request.body) == {"denomination": 500.0, "quantity": 2}
    assert "X-Signature" in responses.calls[0].request.headers
    assert quote.total_cost.amount == Decimal("11.64") and quote.total_cost.currency == "USD"
    assert quote.unit_cost.amount == Decimal("5.82")
    assert quote.details["forex_rate"] == "0.012"


# ---------------------------------------------------------------- JWT generation


def tokens(n, access_in=900, refresh_in=3600):
    now = time.time()
    return {"access_token": f"access-{n}", "refresh_token": f"refresh-{n}",
            "access_expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(now + access_in)),
            "refresh_expires_at": now + refresh_in}


@responses.activate
def test_it_logs_in_once_and_keeps_the_tokens_in_the_shared_cache(token_cache):
    login = responses.post(f"{BASE}/api/v1/auth/login", json=tokens(1))
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body())
    a = adapter(token_cache, LOGIN)
    a.fetch_order("55")
    adapter(token_cache, LOGIN).fetch_order("55")  # another worker, same cache
    assert login.call_count == 1
    assert json.loads(responses.calls[0].request.body) == {"username": "client", "password": "pw"}
    assert responses.calls[1].request.headers["Authorization"] == "Bearer access-1"
    assert list(token_cache.data) == ["starship:7:tokens"]


@responses.activate
def test_it_refreshes_before_expiry_and_keeps_the_rotated_refresh_token(token_cache):
    responses.post(f"{BASE}/api/v1/auth/login", json=tokens(1, access_in=20))
    refresh = responses.post(f"{BASE}/api/v1/auth/refresh", json=tokens(2))
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body())
    a = adapter(token_cache, LOGIN)
    a.fetch_order("55")
    stored = token_cache.data["starship:7:tokens"]
    stored["access_expires_at"] = time.time() + 3  # inside the renewal margin
    a.fetch_order("55")
    assert refresh.call_count == 1
    assert json.loads(refresh.calls[0].request.body) == {"refresh_token": "refresh-1"}
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer access-2"
    assert token_cache.data["starship:7:tokens"]["refresh_token"] == "refresh-2"


@responses.activate
def test_it_logs_in_again_when_the_refresh_is_refused(token_cache):
    login = responses.post(f"{BASE}/api/v1/auth/login", json=tokens(3))
    responses.post(f"{BASE}/api/v1/auth/refresh", status=401, json={"error": {
        "code": "E_UNAUTHORIZED_ACCESS", "message": "rotated"}})
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body())
    token_cache.set("starship:7:tokens", {
        "access_token": "old", "refresh_token": "stale", "access_expires_at": time.time() - 1,
        "refresh_expires_at": time.time() + 3600, "lifetime": 900})
    adapter(token_cache, LOGIN).fetch_order("55")
    assert login.call_count == 1
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer access-3"


@responses.activate
def test_it_logs_in_again_once_after_a_401_and_retries(token_cache):
    responses.post(f"{BASE}/api/v1/auth/login", json=tokens(4))
    responses.get(f"{BASE}/api/v1/orders/55", status=401, json={"error": {
        "code": "E_UNAUTHORIZED_ACCESS", "message": "revoked"}})
    responses.get(f"{BASE}/api/v1/orders/55", json=order_body(status="DELIVERED",
                                                              vouchers=VOUCHERS))
    token_cache.set("starship:7:tokens", {
        "access_token": "revoked", "refresh_token": "r", "access_expires_at": time.time() + 900,
        "refresh_expires_at": time.time() + 3600, "lifetime": 900})
    result = adapter(token_cache, LOGIN).fetch_order("55")
    assert result.status is SupplierStatus.COMPLETED
    assert responses.calls[0].request.headers["Authorization"] == "Bearer revoked"
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer access-4"


@responses.activate
def test_it_gives_up_after_a_second_401(token_cache):
    responses.post(f"{BASE}/api/v1/auth/login", json=tokens(5))
    orders = responses.get(f"{BASE}/api/v1/orders/55", status=401, json={"error": {
        "code": "E_UNAUTHORIZED_ACCESS", "message": "no"}})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache, LOGIN).fetch_order("55")
    assert exc.value.status_code == 401 and not exc.value.retryable
    assert orders.call_count == 2


@responses.activate
def test_it_reports_a_refused_login_without_the_password(token_cache):
    responses.post(f"{BASE}/api/v1/auth/login", status=401, json={"error": {
        "code": "E_UNAUTHORIZED_ACCESS", "message": "Invalid credentials."}})
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache, {"username": "client", "password": "hunter2"}).fetch_order("55")
    assert exc.value.status_code == 401 and "hunter2" not in exc.value.message


def test_it_refuses_incomplete_credentials(token_cache):
    with pytest.raises(SupplierError, match="credentials"):
        adapter(token_cache, {"api_key": "k"}).fetch_order("55")


# ---------------------------------------------------------------- status table


@pytest.mark.parametrize(("body", "path"), [
    (order_body(id=None), "id"),
    (order_body(quantity="two"), "quantity"),
    (order_body(amount="lots"), "amount"),
    (order_body(vouchers=[VOUCHERS[0], {"card_number": "", "pin_code": "5512"}]), "vouchers.1"),
])
@responses.activate
def test_it_names_the_path_of_a_malformed_order_answer(token_cache, body, path):
    responses.post(f"{BASE}/api/v1/orders", json=body)
    with pytest.raises(SupplierError) as exc:
        adapter(token_cache).submit_order(order_request())
    assert exc.value.outcome_unknown and exc.value.cause is Kind.MALFORMED
    assert f"malformed answer: order answer: {path}: " in exc.value.message
    assert "CARD-A" not in exc.value.message and "5512" not in exc.value.message


@responses.activate
def test_it_names_the_path_of_a_malformed_product(token_cache):
    paged(f"{BASE}/api/v1/products", [{"id": 1, "currency": "USD", "available_denominations": [
        {"min_value": "5.00", "max_value": "five"}]}], 1, 1)
    with pytest.raises(SupplierError) as exc:
        list(adapter(token_cache).fetch_catalog())
    assert exc.value.kind is Kind.MALFORMED and not exc.value.outcome_unknown
    assert "/api/v1/products: 0.available_denominations.0.max_value: " in exc.value.message
