import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import VendorOrder
from portal.worker import PortalWorker
from tests.test_recovery import kill_worker, start_worker


@pytest.fixture
def live_worker(redis_conn):
    """A portal worker with a fresh heartbeat, as a running worker keeps it."""
    worker = PortalWorker(["default"], connection=redis_conn, name="healthz-test-worker")
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


def wait_for(client, wanted: dict, timeout: float) -> float:
    """Ask /healthz until it answers ``wanted``; return how long that took."""
    started = time.monotonic()
    while client.get("/healthz").json() != wanted:
        assert time.monotonic() - started < timeout, client.get("/healthz").json()
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.django_db
def test_it_answers_200_when_database_redis_and_worker_are_fine(client, live_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_answers_503_naming_the_worker_when_none_is_alive(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "failing": ["worker"]}


@pytest.mark.django_db
def test_it_answers_503_when_the_heartbeat_is_too_old(client, live_worker, settings):
    settings.WORKER_HEARTBEAT_MAX_AGE = -1
    assert client.get("/healthz").json()["failing"] == ["worker"]


@pytest.mark.django_db
def test_it_answers_503_naming_redis_when_redis_is_unreachable(client, settings, tmp_path):
    missing = f"unix://{tmp_path}/nothing.sock?db=0"
    settings.RQ_QUEUES = {name: {"URL": missing} for name in settings.RQ_QUEUES}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "failing": ["redis", "worker"]}


def test_it_needs_no_login_and_reveals_nothing_else(client, live_worker, db):
    response = client.get("/healthz")
    assert set(response.json()) == {"status"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_says_ok_within_seconds_after_a_redis_flush_while_a_worker_runs(
    client, redis_conn, settings, transactional_db
):
    worker = start_worker(settings, "default")
    try:
        wait_for(client, {"status": "ok"}, timeout=30)
        redis_conn.flushdb()  # the heartbeats too; RQ's own worker set does not come back
        back = wait_for(client, {"status": "ok"}, timeout=settings.WORKER_HEARTBEAT_INTERVAL + 5)
    finally:
        kill_worker(worker)
    print(f"\n/healthz ok again {back:.1f}s after a Redis flush")
    dead = wait_for(client, {"status": "fail", "failing": ["worker"]},
                    timeout=settings.WORKER_HEARTBEAT_MAX_AGE + 5)
    print(f"/healthz noticed the killed worker after {dead:.1f}s")


@pytest.fixture
def vendor_order(make_voucher):
    vo = make_voucher("HEALTH-CODE-1").vendor_order
    VendorOrder.objects.filter(pk=vo.pk).update(status=VendorOrder.Status.PROCESSING)
    return vo


@pytest.mark.django_db
def test_it_fails_orders_when_a_due_supplier_order_waits_too_long(
    client, live_worker, vendor_order, settings
):
    late = timezone.now() - timedelta(seconds=settings.HEALTH_ORDER_MAX_LAG + 5)
    VendorOrder.objects.filter(pk=vendor_order.pk).update(next_poll_at=late)
    assert client.get("/healthz").json() == {"status": "fail", "failing": ["orders"]}

    VendorOrder.objects.filter(pk=vendor_order.pk).update(next_poll_at=timezone.now())
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_fails_orders_when_jobs_are_lost_and_nothing_gives_them_back(
    client, live_worker, vendor_order, settings
):
    settings.HEALTH_ORDER_MAX_LAG, settings.ORDER_CLAIM_TIMEOUT = 30, 30
    claimed = timezone.now() - timedelta(seconds=61)
    VendorOrder.objects.filter(pk=vendor_order.pk).update(claimed_at=claimed, claim_token="x")
    assert client.get("/healthz").json() == {"status": "fail", "failing": ["orders"]}
