"""Kalixo v1 adapter against the sandbox over real HTTP."""

import time
from decimal import Decimal

import pytest
import requests

from common.http import SupplierError
from tests.conftest import MemoryCache
from vendors.adapters import base as seam  # HttpAdapter.call sends through base.request
from vendors.adapters.base import OrderRequest, SupplierStatus
from vendors.adapters.kalixo_v1 import KalixoV1
from vendors.sandbox.kalixo_v1 import BASE_PATH, DEMO_CREDENTIALS

SUPPLIER = "kalixo_v1"


def email(unique: str) -> str:
    return f"{unique}@sandbox.kalixo.test"


@pytest.fixture
def adapter(sandbox_url, unique) -> KalixoV1:
    return KalixoV1(base_url=sandbox_url + BASE_PATH,
                    credentials={"email": email(unique), "password": "sandbox"},
                    cache=MemoryCache(), account=unique)


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The paths the adapter asked for, in order (the real request still goes out)."""
    seen: list[str] = []
    real = seam.request

    def spy(method, url, **kwargs):
        seen.append(url.split(BASE_PATH, 1)[1])
        return real(method, url, **kwargs)

    monkeypatch.setattr(seam, "request", spy)
    return seen


def set_faults(sandbox_url: str, unique: str, faults: dict) -> None:
    url = f"{sandbox_url}/_sandbox/{SUPPLIER}/faults/{email(unique)}"
    assert requests.post(url, json=faults, timeout=5).ok


def issued_codes(sandbox_url: str, unique: str, order_id: str) -> set[str]:
    rows = requests.get(f"{sandbox_url}/_sandbox/{SUPPLIER}/issued",
                        params={"account": email(unique)}, timeout=5).json()
    return {r["code"] for r in rows if r["order_id"] == order_id}


def sandbox_orders(sandbox_url: str, unique: str) -> list[dict]:
    return requests.get(f"{sandbox_url}/_sandbox/{SUPPLIER}/orders",
                        params={"account": email(unique)}, timeout=5).json()


def ids(adapter: KalixoV1) -> dict[str, str]:
    """Test product ean -> catalog id."""
    return {p.extra["ean"]: p.supplier_product_id for p in adapter.fetch_catalog()}


PRICES = {"KTEST-OK": "10.99", "KTEST-FAIL": "5.00", "KTEST-PARTIAL": "10.00",
          "KTEST-SLOW": "10.00", "KTEST-ERROR": "5.00", "KTEST-CANCEL": "5.00"}
TEST_IDS = {"KTEST-OK": "1", "KTEST-FAIL": "2", "KTEST-PARTIAL": "3", "KTEST-SLOW": "4",
            "KTEST-ERROR": "5", "KTEST-CANCEL": "6"}


def buy(adapter: KalixoV1, ean: str, quantity: int = 1, reference: str = "") -> object:
    return adapter.submit_order(OrderRequest(
        client_reference=reference or f"PO-{time.monotonic_ns()}", product_id=TEST_IDS[ean],
        sku=f"GB-EN-{ean}", quantity=quantity, currency="GBP",
        face_value=Decimal(PRICES[ean])))


def test_it_reads_the_whole_catalog_page_by_page(adapter, calls):
    products = list(adapter.fetch_catalog())
    pages = [c for c in calls if c.startswith("/v1/catalog/products")]
    assert len(products) > 100 and len(pages) == 2
    assert len({p.supplier_product_id for p in products}) == len(products)
    by_ean = {p.extra["ean"]: p for p in products}
    assert {ean: by_ean[ean].supplier_product_id for ean in TEST_IDS} == TEST_IDS
    ok = by_ean["KTEST-OK"]
    assert ok.face_value == Decimal("10.99") and ok.face_currency == "GBP"
    assert ok.sku == "GB-EN-KTEST-OK" and ok.extra["rrp"] == "10.99"
    assert {p.face_currency for p in products} == {"GBP", "EUR", "USD", "JPY"}
    (yen,) = [p for p in products if p.face_currency == "JPY"]
    assert yen.face_value == Decimal("1500") and yen.cost == Decimal("1455")
    assert len({p.brand for p in products}) > 5
    assert any(not p.available for p in products)


def test_it_has_no_balances_to_read(adapter):
    assert adapter.fetch_balances() == []


def test_it_buys_codes_and_reads_them_back(adapter, sandbox_url, unique):
    result = buy(adapter, "KTEST-OK", quantity=2, reference=f"PO-{unique}")
    assert result.status is SupplierStatus.COMPLETED
    assert (result.delivered, result.total) == (2, 2)
    assert result.details["listed_total"] == "21.98"
    codes = {c.code for c in result.codes}
    assert codes == issued_codes(sandbox_url, unique, result.supplier_order_id), "codes differ"
    again = adapter.fetch_order(result.supplier_order_id)
    assert again.status is SupplierStatus.COMPLETED and again.raw_status == "completed"
    assert {c.code for c in again.codes} == codes, "codes differ"
    (placed,) = sandbox_orders(sandbox_url, unique)
    assert placed["reference"] == f"PO-{unique}" and placed["id"] == result.supplier_order_id
    # debited the buying price (1099 less 5 %, per code), not the listed (sell) price
    assert placed["debited"] == "20.88" and placed["refunded"] == "0.00"


def test_it_sees_a_failed_order_refunded(adapter, sandbox_url, unique):
    result = buy(adapter, "KTEST-FAIL", quantity=2)
    assert result.status is SupplierStatus.FAILED and result.raw_status == "failed"
    assert result.codes == [] and result.delivered == 0
    (placed,) = sandbox_orders(sandbox_url, unique)
    assert placed["refunded"] == placed["debited"] == "9.50"


def test_it_sees_a_partial_delivery_as_partially_completed(adapter, sandbox_url, unique):
    result = buy(adapter, "KTEST-PARTIAL", quantity=3)
    assert result.status is SupplierStatus.PARTIALLY_COMPLETED
    assert result.raw_status == "error"
    assert (result.delivered, result.total) == (2, 3)
    assert {c.code for c in result.codes} == issued_codes(
        sandbox_url, unique, result.supplier_order_id), "codes differ"
    (placed,) = sandbox_orders(sandbox_url, unique)
    assert placed["refunded"] == "9.50"  # one code at its buying price


@pytest.mark.parametrize(("ean", "raw", "expected"), [
    ("KTEST-ERROR", "error", SupplierStatus.FAILED),
    ("KTEST-CANCEL", "cancelled", SupplierStatus.CANCELLED),
])
def test_it_maps_the_other_end_states(adapter, ean, raw, expected):
    result = buy(adapter, ean)
    assert result.status is expected and result.raw_status == raw
    assert adapter.fetch_order(result.supplier_order_id).status is expected


def test_it_follows_a_slow_order_until_it_completes(adapter, sandbox_url, unique):
    result = buy(adapter, "KTEST-SLOW", quantity=2)
    assert result.status is SupplierStatus.PROCESSING
    assert result.raw_status in ("requested", "processing")
    deadline = time.monotonic() + 10
    seen = {result.raw_status}
    while result.status is SupplierStatus.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.5)
        result = adapter.fetch_order(result.supplier_order_id)
        seen.add(result.raw_status)
    assert result.status is SupplierStatus.COMPLETED
    assert "processing" in seen
    assert {c.code for c in result.codes} == issued_codes(
        sandbox_url, unique, result.supplier_order_id), "codes differ"
    assert len(result.codes) == 2


def test_it_cannot_look_orders_up_by_reference(adapter):
    buy(adapter, "KTEST-OK", reference="PO-lookup")
    with pytest.raises(SupplierError) as err:
        adapter.lookup_order("PO-lookup")
    assert err.value.code == "no_lookup"


def test_it_does_not_place_a_duplicate_reference_twice(adapter, sandbox_url, unique):
    buy(adapter, "KTEST-OK", reference=f"PO-{unique}")
    with pytest.raises(SupplierError) as err:
        buy(adapter, "KTEST-OK", reference=f"PO-{unique}")
    assert err.value.code == "duplicate" and err.value.outcome_unknown
    assert len(sandbox_orders(sandbox_url, unique)) == 1


def test_it_refuses_wrong_credentials(sandbox_url, unique):
    for credentials in ({"email": email(unique), "password": "wrong"},
                        {"email": f"{unique}@example.com", "password": "sandbox"}):
        adapter = KalixoV1(base_url=sandbox_url + BASE_PATH, credentials=credentials,
                           cache=MemoryCache(), account=unique)
        with pytest.raises(SupplierError) as err:
            adapter.fetch_order("1")
        assert err.value.status_code == 401 and not err.value.retryable


def test_it_refreshes_an_expired_access_token(adapter, sandbox_url, unique, calls):
    set_faults(sandbox_url, unique, {"access_ttl": 1, "refresh_ttl": 60})
    first = buy(adapter, "KTEST-OK")
    time.sleep(1.3)
    assert adapter.fetch_order(first.supplier_order_id).status is SupplierStatus.COMPLETED
    auth = [c for c in calls if c.startswith("/v1/auth/")]
    assert auth == ["/v1/auth/login", "/v1/auth/refresh"]


def test_it_logs_in_again_when_both_tokens_expired(adapter, sandbox_url, unique, calls):
    set_faults(sandbox_url, unique, {"access_ttl": 1, "refresh_ttl": 1})
    first = buy(adapter, "KTEST-OK")
    time.sleep(1.3)
    assert adapter.fetch_order(first.supplier_order_id).status is SupplierStatus.COMPLETED
    auth = [c for c in calls if c.startswith("/v1/auth/")]
    assert auth == ["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/login"]


def test_it_passes_on_a_rate_limit(adapter, sandbox_url, unique):
    buy(adapter, "KTEST-OK")  # logged in
    set_faults(sandbox_url, unique, {"rate_limit": 1, "retry_after": 3})
    with pytest.raises(SupplierError) as err:
        buy(adapter, "KTEST-OK")
    assert err.value.status_code == 429 and err.value.retryable
    assert err.value.retry_after == 3 and not err.value.outcome_unknown
    assert len(sandbox_orders(sandbox_url, unique)) == 1


def test_it_reports_a_timeout_after_accept_as_unknown(adapter, sandbox_url, unique, settings):
    buy(adapter, "KTEST-OK")  # logs in before the fault is set
    settings.SUPPLIER_READ_TIMEOUT = 1
    set_faults(sandbox_url, unique, {"timeout_after_accept": 1, "timeout_seconds": 3})
    reference = f"PO-{unique}"
    with pytest.raises(SupplierError) as err:
        buy(adapter, "KTEST-OK", reference=reference)
    assert err.value.outcome_unknown and err.value.retryable
    with pytest.raises(SupplierError):
        adapter.lookup_order(reference)
    # v1 cannot tell us; the sandbox shows the order exists exactly once
    assert [o["reference"] for o in sandbox_orders(sandbox_url, unique)].count(reference) == 1
    with pytest.raises(SupplierError) as again:
        buy(adapter, "KTEST-OK", reference=reference)
    assert again.value.code == "duplicate"
    assert [o["reference"] for o in sandbox_orders(sandbox_url, unique)].count(reference) == 1


def test_it_reports_a_5xx_on_submit_as_unknown(adapter, sandbox_url, unique):
    buy(adapter, "KTEST-OK")
    set_faults(sandbox_url, unique, {"error_5xx": 1})
    with pytest.raises(SupplierError) as err:
        buy(adapter, "KTEST-OK", reference=f"PO-{unique}")
    assert err.value.status_code == 502
    assert err.value.outcome_unknown and err.value.retryable
    assert buy(adapter, "KTEST-OK", reference=f"PO-{unique}").status is SupplierStatus.COMPLETED


def test_it_reports_malformed_json_on_submit_as_unknown(adapter, sandbox_url, unique):
    buy(adapter, "KTEST-OK")
    set_faults(sandbox_url, unique, {"malformed_json": 1})
    with pytest.raises(SupplierError) as err:
        buy(adapter, "KTEST-OK", reference=f"PO-{unique}")
    assert err.value.outcome_unknown and not err.value.retryable
    assert f"PO-{unique}" in [o["reference"] for o in sandbox_orders(sandbox_url, unique)]


def test_it_reports_an_unknown_status_as_unknown(adapter, sandbox_url, unique):
    result = buy(adapter, "KTEST-OK")
    set_faults(sandbox_url, unique, {"unknown_status": 1})
    odd = adapter.fetch_order(result.supplier_order_id)
    assert odd.status is SupplierStatus.UNKNOWN and odd.raw_status == "on_hold"
    assert adapter.fetch_order(result.supplier_order_id).status is SupplierStatus.COMPLETED


# --- the sandbox speaks the documented API ------------------------------------------------

def login(sandbox_url: str, unique: str) -> dict:
    response = requests.post(f"{sandbox_url}{BASE_PATH}/v1/auth/login",
                             json={"email": email(unique), "password": "sandbox"}, timeout=5)
    assert response.status_code in (200, 201)
    return response.json()


def test_it_answers_with_the_documented_shapes(sandbox_url, unique):
    tokens = login(sandbox_url, unique)
    assert set(tokens) == {"accessToken", "refreshToken"}
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    placed = requests.post(f"{sandbox_url}{BASE_PATH}/v1/orders/place-order", headers=headers,
                           json={"externalOrderCode": f"O-{unique}", "price": 1099,
                                 "currency": "GBP", "orderProducts": [
                                     {"productId": 1, "price": 1099, "sku": "GB-EN-KTEST-OK",
                                      "currency": "GBP", "quantity": 1}]}, timeout=5).json()
    assert isinstance(placed["orderId"], str) and "orderStatus" not in placed
    assert set(placed["products"][0]) == {"price", "productId", "quantity", "pin"}
    assert placed["products"][0]["pin"][0]["PIN"].startswith("SANDBOX-")
    read = requests.get(f"{sandbox_url}{BASE_PATH}/v1/orders/retrieve-order", headers=headers,
                        params={"id": placed["orderId"]}, timeout=5).json()
    assert read["orderId"] == int(placed["orderId"]) and read["orderStatus"] == "completed"
    page = requests.get(f"{sandbox_url}{BASE_PATH}/v1/catalog/products", headers=headers,
                        params={"skip": 100, "take": 500}, timeout=5).json()
    assert page["take"] == 100 and page["skip"] == 100 and len(page["products"]) == \
        page["count"] - 100


def test_it_refuses_bad_requests_in_kalixo_error_shape(sandbox_url, unique):
    headers = {"Authorization": f"Bearer {login(sandbox_url, unique)['accessToken']}"}
    base = f"{sandbox_url}{BASE_PATH}/v1"
    mismatch = requests.post(f"{base}/orders/place-order", headers=headers, json={
        "currency": "GBP", "orderProducts": [{"productId": 1, "price": 999, "quantity": 1}]},
        timeout=5)
    assert mismatch.status_code == 400
    assert mismatch.json() == {"statusCode": 400, "error": "Bad Request",
                               "message": "Product 1 price mismatch: expected 1099"}
    assert requests.get(f"{base}/catalog/products", timeout=5).status_code == 401
    other = {"Authorization": f"Bearer {login(sandbox_url, unique + 'x')['accessToken']}"}
    placed = requests.post(f"{base}/orders/place-order", headers=headers, json={
        "currency": "GBP", "orderProducts": [{"productId": 1, "quantity": 1}]}, timeout=5).json()
    hidden = requests.get(f"{base}/orders/retrieve-order", headers=other,
                          params={"id": placed["orderId"]}, timeout=5)
    assert hidden.status_code == 404 and hidden.json()["statusCode"] == 404


def test_it_serves_the_demo_credentials(sandbox_url):
    demo = KalixoV1(base_url=sandbox_url + BASE_PATH, credentials=DEMO_CREDENTIALS,
                    cache=MemoryCache(), account="demo")
    assert demo.fetch_order(buy(demo, "KTEST-OK").supplier_order_id).codes
