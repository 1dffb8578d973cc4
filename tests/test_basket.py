"""The basket: routing each line to an offer of its item, totals and balances per currency,
one confirmation placing one order per currency, "Order again", and its pages."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import basket, ledger, pricing, services
from orders.errors import OrderError
from orders.models import BasketLine, Order
from portal.roles import role_group
from tests.auth import log_in
from vendors import matching
from vendors.models import CatalogItem, Product


@pytest.fixture
def orderer(django_user_model, db):
    user = django_user_model.objects.create_user("basket-user", password="pw-basket-123",
                                                 is_staff=True)
    user.groups.add(role_group("orderer"))
    return user


@pytest.fixture
def offer(make_vendor):
    """A supplier's offer of an item, matched by the rules, its vendor holding a balance."""
    vendors = {}

    def make(*, vendor="Alpha", brand="Amazon", face="10", currency="USD", cost="9.50",
             balance="1000", **fields) -> Product:
        if vendor not in vendors:
            vendors[vendor] = make_vendor(name=vendor)
            with transaction.atomic():
                ledger.record_report(vendor=vendors[vendor], currency=currency,
                                     amount=Decimal(balance))
        made = Product.objects.create(
            vendor=vendors[vendor], supplier_product_id=uuid.uuid4().hex[:8],
            name=f"{brand} {face} {currency}", brand=brand, country="US",
            face_value=Decimal(face) if face else None, face_currency=currency,
            cost=Decimal(cost), cost_currency=currency, **fields,
        )
        matching.match_offers([made])
        made.refresh_from_db()
        return made

    return make


def add(user, product: Product, quantity: int = 1, **fields) -> BasketLine:
    return basket.add(user=user, item=product.item, quantity=quantity, **fields)


# Routing


def test_it_routes_a_line_to_the_cheapest_offer_of_its_item(offer):
    dear = offer(vendor="Alpha", cost="9.80")
    cheap = offer(vendor="Beta", cost="9.40")
    assert dear.item_id == cheap.item_id
    line = pricing.Router.for_items([dear.item_id]).route(item=dear.item, quantity=2)
    assert line.product == cheap
    assert line.total == Decimal("18.80")
    assert "Cheapest of 2 offers: Beta" in line.routing_note


def test_it_skips_an_offer_whose_balance_cannot_cover_the_line(offer):
    offer(vendor="Alpha", cost="9.00", balance="20")
    other = offer(vendor="Beta", cost="9.50")
    line = pricing.Router.for_items([other.item_id]).route(item=other.item, quantity=3)
    assert line.product == other
    assert "skipped Alpha: balance US$20.00" in line.routing_note


def test_it_lets_later_lines_see_what_earlier_ones_left(offer):
    ten = offer(vendor="Alpha", cost="9.00", balance="50")
    twenty = offer(vendor="Alpha", face="20", cost="18.00")
    offer(vendor="Beta", face="20", cost="19.00")
    router = pricing.Router.for_items([ten.item_id, twenty.item_id])
    first = router.route(item=ten.item, quantity=4)  # 36 of Alpha's 50
    second = router.route(item=twenty.item, quantity=1)  # Alpha has 14 left: Beta
    assert first.product.vendor.name == "Alpha"
    assert second.product.vendor.name == "Beta"


def test_it_routes_to_a_pinned_offer_even_when_dearer(offer):
    dear = offer(vendor="Alpha", cost="9.80")
    offer(vendor="Beta", cost="9.40")
    line = pricing.Router.for_items([dear.item_id]).route(item=dear.item, quantity=1,
                                                          pinned=dear)
    assert line.product == dear
    assert line.routing_note.startswith("Chosen offer: Alpha")


def test_it_refuses_a_line_no_offer_can_take_and_says_why(offer):
    only = offer(vendor="Alpha", cost="9.00", available=False)
    with pytest.raises(OrderError) as refused:
        pricing.Router.for_items([only.item_id]).route(item=only.item, quantity=1)
    assert "Alpha: not available" in refused.value.message


def test_it_checks_a_range_items_face_value_against_each_offer(offer):
    ranged = offer(vendor="Alpha", face=None, cost="1", denomination_type="open",
                   min_value=Decimal("5"), max_value=Decimal("100"))
    router = pricing.Router.for_items([ranged.item_id])
    with pytest.raises(OrderError, match="range of values"):
        router.route(item=ranged.item, quantity=1)
    with pytest.raises(OrderError, match="between 5"):
        router.route(item=ranged.item, quantity=1, face_value=Decimal("500"))
    assert router.route(item=ranged.item, quantity=1, face_value=Decimal("25")).face_value == 25


# The basket


def test_it_adds_the_same_item_to_one_line(orderer, offer):
    product = offer()
    add(orderer, product, 2)
    add(orderer, product, 3)
    assert list(BasketLine.objects.filter(user=orderer).values_list("quantity", flat=True)) == [5]


