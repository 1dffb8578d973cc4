"""Scenario ``requests``: how many supplier requests an order costs on each of the four suppliers.

One vendor per supplier, each on a fresh sandbox account, runs side by side through the real
engine (``place_order``, the dispatcher every 2 s as ``portal/cron.py`` schedules it, two
``manage.py rqworker`` processes, the sandboxes over HTTP). Each gets ``ORDERS`` orders of 1-3
codes placed at random over ``ARRIVAL`` seconds, half of an instant test product and half of a
delayed one (``PRODUCTS``), and the run lasts until every supplier order is final.

Counted per supplier: every request the workers sent (their ``common.http`` log lines), by
kind: submit (a POST that places an order), poll/fetch (a GET of an order or its codes), auth
(logins and token refreshes), price (a price read or quote before a submission) and other.
Catalog and balance syncs at set-up run in this process and are not counted. The suppliers'
rate limits are lifted on both sides, as in the other scenarios. The figures are also written
to ``VAR_DIR/requests.json``.
"""

import json
import logging
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field

import requests

from benchmarks import harness
from benchmarks.harness import Workers

ORDERS = 20
ARRIVAL = 5.0
SMOKE_ORDERS, SMOKE_ARRIVAL = 2, 1.0  # python -m benchmarks --smoke
DISPATCH_INTERVAL = 2.0
LIFTED = {"rate_limit_per_minute": 100000}
KINDS = ("submit", "poll/fetch", "auth", "price", "other")
# supplier: (instant product, delayed product), each as Product lookup fields.
PRODUCTS = {
    "kalixo_v2": ({"sku": "KTEST-OK"}, {"sku": "KTEST-SLOW"}),
    "kalixo_v1": ({"sku": "GB-EN-KTEST-OK"}, {"sku": "GB-EN-KTEST-SLOW"}),
    "ezcards": ({"sku": "EZTEST-INSTOCK"}, {"sku": "EZTEST-DELAYED"}),
    "starship": ({"supplier_product_id": "1001:25.00"}, {"supplier_product_id": "1003:10.00"}),
}
LOG_LINE = re.compile(r" common\.http (GET|POST|PUT|PATCH|DELETE) (\S+?):? ")


def sandbox_account(kind: str, token: str) -> tuple[dict, str]:
    """Credentials opening a fresh sandbox account, and the account's name there."""
    if kind == "kalixo_v2":
        return {"api_key": f"kal_test_{token}"}, token
    if kind == "kalixo_v1":
        email = f"{token}@sandbox.kalixo.test"
        return {"email": email, "password": "sandbox"}, email
    if kind == "ezcards":
        return {"api_key": f"ez_test_{token}", "token": f"tok_{token}"}, token
    return {"api_key": f"sk_test_{token}", "api_secret": f"secret_{token}"}, f"sk_test_{token}"


@dataclass
class Result:
    supplier: str
    orders: int = 0
    completed: int = 0
    codes: int = 0
    requests: Counter = field(default_factory=Counter)

    @property
    def per_order(self) -> float:
        return sum(self.requests.values()) / max(self.orders, 1)

    @property
    def per_code(self) -> float:
        return sum(self.requests.values()) / max(self.codes, 1)


def make_vendor(sandbox_url: str, kind: str):
    import importlib

    from orders.balances import sync_balances
    from vendors.models import Vendor
    from vendors.sandbox.app import SUPPLIERS
    from vendors.services import sync_catalog, vendor_set_credentials

    token = f"bench{uuid.uuid4().hex[:8]}"
    credentials, account = sandbox_account(kind, token)
    requests.post(f"{sandbox_url}/_sandbox/{kind}/faults/{account}", json=LIFTED,
                  timeout=10).raise_for_status()
    module = importlib.import_module(SUPPLIERS[kind])
    vendor = Vendor.objects.create(
        name=f"{kind} {token}", kind=kind, base_url=sandbox_url + module.BASE_PATH,
        rate_limit_per_minute=100000,
    )
    vendor_set_credentials(vendor=vendor, credentials=credentials)
    sync_catalog(vendor=vendor)
    sync_balances(vendor=vendor)
    return vendor


def request_kind(method: str, path: str) -> str:
    """The kind of one request, from its method and its path below the vendor's base URL."""
    if "/auth/" in path or path.endswith("/token"):
        return "auth"
    if "/orders" in path:
        return "submit" if method == "POST" else "poll/fetch"
    if "/products" in path or "/exchange-rates" in path:
        return "price"
    return "other"


def count_requests(workers: Workers, vendors: dict) -> dict[str, Counter]:
    """The workers' supplier requests per supplier and kind, from their log lines."""
    counts = {kind: Counter() for kind in vendors}
    for path in workers.logs:
        for method, url in LOG_LINE.findall(path.read_text(errors="replace")):
            for kind, vendor in vendors.items():
                if url.startswith(vendor.base_url):
                    counts[kind][request_kind(method, url.removeprefix(vendor.base_url))] += 1
    return counts


