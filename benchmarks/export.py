"""Scenario ``export``: the CSV export of 100,000 codes through the real export view.

The codes (100 to an order, sealed by ``orders.custody.seal`` with the configured keys, like
delivered codes) are bulk-created in the benchmark's own database. A staff user who placed
the orders and holds the custodian role, signed in with an authenticator and freshly
re-authenticated the way the tests do it, then POSTs the order list's export through Django's
test client and reads the streamed CSV to its end: rows per second over the whole request,
by the clock and by the CPU time of the benchmark's process (which, on a busy machine, is
what the code costs; the clock's figure is the one a user waits), the run of median clock
time of three. One more export runs under ``tracemalloc`` for the peak of Python memory
allocated while it streams (the timed ones run without it: tracing slows every allocation).
The row counts, and every row of a sample of the streamed pieces, are checked against the
seeded codes; no code is printed.

The baseline is the bare loop of the issue over the same codes, timed the same way: load each
voucher through the ORM and decrypt it with ``open_voucher``, nothing else.
"""

import csv
import io
import statistics
import time
import tracemalloc
from datetime import timedelta
from decimal import Decimal

CODES_PER_ORDER = 100
BATCH = 2_000
TARGET_ROWS_PER_SECOND = 50_000
TARGET_MEMORY_MB = 64
RUNS = 3  # the run of median clock time is reported
SAMPLE_EVERY = 10  # check the rows of every 10th streamed piece


def code_for(n: int) -> str:
    """The seeded code of voucher ``n`` (its serial says ``n``)."""
    return f"BNCH-{n * 2654435761 % 4294967296:08X}-{n:07d}"


def pin_for(n: int) -> str:
    return f"{n * 40503 % 10000:04d}"


def seed(codes: int):
    """A custodian who placed every order; orders of ``CODES_PER_ORDER`` codes, each with its
    line and supplier order; the codes sealed and bulk-created. Returns the user."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from orders.custody import seal
    from orders.models import Order, OrderLine, VendorOrder, Voucher
    from portal.roles import role_group
    from vendors.models import Product, Vendor

    user = get_user_model().objects.create_user("bench-custodian", password=None,
                                                is_staff=True)
    user.groups.add(role_group("orderer"), role_group("custodian"))
    vendor = Vendor.objects.create(name="Bench vendor", kind="kalixo_v2",
                                   base_url="https://sandbox.invalid/v2")
    products = [Product.objects.create(
        vendor=vendor, supplier_product_id=f"card-{value}", sku=f"CARD-GB-{value}",
        name=f"Card £{value}", brand="Bench", face_value=Decimal(value), face_currency="GBP",
        cost=Decimal(value) * Decimal("0.95"), cost_currency="GBP",
    ) for value in (10, 25, 50)]
    expires = timezone.now() + timedelta(days=365)
    orders = -(-codes // CODES_PER_ORDER)
    n = 0
    with transaction.atomic():
        for first in range(0, orders, BATCH // CODES_PER_ORDER):
            numbers = range(first, min(first + BATCH // CODES_PER_ORDER, orders))
            placed = Order.objects.bulk_create([Order(
                reference=f"VP-BENCH-{i:07d}", placed_by=user, currency="GBP",
                status=Order.Status.COMPLETED, quantity=CODES_PER_ORDER,
                delivered_quantity=CODES_PER_ORDER,
            ) for i in numbers])
            lines = OrderLine.objects.bulk_create([OrderLine(
                order=order, product=products[order.pk % 3], vendor=vendor,
                quantity=CODES_PER_ORDER, face_value=products[order.pk % 3].face_value,
                unit_cost=products[order.pk % 3].cost, currency="GBP",
                delivered_quantity=CODES_PER_ORDER,
            ) for order in placed])
            supplier_orders = VendorOrder.objects.bulk_create([VendorOrder(
                order_id=line.order_id, line=line, vendor=vendor,
                client_reference=f"VP-BENCH-{line.order_id:07d}-1", quantity=CODES_PER_ORDER,
                currency="GBP", status=VendorOrder.Status.COMPLETED,
            ) for line in lines])
            vouchers = []
            for supplier_order in supplier_orders:
                for _ in range(min(CODES_PER_ORDER, codes - n)):
                    voucher = Voucher(order_id=supplier_order.order_id,
                                      vendor_order=supplier_order, serial=f"S-{n:07d}",
                                      expires_at=expires)
                    seal(voucher, code=code_for(n), pin=pin_for(n))
                    vouchers.append(voucher)
                    n += 1
            Voucher.objects.bulk_create(vouchers, batch_size=BATCH)
    return user


def sign_in(client, user) -> None:
    """As ``tests.conftest.login_verified``: verified by an authenticator device, and freshly
    re-authenticated, which the export view asks of whoever may export."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from portal import twofactor

    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[twofactor.PASSWORD_AT] = session[twofactor.AUTHENTICATOR_AT] = time.time()
    session.save()


