"""One supplier quote serves the new-order form, its confirmation and the placing; the total a
user confirmed is the total placed."""

import logging
import re
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from orders import ledger, pricing
from orders.models import Order
from tests.conftest import login_verified
from vendors.models import Product

URL = "/orders/new/"


def supplier_requests(caplog, vendor) -> Counter:
    """The requests sent to ``vendor`` since the log was last cleared, by method and path,
    from the one HTTP seam's log lines."""
    sent = Counter()
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "common.http" and vendor.base_url in message:
            method, url = message.split()[:2]
            sent[f"{method} {url.removeprefix(vendor.base_url)}"] += 1
    caplog.clear()
    return sent


def total(confirmed: str) -> tuple[Decimal, str]:
    amount, currency = confirmed.split()
    return Decimal(amount), currency


def hidden_fields(response) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"',
                           response.content.decode()))


@pytest.fixture
def ez_quote(sandbox_vendor, client, django_user_model, caplog):
    """A signed-in user, EZ Cards' sterling card paid in dollars (priced by a supplier quote),
    and the requests one such quote sends."""
    caplog.set_level(logging.INFO, logger="common.http")
    vendor = sandbox_vendor("ezcards")
    product = Product.objects.get(vendor=vendor, sku="EZTEST-GBP")
    login_verified(client, django_user_model.objects.create_superuser("q", password="q-pass-123"))
    caplog.clear()
    pricing.price_in(product, 1, product.face_value, "USD")  # not cached: no user
    one_quote = supplier_requests(caplog, vendor)
    assert sum(one_quote.values()) >= 1
    form = {"product": product.pk, "quantity": 1, "pay_with_currency": "USD"}
    return vendor, product, form, one_quote


def test_it_sends_one_quote_for_the_form_the_confirmation_and_the_placing(client, caplog,
                                                                         ez_quote):
    vendor, product, form, one_quote = ez_quote
    live = client.get(reverse("orders:order_quote"), form)
    assert live.status_code == 200 and 'id="quote-total"' in live.content.decode()
    confirm = client.post(URL, {**form, "step": "confirm"})
    assert confirm.status_code == 200
    hidden = hidden_fields(confirm)
    placed = client.post(URL, {**hidden, "step": "place"})
    assert placed.status_code == 302
    assert supplier_requests(caplog, vendor) == one_quote
    order = Order.objects.get()
    assert (order.total_cost, order.currency) == total(hidden["confirmed_total"])
    assert order.currency == "USD"

    client.get(reverse("orders:order_quote"), {**form, "quantity": 2})
    assert supplier_requests(caplog, vendor) == one_quote  # another question, another quote


def test_it_keeps_one_users_quote_from_another(client, caplog, ez_quote, django_user_model):
    vendor, product, form, one_quote = ez_quote
    assert client.post(URL, {**form, "step": "confirm"}).status_code == 200
    assert supplier_requests(caplog, vendor) == one_quote
    login_verified(client, django_user_model.objects.create_superuser("r", password="r-pass-1"))
    assert client.post(URL, {**form, "step": "confirm"}).status_code == 200
    assert supplier_requests(caplog, vendor) == one_quote


def test_it_quotes_again_when_placing_after_the_quote_expired(client, caplog, ez_quote,
                                                             settings):
    vendor, product, form, one_quote = ez_quote
    settings.SUPPLIER_QUOTE_SECONDS = 1
    hidden = hidden_fields(client.post(URL, {**form, "step": "confirm"}))
    time.sleep(1.5)
    placed = client.post(URL, {**hidden, "step": "place"})
    assert placed.status_code == 302
    assert supplier_requests(caplog, vendor) == one_quote + one_quote
    # The supplier's price did not move, so the confirmed total was placed.
    assert (Order.objects.get().total_cost, "USD") == total(hidden["confirmed_total"])


@pytest.fixture
def catalog_card(make_vendor, django_user_model, client, db):
    vendor = make_vendor()
    product = Product.objects.create(
        vendor=vendor, supplier_product_id="p-1", name="Steam £10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency="GBP", amount=Decimal("1000"))
    login_verified(client, django_user_model.objects.create_superuser("p", password="p-pass-1"))
    return product


def test_it_confirms_again_when_the_price_changed_before_placing(client, catalog_card):
    confirm = client.post(URL, {"product": catalog_card.pk, "quantity": 2, "step": "confirm"})
    hidden = hidden_fields(confirm)
    assert total(hidden["confirmed_total"]) == (Decimal("19"), "GBP")
    Product.objects.filter(pk=catalog_card.pk).update(cost=Decimal("9.90"))  # a catalog sync

    again = client.post(URL, {**hidden, "step": "place"})
    assert again.status_code == 409
    html = again.content.decode()
    assert "The price changed since it was confirmed: it is now £19.80" in html
    assert not Order.objects.exists()
    reconfirmed = hidden_fields(again)
    assert total(reconfirmed["confirmed_total"]) == (Decimal("19.8"), "GBP")
    assert reconfirmed["confirmation"] != hidden["confirmation"]

    assert client.post(URL, {**reconfirmed, "step": "place"}).status_code == 302
    assert Order.objects.get().total_cost == Decimal("19.80")


def test_it_refuses_a_line_that_no_longer_costs_the_confirmed_total(catalog_card):
    line = pricing.LineRequest(quantity=1, product=catalog_card, confirmed_total="9.40 GBP")
    with pytest.raises(pricing.PriceChanged, match="now £9.50"):
        pricing.price_line(line)
    for confirmed in ("9.50 GBP", "9.5 GBP"):
        assert pricing.price_line(pricing.LineRequest(
            quantity=1, product=catalog_card, confirmed_total=confirmed)).total == Decimal("9.5")
    for wrong in ("9.50 EUR", "nine GBP", "9.50"):
        with pytest.raises(pricing.PriceChanged):
            pricing.price_line(pricing.LineRequest(quantity=1, product=catalog_card,
                                                   confirmed_total=wrong))
