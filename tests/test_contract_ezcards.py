"""The EZ Cards adapter against the EZ Cards sandbox, over real HTTP."""

import time
from decimal import Decimal

import pytest
import requests

from vendors.adapters.base import OrderRequest, SupplierError, SupplierStatus
from vendors.adapters.ezcards import EZCards
from vendors.sandbox import ezcards as sandbox


@pytest.fixture
def adapter(sandbox_url, unique, token_cache) -> EZCards:
    return EZCards(
        base_url=sandbox_url + sandbox.BASE_PATH,
        credentials={"api_key": f"ez_test_{unique}", "token": f"tok_{unique}"},
        cache=token_cache, account=unique,
    )


def order(ref: str, sku: str = "EZTEST-INSTOCK", quantity: int = 1, pay: str = "") -> OrderRequest:
    return OrderRequest(client_reference=ref, product_id=sku, sku=sku, quantity=quantity,
                        currency="USD", pay_with_currency=pay)


def issued(sandbox_url: str, account: str) -> list[dict]:
    return requests.get(f"{sandbox_url}/_sandbox/ezcards/issued",
                        params={"account": account}, timeout=5).json()


def supplier_orders(sandbox_url: str, account: str) -> list[dict]:
    return requests.get(f"{sandbox_url}/_sandbox/ezcards/orders",
                        params={"account": account}, timeout=5).json()


def fault(sandbox_url: str, account: str, **faults) -> None:
    response = requests.post(f"{sandbox_url}/_sandbox/ezcards/faults/{account}", json=faults,
                             timeout=5)
    assert response.status_code == 200


def balances(adapter: EZCards) -> dict[str, Decimal]:
    return {b.currency: b.amount for b in adapter.fetch_balances()}


def wait_for(adapter: EZCards, order_id: str, done, seconds: float = 8.0):
    deadline = time.monotonic() + seconds
    seen = []
    while True:
        result = adapter.fetch_order(order_id)
        seen.append(result)
        if done(result) or time.monotonic() > deadline:
            return result, seen
        time.sleep(0.4)


def test_it_reads_the_whole_catalog_page_by_page(adapter):
    adapter.page_size = 40
    products = list(adapter.fetch_catalog())
    skus = [p.sku for p in products]
    assert len(skus) == len(sandbox.CATALOG) > 100
    assert len(set(skus)) == len(skus)
    instock = next(p for p in products if p.sku == "EZTEST-INSTOCK")
    assert instock.cost == Decimal("9.50") and instock.cost_currency == "USD"
    assert instock.face_value == Decimal("10.00") and instock.face_currency == "USD"
    assert instock.price_tiers[1] == {"from_quantity": 10, "to_quantity": 49, "price": "9.40",
                                      "currency": "USD"}
    assert instock.price_tiers[-1]["to_quantity"] is None
    assert {p.face_currency for p in products} == {"USD", "EUR", "CAD", "GBP"}


def test_it_orders_an_in_stock_code_at_once_and_debits_the_balance(adapter, sandbox_url, unique):
    before = balances(adapter)
    assert set(before) == {"USD", "EUR", "CAD"}
    result = adapter.submit_order(order(f"ref-{unique}"))
    assert result.status == SupplierStatus.COMPLETED
    assert (result.delivered, result.total, len(result.codes)) == (1, 1, 1)
    assert result.cost.amount == Decimal("9.50") and result.cost.currency == "USD"
    assert result.client_reference == f"ref-{unique}"
    assert result.codes[0].pin.isdigit()  # sent as a JSON number, kept as a string
    expected = {(i["code"], i["pin"]) for i in issued(sandbox_url, unique)}
    assert {(c.code, c.pin) for c in result.codes} == expected, "codes differ"
    assert balances(adapter)["USD"] == before["USD"] - Decimal("9.50")

    fetched = adapter.fetch_order(result.supplier_order_id)
    assert fetched.status == SupplierStatus.COMPLETED
    assert {c.code for c in fetched.codes} == {c.code for c in result.codes}, "codes differ"
    found = adapter.lookup_order(f"ref-{unique}")
    assert found.supplier_order_id == result.supplier_order_id