def test_it_refuses_an_offer_of_another_item(orderer, offer):
    ten, twenty = offer(), offer(face="20", cost="19")
    with pytest.raises(OrderError, match="not an offer of"):
        basket.add(user=orderer, item=ten.item, quantity=1, product=twenty)
    assert not BasketLine.objects.exists()


def test_it_shows_totals_per_currency_and_the_balances_after(orderer, offer):
    add(orderer, offer(vendor="Alpha", cost="9.50"), 2)
    add(orderer, offer(vendor="Euro", currency="EUR", cost="9.00"), 1)
    shown = basket.view(orderer)
    assert shown.ready
    assert {t.currency: t.total for t in shown.totals} == {"USD": Decimal("19.00"),
                                                           "EUR": Decimal("9.00")}
    after = {(b.vendor.name, b.currency): (b.before, b.after) for b in shown.balances}
    assert after == {("Alpha", "USD"): (Decimal("1000"), Decimal("981.00")),
                     ("Euro", "EUR"): (Decimal("1000"), Decimal("991.00"))}


def test_it_warns_of_the_same_item_ordered_recently(orderer, offer):
    product = offer()
    recent = services.place_order(user=orderer, lines=[pricing.LineRequest(product=product,
                                                                           quantity=2)])
    add(orderer, product, 2)
    add(orderer, offer(face="20", cost="19"), 2)
    rows = basket.view(orderer).rows
    assert [r.repeats for r in rows] == [[recent], []]


def test_it_places_one_order_per_currency_and_empties_the_basket(orderer, offer):
    add(orderer, offer(vendor="Alpha", cost="9.50"), 2)
    add(orderer, offer(vendor="Beta", face="20", cost="18.00"), 1)
    add(orderer, offer(vendor="Euro", currency="EUR", cost="9.00"), 3)
    shown = basket.view(orderer)
    orders = basket.place(user=orderer, confirmation_token=uuid.uuid4().hex,
                          fingerprint=shown.fingerprint, allow_other_suppliers=False,
                          note="Team prizes")
    by_currency = {o.currency: o for o in orders}
    assert set(by_currency) == {"USD", "EUR"}
    usd = by_currency["USD"]
    assert usd.total_cost == Decimal("37.00") and usd.quantity == 3
    assert sorted(usd.lines.values_list("vendor__name", flat=True)) == ["Alpha", "Beta"]
    assert all(line.item_id for line in usd.lines.all())
    assert not usd.allow_other_suppliers and usd.note == "Team prizes"
    assert by_currency["EUR"].vendor_orders.count() == 1
    assert not BasketLine.objects.filter(user=orderer).exists()


def test_it_refuses_a_basket_routed_otherwise_than_shown(orderer, offer):
    product = offer(vendor="Alpha", cost="9.50")
    add(orderer, product, 1)
    shown = basket.view(orderer)
    offer(vendor="Beta", cost="9.00")  # a cheaper offer appears after the page was shown
    with pytest.raises(basket.BasketChanged):
        basket.place(user=orderer, confirmation_token=uuid.uuid4().hex,
                     fingerprint=shown.fingerprint, allow_other_suppliers=True)
    assert not Order.objects.exists()
    assert BasketLine.objects.filter(user=orderer).count() == 1


def test_it_places_a_confirmation_once(orderer, offer):
    add(orderer, offer(), 1)
    token = uuid.uuid4().hex
    fingerprint = basket.view(orderer).fingerprint
    [order] = basket.place(user=orderer, confirmation_token=token, fingerprint=fingerprint,
                           allow_other_suppliers=True)
    with pytest.raises(services.AlreadyPlaced) as again:
        basket.place(user=orderer, confirmation_token=token, fingerprint=fingerprint,
                     allow_other_suppliers=True)
    assert again.value.order == order
    assert Order.objects.count() == 1


def test_it_fills_the_basket_from_an_order(orderer, offer):
    ten, twenty = offer(), offer(face="20", cost="19")
    order = services.place_order(user=orderer, lines=[
        pricing.LineRequest(product=ten, quantity=2), pricing.LineRequest(product=twenty,
                                                                          quantity=1)])
    assert basket.fill_from_order(user=orderer, order=order) == 2
    lines = {line.item_id: line.quantity for line in BasketLine.objects.filter(user=orderer)}
    assert lines == {ten.item_id: 2, twenty.item_id: 1}


# Pages


def basket_page(client) -> str:
    response = client.get(reverse("orders:basket"))
    assert response.status_code == 200
    return response.content.decode()


