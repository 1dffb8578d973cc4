"""Transient supplier faults cost seconds, not minutes; first polls come early; one bad answer
does not fail a sync. On the sandboxes over HTTP with a real worker."""

import time

from django.core.cache import cache
from django.utils import timezone

from audit.models import AuditEvent
from common.http import SupplierError
from orders import fulfilment
from orders.balances import sync_balances
from orders.models import Order, VendorOrder
from tests.conftest import set_faults
from tests.test_order_flow import finished, place
from vendors.services import sync_catalog

PRODUCTION_POLLING = {"first_poll_delay": 30, "max_poll_interval": 300}


def test_it_completes_a_ready_order_within_seconds_after_a_502_on_its_poll(
    sandbox_vendor, orderer, work, sandbox_url
):
    vendor = sandbox_vendor("kalixo_v2", **PRODUCTION_POLLING)
    order = place(vendor, orderer, 5, sku="KTEST-OK")
    work(lambda: order.vendor_orders.get().status == VendorOrder.Status.PROCESSING)
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"error_5xx": 1})
    work(finished(order), timeout=30)

    vo = order.vendor_orders.get()
    assert order.status == Order.Status.COMPLETED
    lag = (vo.completed_at - vo.estimated_ready_at).total_seconds()
    assert lag < 6, f"codes stored {lag:.1f}s after the supplier had them ready"
    assert vo.faults == 0 and vo.polls == 1  # the fault was retried, not counted as a poll


def test_it_honours_retry_after_on_a_poll_without_slowing_the_schedule(
    sandbox_vendor, orderer, work, sandbox_url
):
    vendor = sandbox_vendor("starship", first_poll_delay=2, max_poll_interval=300)
    order = place(vendor, orderer, 2, supplier_product_id="1003:10.00")
    work(lambda: order.vendor_orders.get().status == VendorOrder.Status.PROCESSING)
    set_faults(sandbox_url, "starship", vendor.sandbox_account,
               {"rate_limit": 3, "retry_after": 1, "rate_limit_per_minute": 100000})
    started = time.monotonic()
    work(finished(order), timeout=40)

    vo = order.vendor_orders.get()
    assert order.status == Order.Status.COMPLETED
    assert time.monotonic() - started < 15
    assert vo.polls <= 3  # the 429s were fault retries, not steps of the back-off


def test_it_falls_back_to_the_back_off_after_too_many_faults_in_a_row(
    sandbox_vendor, orderer, work, sandbox_url, settings
):
    settings.ORDER_FAULT_RETRIES = 2
    vendor = sandbox_vendor("kalixo_v2", first_poll_delay=20, max_poll_interval=300)
    order = place(vendor, orderer, 1, sku="KTEST-SLOW")
    work(lambda: order.vendor_orders.get().status == VendorOrder.Status.PROCESSING)
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"error_5xx": -1})
    VendorOrder.objects.filter(order=order).update(next_poll_at=timezone.now())
    for expected in (1, 2, 2):  # two quick retries, then the ordinary back-off
        VendorOrder.objects.filter(order=order).update(next_poll_at=timezone.now())
        work(lambda: VendorOrder.objects.get(order=order).next_poll_at is not None)
        vo = order.vendor_orders.get()
        wait = (vo.next_poll_at - timezone.now()).total_seconds()
        assert vo.faults == expected
    assert wait > 10
    assert vo.polls == 0
    assert "supplier error 502" in vo.last_error


def test_it_polls_early_when_the_supplier_gives_no_estimate(sandbox_vendor, orderer, work):
    cases = [("starship", {"supplier_product_id": "1003:10.00"}),
             ("ezcards", {"sku": "EZTEST-DELAYED"}),
             ("kalixo_v1", {"sku": "GB-EN-KTEST-SLOW"})]
    orders = []
    for kind, where in cases:
        vendor = sandbox_vendor(kind, first_poll_delay=2, max_poll_interval=300)
        orders.append(place(vendor, orderer, 1, **where))
    work(lambda: all(finished(o)() for o in orders), timeout=40)
    for order in orders:
        vo = order.vendor_orders.get()
        assert order.status == Order.Status.COMPLETED, vo.last_error
        took = (vo.completed_at - vo.submitted_at).total_seconds()
        assert took < 12, f"{vo.vendor.kind}: {took:.1f}s for codes ready in about 3 s"


def test_it_retries_a_502_within_a_balance_sync(sandbox_vendor, sandbox_url):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"error_5xx": 1})
    balances = sync_balances(vendor=vendor)
    vendor.refresh_from_db()
    assert balances and vendor.balance_sync_error == ""


def test_it_syncs_the_starship_catalog_while_currencies_does_not_answer(
    sandbox_vendor, sandbox_url
):
    vendor = sandbox_vendor("starship")
    cache.delete(f"starship:{vendor.pk}:currencies")
    set_faults(sandbox_url, "starship", vendor.sandbox_account,
               {"fail_paths": {"/api/v1/currencies": 502}})
    counts = sync_catalog(vendor=vendor)
    vendor.refresh_from_db()
    assert counts["updated"] > 100 and vendor.catalog_sync_error == ""

    # the wallets need it: the error names the path, without query string or credentials
    try:
        sync_balances(vendor=vendor)
    except SupplierError:
        pass
    vendor.refresh_from_db()
    assert "GET /starship/api/v1/currencies" in vendor.balance_sync_error
    assert "?" not in vendor.balance_sync_error
    assert "sk_test" not in vendor.balance_sync_error


def test_it_expects_an_order_after_the_catalogs_delivery_time_when_it_is_a_duration(
    make_voucher
):
    vo = make_voucher("SANDBOX-ETA-0000-0001").vendor_order
    vo.submitted_at = timezone.now()
    product = vo.line.product
    for given, seconds in (("15 minutes", 900), ("900", 900), ("2 hours", 7200),
                           ("DELAYED", None), ("INSTANT", None), ("", None)):
        product.extra = {"delivery_time": given}
        estimate = fulfilment._delivery_estimate(vo)
        if seconds is None:
            assert estimate is None, given
        else:
            assert (estimate - vo.submitted_at).total_seconds() == seconds, given


def test_it_retries_a_failed_look_up_instead_of_resending_unconfirmed(
    sandbox_vendor, orderer, work, sandbox_url
):
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    # as after a worker died mid-submission, before the supplier heard of it
    VendorOrder.objects.filter(order=order).update(
        status=VendorOrder.Status.SENDING, attempts=1, next_poll_at=timezone.now(),
        claimed_at=None)
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"error_5xx": 1})
    work(finished(order), timeout=30)

    assert order.status == Order.Status.COMPLETED
    messages = list(AuditEvent.objects.filter(order=order).values_list("message", flat=True))
    assert any("confirms it has no such order" in m for m in messages)
    assert order.vendor_orders.get().attempts == 2