def test_it_waits_for_an_out_of_stock_code(adapter, sandbox_url, unique):
    result = adapter.submit_order(order(f"ref-{unique}", "EZTEST-DELAYED"))
    assert result.status == SupplierStatus.PROCESSING and result.codes == []
    final, _ = wait_for(adapter, result.supplier_order_id,
                        lambda r: r.status != SupplierStatus.PROCESSING)
    assert final.status == SupplierStatus.COMPLETED and final.delivered == 1
    assert {c.code for c in final.codes} == {i["code"] for i in issued(sandbox_url, unique)}


def test_it_collects_a_bulk_order_delivered_code_by_code(adapter, sandbox_url, unique):
    result = adapter.submit_order(order(f"ref-{unique}", "EZTEST-PROGRESSIVE", quantity=3))
    assert result.status == SupplierStatus.PROCESSING
    assert result.total == 3 and result.cost.amount == Decimal("14.40")
    final, seen = wait_for(adapter, result.supplier_order_id,
                           lambda r: r.status == SupplierStatus.COMPLETED)
    assert final.status == SupplierStatus.COMPLETED and final.delivered == 3
    partial = [r for r in seen if 0 < r.delivered < 3]
    assert partial and all(r.status == SupplierStatus.PROCESSING for r in partial)
    delivered = [r.delivered for r in seen]
    assert delivered == sorted(delivered)
    assert {c.code for c in final.codes} == {i["code"] for i in issued(sandbox_url, unique)}
    assert len({c.serial for c in final.codes}) == 3


def test_it_sees_a_cancelled_order_refunded(adapter, sandbox_url, unique):
    before = balances(adapter)
    result = adapter.submit_order(order(f"ref-{unique}", "EZTEST-CANCELLED"))
    assert result.status == SupplierStatus.PROCESSING
    assert balances(adapter)["USD"] == before["USD"] - Decimal("9.70")
    final, _ = wait_for(adapter, result.supplier_order_id,
                        lambda r: r.status != SupplierStatus.PROCESSING)
    assert final.status == SupplierStatus.CANCELLED and final.codes == []
    assert balances(adapter)["USD"] == before["USD"]
    assert issued(sandbox_url, unique) == []


def test_it_reports_a_currency_the_account_cannot_pay_with(adapter, sandbox_url, unique):
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(order(f"ref-{unique}", "EZTEST-GBP"))
    assert caught.value.status_code == 422 and caught.value.code == "UNSUPPORTED_CURRENCY"
    assert not caught.value.retryable and not caught.value.outcome_unknown
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(order(f"ref2-{unique}", "EZTEST-INSTOCK", pay="JPY"))
    assert caught.value.code == "UNSUPPORTED_CURRENCY"
    assert supplier_orders(sandbox_url, unique) == []


def test_it_pays_across_currencies_as_quoted(adapter, unique):
    request = order(f"ref-{unique}", "EZTEST-GBP", pay="USD")
    quote = adapter.quote(request)
    before = balances(adapter)
    result = adapter.submit_order(request)
    assert result.status == SupplierStatus.COMPLETED
    assert result.cost == quote.total_cost and result.cost.currency == "USD"
    assert result.details["payWithCurrency"] == "USD"
    assert result.details["unitPriceOriginal"] == {"amount": "9.60", "currency": "GBP"}
    assert result.details["fxSummary"][0]["pair"] == "GBP/USD"
    assert Decimal(result.details["fxSummary"][0]["rate"]) == Decimal(quote.details["fx"]["rate"])
    assert balances(adapter)["USD"] == before["USD"] - result.cost.amount


