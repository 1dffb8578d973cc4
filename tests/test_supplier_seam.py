"""The supplier seam: every request takes a token from the vendor's shared budget, errors
carry one kind, and a Kalixo v2 order costs the protocol's two requests."""

from decimal import Decimal

import pytest
import responses

from common import http
from common.http import Budget, Kind, SupplierError
from orders import fulfilment
from orders.models import Order
from tests.test_order_flow import finished, place
from vendors.adapters import KIND_CHOICES, adapter_class, capabilities
from vendors.adapters.base import OrderRequest
from vendors.adapters.ezcards import EZCards

BASE = "https://sandboxapi.ezcards.test"


def ezcards(token_cache, budget: Budget) -> EZCards:
    return EZCards(base_url=BASE, credentials={"api_key": "k", "token": "t"},
                   cache=token_cache, account="7", budget=budget)


def product_page() -> dict:
    return {"data": {"total": 1, "page": 1, "pageSize": 100, "totalPage": 1, "items": [{
        "sku": "S1", "name": "Card", "currency": "USD", "faceValue": "10.00",
        "prices": [{"price": "9.50", "fromQuantity": 1, "toQuantity": None}]}]}}


@responses.activate
def test_it_takes_a_token_for_quotes_and_catalog_syncs_alike(token_cache, redis_conn, unique):
    responses.get(f"{BASE}/v2/products", json=product_page())
    adapter = ezcards(token_cache, Budget(f"test:{unique}", per_minute=2))
    order = OrderRequest(client_reference="quote", product_id="S1", sku="S1", quantity=1,
                         currency="USD")
    assert adapter.quote(order).unit_cost.amount == Decimal("9.50")
    assert len(list(adapter.fetch_catalog())) == 1
    with pytest.raises(SupplierError) as caught:
        adapter.quote(order)
    assert caught.value.kind is Kind.THROTTLED and caught.value.status_code is None
    assert caught.value.retry_after is not None and caught.value.retryable
    assert len(responses.calls) == 2  # the third request was never sent


@responses.activate
def test_it_pauses_every_caller_after_a_429(token_cache, redis_conn, unique):
    responses.get(f"{BASE}/v2/balances", status=429, headers={"Retry-After": "30"},
                  json={"error": "TOO_MANY_REQUESTS"})
    budget = Budget(f"test:{unique}", per_minute=100)
    with pytest.raises(SupplierError) as caught:
        ezcards(token_cache, budget).fetch_balances()
    assert caught.value.kind is Kind.THROTTLED and caught.value.status_code == 429
    with pytest.raises(SupplierError) as paused:
        ezcards(token_cache, budget).fetch_balances()
    assert paused.value.status_code is None and 25 < paused.value.retry_after <= 30
    assert len(responses.calls) == 1


@pytest.mark.parametrize("kind", list(Kind))
def test_it_fails_an_order_only_when_the_supplier_refused_it(kind):
    error = SupplierError("x", kind=kind)
    assert fulfilment.refused(error) is (kind is Kind.REFUSED)


def test_it_treats_a_malformed_order_answer_as_an_unknown_outcome():
    error = SupplierError("bad", kind=Kind.MALFORMED).after_write()
    assert error.kind is Kind.OUTCOME_UNKNOWN and error.cause is Kind.MALFORMED
    assert not error.retryable and not fulfilment.refused(error)
    refused = SupplierError("no", kind=Kind.REFUSED, status_code=422)
    assert refused.after_write() is refused


def test_it_derives_choices_and_capabilities_from_the_registry():
    assert KIND_CHOICES == [
        ("kalixo_v2", "Kalixo v2 (asynchronous)"), ("kalixo_v1", "Kalixo v1 (synchronous)"),
        ("ezcards", "EZ Cards"), ("starship", "Starship Rewards"),
    ]
    assert capabilities("ezcards").pay_with_currency
    assert not capabilities("starship").pay_with_currency
    assert capabilities("starship").webhooks and not capabilities("kalixo_v1").lookup_by_reference
    assert adapter_class("ezcards").one_code_per_request is True
    assert adapter_class("starship").missing_credentials({"api_key": "k"}) == ["api_secret"]
    assert adapter_class("starship").missing_credentials({"username": "u", "password": "p"}) == []


def test_it_orders_from_kalixo_v2_in_two_requests(sandbox_vendor, orderer, work, monkeypatch):
    vendor = sandbox_vendor("kalixo_v2")
    sent = []
    real = http.request

    def counting(method, url, **kwargs):
        sent.append(f"{method} {http.url_path(url).split('/v2', 1)[-1]}")
        return real(method, url, **kwargs)

    monkeypatch.setattr("vendors.adapters.base.request", counting)
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    assert sent[0] == "POST /orders" and len(sent) == 2, sent  # was GET product, POST, GET
