"""The engine under supplier faults, lost jobs and killed workers: never buy twice, never lose
a code, never crash-loop."""

import os
import signal
import subprocess
import sys
import time

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rq.registry import StartedJobRegistry

from audit.models import AuditEvent
from orders import dispatch, services
from orders.models import Order, VendorOrder
from portal.paths import BASE_DIR
from tests.conftest import database_url, sandbox_get, set_faults
from tests.test_order_flow import finished, place


def supplier_orders(sandbox_url, vendor) -> list[dict]:
    return sandbox_get(sandbox_url, vendor.kind, "orders", vendor.sandbox_account)


def events(order, action) -> list[str]:
    return list(AuditEvent.objects.filter(order=order, action=action)
                .values_list("message", flat=True))


def test_it_resubmits_nothing_after_a_timeout_and_the_codes_still_arrive(
    sandbox_vendor, orderer, work, sandbox_url, settings
):
    settings.SUPPLIER_READ_TIMEOUT = 1
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account,
               {"timeout_after_accept": 1, "timeout_seconds": 3})
    order = place(vendor, orderer, 2, sku="KTEST-OK")
    work(finished(order))

    assert order.status == Order.Status.COMPLETED
    assert order.vouchers.count() == 2
    assert len(supplier_orders(sandbox_url, vendor)) == 1
    assert any("outcome unknown" in m for m in events(order, "status_changed"))
    assert order.vendor_orders.get().attempts == 1


@pytest.mark.parametrize("kind", ["kalixo_v2", "ezcards", "starship"])
def test_it_reconciles_a_5xx_after_submission_without_buying_twice(
    kind, sandbox_vendor, orderer, work, sandbox_url
):
    product = {"kalixo_v2": {"sku": "KTEST-OK"}, "ezcards": {"sku": "EZTEST-INSTOCK"},
               "starship": {"supplier_product_id": "1001:25.00"}}[kind]
    vendor = sandbox_vendor(kind)
    set_faults(sandbox_url, kind, vendor.sandbox_account, {"error_5xx": 2})
    order = place(vendor, orderer, 1, **product)
    work(finished(order))

    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1
    assert order.vouchers.count() == 1


def test_it_honours_retry_after_on_429(sandbox_vendor, orderer, work, sandbox_url):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account,
               {"rate_limit": 1, "retry_after": 3})
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    started = time.time()
    work(lambda: VendorOrder.objects.get(order=order).last_error != "")
    vo = order.vendor_orders.get()
    assert vo.status == VendorOrder.Status.CREATED
    assert "rate limit" in vo.last_error
    assert vo.next_poll_at.timestamp() >= started + 2.5
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1


@pytest.mark.parametrize(("fault", "reason"), [
    ("malformed_json", "malformed answer"),
    ("unknown_status", "status the portal does not know"),
])
def test_it_puts_a_malformed_or_unknown_answer_to_a_person_without_crash_looping(
    fault, reason, sandbox_vendor, orderer, work, sandbox_url
):
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 1, sku="KTEST-SLOW")
    work(lambda: order.vendor_orders.get().status == VendorOrder.Status.PROCESSING)
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {fault: 1})
    VendorOrder.objects.filter(order=order).update(next_poll_at=timezone.now())

    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION)
    vo = order.vendor_orders.get()
    assert reason in vo.attention
    assert any(reason in m for m in events(order, "needs_attention"))
    polls = vo.polls
    work(lambda: True)  # nothing is due: no crash loop, no more polls
    work(lambda: True)
    vo.refresh_from_db()
    assert vo.polls == polls
    assert vo.next_poll_at is None

    services.repoll_now(vendor_order=vo, user=orderer)
    work(finished(order), timeout=40)
    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1


def test_it_buys_once_when_a_worker_is_killed_mid_submission(
    sandbox_vendor, orderer, work, sandbox_url, settings, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"latency": 3})
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    dispatch.dispatch_due()
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL}
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "orders", "--burst"], cwd=BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while order.vendor_orders.get().status != VendorOrder.Status.SENDING:
            assert time.monotonic() < deadline, "the worker never started the submission"
            time.sleep(0.05)
        # SENDING is committed just before the request goes out; the supplier answers 3 s
        # later. Kill the worker (which runs its jobs in process) with the request on the wire.
        time.sleep(0.5)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {})
    time.sleep(3.5)  # the supplier finishes the request the dead worker sent

    # RQ gives up on the dead worker's job once its heartbeat lapses; pretend that time passed.
    registry = StartedJobRegistry("orders", connection=django_rq.get_connection("orders"))
    registry.cleanup(timestamp=time.time() + 3600)
    settings.ORDER_CLAIM_TIMEOUT = 0
    work(finished(order), sweep=True)

    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1
    assert order.vouchers.count() == 1
    assert order.vendor_orders.get().attempts == 1  # reconciled by reference, not resent


