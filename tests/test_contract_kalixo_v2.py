"""The Kalixo v2 adapter against the Kalixo v2 sandbox over real HTTP."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from vendors.adapters.base import OrderRequest, OrderResult, SupplierError, SupplierStatus
from vendors.adapters.kalixo_v2 import KalixoV2
from vendors.sandbox.kalixo_v2 import BASE_PATH, DEMO_CREDENTIALS

OK, OPEN, FAIL, PARTIAL, SLOW, STOCK, LEGACY = 9001, 9002, 9003, 9004, 9005, 9006, 9007


@pytest.fixture
def adapter(sandbox_url, unique, token_cache) -> KalixoV2:
    return KalixoV2(base_url=sandbox_url + BASE_PATH,
                    credentials={"api_key": f"kal_test_{unique}"}, cache=token_cache,
                    account=unique)


def order(reference: str, product_id: int = OK, quantity: int = 1, currency: str = "GBP",
          unit_price: Decimal | None = Decimal("9.50"), **kwargs) -> OrderRequest:
    """As the portal sends it: ``unit_price`` is our expected cost (buyingPrice)."""
    return OrderRequest(client_reference=reference, product_id=str(product_id), sku="",
                        quantity=quantity, currency=currency, unit_price=unit_price, **kwargs)


def wait(adapter: KalixoV2, result: OrderResult, limit: float = 20) -> OrderResult:
    """Poll from the estimate on, as the docs ask, until a final status."""
    if result.estimated_ready_at:
        time.sleep(max(0.0, (result.estimated_ready_at - datetime.now(UTC)).total_seconds()))
    deadline = time.monotonic() + limit
    while True:
        result = adapter.fetch_order(result.supplier_order_id)
        if result.status.is_final or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def issued(sandbox_url: str, account: str) -> list[str]:
    rows = requests.get(f"{sandbox_url}/_sandbox/kalixo_v2/issued",
                        params={"account": account}, timeout=5).json()
    return [row["code"] for row in rows]


def supplier_orders(sandbox_url: str, account: str) -> list[dict]:
    return requests.get(f"{sandbox_url}/_sandbox/kalixo_v2/orders",
                        params={"account": account}, timeout=5).json()


def faults(sandbox_url: str, account: str, **values) -> None:
    requests.post(f"{sandbox_url}/_sandbox/kalixo_v2/faults/{account}", json=values,
                  timeout=5).raise_for_status()


def balance(adapter: KalixoV2, currency: str) -> Decimal:
    return {b.currency: b.amount for b in adapter.fetch_balances()}[currency]


def test_it_pages_through_the_whole_catalog(adapter):
    products = list(adapter.fetch_catalog())
    assert len(products) > 100
    assert len({p.supplier_product_id for p in products}) == len(products)
    by_sku = {p.sku: p for p in products}
    assert {"KTEST-OK", "KTEST-OPEN", "KTEST-FAIL", "KTEST-PARTIAL", "KTEST-SLOW"} <= set(by_sku)
    assert by_sku["KTEST-OK"].face_value == Decimal("10.00")
    assert by_sku["KTEST-OK"].cost == Decimal("9.50")
    open_ = by_sku["KTEST-OPEN"]
    assert (open_.denomination_type, open_.min_value, open_.max_value, open_.step) == (
        "open", Decimal("5.00"), Decimal("100.00"), Decimal("1.00"))
    yen = [p for p in products if p.face_currency == "JPY"]
    assert yen and all(p.face_value == p.face_value.to_integral_value() for p in yen)
    assert {p.face_currency for p in products} >= {"GBP", "EUR", "USD", "JPY"}
    assert any(not p.available for p in products)


def test_it_orders_debits_the_wallet_and_delivers_the_issued_codes(adapter, sandbox_url, unique):
    before = balance(adapter, "GBP")
    placed = adapter.submit_order(order(f"R-{unique}", quantity=2))
    assert placed.status == SupplierStatus.PROCESSING
    assert placed.client_reference == f"R-{unique}"
    now = datetime.now(UTC)
    assert now < placed.estimated_ready_at < now + timedelta(seconds=5)
    assert balance(adapter, "GBP") == before - Decimal("19.00")

    done = wait(adapter, placed)
    assert done.status == SupplierStatus.COMPLETED
    assert (done.delivered, done.total) == (2, 2)
    codes = {c.code for c in done.codes}
    assert len(codes) == 2 and all(c.startswith("SANDBOX-") for c in codes)
    assert codes == set(issued(sandbox_url, unique)), "codes differ"

    found = adapter.lookup_order(f"R-{unique}")
    assert found is not None and found.supplier_order_id == placed.supplier_order_id
    assert {c.code for c in found.codes} == codes, "codes differ"


def test_it_estimates_larger_and_slow_orders_later(adapter, unique):
    small = adapter.submit_order(order(f"S-{unique}", quantity=1))
    large = adapter.submit_order(order(f"L-{unique}", quantity=20))
    slow = adapter.submit_order(order(f"W-{unique}", product_id=SLOW))
    assert large.estimated_ready_at - small.estimated_ready_at > timedelta(seconds=3)
    assert slow.estimated_ready_at - datetime.now(UTC) > timedelta(seconds=8)
    assert adapter.fetch_order(slow.supplier_order_id).status == SupplierStatus.PROCESSING


def test_it_returns_the_existing_order_for_a_repeated_reference(adapter, sandbox_url, unique):
    first = adapter.submit_order(order(f"D-{unique}"))
    after_first = balance(adapter, "GBP")
    second = adapter.submit_order(order(f"D-{unique}"))
    assert second.supplier_order_id == first.supplier_order_id
    assert len(supplier_orders(sandbox_url, unique)) == 1
    assert balance(adapter, "GBP") == after_first


def test_it_refunds_failed_and_undelivered_units(adapter, sandbox_url, unique):
    before = balance(adapter, "GBP")
    failed = adapter.submit_order(order(f"F-{unique}", product_id=FAIL))
    partial = adapter.submit_order(order(f"P-{unique}", product_id=PARTIAL, quantity=4,
                                         unit_price=Decimal("4.75")))
    assert balance(adapter, "GBP") == before - Decimal("9.50") - 4 * Decimal("4.75")

    failed, partial = wait(adapter, failed), wait(adapter, partial)
    assert failed.status == SupplierStatus.FAILED
    assert failed.message == "The order could not be completed." and failed.codes == []
    assert partial.status == SupplierStatus.PARTIALLY_COMPLETED
    assert (partial.delivered, partial.total, len(partial.codes)) == (2, 4, 2)
    assert {c.code for c in partial.codes} == set(issued(sandbox_url, unique)), "codes differ"
    assert balance(adapter, "GBP") == before - 2 * Decimal("4.75")


def test_it_orders_an_open_denomination_and_reads_legacy_codes(adapter, sandbox_url, unique):
    before = balance(adapter, "GBP")
    open_ = adapter.submit_order(order(f"O-{unique}", product_id=OPEN, unit_price=None,
                                       denomination=Decimal("25.00")))
    legacy = adapter.submit_order(order(f"G-{unique}", product_id=LEGACY))
    assert balance(adapter, "GBP") == before - Decimal("23.75") - Decimal("9.50")
    open_, legacy = wait(adapter, open_), wait(adapter, legacy)
    assert open_.status == legacy.status == SupplierStatus.COMPLETED
    assert open_.details["lines"][0]["price"] == 2500
    assert len(legacy.codes) == 1
    assert {c.code for c in open_.codes + legacy.codes} == set(issued(sandbox_url, unique)), \
        "codes differ"

    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order(f"O2-{unique}", product_id=OPEN, unit_price=None,
                                   denomination=Decimal("500.00")))
    assert info.value.status_code == 400 and info.value.retryable is False


def test_it_orders_a_yen_product_in_whole_yen(adapter, unique):
    yen = next(p for p in adapter.fetch_catalog() if p.face_currency == "JPY" and p.available)
    before = balance(adapter, "JPY")
    placed = adapter.submit_order(order(f"Y-{unique}", product_id=int(yen.supplier_product_id),
                                        currency="JPY", unit_price=yen.cost))
    assert balance(adapter, "JPY") == before - yen.cost
    assert wait(adapter, placed).status == SupplierStatus.COMPLETED


def test_it_keeps_an_out_of_stock_order_processing_past_its_estimate(adapter, unique):
    placed = adapter.submit_order(order(f"K-{unique}", product_id=STOCK))
    time.sleep(max(0.0, (placed.estimated_ready_at - datetime.now(UTC)).total_seconds()) + 0.5)
    late = adapter.fetch_order(placed.supplier_order_id)
    assert late.status == SupplierStatus.PROCESSING
    assert late.estimated_ready_at < datetime.now(UTC)
    assert wait(adapter, late).status == SupplierStatus.COMPLETED


def test_it_refuses_a_price_or_currency_that_does_not_match(adapter, sandbox_url, unique):
    with pytest.raises(SupplierError) as info:  # the cost (9.50) is above what we accept
        adapter.submit_order(order(f"M-{unique}", unit_price=Decimal("9.00")))
    assert info.value.code == "price_changed" and info.value.retryable is False
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order(f"C-{unique}", currency="EUR"))
    assert info.value.status_code == 400 and info.value.retryable is False
    assert "priced in GBP, not EUR" in info.value.message
    raw = requests.post(f"{sandbox_url}{BASE_PATH}/orders", timeout=5,
                        headers={"x-api-key": f"kal_test_{unique}"},
                        json={"externalOrderCode": f"X-{unique}", "currency": "GBP",
                              "orderProducts": [{"productId": OK, "price": 999, "quantity": 1}]})
    assert (raw.status_code, raw.json()) == (400, {
        "statusCode": 400, "error": "Bad Request",
        "message": f"Product {OK} price mismatch: expected 1000"})
    assert supplier_orders(sandbox_url, unique) == []


def test_it_finds_no_order_for_an_unknown_reference(adapter, unique):
    assert adapter.lookup_order(f"NONE-{unique}") is None
    with pytest.raises(SupplierError) as info:
        adapter.fetch_order("1")
    assert info.value.status_code == 404


def test_it_is_refused_with_a_wrong_key(sandbox_url, token_cache):
    adapter = KalixoV2(base_url=sandbox_url + BASE_PATH,
                       credentials={"api_key": "kal_live_not_in_sandbox"}, cache=token_cache)
    with pytest.raises(SupplierError) as info:
        adapter.fetch_balances()
    assert info.value.status_code == 401 and info.value.retryable is False
    assert "kal_live_not_in_sandbox" not in str(info.value)
    missing = requests.get(f"{sandbox_url}{BASE_PATH}/wallet", timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {"statusCode": 401, "error": "Unauthorized",
                              "message": "Missing API key"}


def test_it_sends_rate_limit_headers_and_honours_429(adapter, sandbox_url, unique):
    response = requests.get(f"{sandbox_url}{BASE_PATH}/ping",
                            headers={"x-api-key": f"kal_test_{unique}"}, timeout=5)
    assert response.json()["status"] == "ok"
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert int(response.headers["X-RateLimit-Remaining"]) < 60
    faults(sandbox_url, unique, rate_limit=1, retry_after=3)
    with pytest.raises(SupplierError) as info:
        adapter.fetch_balances()
    assert (info.value.status_code, info.value.retryable, info.value.retry_after) == (
        429, True, 3)
    assert adapter.fetch_balances()


def test_it_reconciles_a_timeout_after_accept(adapter, sandbox_url, unique, settings):
    settings.SUPPLIER_READ_TIMEOUT = 1
    faults(sandbox_url, unique, timeout_after_accept=1, timeout_seconds=3)
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order(f"T-{unique}"))
    assert info.value.outcome_unknown is True
    found = adapter.lookup_order(f"T-{unique}")
    assert found is not None and found.client_reference == f"T-{unique}"
    assert [o["reference"] for o in supplier_orders(sandbox_url, unique)] == [f"T-{unique}"]
    again = adapter.submit_order(order(f"T-{unique}"))  # a resend meets the 409 and carries on
    assert again.supplier_order_id == found.supplier_order_id
    assert len(supplier_orders(sandbox_url, unique)) == 1


def test_it_treats_a_5xx_on_submit_as_unknown_then_finds_no_order(adapter, sandbox_url, unique):
    faults(sandbox_url, unique, error_5xx=1)
    with pytest.raises(SupplierError) as info:  # no unit_price: no catalog read before the POST
        adapter.submit_order(order(f"E-{unique}", unit_price=None))
    assert (info.value.status_code, info.value.retryable, info.value.outcome_unknown) == (
        502, True, True)
    assert adapter.lookup_order(f"E-{unique}") is None


def test_it_treats_malformed_json_on_submit_as_unknown(adapter, sandbox_url, unique):
    faults(sandbox_url, unique, malformed_json=1)
    with pytest.raises(SupplierError) as info:  # no unit_price: no catalog read before the POST
        adapter.submit_order(order(f"J-{unique}", unit_price=None))
    assert info.value.outcome_unknown is True and info.value.retryable is False
    assert adapter.lookup_order(f"J-{unique}") is not None
    faults(sandbox_url, unique, malformed_json=1)  # now the catalog read before the POST
    with pytest.raises(SupplierError) as info:
        adapter.submit_order(order(f"J2-{unique}"))
    assert info.value.outcome_unknown is False
    assert adapter.lookup_order(f"J2-{unique}") is None


def test_it_reports_an_undocumented_status_as_unknown(adapter, sandbox_url, unique):
    placed = adapter.submit_order(order(f"U-{unique}"))
    faults(sandbox_url, unique, unknown_status=1)
    odd = adapter.fetch_order(placed.supplier_order_id)
    assert odd.status == SupplierStatus.UNKNOWN and odd.raw_status == "on_hold"
    assert adapter.fetch_order(placed.supplier_order_id).status != SupplierStatus.UNKNOWN


def test_it_accepts_the_demo_credentials(sandbox_url, token_cache):
    adapter = KalixoV2(base_url=sandbox_url + BASE_PATH, credentials=DEMO_CREDENTIALS,
                       cache=token_cache)
    assert {b.currency for b in adapter.fetch_balances()} >= {"GBP", "JPY"}
