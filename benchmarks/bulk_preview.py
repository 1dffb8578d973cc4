"""Scenario ``bulk_preview``: the preview of a 1,000-row bulk order file through the real views.

A catalog of 100 items (Amazon, Steam, Xbox and Apple cards at 25 values in GBP), each sold by
two of three suppliers with ample balances, is seeded in the benchmark's database. An
orderer, signed in through Django's test client, uploads a CSV of 1,000 rows naming the items
by name, by id and by SKU (``POST /orders/bulk/``: read, checked for its columns, kept as a
BulkUpload) and opens its preview (``GET /orders/bulk/<pk>/``: every row checked, the whole
file routed by one Router, totals, balances after and approval per currency, the page
rendered). The figure is the clock time of both requests, the median of three runs; the
preview service alone (``orders.bulk.preview``, without the page) and the number of queries
of the preview page are printed beside it. Every row must come out valid.
"""

import csv
import io
import statistics
import time
from decimal import Decimal

TARGET_SECONDS = 2.0
RUNS = 3
BRANDS = ("Amazon", "Steam", "Xbox", "Apple")
VALUES = [Decimal(5 * n) for n in range(1, 26)]


def seed():
    """The orderer and a catalog of 100 items, two offers each, matched as a sync would."""
    from django.contrib.auth import get_user_model

    from portal.roles import role_group
    from vendors import matching
    from vendors.models import Balance, Product, Vendor

    user = get_user_model().objects.create_user("bench-bulk-orderer", password=None,
                                                is_staff=True)
    user.groups.add(role_group("orderer"))
    vendors = [Vendor.objects.create(name=f"Bulk bench {n}", kind="kalixo_v2",
                                     base_url="https://sandbox.invalid/v2") for n in range(3)]
    for vendor in vendors:
        Balance.objects.create(vendor=vendor, currency="GBP", reported=Decimal("10000000"))
    products = []
    for b, brand in enumerate(BRANDS):
        for v, value in enumerate(VALUES):
            for k in range(2):
                vendor = vendors[(b + v + k) % 3]
                products.append(Product(
                    vendor=vendor, supplier_product_id=f"{brand}-{value}-{k}",
                    sku=f"{brand[:3].upper()}-{value}-{vendor.pk}", name=f"{brand} £{value}",
                    brand=brand, country="GB", face_value=value, face_currency="GBP",
                    cost=value * Decimal("0.95") + Decimal(k) / 10, cost_currency="GBP"))
    Product.objects.bulk_create(products)
    matching.match_offers(Product.objects.filter(vendor__in=vendors))
    return user, list(Product.objects.filter(vendor__in=vendors).select_related("item"))


def file_of(offers, rows: int) -> bytes:
    """``rows`` lines: items by name, by id and offers by SKU, in turn."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["item", "sku", "face_value", "quantity", "note", "reference"])
    for n in range(rows):
        offer = offers[(n * 7) % len(offers)]
        item = offer.item
        named = [[item.name, ""], [str(item.pk), ""], ["", offer.sku]][n % 3]
        writer.writerow([*named, str(item.face_value), str(n % 5 + 1), f"note {n}",
                         f"BENCH-{n}"])
    return out.getvalue().encode()


def run(args, *, var_dir, sandbox_url) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from benchmarks import harness
    from orders import bulk
    from orders.models import BulkUpload

    rows = args.bulk_rows
    user, offers = seed()
    data = file_of(offers, rows)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def through_the_views() -> int:
        response = client.post(reverse("orders:bulk_upload"),
                               {"file": SimpleUploadedFile("bench.csv", data)})
        assert response.status_code == 302, response.status_code
        page = client.get(response["Location"])
        assert page.status_code == 200, page.status_code
        html = page.content.decode()
        valid = html.count('class="bulk-ok"')
        assert valid == rows and 'id="bulk-place-form"' in html, f"{valid} valid rows"
        return len(page.content)

    client.get(reverse("orders:bulk_upload"))  # warm: templates, URL resolver
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        size = through_the_views()
        timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)

    upload = BulkUpload.objects.filter(user=user).latest("pk")
    service = []
    for _ in range(RUNS):
        started = time.perf_counter()
        bulk.preview(upload=upload, user=user)
        service.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("orders:bulk_preview", args=[upload.pk]))

    print(f"\nBulk preview of {rows:,} rows ({harness.database_engine()}), upload and preview "
          f"through the views, median of {RUNS} runs:")
    print(f"  upload + preview page: {seconds:.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in timings)}; page {size / 1024:.0f} KiB)")
    print(f"  preview service alone (check and route): {statistics.median(service):.2f} s")
    print(f"  queries of the preview page: {len(queries)}")
    harness.record("bulk_preview", f"preview of {rows:,} rows (upload + page)", seconds, "s",
                   target=f"< {TARGET_SECONDS:g} s", met=seconds < TARGET_SECONDS,
                   baseline=f"service alone {statistics.median(service):.2f} s")