def test_it_quotes_from_the_price_tiers(adapter):
    quote = adapter.quote(order("q", "EZTEST-INSTOCK", quantity=12))
    assert quote.unit_cost.amount == Decimal("9.40")
    assert quote.total_cost.amount == Decimal("112.80") and quote.total_cost.currency == "USD"
    eur = adapter.quote(order("q", "EZTEST-EUR", pay="USD"))
    assert eur.unit_cost.currency == "USD" and eur.unit_cost.amount > Decimal("9.70")


def test_it_returns_the_existing_order_for_a_duplicate_reference(adapter, sandbox_url, unique):
    first = adapter.submit_order(order(f"ref-{unique}"))
    second = adapter.submit_order(order(f"ref-{unique}"))
    assert second.supplier_order_id == first.supplier_order_id
    assert {c.code for c in second.codes} == {c.code for c in first.codes}, "codes differ"
    assert len(supplier_orders(sandbox_url, unique)) == 1


def test_it_finds_no_order_for_an_unknown_reference(adapter, unique):
    assert adapter.lookup_order(f"nothing-{unique}") is None
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_order("999999999")
    assert caught.value.status_code == 404 and not caught.value.retryable


def test_it_is_refused_without_matching_credentials(sandbox_url, unique, token_cache):
    for credentials in ({"api_key": f"ez_test_{unique}", "token": "tok_other"},
                        {"api_key": f"kal_test_{unique}", "token": f"tok_{unique}"}):
        bad = EZCards(base_url=sandbox_url + sandbox.BASE_PATH, credentials=credentials,
                      cache=token_cache)
        with pytest.raises(SupplierError) as caught:
            bad.fetch_balances()
        assert caught.value.status_code == 401 and not caught.value.retryable


def test_it_reports_the_rate_limit(adapter, sandbox_url, unique):
    fault(sandbox_url, unique, rate_limit=1, retry_after=3)
    with pytest.raises(SupplierError) as caught:
        adapter.fetch_balances()
    assert caught.value.status_code == 429 and caught.value.retryable
    assert caught.value.retry_after == 3
    assert adapter.fetch_balances()


def test_it_reconciles_a_timeout_after_the_order_was_accepted(adapter, sandbox_url, unique,
                                                             settings):
    settings.SUPPLIER_READ_TIMEOUT = 1
    fault(sandbox_url, unique, timeout_after_accept=1, timeout_seconds=3)
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(order(f"ref-{unique}"))
    assert caught.value.outcome_unknown and caught.value.retryable
    found = adapter.lookup_order(f"ref-{unique}")
    assert found is not None and found.status == SupplierStatus.COMPLETED
    assert [o["id"] for o in supplier_orders(sandbox_url, unique)] == [found.supplier_order_id]


def test_it_treats_a_server_error_on_submit_as_unknown(adapter, sandbox_url, unique):
    fault(sandbox_url, unique, error_5xx=1)
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(order(f"ref-{unique}"))
    assert caught.value.status_code == 500
    assert caught.value.outcome_unknown and caught.value.retryable
    assert adapter.lookup_order(f"ref-{unique}") is None
    assert adapter.submit_order(order(f"ref-{unique}")).status == SupplierStatus.COMPLETED


def test_it_treats_malformed_json_on_submit_as_unknown(adapter, sandbox_url, unique):
    fault(sandbox_url, unique, malformed_json=1)
    with pytest.raises(SupplierError) as caught:
        adapter.submit_order(order(f"ref-{unique}"))
    assert caught.value.outcome_unknown and not caught.value.retryable
    assert adapter.lookup_order(f"ref-{unique}") is not None


def test_it_never_takes_an_unknown_status_for_success(adapter, sandbox_url, unique):
    result = adapter.submit_order(order(f"ref-{unique}"))
    fault(sandbox_url, unique, unknown_status=1)
    odd = adapter.fetch_order(result.supplier_order_id)
    assert odd.status == SupplierStatus.UNKNOWN and odd.raw_status == "ON_HOLD"
    assert adapter.fetch_order(result.supplier_order_id).status == SupplierStatus.COMPLETED