def record(results: list[Result]) -> None:
    """Requests per order of each supplier; Kalixo v2's against the protocol's minimum."""
    for r in results:
        if r.supplier == "kalixo_v2":
            harness.record("requests", "kalixo_v2 supplier requests per order", r.per_order,
                           "", target="≤ 2.05", met=r.per_order <= 2.05)
        else:
            harness.record("requests", f"{r.supplier} supplier requests per order",
                           r.per_order, "")


def report(results: list[Result], seconds: float, *, orders: int, arrival: float) -> None:
    print(f"\nrequests: {orders} orders of 1-3 codes per supplier (half instant, half delayed "
          f"test products), placed over {arrival:.0f} s; 2 rqworker processes, dispatch_due "
          f"every {DISPATCH_INTERVAL:.0f} s; supplier rate limits lifted; run {seconds:.0f} s")
    header = (f"{'supplier':<11}{'orders':>7}{'completed':>10}{'codes':>7}"
              + "".join(f"{k:>11}" for k in KINDS)
              + f"{'total':>7}{'req/order':>10}{'req/code':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.supplier:<11}{r.orders:>7}{r.completed:>10}{r.codes:>7}"
              + "".join(f"{r.requests.get(k, 0):>11}" for k in KINDS)
              + f"{sum(r.requests.values()):>7}{r.per_order:>10.2f}{r.per_code:>9.2f}")
    print("requests the workers sent (common.http log lines); submit: "
          "POST of an order; poll/fetch: GET of an order or its codes; auth: logins and "
          "refreshes; price: a price read or quote in the job.")
    for r in results:
        instant, delayed = (", ".join(f"{v}" for v in p.values()) for p in PRODUCTS[r.supplier])
        print(f"  {r.supplier}: instant {instant}, delayed {delayed}")


def run(args, *, var_dir, sandbox_url: str) -> list[Result]:
    import django_rq
    from django.contrib.auth import get_user_model
    from rq import Worker

    from orders import dispatch, services
    from orders.models import Order, VendorOrder, Voucher
    from orders.pricing import LineRequest
    from vendors.models import Product

    logging.getLogger("common.http").setLevel(logging.WARNING)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    orders_each, arrival = (SMOKE_ORDERS, SMOKE_ARRIVAL) if args.smoke else (ORDERS, ARRIVAL)
    rng = random.Random(args.seed)
    vendors = {kind: make_vendor(sandbox_url, kind) for kind in PRODUCTS}
    products = {kind: [Product.objects.get(vendor=vendors[kind], **lookup) for lookup in pair]
                for kind, pair in PRODUCTS.items()}
    plan = sorted((rng.uniform(0, arrival), kind, i % 2, rng.randint(1, 3))
                  for kind in PRODUCTS for i in range(orders_each))
    open_orders = VendorOrder.objects.filter(
        vendor__in=vendors.values(), attention=""
    ).exclude(status__in=VendorOrder.Status.FINAL)
    print(f"running {len(PRODUCTS)} suppliers side by side, {orders_each} orders each over "
          f"{arrival:.0f} s ...", flush=True)
    with Workers(var_dir, "requests", count=2) as workers:
        connection = django_rq.get_connection("orders")
        wait_until = time.monotonic() + 60
        while len(Worker.all(connection=connection)) < 2:
            workers.check()
            if time.monotonic() > wait_until:
                raise RuntimeError("the RQ workers did not start")
            time.sleep(0.2)
        start, placed, next_dispatch = time.monotonic(), 0, 0.0
        deadline = arrival + 90
        while True:
            now = time.monotonic() - start
            while placed < len(plan) and plan[placed][0] <= now:
                _, kind, which, quantity = plan[placed]
                services.place_order(user=user, lines=[LineRequest(
                    product=products[kind][which], quantity=quantity)])
                placed += 1
            if now >= next_dispatch:
                dispatch.dispatch_due()
                next_dispatch = now + DISPATCH_INTERVAL
                workers.check()
                if placed == len(plan) and not open_orders.exists():
                    break
            if now > deadline:
                raise RuntimeError(f"orders still open after {deadline:.0f}s")
            time.sleep(0.05)
        seconds = time.monotonic() - start
    counts = count_requests(workers, vendors)
    results = []
    for kind, vendor in vendors.items():
        orders = Order.objects.filter(lines__vendor=vendor).distinct()
        results.append(Result(
            kind, orders=orders.count(),
            completed=orders.filter(status=Order.Status.COMPLETED).count(),
            codes=Voucher.objects.filter(vendor_order__vendor=vendor).count(),
            requests=counts[kind],
        ))
    if not any(r.requests for r in results):
        raise SystemExit("no supplier request found in the workers' logs")
    report(results, seconds, orders=orders_each, arrival=arrival)
    record(results)
    figures = {"orders_per_supplier": orders_each, "arrival_seconds": arrival, "seconds": seconds,
               "suppliers": {r.supplier: {**asdict(r), "requests": dict(r.requests),
                                          "requests_per_order": round(r.per_order, 3),
                                          "requests_per_code": round(r.per_code, 3)}
                             for r in results}}
    (var_dir / "requests.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures in {var_dir / 'requests.json'}")
    for r in results:
        if r.completed != orders_each:
            raise SystemExit(f"{r.supplier}: {r.completed} of {orders_each} orders completed")
    return results
