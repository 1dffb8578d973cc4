"""Shared fixtures: the embedded Redis, the sandbox supplier server, users."""

import socket
import time
import uuid

import pytest
import requests
from django.conf import settings

from portal import embedded_redis


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
    from vendors.sandbox import server

    base = tmp_path_factory.mktemp("sandbox")
    with server.running(free_port(), state=base / "sandbox.sqlite3",
                        log=base / "sandbox.log") as url:
        yield url


def database_url() -> str:
    """The test database as a URL, for worker processes started by a test."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


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


# Flow: real suppliers (the sandbox over HTTP), a real RQ worker, the dispatcher.

SANDBOX_ACCOUNTS = {
    # kind: (sandbox module, credentials for a fresh account named by a token, account name)
    "kalixo_v2": lambda t: ({"api_key": f"kal_test_{t}"}, t),
    "kalixo_v1": lambda t: (
        {"email": f"{t}@sandbox.kalixo.test", "password": "sandbox"}, f"{t}@sandbox.kalixo.test"
    ),
    "ezcards": lambda t: ({"api_key": f"ez_test_{t}", "token": f"tok_{t}"}, t),
    "starship": lambda t: (
        {"api_key": f"sk_test_{t}", "api_secret": f"secret_{t}"}, f"sk_test_{t}"
    ),
}


@pytest.fixture
def sandbox_vendor(sandbox_url, transactional_db):
    """A vendor on a fresh sandbox account, its catalog and balances synced over HTTP."""
    import importlib

    from orders.balances import sync_balances
    from vendors.models import Vendor
    from vendors.sandbox.app import SUPPLIERS
    from vendors.services import sync_catalog, vendor_set_credentials

    def make(kind: str, **fields):
        token = uuid.uuid4().hex[:10]
        credentials, account = SANDBOX_ACCOUNTS[kind](token)
        module = importlib.import_module(SUPPLIERS[kind])
        fields.setdefault("first_poll_delay", 1)
        fields.setdefault("max_poll_interval", 2)
        fields.setdefault("rate_limit_per_minute", 600)
        vendor = Vendor.objects.create(
            name=f"{kind} {token}", kind=kind, base_url=sandbox_url + module.BASE_PATH, **fields
        )
        vendor_set_credentials(vendor=vendor, credentials=credentials)
        sync_catalog(vendor=vendor)
        sync_balances(vendor=vendor)
        vendor.sandbox_account = account
        return vendor

    return make


def sandbox_get(sandbox_url: str, kind: str, what: str, account: str) -> list[dict]:
    response = requests.get(
        f"{sandbox_url}/_sandbox/{kind}/{what}", params={"account": account}, timeout=10
    )
    response.raise_for_status()
    return response.json()


def set_faults(sandbox_url: str, kind: str, account: str, faults: dict) -> None:
    requests.post(
        f"{sandbox_url}/_sandbox/{kind}/faults/{account}", json=faults, timeout=10
    ).raise_for_status()


@pytest.fixture
def work(redis_conn):
    """Run the dispatcher and the portal's worker (in burst mode) until ``done()`` or the
    deadline."""
    import django_rq

    from orders import dispatch
    from portal.worker import PortalWorker

    queues = [django_rq.get_queue(name) for name in ("orders", "polling", "sync", "default")]

    def run(done, timeout: float = 40.0, sweep: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dispatch.sweep() if sweep else dispatch.dispatch_due()
            PortalWorker(queues, connection=redis_conn).work(burst=True, with_scheduler=False)
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError("the order did not reach the expected state in time")
            time.sleep(0.25)

    return run


@pytest.fixture
def orderer(django_user_model, transactional_db):
    from portal.roles import role_group

    user = django_user_model.objects.create_user("orderer", password="orderer-pass-123",
                                                 is_staff=True)
    user.groups.add(role_group("orderer"))
    return user


@pytest.fixture
def operator(django_user_model, transactional_db):
    from portal.roles import role_group

    user = django_user_model.objects.create_user("operator", is_staff=True)
    user.groups.add(role_group("operator"))
    return user


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# Two-factor authentication.


def authenticator(user):
    """The user's confirmed authenticator (TOTP) device, created when missing."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def totp_code(device) -> str:
    """A code ``device`` accepts now. django-otp accepts a time step only once, so after a
    code of the current step this is the next step's (within the tolerance), or it waits."""
    from django_otp.oath import hotp

    while True:
        device.refresh_from_db()
        now = int(time.time() - device.t0) // device.step + device.drift
        step = max(now, device.last_t + 1)
        if step <= now + device.tolerance:
            return f"{hotp(device.bin_key, step, device.digits):0{device.digits}d}"
        time.sleep(0.5)


def login_verified(client, user):
    """Log ``client`` in as ``user``, verified by an authenticator device and freshly
    re-authenticated, as if the user had passed the login, verify and re-auth pages."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from portal import twofactor

    device = authenticator(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[twofactor.PASSWORD_AT] = session[twofactor.AUTHENTICATOR_AT] = time.time()
    session.save()
    return client
