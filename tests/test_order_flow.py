"""Place -> real RQ worker -> supplier sandbox over HTTP -> codes, for every supplier."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from orders import pricing, services
from orders.errors import OrderError
from orders.models import LedgerEntry, Order, VendorOrder
from tests.conftest import sandbox_get
from vendors.models import Balance, Product


@pytest.fixture
def buyer(orderer):
    orderer.user_permissions.add(Permission.objects.get(codename="reveal_codes"))
    return type(orderer).objects.get(pk=orderer.pk)


def place(vendor, user, quantity: int, **product_filter) -> Order:
    product = Product.objects.get(vendor=vendor, **product_filter)
    return services.place_order(
        user=user, lines=[pricing.LineRequest(product=product, quantity=quantity)]
    )


def finished(order: Order):
    def done() -> bool:
        order.refresh_from_db()
        return order.status not in (
            Order.Status.QUEUED, Order.Status.IN_PROGRESS, Order.Status.PENDING_APPROVAL
        )
    return done


def revealed_codes(order: Order, user) -> list[str]:
    return [services.reveal_voucher(voucher=v, user=user).code for v in order.vouchers.all()]


def assert_ledger_settled(order: Order) -> None:
    entries = LedgerEntry.objects.filter(order=order)
    total = {kind: sum((e.amount for e in entries if e.kind == kind), Decimal("0"))
             for kind in LedgerEntry.Kind.values}
    assert total["reserve"] == order.total_cost
    assert total["debit"] == sum(vo.cost for vo in order.vendor_orders.all())
    assert total["release"] == max(total["reserve"] - total["debit"], 0)
    if not order.delivered_quantity:
        assert total["debit"] == 0
    line = order.lines.get()
    for balance in Balance.objects.filter(vendor=line.vendor):
        assert balance.reserved == 0


CASES = {
    "kalixo_v2": {"sku": "KTEST-OK"},
    "kalixo_v1": {"sku": "GB-EN-KTEST-OK"},
    "ezcards": {"sku": "EZTEST-INSTOCK"},
    "starship": {"supplier_product_id": "1001:25.00"},
}


@pytest.mark.parametrize("kind", CASES)
def test_it_delivers_exactly_the_codes_the_supplier_issued(kind, sandbox_vendor, buyer, work,
                                                          sandbox_url):
    vendor = sandbox_vendor(kind)
    order = place(vendor, buyer, 3, **CASES[kind])
    work(finished(order))

    assert order.status == Order.Status.COMPLETED
    assert order.delivered_quantity == 3
    issued = sandbox_get(sandbox_url, kind, "issued", vendor.sandbox_account)
    stored = revealed_codes(order, buyer)
    assert len(stored) == 3
    same = sorted(stored) == sorted(i["code"] for i in issued)  # a bare bool: no codes shown
    assert same, "the stored codes differ from those the sandbox issued"
    supplier_orders = sandbox_get(sandbox_url, kind, "orders", vendor.sandbox_account)
    assert len(supplier_orders) == order.vendor_orders.count()
    assert_ledger_settled(order)
    actions = set(AuditEvent.objects.filter(order=order).values_list("action", flat=True))
    assert {"placed", "submitted", "codes_stored", "revealed"} <= actions


def test_it_splits_an_instant_only_supplier_order_into_one_request_per_code(
    sandbox_vendor, buyer, work
):
    vendor = sandbox_vendor("ezcards")
    order = place(vendor, buyer, 4, sku="EZTEST-INSTOCK")
    refs = list(order.vendor_orders.values_list("client_reference", flat=True))
    assert len(refs) == 4
    assert len(set(refs)) == 4
    assert all(vo.quantity == 1 for vo in order.vendor_orders.all())


OUTCOMES = [
    # kind, product filter, quantity, order status, delivered
    ("kalixo_v2", {"sku": "KTEST-PARTIAL"}, 4, "partially_completed", 2),
    ("kalixo_v2", {"sku": "KTEST-FAIL"}, 2, "failed", 0),
    ("kalixo_v2", {"sku": "KTEST-STOCK"}, 2, "completed", 2),
    ("kalixo_v2", {"sku": "KTEST-LEGACY"}, 2, "completed", 2),
    ("kalixo_v1", {"sku": "GB-EN-KTEST-SLOW"}, 2, "completed", 2),
    ("kalixo_v1", {"sku": "GB-EN-KTEST-FAIL"}, 1, "failed", 0),
    ("kalixo_v1", {"sku": "GB-EN-KTEST-PARTIAL"}, 3, "partially_completed", 2),
    ("ezcards", {"sku": "EZTEST-DELAYED"}, 2, "completed", 2),
    ("ezcards", {"sku": "EZTEST-CANCELLED"}, 1, "cancelled", 0),
    ("starship", {"supplier_product_id": "1004"}, 2, "completed", 2),
    ("starship", {"supplier_product_id": "1005"}, 2, "completed", 2),
    ("starship", {"supplier_product_id": "1006"}, 4, "partially_completed", 2),
    ("starship", {"supplier_product_id": "1008"}, 1, "failed", 0),
]


@pytest.mark.parametrize(("kind", "product", "quantity", "status", "delivered"), OUTCOMES)
def test_it_ends_each_supplier_case_in_the_right_status_and_ledger(
    kind, product, quantity, status, delivered, sandbox_vendor, buyer, work, sandbox_url
):
    vendor = sandbox_vendor(kind)
    if "supplier_product_id" in product and ":" not in product["supplier_product_id"]:
        product = {"supplier_product_id__startswith": product["supplier_product_id"] + ":"}
        chosen = Product.objects.filter(vendor=vendor, **product).order_by("face_value").first()
        product = {"pk": chosen.pk}
    order = place(vendor, buyer, quantity, **product)
    work(finished(order), timeout=60)

    assert order.status == status
    assert order.delivered_quantity == delivered
    issued = {i["code"] for i in sandbox_get(sandbox_url, kind, "issued", vendor.sandbox_account)}
    same = set(revealed_codes(order, buyer)) == issued
    assert same, "the stored codes differ from those the sandbox issued"
    assert_ledger_settled(order)


def test_it_polls_at_the_estimated_ready_time(sandbox_vendor, buyer, work):
    vendor = sandbox_vendor("kalixo_v2", first_poll_delay=30)
    order = place(vendor, buyer, 2, sku="KTEST-SLOW")
    work(lambda: order.vendor_orders.get().status == VendorOrder.Status.PROCESSING)
    vo = order.vendor_orders.get()
    assert vo.estimated_ready_at is not None
    assert vo.next_poll_at >= vo.estimated_ready_at
    work(finished(order), timeout=60)
    vo.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert vo.polls <= 3


def test_it_pays_in_another_currency_at_the_suppliers_rate(sandbox_vendor, buyer, work,
                                                           sandbox_url):
    vendor = sandbox_vendor("ezcards")
    product = Product.objects.get(vendor=vendor, sku="EZTEST-GBP")
    order = services.place_order(user=buyer, lines=[
        pricing.LineRequest(product=product, quantity=1, pay_with_currency="USD")
    ])
    line = order.lines.get()
    assert line.currency == "USD"
    assert line.pay_with_currency == "USD"
    assert line.unit_cost > product.cost  # 9.60 GBP is more than 9.60 USD
    assert Balance.objects.get(vendor=vendor, currency="USD").reserved == line.unit_cost
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    vo = order.vendor_orders.get()
    assert vo.details["payWithCurrency"] == "USD"
    assert "fxSummary" in vo.details
    assert_ledger_settled(order)


def test_it_refuses_a_currency_the_supplier_cannot_charge(sandbox_vendor, buyer):
    vendor = sandbox_vendor("ezcards")
    product = Product.objects.get(vendor=vendor, sku="EZTEST-GBP")
    with pytest.raises(OrderError) as err:
        services.place_order(user=buyer, lines=[
            pricing.LineRequest(product=product, quantity=1, pay_with_currency="JPY")
        ])
    assert err.value.field == "pay_with_currency"
    assert not Order.objects.exists()