def export(client, url: str) -> tuple[int, list[bytes]]:
    """POST the export and read the whole stream: the rows after the header, and a sample of
    the streamed pieces."""
    response = client.post(url)
    assert response.status_code == 200 and response.streaming, response.status_code
    lines, sample = 0, []
    for i, piece in enumerate(response.streaming_content):
        lines += piece.count(b"\n")
        if i % SAMPLE_EVERY == 0:
            sample.append(piece)
    response.close()
    return lines - 1, sample


def check_sample(pieces: list[bytes]) -> int:
    """Every row of the sampled pieces holds the code and PIN seeded for its serial; the
    number of rows checked. A piece holds whole rows (the first one the header too)."""
    from orders.exports import BOM, COLUMNS

    checked = 0
    for piece in pieces:
        for row in csv.reader(io.StringIO(piece.decode().removeprefix(BOM))):
            if row == COLUMNS:
                continue
            n = int(row[9].removeprefix("S-"))
            assert (row[7], row[8]) == (code_for(n), pin_for(n)), f"row of serial {row[9]}"
            checked += 1
    return checked


def timed(action):
    """Clock seconds, CPU seconds of this process, and what ``action()`` gave."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - started, time.process_time() - cpu_started, result


def bare_loop(orders) -> int:
    """The issue's baseline: every voucher of ``orders`` through the ORM and decrypted."""
    from orders.custody import open_voucher
    from orders.models import Voucher

    count = 0
    for voucher in Voucher.objects.filter(order__in=orders).iterator(chunk_size=BATCH):
        open_voucher(voucher)
        count += 1
    return count


def run(args, *, var_dir, sandbox_url) -> None:
    from django.test import Client
    from django.urls import reverse

    from benchmarks import harness
    from orders.models import Order

    codes = args.codes
    harness.fresh_database()  # the bare loop reads every voucher: only this scenario's
    started = time.monotonic()
    user = seed(codes)
    print(f"seeded {codes:,} codes in {Order.objects.count():,} orders in "
          f"{time.monotonic() - started:.1f} s", flush=True)

    client = Client(HTTP_HOST="localhost")
    sign_in(client, user)
    url = reverse("orders:export_list")

    exports = [timed(lambda: export(client, url)) for _ in range(RUNS)]
    export_seconds, export_cpu, (rows, sample) = statistics.median_low(exports)
    assert all(result[0] == codes for *_, result in exports), \
        f"the export has {rows:,} rows, not {codes:,}"
    checked = check_sample(sample)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        rows_traced, _ = export(client, url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows_traced == codes
    growth_mb = (peak - before) / 1024 / 1024

    bare_seconds, bare_cpu, bare = statistics.median_low(
        timed(lambda: bare_loop(Order.objects.all())) for _ in range(RUNS))
    assert bare == codes

    export_rate, bare_rate = codes / export_seconds, codes / bare_seconds
    print(f"\nCSV export of {codes:,} codes ({harness.database_engine()}), through the export "
          f"view and Django's test client, the median of {RUNS} runs; {checked:,} sampled rows "
          "checked:")
    print(f"  {'':<30}{'seconds':>9}{'rows/s':>10}{'CPU s':>8}{'rows/CPU s':>12}")
    for name, seconds, cpu in (("export (streamed response)", export_seconds, export_cpu),
                               ("bare loop: load and decrypt", bare_seconds, bare_cpu)):
        print(f"  {name:<30}{seconds:9.2f}{codes / seconds:10,.0f}{cpu:8.2f}"
              f"{codes / cpu:12,.0f}")
    print("  (CPU: this process's; a lower rows/s than rows/CPU s is time waiting for the "
          "database server or for a CPU)")
    print(f"  peak Python memory growth while streaming (tracemalloc): {growth_mb:.1f} MB")

    baseline = f"bare load+decrypt {bare_rate:,.0f} rows/s"
    harness.record("export", "export rows/s", export_rate, "rows/s",
                   target=f"≥ {TARGET_ROWS_PER_SECOND:,} rows/s",
                   met=export_rate >= TARGET_ROWS_PER_SECOND, baseline=baseline)
    cpu_rate = codes / export_cpu
    harness.record("export", "export rows per CPU second", cpu_rate, "rows/s",
                   target=f"≥ {TARGET_ROWS_PER_SECOND:,} rows/s",
                   met=cpu_rate >= TARGET_ROWS_PER_SECOND,
                   baseline=f"bare load+decrypt {codes / bare_cpu:,.0f} rows/s")
    harness.record("export", "export / bare loop", export_rate / bare_rate, "×",
                   baseline=baseline)
    harness.record("export", "memory growth (tracemalloc peak)", growth_mb, "MB",
                   target=f"< {TARGET_MEMORY_MB} MB", met=growth_mb < TARGET_MEMORY_MB)
