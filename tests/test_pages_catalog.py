"""The dashboard, the catalog, a product's page and placing an order through the pages."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from orders import ledger, pricing
from orders.models import Order
from tests.conftest import login_verified
from vendors import matching
from vendors.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    return login_verified(client, staff_user)


def report(vendor, currency: str, amount: str) -> None:
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency=currency, amount=Decimal(amount))


@pytest.fixture
def offer(make_vendor):
    """A fixed card sold by a new vendor holding a reported balance in its currency."""

    def make(*, cost="9.50", brand="Steam", face="10", currency="GBP", balance="1000",
             name=None, kind="kalixo_v2", vendor_name=None, **fields):
        vendor = make_vendor(kind=kind, **({"name": vendor_name} if vendor_name else {}))
        product = Product.objects.create(
            vendor=vendor, supplier_product_id=f"p-{vendor.pk}", sku=f"SKU-{vendor.pk}",
            name=name or f"{brand} {face} {currency}", brand=brand, face_value=Decimal(face),
            face_currency=currency, cost=Decimal(cost), cost_currency=currency, **fields,
        )
        matching.match_offers([product])  # as the catalog sync does
        product.refresh_from_db()
        if balance is not None:
            report(vendor, currency, balance)
        return product

    return make


@pytest.fixture
def ezcards_gbp(offer):
    """EZ Cards sells a GBP card but holds balances only in USD, EUR and CAD."""
    product = offer(kind="ezcards", brand="EZ Test", currency="GBP", balance=None,
                    vendor_name="EZ Cards")
    for currency in ("USD", "EUR", "CAD"):
        report(product.vendor, currency, "5000")
    return product


def page(response) -> str:
    return response.content.decode()


def field_errors(html: str, field: str) -> str:
    """The text of the error list in the form row of ``field``."""
    match = re.search(rf'<tr id="row-{field}">.*?</tr>', html, re.S)
    assert match, f"no row for {field}"
    errors = re.search(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', match.group(0), re.S)
    return errors.group(1) if errors else ""


def order_data(product=None, **fields) -> dict:
    data = {"product": product.pk if product else "", "quantity": 1, "brand": "",
            "face_value": "", "currency": "", "pay_with_currency": "", "note": "",
            "purchase_order": ""}
    data.update(fields)
    return data


# Dashboard


def test_it_shows_balances_with_a_low_balance_warning(staff_client, offer):
    rich = offer(balance="5000", vendor_name="Rich supplier")
    poor = offer(balance="12", vendor_name="Poor supplier")
    poor.vendor.low_balance_threshold = Decimal("50")
    poor.vendor.save()
    html = page(staff_client.get(reverse("orders:dashboard")))
    assert "Rich supplier" in html and "Poor supplier" in html
    assert html.count("low balance") == 1
    row = re.search(r"<tr>\s*<td>Poor supplier</td>.*?</tr>", html, re.S).group(0)
    assert "low balance" in row
    assert rich.vendor.name in html


def test_it_shows_orders_in_flight_needing_attention_and_recent_activity(staff_client,
                                                                           staff_user):
    flying = Order.objects.create(reference="VP-FLYING", placed_by=staff_user, currency="GBP",
                                  status="in_progress", quantity=4, delivered_quantity=1)
    Order.objects.create(reference="VP-STUCK", placed_by=staff_user, currency="GBP",
                                 status="needs_attention", quantity=1)
    AuditEvent.objects.create(action="placed", order=flying, actor=staff_user,
                              message="Placed 4 codes")
    html = page(staff_client.get(reverse("orders:dashboard")))
    in_flight = html[html.index('id="in-flight"'):html.index('id="attention"')]
    attention = html[html.index('id="attention"'):html.index('id="activity"')]
    assert "VP-FLYING" in in_flight and 'value="1"' in in_flight and "1 / 4" in in_flight
    assert "VP-STUCK" in attention and "VP-STUCK" not in in_flight
    assert "Placed 4 codes" in html


# Catalog


def test_it_lists_one_row_per_item_with_its_best_cost_and_offers(staff_client, offer):
    cheap = offer(cost="9.10", vendor_name="Cheap")
    dear = offer(cost="9.80", vendor_name="Dear")
    alone = offer(brand="Xbox", cost="9.00", vendor_name="Only")
    assert cheap.item_id == dear.item_id != alone.item_id
    html = page(staff_client.get(reverse("orders:catalog")))
    rows = {p.pk: re.search(rf'catalog/items/{p.item_id}/".*?</tr>', html, re.S).group(0)
            for p in (cheap, alone)}
    assert html.count(f"catalog/items/{cheap.item_id}/") == 2  # the name and the button
    assert "£9.10" in rows[cheap.pk] and "<td>2</td>" in rows[cheap.pk]
    assert "£9.00" in rows[alone.pk] and "<td>1</td>" in rows[alone.pk]
    assert f"catalog/{cheap.pk}/" not in html  # offers are on the item page


def test_it_compares_an_items_offers_cheapest_first(staff_client, offer):
    cheap = offer(cost="9.10", vendor_name="Cheap")
    dear = offer(cost="9.80", vendor_name="Dear")
    html = page(staff_client.get(reverse("orders:item_detail", args=[cheap.item_id])))
    rows = re.findall(r'<tr class="offer">.*?</tr>', html, re.S)
    assert [cheap.vendor.name in rows[0], dear.vendor.name in rows[1]] == [True, True]
    assert "cheapest" in rows[0] and "cheapest" not in rows[1]
    assert "9.0 %" in rows[0] and "2.0 %" in rows[1]  # discount to the £10 face value
    assert f"{reverse('orders:order_new')}?product={dear.pk}" in rows[1]
    assert staff_client.get(reverse("orders:item_detail", args=[999999])).status_code == 404


def test_it_filters_the_catalog(staff_client, offer):
    gb = offer(country="GB", vendor_name="A")
    us = offer(currency="USD", country="US", face="25", brand="Xbox", vendor_name="B")
    gone = offer(brand="Roblox", available=False, vendor_name="C")
    url = reverse("orders:catalog")

    def names(**params):
        html = page(staff_client.get(url, params))
        return {p.name for p in (gb, us, gone) if f"catalog/items/{p.item_id}/" in html}

    assert names() == {gb.name, us.name, gone.name}
    assert names(brand="xbox") == {us.name}
    assert names(country="gb") == {gb.name}
    assert names(currency="USD", face_value="25") == {us.name}
    assert names(availability="unavailable") == {gone.name}
    assert names(availability="available", q="steam") == {gb.name}


def test_it_shows_a_product_with_its_terms_and_an_order_link(staff_client, offer):
    product = offer(terms="Redeem on store.steampowered.com. No refunds.")
    other = offer(cost="9.90", vendor_name="Other")
    html = page(staff_client.get(reverse("orders:product_detail", args=[product.pk])))
    assert "No refunds." in html
    assert f"{reverse('orders:order_new')}?product={product.pk}" in html
    assert other.vendor.name in html
    assert staff_client.get(reverse("orders:product_detail", args=[999999])).status_code == 404


# New order: the form, the quote, the confirmation


def test_it_preselects_the_product_from_the_catalog_link(staff_client, offer):
    product = offer()
    html = page(staff_client.get(reverse("orders:order_new"), {"product": product.pk}))
    assert f'<option value="{product.pk}" selected>' in html
    assert 'hx-get="/orders/new/quote/"' in html


@pytest.mark.parametrize("quantity, message", [
    (0, "Quantity must be at least 1."),
    (-1, "Quantity must be at least 1."),
    (10**9, "Quantity must be at most 1000."),
])
@pytest.mark.parametrize("step", ["confirm", "place"])
def test_it_refuses_bad_quantities_on_the_field(staff_client, offer, quantity, message, step):
    product = offer()
    response = staff_client.post(reverse("orders:order_new"),
                                 order_data(product, quantity=quantity, step=step,
                                            confirmation="forged"))
    assert response.status_code == 400
    assert message in field_errors(page(response), "quantity")
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", ["999999", "abc"])
def test_it_refuses_an_unknown_product(staff_client, offer, value):
    offer()
    response = staff_client.post(reverse("orders:order_new"),
                                 {**order_data(), "product": value, "step": "place",
                                  "confirmation": "x"})
    assert response.status_code == 400
    assert "Unknown or unavailable product" in field_errors(page(response), "product")
    assert not Order.objects.exists()


def test_it_asks_for_a_product_or_a_brand_and_face_value(staff_client, offer):
    offer()
    response = staff_client.post(reverse("orders:order_new"), order_data(brand="Steam"))
    assert "Choose a product, or a brand and a face value." in field_errors(
        page(response), "product")
    response = staff_client.post(reverse("orders:order_new"),
                                 order_data(brand="Nope", face_value="10"))
    assert "No supplier offers Nope 10" in field_errors(page(response), "brand")
    assert not Order.objects.exists()


def test_it_refuses_a_currency_the_supplier_does_not_settle(staff_client, ezcards_gbp):
    url = reverse("orders:order_new")
    missing = page(staff_client.post(url, order_data(ezcards_gbp)))
    assert "choose one of CAD, EUR, USD" in field_errors(missing, "pay_with_currency")
    refused = page(staff_client.post(url, order_data(ezcards_gbp, pay_with_currency="GBP")))
    assert "cannot settle in GBP" in field_errors(refused, "pay_with_currency")
    assert not Order.objects.exists()


def test_it_quotes_a_pay_with_currency_at_the_suppliers_rate(client, sandbox_vendor,
                                                              django_user_model):
    vendor = sandbox_vendor("ezcards")
    product = Product.objects.get(vendor=vendor, sku="EZTEST-GBP")
    login_verified(client, django_user_model.objects.create_superuser("fx", password="fx-pass-123"))
    accepted = client.post(reverse("orders:order_new"),
                           order_data(product, pay_with_currency="usd"))
    assert accepted.status_code == 200
    assert "USD at the supplier's exchange rate" in page(accepted).replace("&#x27;", "'")
    assert not Order.objects.exists()  # the confirmation step comes first


def test_it_takes_a_pay_with_currency_only_where_the_supplier_has_one(staff_client, offer):
    product = offer()
    response = staff_client.post(reverse("orders:order_new"),
                                 order_data(product, pay_with_currency="USD"))
    assert "does not charge in another currency" in field_errors(page(response),
                                                               "pay_with_currency")


def test_it_refuses_more_than_the_balance_on_the_quantity(staff_client, staff_user, offer):
    from orders import confirmations

    product = offer(balance="20")
    response = staff_client.post(reverse("orders:order_new"),
                                 order_data(product, quantity=3, step="place",
                                            confirmation=confirmations.issue(staff_user)))
    assert response.status_code == 400
    assert "Refused" in field_errors(page(response), "quantity")
    assert not Order.objects.exists()


def test_it_confirms_then_places_an_order(staff_client, staff_user, offer):
    product = offer(balance="1000")
    url = reverse("orders:order_new")
    confirm = staff_client.post(url, order_data(product, quantity=3, note="For the raffle",
                                                purchase_order="PO-77"))
    html = page(confirm)
    assert confirm.status_code == 200 and "Place order" in html
    assert "£28.50" in html and "£971.50" in html  # total, and the balance after it
    assert not Order.objects.exists()
    token = re.search(r'name="confirmation" value="(\w+)"', html).group(1)
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert hidden["quantity"] == "3" and hidden["product"] == str(product.pk)
    placed = staff_client.post(url, {**hidden, "step": "place"})
    order = Order.objects.get()
    assert placed.url == reverse("orders:order_detail", args=[order.pk])
    assert (order.quantity, order.note, order.purchase_order) == (3, "For the raffle", "PO-77")
    assert order.total_cost == Decimal("28.50")
    assert AuditEvent.objects.filter(action="placed", order=order, actor=staff_user).exists()
    # Pressing "Place order" again does not buy twice.
    again = staff_client.post(url, {**hidden, "step": "place", "confirmation": token})
    assert again.url == placed.url
    assert Order.objects.count() == 1


def test_it_routes_a_brand_and_face_value_to_the_cheapest_supplier(staff_client, offer):
    offer(cost="9.80", vendor_name="Dear")
    cheap = offer(cost="9.20", vendor_name="Cheap")
    html = page(staff_client.post(reverse("orders:order_new"),
                                  order_data(brand="steam", face_value="10", quantity=2)))
    assert "Cheapest of 2 offers: Cheap" in html
    assert cheap.name in html and "£18.40" in html


def test_it_warns_of_a_similar_order_in_the_last_hour(staff_client, django_user_model, offer):
    product = offer()
    someone = django_user_model.objects.create_user("colleague")
    from orders import services

    earlier = services.place_order(user=someone, lines=[
        pricing.LineRequest(product=product, quantity=2)])
    same = page(staff_client.post(reverse("orders:order_new"), order_data(product, quantity=2)))
    assert "similar order" in same and earlier.reference in same
    other = page(staff_client.post(reverse("orders:order_new"), order_data(product, quantity=5)))
    assert "similar order" not in other


def test_it_quotes_live_as_a_fragment(staff_client, offer):
    product = offer()
    quote = staff_client.get(reverse("orders:order_quote"), order_data(product, quantity=4),
                             HTTP_HX_REQUEST="true")
    html = page(quote)
    assert "<html" not in html and 'id="quote"' in html and "£38.00" in html
    bad = page(staff_client.get(reverse("orders:order_quote"), order_data(product, quantity=0)))
    assert "Quantity must be at least 1." in bad


def test_it_lets_only_orderers_place_orders(client, django_user_model, offer):
    product = offer()
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    client.force_login(viewer)
    assert client.get(reverse("orders:order_new")).status_code == 403
    assert client.post(reverse("orders:order_new"), order_data(product)).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="add_order"))
    assert client.get(reverse("orders:order_new")).status_code == 200
    assert not Order.objects.exists()


def test_it_goes_back_from_the_confirmation_to_the_filled_form(staff_client, offer):
    product = offer()
    html = page(staff_client.post(reverse("orders:order_new"),
                                  order_data(product, quantity=7, note="x", step="edit")))
    assert "Review order" in html and "Place order" not in html
    assert 'name="quantity" value="7"' in html
    assert not Order.objects.exists()
