"""Shared fixtures: the embedded Redis, the sandbox supplier server, users."""

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
from django.conf import settings

from portal import embedded_redis
from portal.paths import BASE_DIR


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    """Start the embedded Redis for the run when no REDIS_URL is configured."""
    process = embedded_redis.start() if settings.EMBEDDED_REDIS else None
    yield
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_conn():
    """The test Redis database, emptied before the test."""
    import django_rq

    conn = django_rq.get_connection("default")
    conn.flushdb()
    return conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory) -> str:
    """A real sandbox server (gunicorn, two processes) on a free port, with its own state."""
    port = free_port()
    state = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    log = open(tmp_path_factory.getbasetemp() / "sandbox.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "vendors.sandbox.app:application",
            "-b", f"127.0.0.1:{port}", "-k", "gthread", "-w", "2", "--threads", "8",
            "--timeout", "120",
        ],
        env={**os.environ, "SANDBOX_DB": str(state)},
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the sandbox server did not start; see sandbox.log")
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def unique() -> str:
    """A short unique token, for sandbox account names and references."""
    return uuid.uuid4().hex[:10]


class MemoryCache:
    """A token cache for adapter unit tests: the same get/set/delete as Django's cache."""

    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value, timeout=None):
        self.data[key] = value

    def delete(self, key):
        return self.data.pop(key, None) is not None


@pytest.fixture
def token_cache() -> MemoryCache:
    return MemoryCache()


# Rows for tests that need a few domain objects.


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        "staff", password="staff-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def make_vendor(db):
    from vendors.models import Vendor

    def make(**fields):
        fields.setdefault("name", f"Vendor {uuid.uuid4().hex[:6]}")
        fields.setdefault("kind", "kalixo_v2")
        fields.setdefault("base_url", "https://sandbox.kalixo.io/v2")
        return Vendor.objects.create(**fields)

    return make


@pytest.fixture
def make_voucher(db, make_vendor, django_user_model):
    """Create an order with one delivered voucher holding ``code``."""
    from decimal import Decimal

    from orders.custody import seal
    from orders.models import Order, OrderLine, VendorOrder, Voucher
    from vendors.models import Product

    def make(code: str, *, pin: str = "", vendor=None):
        vendor = vendor or make_vendor()
        user = django_user_model.objects.first() or django_user_model.objects.create_user("u")
        product = Product.objects.create(
            vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], name="Gift card 10 GBP",
            face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.5"),
            cost_currency="GBP",
        )
        order = Order.objects.create(
            reference=f"VP-{uuid.uuid4().hex[:8]}", placed_by=user, currency="GBP",
            status=Order.Status.COMPLETED, quantity=1, delivered_quantity=1,
        )
        line = OrderLine.objects.create(
            order=order, product=product, vendor=vendor, quantity=1, unit_cost=Decimal("9.5"),
            currency="GBP",
        )
        vendor_order = VendorOrder.objects.create(
            order=order, line=line, vendor=vendor, client_reference=f"{order.reference}-1",
            quantity=1, currency="GBP", status=VendorOrder.Status.COMPLETED,
        )
        voucher = Voucher(order=order, vendor_order=vendor_order)
        seal(voucher, code=code, pin=pin)
        voucher.save()
        return voucher

    return make
