"""One catalog across suppliers: the matching rules, matching by hand in the admin, the item
page's record of each offer, and pages whose query count does not grow with their rows."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from orders.errors import OrderError
from orders.models import Order, OrderLine, VendorOrder
from tests.auth import log_in
from vendors import matching
from vendors.models import CatalogItem, Product


@pytest.fixture
def product(make_vendor):
    """A supplier product as a catalog sync stores it, matched by the rules."""

    def make(*, brand="Amazon", country="US", currency="USD", face="10", cost="9.50",
             vendor=None, **fields) -> Product:
        vendor = vendor or make_vendor()
        made = Product.objects.create(
            vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8],
            name=fields.pop("name", f"{brand} {face} {currency}"), brand=brand,
            country=country, face_value=Decimal(face) if face is not None else None,
            face_currency=currency, cost=Decimal(cost), cost_currency=currency, **fields,
        )
        matching.match_offers([made])
        made.refresh_from_db()
        return made

    return make


def key(**fields) -> str | None:
    defaults = {"brand": "Amazon", "country": "US", "currency": "USD",
                "face_value": Decimal("10"), "open_range": False}
    return matching.item_key(**{**defaults, **fields})


# The rules


@pytest.mark.parametrize("brand", ["Amazon", "AMAZON", "Amazon Gift Card", "amazon™ e-gift",
                                   "Amazon eGift Card", "  amazon  "])
def test_it_matches_the_same_brand_however_a_supplier_writes_it(brand):
    assert key(brand=brand) == key()


def test_it_matches_the_same_face_value_however_many_decimals():
    assert key(face_value=Decimal("10.0000")) == key(face_value=Decimal("10"))


@pytest.mark.parametrize("other", [
    {"country": "GB"}, {"currency": "EUR"}, {"face_value": Decimal("25")},
    {"open_range": True}, {"brand": "Amazon Prime"}, {"brand": "Apple"},
])
def test_it_never_matches_another_country_currency_value_or_brand(other):
    assert key(**other) != key()


def test_it_leaves_a_product_without_brand_or_currency_to_an_item_of_its_own(product):
    assert key(brand="") is None and key(brand="Gift Card") is None and key(currency="") is None
    first = product(brand="", name="Mystery card")
    second = product(brand="", name="Mystery card")
    assert first.item_id != second.item_id
    assert first.item.offers.count() == 1


def test_it_makes_offers_of_one_item_across_suppliers_and_not_across_countries(product):
    us = product(brand="Amazon.com")
    us_again = product(brand="AMAZON.COM Gift Card", cost="9.40")
    gb = product(brand="Amazon.com", country="GB", currency="GBP")
    assert us.item_id == us_again.item_id != gb.item_id
    item = us.item
    assert (item.brand, item.country, item.currency, item.face_value) == (
        "Amazon.com", "US", "USD", Decimal("10"))
    assert item.name == "Amazon.com US 10 USD"


def test_it_moves_an_offer_whose_product_changed_and_drops_an_empty_item(product):
    offer = product(face="10")
    old_item = offer.item_id
    offer.face_value = Decimal("25")
    offer.save()
    matching.match_offers([offer])
    offer.refresh_from_db()
    assert offer.item_id != old_item and offer.item.face_value == Decimal("25")
    assert not CatalogItem.objects.filter(pk=old_item).exists()


def test_it_matches_the_sandboxes_catalogs_on_sync(sandbox_vendor):
    vendor = sandbox_vendor("kalixo_v2")  # synced once already
    assert not vendor.products.filter(item__isnull=True).exists()
    shared = CatalogItem.objects.filter(offers__vendor=vendor).distinct().count()
    assert 0 < shared <= vendor.products.count()


# Matching by hand


@pytest.fixture
def operator_client(client, operator):
    log_in(client, operator)
    return client


def act(client, action: str, products: list[Product]):
    return client.post(reverse("admin:vendors_product_changelist"), {
        "action": action, "_selected_action": [p.pk for p in products], "index": 0,
    }, follow=True)


def test_it_lets_an_operator_match_offers_the_rules_keep_apart(operator_client, operator,
                                                               product):
    us = product(brand="Amazon.com")
    renamed = product(brand="Amazon US")
    assert us.item_id != renamed.item_id
    act(operator_client, "match_as_one_item", [us, renamed])
    renamed.refresh_from_db()
    assert renamed.item_id == us.item_id and renamed.matched_by_hand
    event = AuditEvent.objects.get(action="catalog_matched")
    assert event.actor == operator and event.data["products"] == [us.pk, renamed.pk]
    matching.match_offers(Product.objects.all())  # the next sync leaves it so
    renamed.refresh_from_db()
    assert renamed.item_id == us.item_id


def test_it_refuses_to_match_offers_in_two_currencies(operator_client, product):
    usd, eur = product(), product(currency="EUR")
    html = act(operator_client, "match_as_one_item", [usd, eur]).content.decode()
    assert "Offers in different currencies cannot be one item. Nothing was changed." in html
    eur.refresh_from_db()
    assert eur.item_id != usd.item_id and not eur.matched_by_hand
    assert not AuditEvent.objects.filter(action="catalog_matched").exists()


@pytest.mark.parametrize("other", [{"face": "5"}, {"face": None, "denomination_type": "open",
                                                  "min_value": Decimal("5"),
                                                  "max_value": Decimal("100")}])
def test_it_refuses_to_match_offers_of_different_face_values(operator_client, product, other):
    ten, different = product(), product(brand="Amazon.com", **other)
    html = act(operator_client, "match_as_one_item", [ten, different]).content.decode()
    assert "Offers of different face values cannot be one item" in html
    different.refresh_from_db()
    assert different.item_id != ten.item_id and not different.matched_by_hand


def test_it_never_routes_a_line_to_an_offer_of_another_face_value(product):
    """An offer put into the wrong item (by an earlier hand match) is never bought for it."""
    from orders.pricing import Router

    ten, five = product(cost="9.50"), product(face="5", cost="4.80")
    Product.objects.filter(pk=five.pk).update(item=ten.item, matched_by_hand=True)
    router = Router.for_items([ten.item_id])
    line = router.route(item=ten.item, quantity=1)
    assert line.product == ten and "is a card of 5, not 10" in line.routing_note
    Product.objects.filter(pk=ten.pk).update(available=False)
    with pytest.raises(OrderError, match="is a card of 5, not 10"):
        Router.for_items([ten.item_id]).route(item=ten.item, quantity=1)


def test_it_splits_offers_and_hands_them_back_to_the_rules(operator_client, product):
    first, second = product(), product(cost="9.40")
    act(operator_client, "split_into_own_items", [second])
    second.refresh_from_db()
    assert second.item_id != first.item_id and second.matched_by_hand
    act(operator_client, "return_to_matching_rules", [second])
    second.refresh_from_db()
    assert second.item_id == first.item_id and not second.matched_by_hand
    assert AuditEvent.objects.filter(action="catalog_matched").count() == 2


def test_it_keeps_matching_from_those_who_do_not_manage_vendors(client, django_user_model,
                                                                product):
    from portal.roles import role_group

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.groups.add(role_group("viewer"))
    log_in(client, viewer)
    first, second = product(brand="Amazon.com"), product(brand="Amazon US")
    act(client, "match_as_one_item", [first, second])
    second.refresh_from_db()
    assert second.item_id != first.item_id


# The item page's record of each offer


def supplier_order(offer: Product, user, *, status: str, seconds: int | None = None,
                   days_ago: int = 1) -> VendorOrder:
    order = Order.objects.create(reference=f"VP-{uuid.uuid4().hex[:8]}", placed_by=user,
                                 currency=offer.cost_currency, quantity=1)
    line = OrderLine.objects.create(order=order, product=offer, vendor=offer.vendor, quantity=1,
                                    unit_cost=offer.cost, currency=offer.cost_currency)
    submitted = timezone.now() - timedelta(days=days_ago)
    made = VendorOrder.objects.create(
        order=order, line=line, vendor=offer.vendor, client_reference=f"{order.reference}-1",
        quantity=1, currency=offer.cost_currency, status=status, submitted_at=submitted,
        completed_at=submitted + timedelta(seconds=seconds) if seconds is not None else None,
    )
    VendorOrder.objects.filter(pk=made.pk).update(created_at=submitted)
    return made


def test_it_shows_each_offers_recent_failures_and_time_to_codes(client, staff_user, product):
    fast = product(cost="9.60")
    slow = product(cost="9.40")
    for seconds in (2, 4, 30):
        supplier_order(fast, staff_user, status="completed", seconds=seconds)
    supplier_order(fast, staff_user, status="failed")
    supplier_order(fast, staff_user, status="failed", days_ago=45)  # outside the window
    supplier_order(slow, staff_user, status="completed", seconds=600)
    log_in(client, staff_user)
    html = client.get(reverse("orders:item_detail", args=[fast.item_id])).content.decode()
    rows = html.split('<tr class="offer">')[1:]
    assert slow.vendor.name in rows[0] and fast.vendor.name in rows[1]  # cheapest first
    assert "600 s" in rows[0] and "0 of 1" in rows[0]
    assert "4 s" in rows[1] and "1 of 4" in rows[1]


# Query counts


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_it_runs_as_many_queries_for_many_items_and_offers_as_for_few(client, staff_user,
                                                                       product, make_vendor):
    log_in(client, staff_user)
    vendors = [make_vendor() for _ in range(3)]
    first = product(vendor=vendors[0])
    supplier_order(first, staff_user, status="completed", seconds=3)
    catalog, item = reverse("orders:catalog"), reverse("orders:item_detail", args=[first.item_id])
    few = queries(client, catalog), queries(client, item)
    for face in range(11, 31):
        product(face=str(face), vendor=vendors[face % 3])
    for other in vendors[1:]:
        offer = product(vendor=other)
        supplier_order(offer, staff_user, status="failed")
    assert (queries(client, catalog), queries(client, item)) == few


def test_it_matches_a_product_added_in_the_admin(client, staff_user, make_vendor, product):
    synced = product()
    log_in(client, staff_user)
    response = client.post(reverse("admin:vendors_product_add"), {
        "vendor": synced.vendor_id, "supplier_product_id": "added-by-hand", "name": "Amazon",
        "brand": "Amazon", "country": "US", "face_value": "10", "face_currency": "USD",
        "cost": "9.45", "cost_currency": "USD", "denomination_type": "fixed",
        "available": "on", "price_tiers": "[]", "extra": "{}",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get(supplier_product_id="added-by-hand").item_id == synced.item_id
