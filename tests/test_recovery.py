"""Lost jobs are found within a minute: a worker killed with SIGKILL mid-job, a Redis flush.
A job given back by the sweep never acts again."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import django_rq
from django.utils import timezone

from audit.models import AuditEvent
from orders import dispatch, fulfilment
from orders.models import Order, VendorOrder
from portal.paths import BASE_DIR
from portal.worker import PortalWorker
from tests.conftest import database_url, sandbox_get, set_faults
from tests.test_order_flow import finished, place

QUEUES = ("orders", "polling", "sync", "default")


def start_worker(settings, *queues: str) -> subprocess.Popen:
    """A real ``manage.py rqworker``: the portal's worker class."""
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL}
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *queues], cwd=BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def kill_worker(process: subprocess.Popen) -> None:
    """SIGKILL the worker and any process it started, as a crashed host or the OOM killer
    would."""
    for pid in [*children(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def cron_and_worker(redis_conn, done, timeout: float = 90.0) -> float:
    """What production runs: the sweep (every second here, ORDER_SWEEP_INTERVAL there) and a
    worker, until ``done()``. Returns the seconds it took."""
    queues = [django_rq.get_queue(name) for name in QUEUES]
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, "not recovered in time"
        dispatch.sweep()
        PortalWorker(queues, connection=redis_conn).work(burst=True, with_scheduler=False)
        time.sleep(1)
    return time.monotonic() - started


def lost_events(order) -> list[str]:
    return [m for m in AuditEvent.objects.filter(order=order).values_list("message", flat=True)
            if "job was lost" in m]


def test_it_keeps_a_job_that_was_given_back_from_acting(
    sandbox_vendor, orderer, sandbox_url, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    vo = order.vendor_orders.get()
    old_claim = vo.__class__.objects.get(pk=vo.pk).claim_token
    assert old_claim  # claimed and queued on commit
    redis_conn.flushdb()  # its job is gone: the sweep gives the order back, a new job takes it
    VendorOrder.objects.filter(pk=vo.pk).update(claimed_at=timezone.now()
                                                - timedelta(seconds=10))
    assert dispatch.sweep()["recovered"] == 1
    new_claim = VendorOrder.objects.get(pk=vo.pk).claim_token
    assert new_claim and new_claim != old_claim

    # The first job wakes up: it must not send, and must change nothing.
    before = VendorOrder.objects.values().get(pk=vo.pk)
    outcome = fulfilment.advance(vendor_order_id=vo.pk, claim=old_claim)
    assert "given back" in outcome
    assert VendorOrder.objects.values().get(pk=vo.pk) == before
    assert sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account) == []

    assert fulfilment.advance(vendor_order_id=vo.pk, claim=new_claim)
    assert len(sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account)) == 1


def test_it_gives_back_within_a_minute_the_order_of_a_worker_killed_with_sigkill(
    sandbox_vendor, orderer, sandbox_url, settings, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"latency": 4})
    worker = start_worker(settings, "orders")
    try:
        order = place(vendor, orderer, 2, sku="KTEST-OK")
        deadline = time.monotonic() + 30
        while order.vendor_orders.get().status != VendorOrder.Status.SENDING:
            assert time.monotonic() < deadline, "the worker never started the submission"
            time.sleep(0.05)
    finally:
        kill_worker(worker)
    killed = time.monotonic()
    assert worker.returncode == -signal.SIGKILL
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {})

    noticed = cron_and_worker(redis_conn, lambda: bool(lost_events(order)))
    cron_and_worker(redis_conn, finished(order))
    recovered = time.monotonic() - killed
    print(f"\nworker killed: noticed after {noticed:.1f}s, order completed after {recovered:.1f}s")

    assert noticed < 60 and recovered < 60
    assert "stopped beating" in lost_events(order)[0]
    assert order.status == Order.Status.COMPLETED
    assert order.vouchers.count() == 2
    # Looked up by our reference before anything else; one supplier order either way.
    assert len(sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account)) == 1


def test_it_recovers_within_a_minute_the_jobs_a_redis_flush_took(
    sandbox_vendor, orderer, sandbox_url, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    orders = [place(vendor, orderer, 1, sku="KTEST-OK") for _ in range(4)]
    assert django_rq.get_queue("orders").count == 4
    redis_conn.flushdb()
    flushed = time.monotonic()

    cron_and_worker(redis_conn, lambda: all(finished(o)() for o in orders))
    recovered = time.monotonic() - flushed
    print(f"\nRedis flushed: every order completed after {recovered:.1f}s")

    assert recovered < 60
    assert {o.status for o in orders} == {Order.Status.COMPLETED}
    assert all("gone from Redis" in lost_events(o)[0] for o in orders)
    assert len(sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account)) == 4
