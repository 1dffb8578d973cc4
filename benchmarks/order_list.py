"""Scenario ``order_list``: the order list and its search over a million orders.

Seeding. A superuser, an approver (the role that sees every order), three orderers, three
vendors of two products each go in through the ORM. Then, straight into the benchmark's
database in bulk (PostgreSQL: ``INSERT ... SELECT`` over ``generate_series``; SQLite: the
same over a recursive CTE), a million orders (two to every 30 seconds from 2025-01-01, so
that the id has to break ties; one order in twenty ``failed``), one line each, one supplier
order each (with a supplier's order id) and three codes each, whatever the status: three
million vouchers. Their ciphertext is one dummy value sealed once and shared (no row
decrypts; the list never reads it), their blind index distinct synthetic hex, except for the
code the benchmark searches for: that one is sealed and indexed for real, so that the
portal's own code search (a POST handing the code's blind index to the list) finds it.
Foreign-key checks are off while seeding, and on PostgreSQL the plain indexes are dropped
and built again after the rows; the tables are analysed afterwards.

Measured through Django's test client, logged in (second factor given) as the superuser,
like a browser: the default first page, each filter alone (status, vendor, product, placed
by, currency, a month of dates), two combined, a search by our reference, by the supplier's
order id, by a full code (the POST and the list it redirects to), page 2 by its "Next" link
and page 10,001 reached by its cursor; the approver's first page and an orderer's (own
orders only). Each request is run 20 times after one warm-up: p50 and p95. The queries of
each request are counted, and the deep page must run as many as the first. Baseline: the
admin changelist of orders, the same way: its first page, a status filter, a reference
search and the page at the deep page's row (by OFFSET), twice each without a warm-up (the
slowest take tens of seconds). Beside each wall-clock time, the CPU time the benchmark's
process spent on the request (median): on a shared machine the wall clock also holds the
waits for a CPU.

Headline figures (``harness.record``): the seeding time, the p95 of each portal request
against 50 ms with the admin's beside it, and the query count of the deep page against the
first page's. The plan of the deep page's query is printed last.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from urllib.parse import urljoin

from benchmarks import harness
from benchmarks.harness import percentile

RUNS = 20
ADMIN_RUNS = 2  # no warm-up: the baseline takes up to 40 s a request
TARGET_MS = 50.0
DEEP_PAGE = 10_000  # pages of 50 before the deep one
CODES_PER_ORDER = 3
START = "2025-01-01 00:00:00"
SECONDS_APART = 30  # two orders every 30 s: a million orders over ~174 days
STATUSES = ("completed",) * 15 + ("failed", "cancelled", "in_progress", "needs_attention",
                                  "partially_completed")
# The order statuses above as their supplier orders' statuses.
VENDOR_ORDER_STATUS = "CASE o.status WHEN 'in_progress' THEN 'processing' " \
                      "WHEN 'needs_attention' THEN 'unknown' ELSE o.status END"


def seed_reference_rows() -> dict:
    """Users, vendors and products through the ORM."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from portal.roles import role_group
    from vendors.models import Product, Vendor

    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", password=None)
    approver = User.objects.create_user("bench-approver", password=None, is_staff=True)
    approver.groups.add(role_group("approver"))
    orderers = [User.objects.create_user(f"bench-orderer{i}", password=None, is_staff=True)
                for i in range(3)]
    for user in orderers:
        user.groups.add(role_group("orderer"))
    vendors, products = [], []
    for i, currency in enumerate(("GBP", "USD", "EUR")):
        vendor = Vendor.objects.create(name=f"Bench vendor {i}", kind="kalixo_v2",
                                       base_url="https://sandbox.invalid/v2")
        vendors.append(vendor)
        for value in (10, 25):
            products.append(Product.objects.create(
                vendor=vendor, supplier_product_id=f"p{i}-{value}", sku=f"SKU-{i}-{value}",
                name=f"Card {value} {currency}", brand=f"Brand {i}",
                face_value=Decimal(value), face_currency=currency,
                cost=Decimal(value) * Decimal("0.95"), cost_currency=currency,
            ))
    return {"admin": admin, "approver": approver, "orderers": orderers,
            "users": [admin, approver, *orderers], "vendors": vendors, "products": products}


