"""Placing: validation, pricing, routing, reservations under concurrency, cancel, approval."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections

from orders import ledger, services
from orders.errors import OrderError
from orders.models import LedgerEntry, Order, VendorOrder
from orders.pricing import LineRequest
from portal.roles import role_group
from vendors import matching
from vendors.models import Balance, Product


@pytest.fixture
def offer(make_vendor):
    """A fixed 10 GBP card sold by a vendor with a reported balance."""
    from django.db import transaction

    def make(cost="9.50", balance="1000", brand="Steam", vendor_name=None, kind="kalixo_v2"):
        vendor = make_vendor(kind=kind, **({"name": vendor_name} if vendor_name else {}))
        product = Product.objects.create(
            vendor=vendor, supplier_product_id=f"p-{vendor.pk}", sku=f"SKU-{vendor.pk}",
            name=f"{brand} £10", brand=brand, face_value=Decimal("10"), face_currency="GBP",
            cost=Decimal(cost), cost_currency="GBP",
        )
        matching.match_offers([product])
        with transaction.atomic():
            ledger.record_report(vendor=vendor, currency="GBP", amount=Decimal(balance))
        product.refresh_from_db()
        return product

    return make


@pytest.fixture
def user(django_user_model, db):
    user = django_user_model.objects.create_user("placer", password="placer-pass-123",
                                                 is_staff=True)
    user.groups.add(role_group("orderer"))
    return user


@pytest.fixture
def approver(django_user_model, db):
    user = django_user_model.objects.create_user("approver2", is_staff=True)
    user.groups.add(role_group("approver"))
    return user


@pytest.mark.parametrize("quantity", [0, -1, 10**9])
def test_it_refuses_bad_quantities_and_creates_nothing(quantity, offer, user):
    product = offer()
    with pytest.raises(OrderError) as err:
        services.place_order(user=user, lines=[LineRequest(product=product, quantity=quantity)])
    assert err.value.field == "quantity"
    assert not Order.objects.exists()
    assert not LedgerEntry.objects.filter(kind="reserve").exists()


def test_it_refuses_an_unavailable_product(offer, user):
    product = offer()
    product.available = False
    product.save()
    with pytest.raises(OrderError, match="not available"):
        services.place_order(user=user, lines=[LineRequest(product=product, quantity=1)])
    assert not Order.objects.exists()


def test_it_reserves_the_cost_and_creates_one_supplier_order_per_line(offer, user):
    product = offer()
    order = services.place_order(user=user, lines=[LineRequest(product=product, quantity=3)],
                                 note="Q4 gifts", purchase_order="PO-42")
    assert order.status == Order.Status.QUEUED
    assert order.total_cost == Decimal("28.50")
    balance = Balance.objects.get(vendor=product.vendor, currency="GBP")
    assert balance.reserved == Decimal("28.50")
    assert balance.available == Decimal("971.50")
    vo = order.vendor_orders.get()
    assert vo.quantity == 3
    assert vo.client_reference == f"{order.reference}-1"
    assert vo.next_poll_at is not None  # due at once; dispatched when the transaction commits


def test_it_refuses_an_order_that_would_overdraw(offer, user):
    product = offer(balance="20")
    with pytest.raises(OrderError, match="has 20.0000 GBP available; this order needs 28.50"):
        services.place_order(user=user, lines=[LineRequest(product=product, quantity=3)])
    assert not Order.objects.exists()
    assert Balance.objects.get(vendor=product.vendor).reserved == 0


def test_it_routes_to_the_cheapest_supplier_with_balance_and_says_why(offer, user):
    offer(cost="9.00", balance="10", vendor_name="Cheap but poor")
    chosen = offer(cost="9.40", vendor_name="Middle")
    offer(cost="9.80", vendor_name="Dear")
    order = services.place_order(user=user, lines=[
        LineRequest(quantity=2, brand="steam", face_value=Decimal("10"), currency="GBP")
    ])
    line = order.lines.get()
    assert line.product == chosen
    assert "Cheapest of 3 offers: Middle at £9.40" in line.routing_note
    assert "skipped Cheap but poor" in line.routing_note


def test_it_refuses_routing_when_nobody_sells_it(offer, user):
    offer()
    with pytest.raises(OrderError, match="No supplier offers Xbox 10"):
        services.place_order(user=user, lines=[
            LineRequest(quantity=1, brand="Xbox", face_value=Decimal("10"))
        ])


def test_it_cancels_before_submission_and_releases_the_reservation(offer, user):
    product = offer()
    order = services.place_order(user=user, lines=[LineRequest(product=product, quantity=2)])
    services.cancel_order(order=order, user=user)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.vendor_orders.get().status == VendorOrder.Status.CANCELLED
    assert Balance.objects.get(vendor=product.vendor).reserved == 0
    assert LedgerEntry.objects.get(order=order, kind="release").amount == Decimal("19.00")


def test_it_refuses_to_cancel_once_sent(offer, user):
    product = offer()
    order = services.place_order(user=user, lines=[LineRequest(product=product, quantity=1)])
    order.vendor_orders.update(status=VendorOrder.Status.SENDING)
    with pytest.raises(OrderError, match="already been sent"):
        services.cancel_order(order=order, user=user)


def test_it_needs_a_second_person_to_approve_large_orders(offer, user, settings, approver):
    settings.ORDER_APPROVAL_THRESHOLD = "100"
    product = offer()
    order = services.place_order(user=user, lines=[LineRequest(product=product, quantity=20)])
    assert order.status == Order.Status.PENDING_APPROVAL
    assert order.vendor_orders.get().next_poll_at is None
    with pytest.raises(OrderError, match="someone other"):
        services.approve_order(order=order, user=user)
    services.approve_order(order=order, user=approver)
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED
    assert order.approved_by == approver
    assert order.vendor_orders.get().next_poll_at is not None


def test_it_rejects_and_releases(offer, user, settings, approver):
    settings.ORDER_APPROVAL_THRESHOLD = "10"
    product = offer()
    order = services.place_order(user=user, lines=[LineRequest(product=product, quantity=2)])
    services.reject_order(order=order, user=approver, reason="Not this quarter")
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    assert Balance.objects.get(vendor=product.vendor).reserved == 0


def test_it_accepts_exactly_what_the_balance_covers_under_concurrent_placements(
    transactional_db, offer, django_user_model
):
    product = offer(cost="10", balance="100")  # covers 10 orders of one
    users = [django_user_model.objects.create_user(f"u{i}") for i in range(20)]
    barrier = threading.Barrier(20)
    outcomes = []

    def place(u):
        try:
            barrier.wait()
            services.place_order(user=u, lines=[LineRequest(product=product, quantity=1)])
            outcomes.append("accepted")
        except OrderError:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=place, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert outcomes.count("accepted") == 10
    assert outcomes.count("refused") == 10
    assert Order.objects.count() == 10
    balance = Balance.objects.get(vendor=product.vendor)
    assert balance.reserved == Decimal("100")
    assert balance.available == 0


def test_it_tops_up_a_partial_order_from_another_supplier(offer, user):
    first = offer(cost="9.00", vendor_name="First")
    second = offer(cost="9.60", vendor_name="Second")
    order = services.place_order(user=user, lines=[LineRequest(product=first, quantity=4)])
    vo = order.vendor_orders.get()
    vo.status, vo.delivered_quantity = VendorOrder.Status.PARTIALLY_COMPLETED, 1
    vo.save()
    order.lines.update(delivered_quantity=1)
    order.status, order.delivered_quantity = Order.Status.PARTIALLY_COMPLETED, 1
    order.save()

    lines = services.top_up_order(order=order, user=user)
    assert len(lines) == 1
    assert lines[0].vendor == second.vendor
    assert lines[0].quantity == 3
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED
    assert order.vendor_orders.count() == 2
    assert Balance.objects.get(vendor=second.vendor).reserved == Decimal("28.80")
