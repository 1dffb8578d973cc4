"""What the catalog's pages say of an item (best cost, how many offers can take it, the offer a
line would go to) is what routing a line would do now, across currencies and balances."""

import re
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders import ledger, pricing
from orders.errors import OrderError
from tests.conftest import login_verified
from vendors import matching
from vendors.models import CatalogItem, Product

pytestmark = pytest.mark.django_db


def offer(vendor, *, cost: str, currency: str = "GBP", available: bool = True) -> Product:
    made = Product.objects.create(
        vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], name=f"Steam GB 10 {cost}",
        brand="Steam", country="GB", face_value=Decimal("10"), face_currency="GBP",
        cost=Decimal(cost), cost_currency=currency, available=available)
    matching.match_offers([made])
    made.refresh_from_db()
    return made


def report(vendor, currency: str, amount: str) -> None:
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency=currency, amount=Decimal(amount))


@pytest.fixture
def client_in(client, staff_user):
    return login_verified(client, staff_user)


def test_it_shows_the_cost_a_line_would_be_routed_at(client_in, make_vendor):
    """The cheapest offer's supplier cannot cover it: the page shows the offer that can."""
    short, funded = make_vendor(name="Short"), make_vendor(name="Funded")
    cheap, dear = offer(short, cost="9.50"), offer(funded, cost="9.70")
    report(short, "GBP", "5")
    report(funded, "GBP", "1000")
    html = client_in.get(reverse("orders:catalog")).content.decode()
    row = re.search(rf'catalog/items/{cheap.item_id}/".*?</tr>', html, re.S).group(0)
    assert "£9.70" in row and "£9.50" not in row and "1 available" in row
    line = pricing.Router.for_items([cheap.item_id]).route(item=cheap.item, quantity=1)
    assert (line.product, line.unit_cost) == (dear, Decimal("9.70"))

    item_page = client_in.get(reverse("orders:item_detail", args=[cheap.item_id]))
    rows = re.findall(r'<tr class="offer">.*?</tr>', item_page.content.decode(), re.S)
    short_row = next(r for r in rows if "Short" in r)
    funded_row = next(r for r in rows if "Funded" in r)
    assert "not now: balance £5.00" in short_row and "Add this offer" not in short_row
    assert "cheapest that can take it" in funded_row and "Add this offer" in funded_row


def test_it_says_no_offer_can_take_an_item_its_supplier_cannot_pay_for(client_in,
                                                                       make_vendor):
    """An EZ Cards account holding only USD cannot settle a GBP-priced card through routing."""
    usd_only = make_vendor(name="Dollars", kind="ezcards")
    gbp = offer(usd_only, cost="9.40")
    report(usd_only, "USD", "1000")
    html = client_in.get(reverse("orders:catalog")).content.decode()
    row = re.search(rf'catalog/items/{gbp.item_id}/".*?</tr>', html, re.S).group(0)
    assert "no offer can take it now" in row and "holds no GBP balance" in row
    assert "Add to basket" not in row
    picker = client_in.get(reverse("orders:basket_picker"), {"q": "steam"}).content.decode()
    assert "no offer can take it now" in picker and ">Add</button>" not in picker
    with pytest.raises(OrderError, match="holds no GBP balance"):
        pricing.Router.for_items([gbp.item_id]).route(item=gbp.item, quantity=1)


OFFERS = st.lists(st.tuples(
    st.sampled_from(["9.10", "9.50", "9.70", "10.20"]),  # cost
    st.sampled_from(["GBP", "USD"]),  # what the supplier charges in
    st.booleans(),  # available
    st.sampled_from(["kalixo_v2", "ezcards"]),
    st.sampled_from([None, "0", "9.60", "1000"]),  # the balance reported in that currency
), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offers=OFFERS)
def test_it_says_of_every_item_what_routing_does(offers, make_vendor):
    with transaction.atomic():
        for cost, currency, available, kind, balance in offers:
            vendor = make_vendor(kind=kind)
            offer(vendor, cost=cost, currency=currency, available=available)
            if balance is not None:
                report(vendor, currency, balance)
        [item] = CatalogItem.objects.all()
        pricing.price_items_now([item])
        try:
            line = pricing.Router.for_items([item.pk]).route(item=item, quantity=1)
        except OrderError:
            line = None
        if line is None:
            assert (item.available_count, item.best_cost) == (0, None)
            assert item.why_unavailable
        else:
            assert item.available_count >= 1
            assert (item.best_cost, item.best_cost_currency, item.routed_offer_id) == (
                line.unit_cost, line.currency, line.product.pk)
        transaction.set_rollback(True)