def dummy_ciphertext() -> tuple[str, int]:
    """One sealed dummy code (never a real one) for every seeded voucher, and its key
    version. Bound to a voucher id no row has, so no row decrypts. The token is digits, a
    colon and base64: safe to write into the SQL as it is."""
    from common.crypto import default_keyring

    keyring = default_keyring()
    return (keyring.encrypt("BENCH-DUMMY-CODE", context="orders.voucher:bench-dummy:code"),
            keyring.current_version)


def product_rows(products) -> str:
    """The products as a VALUES list: (k, product, vendor, face value, cost, currency)."""
    return ", ".join(f"({k}, {p.pk}, {p.vendor_id}, {p.face_value}, {p.cost}, "
                     f"'{p.cost_currency}')" for k, p in enumerate(products))


def seed_postgresql(rows: int, ref: dict) -> None:
    from django.db import connection, transaction

    products, users = ref["products"], ref["users"]
    token, key_version = dummy_ciphertext()
    user_ids = ",".join(str(u.pk) for u in users)
    statuses = ",".join(f"'{s}'" for s in STATUSES)
    tables = ("orders_order", "orders_orderline", "orders_vendororder", "orders_voucher")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no FK triggers
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        # Building an index once over the rows is minutes faster than growing it row by
        # row: the plain indexes go and come back (those of a constraint stay).
        cursor.execute("""
            SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = current_schema() AND tablename = ANY(%s)
              AND indexname NOT IN (SELECT conname FROM pg_constraint)
        """, [list(tables)])
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f"""
            INSERT INTO orders_order (id, reference, status, placed_by_id, approval_reason,
                rejection_reason, currency, total_cost, quantity, delivered_quantity, note,
                purchase_order, reviewed, allow_other_suppliers, created_at, updated_at)
            SELECT n, 'VP-' || lpad((n / 1000)::text, 6, '0') || '-'
                       || upper(lpad(to_hex(n::bigint * 2654435761 % 4294967296), 8, '0')),
                   s.status, (ARRAY[{user_ids}])[1 + n % {len(users)}], '', '',
                   p.currency, p.cost * {CODES_PER_ORDER}, {CODES_PER_ORDER},
                   CASE s.status WHEN 'completed' THEN {CODES_PER_ORDER} ELSE 0 END, '', '',
                   false, true, at, at
            FROM generate_series(1, {rows}) AS n
            CROSS JOIN LATERAL (SELECT (ARRAY[{statuses}])[1 + n * 7 % {len(STATUSES)}]
                                AS status) s
            CROSS JOIN LATERAL (SELECT timestamptz '{START}+00'
                                + ((n - 1) / 2 * {SECONDS_APART}) * interval '1 second'
                                AS at) t
            JOIN (VALUES {product_rows(products)})
                 AS p(k, product_id, vendor_id, face_value, cost, currency)
              ON p.k = n % {len(products)}
        """)
        cursor.execute(f"""
            INSERT INTO orders_orderline (id, order_id, product_id, vendor_id, quantity,
                face_value, unit_cost, currency, pay_with_currency, delivered_quantity,
                routing_note, note, reference)
            SELECT o.id, o.id, p.product_id, p.vendor_id, o.quantity, p.face_value, p.cost,
                   o.currency, '', o.delivered_quantity, '', '', ''
            FROM orders_order o
            JOIN (VALUES {product_rows(products)})
                 AS p(k, product_id, vendor_id, face_value, cost, currency)
              ON p.k = o.id % {len(products)}
        """)
        cursor.execute(f"""
            INSERT INTO orders_vendororder (id, order_id, line_id, vendor_id, client_reference,
                supplier_order_id, status, supplier_status, quantity, delivered_quantity, cost,
                currency, details, claim_token, attempts, polls, faults, last_error,
                attention, submitted_at, completed_at, created_at, updated_at)
            SELECT l.id, l.order_id, l.id, l.vendor_id, o.reference || '-1', 'SUP-' || o.id,
                   {VENDOR_ORDER_STATUS}, '', l.quantity, l.delivered_quantity,
                   l.unit_cost * l.quantity, l.currency, '{{}}', '', 1, 1, 0, '', '',
                   o.created_at, o.created_at, o.created_at, o.created_at
            FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id
        """)
        cursor.execute(f"""
            INSERT INTO orders_voucher (id, order_id, vendor_order_id, code_encrypted,
                pin_encrypted, claim_url_encrypted, code_index, last4, serial, key_version,
                duplicate, created_at)
            SELECT lpad(to_hex(m), 32, '0')::uuid, v.order_id, v.id, '{token}', '', '',
                   md5('a' || m) || md5('b' || m), lpad((m % 10000)::text, 4, '0'), '',
                   {key_version}, false, v.created_at
            FROM orders_vendororder v
            CROSS JOIN LATERAL generate_series(
                (v.id - 1) * {CODES_PER_ORDER} + 1, v.id * {CODES_PER_ORDER}) AS m
        """)
        for _, definition in indexes:
            cursor.execute(definition)
        for table in tables[:3]:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {rows})")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def seed_sqlite(rows: int, ref: dict) -> None:
    from django.db import connection, transaction

    products, users = ref["products"], ref["users"]
    token, key_version = dummy_ciphertext()
    user_ids = ",".join(str(u.pk) for u in users)
    statuses = ",".join(f'"{s}"' for s in STATUSES)
    mod = 4294967296
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-524288")  # 512 MiB while seeding
        with transaction.atomic():
            cursor.execute(f"""
                WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq
                                          WHERE n < {rows}),
                products(k, product_id, vendor_id, face_value, cost, currency) AS (
                    VALUES {product_rows(products)}),
                users(k, id) AS (SELECT key, value FROM json_each('[{user_ids}]')),
                statuses(k, status) AS (SELECT key, value FROM json_each('[{statuses}]')),
                numbered AS (
                    SELECT n, n % {len(products)} AS product_k, n % {len(users)} AS user_k,
                           n * 7 % {len(STATUSES)} AS status_k,
                           datetime('{START}', '+' || ((n - 1) / 2 * {SECONDS_APART})
                                    || ' seconds') AS at
                    FROM seq)
                INSERT INTO orders_order (id, reference, status, placed_by_id, approval_reason,
                    rejection_reason, currency, total_cost, quantity, delivered_quantity,
                    note, purchase_order, reviewed, allow_other_suppliers, created_at,
                    updated_at)
                SELECT n, printf('VP-%06d-%08X', n / 1000, n * 2654435761 % {mod}),
                       s.status, u.id, '', '', p.currency, p.cost * {CODES_PER_ORDER},
                       {CODES_PER_ORDER},
                       CASE s.status WHEN 'completed' THEN {CODES_PER_ORDER} ELSE 0 END,
                       '', '', 0, 1, at, at
                FROM numbered
                JOIN products p ON p.k = product_k JOIN users u ON u.k = user_k
                JOIN statuses s ON s.k = status_k
                ORDER BY n
            """)
            cursor.execute(f"""
                WITH products(k, product_id, vendor_id, face_value, cost, currency) AS (
                    VALUES {product_rows(products)})
                INSERT INTO orders_orderline (id, order_id, product_id, vendor_id, quantity,
                    face_value, unit_cost, currency, pay_with_currency, delivered_quantity,
                    routing_note, note, reference)
                SELECT o.id, o.id, p.product_id, p.vendor_id, o.quantity, p.face_value,
                       p.cost, o.currency, '', o.delivered_quantity, '', '', ''
                FROM orders_order o JOIN products p ON p.k = o.id % {len(products)}
                ORDER BY o.id
            """)
            cursor.execute(f"""
                INSERT INTO orders_vendororder (id, order_id, line_id, vendor_id,
                    client_reference, supplier_order_id, status, supplier_status, quantity,
                    delivered_quantity, cost, currency, details, claim_token, attempts, polls,
                    faults, last_error, attention, submitted_at, completed_at, created_at,
                    updated_at)
                SELECT l.id, l.order_id, l.id, l.vendor_id, o.reference || '-1',
                       'SUP-' || o.id, {VENDOR_ORDER_STATUS}, '', l.quantity,
                       l.delivered_quantity, l.unit_cost * l.quantity, l.currency, '{{}}', '',
                       1, 1, 0, '', '', o.created_at, o.created_at, o.created_at, o.created_at
                FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id
                ORDER BY l.id
            """)
            # Django keeps a UUID on SQLite as 32 hex digits.
            cursor.execute(f"""
                WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k
                                        WHERE i < {CODES_PER_ORDER}),
                codes AS (SELECT v.id AS vendor_order_id, v.order_id, v.created_at,
                                 (v.id - 1) * {CODES_PER_ORDER} + k.i AS m
                          FROM orders_vendororder v CROSS JOIN k)
                INSERT INTO orders_voucher (id, order_id, vendor_order_id, code_encrypted,
                    pin_encrypted, claim_url_encrypted, code_index, last4, serial,
                    key_version, duplicate, created_at)
                SELECT printf('%032x', m), order_id, vendor_order_id, '{token}', '', '',
                       printf('%08x%08x%08x%08x%08x%08x%08x%08x', m * 2654435761 % {mod},
                              m * 2246822519 % {mod}, m * 3266489917 % {mod},
                              m * 668265263 % {mod}, m * 374761393 % {mod},
                              m * 3812015801 % {mod}, m * 1597334677 % {mod}, m),
                       printf('%04d', m % 10000), '', {key_version}, 0, created_at
                FROM codes ORDER BY m
            """)
        cursor.execute("ANALYZE")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")


