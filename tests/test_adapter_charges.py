"""Adapter unit tests for what each supplier charged: fake HTTP at the seam (``responses``)."""

from decimal import Decimal

import responses

from common.money import Money
from tests.test_adapter_starship import BASE, adapter, order_body, order_request

DELIVERED = [{"card_number": "CARD-A", "pin_code": None, "claim_url": None,
              "voucher_reference_number": "VRN-1", "expires_at": None}]


@responses.activate
def test_it_reads_the_amount_of_an_answer_without_a_currency_in_the_orders_currency(token_cache):
    body = order_body(amount="980.00", status="delivered", quantity=1, vouchers=DELIVERED)
    del body["currency"]  # the documented answer names no currency
    responses.get(f"{BASE}/api/v1/orders/55", json=body)
    result = adapter(token_cache).fetch_order(
        "55", order=order_request(product_id="1010:1000.00", quantity=1, currency="INR"))
    assert result.cost == Money(Decimal("980.00"), "INR")
    assert result.cost_estimated is False


@responses.activate
def test_it_takes_the_pay_with_currency_for_the_charge_and_finds_it_by_reference(token_cache):
    body = order_body(amount="11.48", status="delivered", quantity=1, vouchers=DELIVERED)
    del body["currency"]
    responses.get(f"{BASE}/api/v1/orders", json=[body],
                  headers={"X-Has-More": "false"})
    responses.get(f"{BASE}/api/v1/orders/55", json=body)
    found = adapter(token_cache).lookup_order("portal-ref-0001", order=order_request(
        quantity=1, currency="EUR", pay_with_currency="USD"))
    assert found.cost == Money(Decimal("11.48"), "USD")


@responses.activate
def test_it_charges_only_the_delivered_share_of_an_order_cancelled_after_part_delivery(
    token_cache
):
    body = order_body(amount="39.00", status="CANCELLED", quantity=4, vouchers=DELIVERED * 2)
    del body["currency"]
    responses.get(f"{BASE}/api/v1/orders/55", json=body)
    result = adapter(token_cache).fetch_order("55", order=order_request(quantity=4))
    assert result.delivered == 2
    assert result.cost == Money(Decimal("19.50"), "USD")
    assert result.cost_estimated is True  # the refund is not stated


@responses.activate
def test_it_states_no_charge_without_the_orders_currency(token_cache):
    body = order_body(amount="48.75", status="pending")
    del body["currency"]
    responses.get(f"{BASE}/api/v1/orders/55", json=body)
    assert adapter(token_cache).fetch_order("55").cost is None
