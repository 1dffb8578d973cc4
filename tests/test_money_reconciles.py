"""Money reconciles with the supplier, not only with itself: flows on all four sandboxes over
HTTP with a real worker, then every debit against what the sandbox says it charged."""

from decimal import Decimal

from orders import pricing, services
from orders.balances import sync_balances
from orders.models import LedgerEntry, Order, VendorOrder
from tests.money import assert_money_reconciles
from tests.test_order_flow import finished
from vendors.models import Balance, Product

# kind -> [(product filter, quantity, pay with)]: normal, partial, delayed, cross-currency,
# failed and cancelled orders.
FLOWS = {
    "kalixo_v2": [({"sku": "KTEST-OK"}, 2, ""), ({"sku": "KTEST-PARTIAL"}, 4, ""),
                  ({"sku": "KTEST-FAIL"}, 1, ""), ({"sku": "KTEST-STOCK"}, 2, "")],
    "kalixo_v1": [({"sku": "GB-EN-KTEST-OK"}, 2, ""), ({"sku": "GB-EN-KTEST-PARTIAL"}, 3, ""),
                  ({"sku": "GB-EN-KTEST-SLOW"}, 1, ""), ({"sku": "GB-EN-KTEST-CANCEL"}, 1, ""),
                  ({"sku": "GB-EN-KTEST-FAIL"}, 1, "")],
    "ezcards": [({"sku": "EZTEST-INSTOCK"}, 2, ""), ({"sku": "EZTEST-DELAYED"}, 1, ""),
                ({"sku": "EZTEST-CANCELLED"}, 1, ""), ({"sku": "EZTEST-GBP"}, 1, "USD"),
                ({"sku": "EZTEST-EUR"}, 1, "USD")],
    "starship": [({"supplier_product_id": "1001:25.00"}, 2, ""),
                 ({"supplier_product_id": "1003:10.00"}, 2, ""),
                 ({"supplier_product_id": "1004:10.00"}, 1, ""),
                 ({"supplier_product_id": "1005:10.00"}, 2, ""),
                 ({"supplier_product_id": "1006:10.00"}, 4, ""),
                 ({"supplier_product_id": "1007:10.00"}, 1, ""),
                 ({"supplier_product_id": "1008:10.00"}, 1, ""),
                 ({"supplier_product_id": "1009:1000"}, 1, "")],
}


def place(vendor, user, where: dict, quantity: int, pay_with: str = "") -> Order:
    product = Product.objects.get(vendor=vendor, **where)
    return services.place_order(user=user, lines=[pricing.LineRequest(
        product=product, quantity=quantity, pay_with_currency=pay_with)])


def test_it_debits_what_each_supplier_charged_to_the_cent(sandbox_vendor, orderer, work,
                                                          sandbox_url):
    vendors = {kind: sandbox_vendor(kind) for kind in FLOWS}
    orders = [place(vendors[kind], orderer, where, quantity, pay_with)
              for kind, flows in FLOWS.items() for where, quantity, pay_with in flows]
    work(lambda: all(finished(o)() for o in orders), timeout=90)

    statuses = {o.status for o in orders}
    assert statuses == {"completed", "partially_completed", "failed", "cancelled"}, statuses
    lines = assert_money_reconciles(sandbox_url, vendors.values())
    assert len(lines) >= 5, lines

    # The Starship DELAYED order, completed by polling, is debited the discounted amount the
    # supplier states, not the face value: 2 x 10.00 less 2.5 %.
    delayed = VendorOrder.objects.get(vendor=vendors["starship"],
                                      line__product__supplier_product_id="1003:10.00")
    assert delayed.polls >= 1
    debit = LedgerEntry.objects.get(vendor_order=delayed, kind="debit")
    assert (debit.amount, debit.estimated) == (Decimal("19.50"), False)
    # EZ Cards' cross-currency orders are debited in the currency they were paid in.
    paid_with = VendorOrder.objects.filter(vendor=vendors["ezcards"],
                                           line__pay_with_currency="USD")
    assert {vo.currency for vo in paid_with} == {"USD"}
    assert all(vo.cost > 0 for vo in paid_with)
    # Kalixo states no charge in its order answers: those debits are estimates, marked so.
    for kind in ("kalixo_v1", "kalixo_v2"):
        marked = set(LedgerEntry.objects.filter(
            balance__vendor=vendors[kind], kind="debit").values_list("estimated", flat=True))
        assert marked == {True}, kind
    assert not LedgerEntry.objects.filter(balance__vendor=vendors["starship"], kind="debit",
                                          vendor_order__line__product__supplier_product_id__in=[
                                              "1001:25.00", "1003:10.00"],
                                          estimated=True).exists()


def test_it_settles_an_estimated_debit_with_the_next_balance_sync(sandbox_vendor, orderer, work,
                                                                  sandbox_url):
    vendor = sandbox_vendor("kalixo_v2")
    product = Product.objects.get(vendor=vendor, sku="KTEST-OK")
    # the catalog as last synced says a little more than Kalixo now charges
    Product.objects.filter(pk=product.pk).update(cost=product.cost + Decimal("0.50"))
    product.refresh_from_db()
    order = services.place_order(user=orderer, lines=[pricing.LineRequest(
        product=product, quantity=2)])
    work(finished(order), timeout=40)
    assert order.status == Order.Status.COMPLETED, order.vendor_orders.get().last_error
    estimate = LedgerEntry.objects.get(order=order, kind="debit")
    assert estimate.estimated and estimate.reconciled_by is None

    sync_balances(vendor=vendor)

    estimate.refresh_from_db()
    adjustment = estimate.reconciled_by
    assert adjustment is not None and adjustment.kind == "adjustment"
    assert f"#{estimate.pk}" in adjustment.note
    charged = Balance.objects.get(vendor=vendor, currency="GBP").entries.filter(
        kind="report").order_by("pk")
    first, last = charged.first().amount, charged.last().amount
    assert estimate.amount + adjustment.amount == first - last
    assert adjustment.amount == Decimal("-1.00")  # Kalixo charged its buying price
    assert_money_reconciles(sandbox_url, [vendor])