def seal_searched_code(order_id: int) -> str:
    """Give the first voucher of order ``order_id`` a code of its own, sealed and indexed as
    a stored code is (orders.custody.seal); return the code."""
    from orders.custody import seal
    from orders.models import Voucher

    voucher = Voucher.objects.filter(order_id=order_id).order_by("id").first()
    code = f"BENCH-{order_id:08d}-CODE"
    seal(voucher, code=code)
    voucher.save(update_fields=["code_encrypted", "pin_encrypted", "claim_url_encrypted",
                                "code_index", "last4", "key_version"])
    return code


def logged_in(user):
    """A test client signed in as ``user`` with the second factor given (see
    portal.twofactor), as after the login and verify pages."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from portal import twofactor

    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[twofactor.PASSWORD_AT] = session[twofactor.AUTHENTICATOR_AT] = time.time()
    session.save()
    return client


def next_link(html: str, base: str) -> str:
    match = re.search(r'<a href="([^"]*)" rel="next">', html)
    assert match, "the page has no Next link"
    return urljoin(base, unescape(match.group(1)))


@dataclass(frozen=True)
class Timing:
    p50: float  # ms, wall clock
    p95: float
    cpu: float  # ms of this process's CPU, median: what the request costs without waiting
    queries: int


def timed(action: Callable[[], object], runs: int = RUNS, *, warm_up: bool = True) -> Timing:
    """``action`` run ``runs`` times, after one warm-up run unless ``warm_up`` is false; the
    queries of the first run (counted by an execute wrapper: the test client empties
    ``connection.queries`` at each request)."""
    from django.db import connection

    executed = []
    times, cpu = [], []
    for i in range(runs + warm_up):
        started, cpu_started = time.perf_counter(), time.process_time()
        if i == 0:
            with connection.execute_wrapper(
                    lambda execute, sql, *a: executed.append(sql) or execute(sql, *a)):
                action()
        else:
            action()
        if i >= warm_up:  # the warm-up: templates, the connection, the pages read
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    return Timing(percentile(times, 50), percentile(times, 95), percentile(cpu, 50),
                  len(executed))


def run(args, *, var_dir, sandbox_url) -> None:
    from django.contrib import admin
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from orders import selectors, views
    from orders.models import Order, Voucher

    rows = args.rows
    engine = harness.database_engine()
    harness.fresh_database()  # its orders take ids 1 to rows
    started = time.monotonic()
    ref = seed_reference_rows()
    (seed_postgresql if engine == "postgresql" else seed_sqlite)(rows, ref)
    wanted = Order.objects.get(pk=rows // 3)
    code = seal_searched_code(rows // 3 + 1)
    seeded = time.monotonic() - started
    print(f"seeded {Order.objects.count():,} orders with their lines and supplier orders, "
          f"{Voucher.objects.count():,} codes, in {seeded:.0f} s ({engine})", flush=True)
    harness.record("order_list", f"seeding {rows:,} orders and their codes ({engine})",
                   seeded, "s")

    client = logged_in(ref["admin"])
    base = reverse("orders:order_list")
    size = views.PAGE_SIZE

    def get(c, url: str, params=None, *, expect: int | None = size) -> str:
        response = c.get(url, params)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        if expect is not None:
            shown = html.count("<progress")
            assert shown == expect, f"{url} {params}: {shown} rows, not {expect}"
        return html

    # The deep page's cursor: the row just before it, reached once the slow way.
    everything = selectors.filter_orders(Order.objects.all(), selectors.OrderFilters())
    offset = min(DEEP_PAGE * size, rows - size - 1)
    before_deep = everything[offset - 1]
    deep_url = f"{base}?after={selectors.order_cursor(before_deep, selectors.DEFAULT_ORDER_SORT)}"
    deep_rows = [o.reference for o in everything[offset:offset + size]]
    assert all(r in get(client, deep_url) for r in deep_rows), "the cursor missed the page"
    second_url = next_link(get(client, base), base)

    vendor, product = ref["vendors"][1], ref["products"][4]
    middle = Order.objects.get(pk=rows // 2).created_at.date()
    month = {"placed_from": (middle - timedelta(days=30)).isoformat(),
             "placed_to": middle.isoformat()}
    search_url = reverse("orders:order_search")

    def code_search():
        response = client.post(search_url, {"term": code})
        assert response.status_code == 302, response.status_code
        return get(client, response.url, expect=1)

    approver, orderer = logged_in(ref["approver"]), logged_in(ref["orderers"][0])
    portal = [
        ("first page", lambda: get(client, base)),
        ("page 2 (Next link)", lambda: get(client, second_url)),
        (f"page {offset // size + 1:,} by cursor", lambda: get(client, deep_url)),
        ("status=failed", lambda: get(client, base, {"status": "failed"})),
        (f"vendor ({vendor.name})", lambda: get(client, base, {"vendor": vendor.pk})),
        (f"product ({product.name})", lambda: get(client, base, {"product": product.pk})),
        ("placed by", lambda: get(client, base, {"placed_by": ref["orderers"][1].pk})),
        ("currency=EUR", lambda: get(client, base, {"currency": "EUR"})),
        ("31 days of dates", lambda: get(client, base, month)),
        ("status=failed + vendor",
         lambda: get(client, base, {"status": "failed", "vendor": vendor.pk})),
        ("status=failed + 31 days",
         lambda: get(client, base, {"status": "failed", **month}, expect=None)),
        ("reference search (?q=)", lambda: get(client, base, {"q": wanted.reference}, expect=1)),
        ("supplier order id search (?q=)",
         lambda: get(client, base, {"q": f"SUP-{wanted.pk}"}, expect=1)),
        ("code search: POST + list by blind index", code_search),
        ("approver's first page", lambda: get(approver, base)),
        ("orderer's first page (own orders)", lambda: get(orderer, base)),
    ]

    admin_url = reverse("admin:orders_order_changelist")
    admin_deep = offset // admin.site._registry[Order].list_per_page + 1

    def admin_get(params=None) -> str:
        response = client.get(admin_url, params)
        assert response.status_code == 200, (admin_url, params, response.status_code)
        return response.content.decode()

    baseline = [
        ("first page", lambda: admin_get()),
        ("status=failed", lambda: admin_get({"status__exact": "failed"})),
        ("reference search", lambda: admin_get({"q": wanted.reference})),
        (f"page {admin_deep:,} (row {offset + 1:,}, by OFFSET)",
         lambda: admin_get({"p": admin_deep})),
    ]

    measure_started = time.monotonic()
    results = [(name, timed(action)) for name, action in portal]
    admin_results = [(name, timed(action, runs=ADMIN_RUNS, warm_up=False))
                     for name, action in baseline]

    by_name = dict(results)
    first_queries = by_name["first page"].queries
    deep_queries = by_name[f"page {offset // size + 1:,} by cursor"].queries
    assert deep_queries == first_queries, (
        f"the deep page ran {deep_queries} queries, the first {first_queries}")

    width = max(len(name) for name, _ in results + admin_results) + 8
    print(f"\nOrder list over {rows:,} orders ({engine}), {size} a page, signed in as a "
          f"superuser unless said (Django test client, {RUNS} runs after a warm-up; the "
          f"admin's {ADMIN_RUNS}):")
    print(f"  {'request':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'CPU ms':>8}  queries")
    for prefix, rows_ in (("", results), ("admin: ", admin_results)):
        for name, t in rows_:
            print(f"  {prefix + name:<{width}}  {t.p50:8.1f}  {t.p95:8.1f}  {t.cpu:8.1f}  "
                  f"{t.queries:7d}" + ("  over 50 ms" if not prefix and t.p95 >= TARGET_MS
                                       else ""))
    print(f"measured in {time.monotonic() - measure_started:.0f} s")

    admin_first = admin_results[0][1]
    admin_by_kind = {"status": admin_results[1][1], "reference": admin_results[2][1],
                     "deep": admin_results[3][1]}
    labels = {"status": "status filter", "reference": "reference search",
              "deep": f"row {offset + 1:,}"}
    for name, t in results:
        kind = ("status" if name == "status=failed" else "reference" if "search" in name
                else "deep" if "cursor" in name else "")
        against = admin_by_kind.get(kind, admin_first)
        harness.record("order_list", f"{name} p95 (p50 {t.p50:.0f} ms, CPU {t.cpu:.0f} ms)",
                       t.p95, "ms", target=f"p95 < {TARGET_MS:.0f} ms", met=t.p95 < TARGET_MS,
                       baseline=f"admin changelist {labels.get(kind, 'first page')} "
                                f"{against.p95:,.0f} ms")
    harness.record("order_list", "queries of the deep page", deep_queries, "queries",
                   target=f"as many as the first page ({first_queries})",
                   met=deep_queries == first_queries,
                   baseline=f"admin changelist first page {admin_first.queries} queries")

    # The plan of the deep page's orders query, for the report.
    with CaptureQueriesContext(connection) as queries:
        selectors.order_page(everything, selectors.DEFAULT_ORDER_SORT, size=size,
                             after=deep_url.split("after=")[1])
    explain = "EXPLAIN" if engine == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {queries.captured_queries[0]['sql']}")
        plan = "; ".join(str(row[-1]).strip() for row in cursor.fetchall())
    print(f"query plan of the deep page by cursor: {plan}")