def test_it_builds_and_places_a_basket_through_its_pages(client, orderer, offer):
    product = offer(vendor="Alpha", cost="9.50")
    log_in(client, orderer)
    item_url = reverse("orders:item_detail", args=[product.item_id])
    response = client.post(reverse("orders:basket_add"), {
        "item": product.item_id, "quantity": "3", "next": item_url})
    assert response["Location"] == item_url
    html = basket_page(client)
    assert "Alpha" in html and "28.50" in html
    line = BasketLine.objects.get(user=orderer)
    client.post(reverse("orders:basket_line", args=[line.pk]), {"quantity": "2"})
    html = basket_page(client)
    confirmation = html.split('name="confirmation" value="')[1].split('"')[0]
    fingerprint = html.split('name="fingerprint" value="')[1].split('"')[0]
    response = client.post(reverse("orders:basket_place"), {
        "confirmation": confirmation, "fingerprint": fingerprint,
        "allow_other_suppliers": "on"})
    order = Order.objects.get()
    assert response["Location"] == reverse("orders:order_detail", args=[order.pk])
    assert order.quantity == 2 and order.allow_other_suppliers
    again = client.post(reverse("orders:basket_place"), {
        "confirmation": confirmation, "fingerprint": fingerprint})
    assert again["Location"] == reverse("orders:order_detail", args=[order.pk])
    assert Order.objects.count() == 1


def test_it_keeps_an_offsite_next_out_of_the_redirect(client, orderer, offer):
    product = offer()
    log_in(client, orderer)
    response = client.post(reverse("orders:basket_add"), {
        "item": product.item_id, "quantity": "1", "next": "https://evil.example/"})
    assert response["Location"] == reverse("orders:basket")


def test_it_goes_back_to_the_basket_for_a_next_that_is_no_path(client, orderer, offer):
    product = offer()
    log_in(client, orderer)
    response = client.post(reverse("orders:basket_add"), {
        "item": product.item_id, "quantity": "1", "next": "basket"})
    assert response["Location"] == reverse("orders:basket")


def test_it_says_a_line_removed_meanwhile_is_gone_when_its_quantity_changes(orderer, offer):
    """The race of one tab removing a line while another changes it: a message, not a 500."""
    line = basket.add(user=orderer, item=offer().item, quantity=1)
    basket.remove(user=orderer, line_id=line.pk)
    with pytest.raises(OrderError, match="no longer in the basket"):
        basket.set_quantity(user=orderer, line_id=line.pk, quantity=2)
    assert not BasketLine.objects.exists()


def test_it_shows_a_field_error_for_a_bad_quantity_and_changes_nothing(client, orderer, offer):
    product = offer()
    log_in(client, orderer)
    client.post(reverse("orders:basket_add"), {"item": product.item_id, "quantity": "0"})
    assert not BasketLine.objects.exists()
    assert "greater than or equal to 1" in basket_page(client)


def test_it_finds_items_in_the_picker(client, orderer, offer):
    offer(brand="Amazon")
    offer(brand="Steam", cost="9")
    log_in(client, orderer)
    html = client.get(reverse("orders:basket_picker"), {"q": "stea"}).content.decode()
    assert "Steam" in html and "Amazon" not in html


def test_it_keeps_another_users_basket_line_out_of_reach(client, orderer, offer,
                                                          django_user_model):
    other = django_user_model.objects.create_user("other-orderer", is_staff=True)
    other.groups.add(role_group("orderer"))
    line = add(other, offer(), 1)
    log_in(client, orderer)
    response = client.post(reverse("orders:basket_line", args=[line.pk]), {"remove": "1"})
    assert response.status_code == 404
    assert BasketLine.objects.filter(pk=line.pk).exists()
    assert "Amazon" not in basket_page(client)


def test_it_orders_again_from_the_order_page(client, orderer, offer):
    product = offer()
    order = services.place_order(user=orderer, lines=[pricing.LineRequest(product=product,
                                                                          quantity=4)])
    log_in(client, orderer)
    assert "Order again" in client.get(reverse("orders:order_detail",
                                               args=[order.pk])).content.decode()
    response = client.post(reverse("orders:order_reorder", args=[order.pk]))
    assert response["Location"] == reverse("orders:basket")
    assert BasketLine.objects.get(user=orderer).quantity == 4


def test_it_renders_the_basket_in_the_same_queries_whatever_its_lines(client, orderer, offer):
    log_in(client, orderer)
    add(orderer, offer(vendor="Alpha"), 1)
    basket_page(client)
    with CaptureQueriesContext(connection) as one:
        basket_page(client)
    for face in range(11, 21):
        add(orderer, offer(vendor=f"V{face % 3}", face=str(face), cost=str(face - 1)), 2)
    with CaptureQueriesContext(connection) as eleven:
        html = basket_page(client)
    assert html.count('class="basket-line') == 11
    assert len(eleven) == len(one)


def test_it_lists_items_not_offers_in_the_catalog_with_an_add_button(client, orderer, offer):
    product = offer(vendor="Alpha")
    offer(vendor="Beta", cost="9.10")
    log_in(client, orderer)
    html = client.get(reverse("orders:catalog")).content.decode()
    assert html.count(f'name="item" value="{product.item_id}"') == 1
    assert CatalogItem.objects.count() == 1
