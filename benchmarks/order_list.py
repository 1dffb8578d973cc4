"""Scenario ``order_list``: the order list on a million orders, paged by cursor.

A million orders (one line each, a handful of users, vendors and products, two orders to
every placing second so that the id has to break ties) are written straight into the
benchmark's own SQLite database by one ``INSERT ... SELECT`` over a generated series, then the
list is asked for through Django's test client, logged in as a superuser, like a browser
would: the first page, page 2 (the first page's "Next" link), a page 10,000 pages deep
reached by its cursor, a filtered page (a status and a month), and a reference search; the
median of 5 runs of each, after one warm-up. Beside it, the same deep page the way the list
used to fetch it, with an OFFSET, and by cursor, both as a bare queryset (the rows and their
lines, no template).
"""

import statistics
import time
from datetime import timedelta
from urllib.parse import urljoin

ROWS = 1_000_000
RUNS = 5
DEEP_PAGE = 10_000  # pages of 50 before the deep one
START = "2025-01-01 00:00:00"
SECONDS_APART = 30  # two orders every 30 s: 1,000,000 orders over ~174 days
STATUSES = ("completed",) * 15 + ("failed", "cancelled", "in_progress", "needs_attention",
                                  "partially_completed")


def seed(rows: int) -> dict:
    """Users, vendors, products through the ORM; the orders and their lines in raw SQL."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from vendors.models import Product, Vendor

    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", password=None)
    users = [admin] + [User.objects.create_user(f"bench-user{i}", password=None)
                       for i in range(4)]
    products = []
    for i, currency in enumerate(("GBP", "USD", "EUR")):
        vendor = Vendor.objects.create(name=f"Bench vendor {i}", kind="kalixo_v2",
                                       base_url="https://sandbox.invalid/v2")
        for value in (10, 25):
            products.append(Product.objects.create(
                vendor=vendor, supplier_product_id=f"p{i}-{value}", sku=f"SKU-{i}-{value}",
                name=f"Card {value} {currency}", brand=f"Brand {i}",
                face_value=Decimal(value), face_currency=currency,
                cost=Decimal(value) * Decimal("0.95"), cost_currency=currency,
            ))
    user_ids = ",".join(str(u.pk) for u in users)
    statuses = ",".join(f'"{s}"' for s in STATUSES)
    product_rows = " UNION ALL ".join(
        f"SELECT {k} AS k, {p.pk} AS product_id, {p.vendor_id} AS vendor_id, "
        f"{p.face_value} AS face_value, {p.cost} AS cost, '{p.cost_currency}' AS currency"
        for k, p in enumerate(products)
    )
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB while seeding
        with transaction.atomic():
            cursor.execute(f"""
                WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq
                                          WHERE n < {rows}),
                products(k, product_id, vendor_id, face_value, cost, currency) AS (
                    {product_rows}),
                users(k, id) AS (SELECT key, value FROM json_each('[{user_ids}]')),
                statuses(k, status) AS (SELECT key, value FROM json_each('[{statuses}]')),
                numbered AS (
                    SELECT n, n % {len(products)} AS product_k, n % {len(users)} AS user_k,
                           (n * 7) % {len(STATUSES)} AS status_k, 1 + n % 5 AS quantity,
                           datetime('{START}', '+' || ((n - 1) / 2 * {SECONDS_APART})
                                    || ' seconds') AS at
                    FROM seq)
                INSERT INTO orders_order (id, reference, status, placed_by_id, currency,
                    total_cost, quantity, delivered_quantity, note, purchase_order, reviewed,
                    created_at, updated_at)
                SELECT n, printf('VP-%06d-%08X', n / 1000, n * 2654435761 % 4294967296),
                       s.status, u.id, p.currency, p.cost * quantity, quantity,
                       CASE s.status WHEN 'completed' THEN quantity ELSE 0 END, '', '',
                       0, at, at
                FROM numbered
                JOIN products p ON p.k = product_k JOIN users u ON u.k = user_k
                JOIN statuses s ON s.k = status_k
                ORDER BY n
            """)
            cursor.execute(f"""
                WITH products(k, product_id, vendor_id, face_value, cost, currency) AS (
                    {product_rows})
                INSERT INTO orders_orderline (id, order_id, product_id, vendor_id, quantity,
                    face_value, unit_cost, currency, pay_with_currency, delivered_quantity,
                    routing_note)
                SELECT o.id, o.id, p.product_id, p.vendor_id, o.quantity, p.face_value,
                       p.cost, o.currency, '', o.delivered_quantity, ''
                FROM orders_order o JOIN products p ON p.k = o.id % {len(products)}
                ORDER BY o.id
            """)
        cursor.execute("ANALYZE")
        cursor.execute("PRAGMA synchronous=NORMAL")
    return {"admin": admin, "users": users}


def median_ms(action, runs: int = RUNS) -> float:
    action()  # warm-up: templates, the connection, the pages of the file the query reads
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def next_link(html: str, base: str) -> str:
    import re
    from html import unescape

    match = re.search(r'<a href="([^"]*)" rel="next">', html)
    assert match, "the page has no Next link"
    return urljoin(base, unescape(match.group(1)))


def run(args, *, var_dir, sandbox_url) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from orders import selectors, views
    from orders.models import Order

    rows = args.rows
    started = time.monotonic()
    seeded = seed(rows)
    seconds = time.monotonic() - started
    print(f"seeded {Order.objects.count():,} orders, one line each, in {seconds:.0f} s "
          f"({var_dir / 'portal.sqlite3'})", flush=True)

    admin = seeded["admin"]
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    base = reverse("orders:order_list")
    size = views.PAGE_SIZE

    def get(url: str, params=None, *, expect: int | None = size) -> str:
        response = client.get(url, params)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        if expect is not None:
            shown = html.count("<progress")
            assert shown == expect, f"{url}: {shown} rows, not {expect}"
        return html

    everything = selectors.with_list_details(selectors.filter_orders(
        selectors.visible_orders(admin), selectors.OrderFilters()))
    offset = min(DEEP_PAGE * size, rows - size - 1)
    # The deep page's cursor: the row just before it, reached once the slow way.
    before_deep = everything[offset - 1]
    deep_url = f"{base}?after={selectors.order_cursor(before_deep, selectors.DEFAULT_ORDER_SORT)}"
    deep_rows = [o.pk for o in everything[offset:offset + size]]
    assert [o.pk for o in selectors.order_page(
        everything, selectors.DEFAULT_ORDER_SORT, size=size,
        after=deep_url.split("after=")[1]).rows] == deep_rows, "the cursor missed the page"

    second_url = next_link(get(base), base)
    # A month in the middle of the orders, and a status one order in twenty has.
    middle = Order.objects.get(pk=rows // 2).created_at.date()
    filtered = {"status": "failed", "placed_from": (middle - timedelta(days=30)).isoformat(),
                "placed_to": middle.isoformat()}
    month = f"failed orders in 31 days to {middle}, first page"
    wanted = Order.objects.get(pk=rows // 3).reference

    results = [
        ("first page", median_ms(lambda: get(base))),
        ("page 2 (Next link)", median_ms(lambda: get(second_url))),
        (f"page {offset // size + 1:,} by cursor (row {offset + 1:,})",
         median_ms(lambda: get(deep_url))),
        (month, median_ms(lambda: get(base, filtered, expect=None))),
        ("reference search (?q=<reference>)",
         median_ms(lambda: get(base, {"q": wanted}, expect=1))),
    ]
    # The other sorts, for what their missing indexes cost (see the report of the run).
    for sort in ("status", "-total", "quantity", "placed_by"):
        url = next_link(get(base, {"sort": sort}), base)
        results.append((f"page 2 sorted by {sort}", median_ms(lambda url=url: get(url))))
    orderer = Client(HTTP_HOST="localhost")
    orderer.force_login(seeded["users"][1])
    results.append(("first page as an orderer (own orders only)", median_ms(
        lambda: orderer.get(base).content)))

    def by_offset():
        return [o.pk for o in everything[offset:offset + size + 1]]

    def by_cursor():
        after = deep_url.split("after=")[1]
        return [o.pk for o in selectors.order_page(
            everything, selectors.DEFAULT_ORDER_SORT, size=size, after=after).rows]

    assert by_offset()[:size] == by_cursor() == deep_rows
    direct = [
        (f"OFFSET {offset:,} LIMIT {size + 1} (the old way)", median_ms(by_offset)),
        ("the same rows by cursor", median_ms(by_cursor)),
    ]

    with CaptureQueriesContext(connection) as queries:
        by_cursor()
    with connection.cursor() as cursor:  # the orders' query (the lines' one comes second)
        cursor.execute(f"EXPLAIN QUERY PLAN {queries.captured_queries[0]['sql']}")
        plan = "; ".join(row[-1] for row in cursor.fetchall())

    width = max(len(name) for name, _ in results + direct)
    print(f"\nOrder list over {rows:,} orders, {size} a page, logged in as a superuser "
          f"(Django test client, median of {RUNS} runs):")
    print(f"  {'page':<{width}}  {'ms':>8}")
    for name, ms in results:
        print(f"  {name:<{width}}  {ms:8.1f}")
    print(f"\nThe deep page as a bare queryset (rows and their lines, median of {RUNS} runs):")
    for name, ms in direct:
        print(f"  {name:<{width}}  {ms:8.1f}")
    print(f"\nquery plan of the deep page by cursor: {plan}")