def test_it_recovers_every_order_after_redis_is_emptied(
    sandbox_vendor, orderer, work, sandbox_url, settings, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    orders = [place(vendor, orderer, 1, sku="KTEST-OK") for _ in range(5)]
    assert dispatch.dispatch_due() == 0  # already claimed and queued on commit
    assert django_rq.get_queue("orders").count == 5
    redis_conn.flushdb()

    settings.ORDER_CLAIM_TIMEOUT = 0
    work(lambda: all(finished(o)() for o in orders), sweep=True)
    assert {o.status for o in orders} == {Order.Status.COMPLETED}
    assert len(supplier_orders(sandbox_url, vendor)) == 5
    assert all(any("job was lost" in m for m in events(o, "status_changed")) for o in orders)


def test_it_sends_to_a_person_an_unknown_outcome_where_the_supplier_has_no_lookup(
    sandbox_vendor, orderer, work, sandbox_url, settings
):
    settings.SUPPLIER_READ_TIMEOUT = 1
    vendor = sandbox_vendor("kalixo_v1")
    set_faults(sandbox_url, "kalixo_v1", vendor.sandbox_account,
               {"timeout_after_accept": 1, "timeout_seconds": 3})
    order = place(vendor, orderer, 1, sku="GB-EN-KTEST-OK")
    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION)
    vo = order.vendor_orders.get()
    assert vo.status == VendorOrder.Status.UNKNOWN
    assert "no look-up" in vo.attention
    time.sleep(2.5)
    assert len(supplier_orders(sandbox_url, vendor)) == 1


def test_it_sends_an_order_past_its_deadline_to_a_person(sandbox_vendor, orderer, work):
    vendor = sandbox_vendor("kalixo_v2", poll_deadline=1)
    order = place(vendor, orderer, 1, sku="KTEST-SLOW")
    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION,
         timeout=30)
    assert "no final answer" in order.vendor_orders.get().attention
    assert events(order, "needs_attention")


def test_it_stores_and_flags_a_code_the_portal_already_holds(
    sandbox_vendor, orderer, work, sandbox_url, make_voucher
):
    import responses

    from vendors.sandbox.kalixo_v2 import BASE_PATH

    vendor = sandbox_vendor("kalixo_v2")
    earlier = make_voucher("SANDBOX-DUPE-0000-1111")
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    base = sandbox_url + BASE_PATH
    with responses.RequestsMock(assert_all_requests_are_fired=False) as fake:
        fake.add_passthru(sandbox_url + "/_sandbox")
        fake.add(responses.POST, f"{base}/orders", status=202, json={
            "orderId": "dup-1", "externalOrderCode": f"{order.reference}-1",
            "status": "processing", "estimatedReadyAt": "2020-01-01T00:00:00Z"})
        fake.add(responses.GET, f"{base}/catalog/products/9001", json={
            "id": 9001, "price": 1000, "currencyCode": "GBP", "buyingPrice": 950,
            "buyingCurrencyCode": "GBP", "name": "Kalixo Test", "status": "active"})
        fake.add(responses.GET, f"{base}/orders/dup-1", json={
            "orderId": "dup-1", "status": "completed", "products": [
                {"productId": 9001, "price": 1000, "quantity": 1,
                 "codes": [{"code": "SANDBOX-DUPE-0000-1111"}]}]})
        work(finished(order), timeout=20)

    assert order.status == Order.Status.COMPLETED
    voucher = order.vouchers.get()
    assert voucher.duplicate is True
    assert voucher.code_index == earlier.code_index
    messages = events(order, "duplicate_code")
    assert messages == [f"{order.reference}-1: code ending 1111 was already in the portal: "
                        "a supplier delivered the same code twice"]


def test_it_retries_a_submission_whose_preliminary_read_was_malformed(
    sandbox_vendor, orderer, work, sandbox_url
):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"malformed_json": 1})
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1


@pytest.mark.parametrize("absent", [True, False])
def test_it_lets_a_person_settle_an_unknown_outcome_without_a_lookup(
    absent, sandbox_vendor, orderer, operator, work, sandbox_url, settings
):
    settings.SUPPLIER_READ_TIMEOUT = 1
    vendor = sandbox_vendor("kalixo_v1")
    set_faults(sandbox_url, "kalixo_v1", vendor.sandbox_account,
               {"timeout_after_accept": 1, "timeout_seconds": 3} if not absent
               else {"error_5xx": 1})
    order = place(vendor, orderer, 1, sku="GB-EN-KTEST-OK")
    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION)
    vo = order.vendor_orders.get()
    time.sleep(3)
    taken = supplier_orders(sandbox_url, vendor)
    assert len(taken) == (0 if absent else 1)

    orderer.user_permissions.add(Permission.objects.get(codename="change_vendororder"))
    operator = type(orderer).objects.get(pk=orderer.pk)
    if absent:
        services.resolve_unknown(vendor_order=vo, user=operator, absent=True)
    else:
        services.resolve_unknown(vendor_order=vo, user=operator,
                                 supplier_order_id=str(taken[0]["id"]))
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    assert len(supplier_orders(sandbox_url, vendor)) == 1
    assert order.vouchers.count() == 1
