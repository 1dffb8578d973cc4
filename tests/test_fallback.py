"""Routing with fallback: a line whose supplier refuses or runs out goes to the next offer of
the same item, when its order allows other suppliers, with the difference in cost shown."""

import re
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from orders import fulfilment, ledger, pricing, services
from orders.models import Order, OrderLine, VendorOrder
from tests.auth import log_in
from tests.conftest import set_faults
from tests.test_order_flow import finished
from vendors import matching
from vendors.adapters.base import OrderResult, SupplierStatus
from vendors.models import Balance, Product


@pytest.fixture
def offers(make_vendor):
    """The same 10 USD card from Alpha (9.40, the cheaper) and Beta (9.70)."""
    made = []
    for name, cost in (("Alpha", "9.40"), ("Beta", "9.70")):
        vendor = make_vendor(name=name)
        with transaction.atomic():
            ledger.record_report(vendor=vendor, currency="USD", amount=Decimal("500"))
        made.append(Product.objects.create(
            vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], name=f"Amazon US {name}",
            brand="Amazon", country="US", face_value=Decimal("10"), face_currency="USD",
            cost=Decimal(cost), cost_currency="USD"))
    matching.match_offers(made)
    return [Product.objects.get(pk=p.pk) for p in made]


def place_routed(user, item, quantity: int, *, allow: bool = True) -> Order:
    priced = pricing.Router.for_items([item.pk]).route(item=item, quantity=quantity)
    return services.place_lines(user=user, priced=[priced], allow_other_suppliers=allow)[0]


def refuse(vo: VendorOrder, *, delivered: int = 0) -> None:
    """The supplier's final answer: out of stock, with ``delivered`` codes."""
    vo = VendorOrder.objects.get(pk=vo.pk)
    codes = [fulfilment_code(i) for i in range(delivered)]
    status = SupplierStatus.PARTIALLY_COMPLETED if delivered else SupplierStatus.FAILED
    fulfilment.apply_result(vo, OrderResult(
        supplier_order_id="SUP-1", status=status, raw_status="OUT_OF_STOCK", codes=codes,
        message="out of stock"), "polled")


def fulfilment_code(i: int):
    from vendors.adapters.base import CodeInfo
    return CodeInfo(code=f"FALLBACK-TEST-{uuid.uuid4().hex[:8]}-{i}")


def test_it_orders_a_refused_line_from_the_next_offer(orderer, offers):
    alpha, beta = offers
    order = place_routed(orderer, alpha.item, 3)
    first = order.lines.get()
    assert first.vendor.name == "Alpha"

    refuse(order.vendor_orders.get())

    order.refresh_from_db()
    fallback = order.lines.get(replaces=first)
    assert fallback.vendor.name == "Beta" and fallback.quantity == 3
    assert fallback.cost_difference == Decimal("0.90")
    assert order.total_cost == Decimal("29.10")  # 28.20 planned + 0.90
    assert order.status == Order.Status.IN_PROGRESS
    new_vo = fallback.vendor_orders.get()
    assert new_vo.next_poll_at is not None and new_vo.status == VendorOrder.Status.CREATED
    assert Balance.objects.get(vendor=beta.vendor).reserved == Decimal("29.10")
    assert Balance.objects.get(vendor=alpha.vendor).reserved == 0
    [event] = AuditEvent.objects.filter(order=order, action="fell_back")
    assert "ordered from Beta instead (+US$0.90)" in event.message


def test_it_orders_only_what_a_partial_delivery_missed(orderer, offers):
    alpha, _beta = offers
    order = place_routed(orderer, alpha.item, 5)
    refuse(order.vendor_orders.get(), delivered=2)
    fallback = OrderLine.objects.get(order=order, replaces__isnull=False)
    assert fallback.quantity == 3
    order.refresh_from_db()
    assert order.quantity == 5 and order.delivered_quantity == 2


def test_it_stops_when_the_order_does_not_allow_other_suppliers(orderer, offers):
    alpha, _beta = offers
    order = place_routed(orderer, alpha.item, 1, allow=False)
    refuse(order.vendor_orders.get())
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert order.lines.count() == 1


def test_it_says_so_when_no_other_offer_can_take_it(orderer, offers):
    alpha, beta = offers
    Product.objects.filter(pk=beta.pk).update(available=False)
    order = place_routed(orderer, alpha.item, 1)
    refuse(order.vendor_orders.get())
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    [event] = AuditEvent.objects.filter(order=order, action="fell_back")
    assert "no other offer takes the 1 code missing" in event.message
    assert "Beta: not available" in event.message


def test_it_never_offers_a_line_twice_to_a_supplier_that_refused_it(orderer, offers):
    alpha, _beta = offers
    order = place_routed(orderer, alpha.item, 1)
    refuse(order.vendor_orders.get())
    refuse(order.vendor_orders.get(line__vendor__name="Beta"))
    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert order.lines.count() == 2


def test_it_shows_the_cost_difference_on_the_order_page(client, orderer, offers):
    alpha, _beta = offers
    order = place_routed(orderer, alpha.item, 2)
    refuse(order.vendor_orders.get())
    log_in(client, orderer)
    html = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert "+US$0.60" in html
    assert "instead of Alpha" in html


def test_it_falls_back_when_a_real_supplier_refuses(sandbox_vendor, sandbox_url, orderer, work):
    """Two supplier accounts sell the same catalog; the cheaper one refuses every order
    (HTTP 400); the codes come from the other, and nobody is charged twice."""
    refusing, other = sandbox_vendor("kalixo_v2"), sandbox_vendor("kalixo_v2")
    product = Product.objects.get(vendor=refusing, sku="KTEST-OK")
    # Every sandbox test product is the same item ("Kalixo Test GB 10 GBP"): make each
    # account's KTEST-OK its cheapest offer, the refusing account's the cheapest of all.
    Product.objects.filter(pk=product.pk).update(cost=product.cost - Decimal("0.10"))
    Product.objects.filter(vendor=other, sku="KTEST-OK").update(
        cost=product.cost - Decimal("0.05"))
    set_faults(sandbox_url, "kalixo_v2", refusing.sandbox_account,
               {"fail_paths": {"/v2/orders": 400}})
    order = place_routed(orderer, product.item, 2)
    assert order.lines.get().vendor == refusing

    work(lambda: finished(order)() and order.status != Order.Status.IN_PROGRESS)

    assert order.status == Order.Status.COMPLETED
    assert order.vouchers.count() == 2
    assert {vo.vendor_id: vo.status for vo in order.vendor_orders.all()} == {
        refusing.pk: VendorOrder.Status.FAILED, other.pk: VendorOrder.Status.COMPLETED}
    assert order.lines.get(replaces__isnull=False).vendor == other


@pytest.mark.parametrize("choice", [True, False])
def test_it_keeps_the_order_forms_choice_of_other_suppliers(client, orderer, offers, choice):
    alpha, _beta = offers
    log_in(client, orderer)
    form = {"product": alpha.pk, "quantity": 1, **({"allow_other_suppliers": "on"}
                                                   if choice else {})}
    html = client.post("/orders/new/", {**form, "step": "confirm"}).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert client.post("/orders/new/", {**hidden, "step": "place"}).status_code == 302
    assert Order.objects.get().allow_other_suppliers is choice
