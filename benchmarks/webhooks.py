"""Scenario ``webhooks``: how soon a Starship DELAYED order's codes are stored after the supplier
delivers them, polling alone against polling plus the supplier's webhooks.

Four Starship sandbox accounts run side by side through the real engine (``place_order``, the
dispatcher every 2 s, two ``manage.py rqworker`` processes, the sandbox over HTTP), each with
the same orders: ``ORDERS`` DELAYED orders (products 1003 and 1004, delivered 3 and 4 s after
they are placed, quantity 1-3) placed at random over ``ARRIVAL`` seconds. Two of the vendors
poll as the engine does by default (the first poll after 2 s, backing off to 300 s), two poll
every ``POLL_EVERY`` seconds (as the supplier recommends for PENDING orders, shortened so the
run stays short); in each pair one vendor has a webhook secret and its sandbox account sends
webhooks to a real portal web server (gunicorn), the other does not.

Measured per vendor: the lag from the supplier's delivery (the sandbox's ``delivered_at``) to
the codes stored (``Voucher.created_at``), and the supplier polls per order. The supplier's
rate limit is lifted on both sides. ``--orders`` and ``--arrival`` are the polling scenario's;
this one keeps its own small numbers, to run in well under a minute.
"""

import logging
import random
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from benchmarks import harness
from benchmarks.harness import BASE_DIR, Workers, free_port, percentile

ORDERS = 12
ARRIVAL = 6.0
SMOKE_ORDERS, SMOKE_ARRIVAL = 2, 1.0  # python -m benchmarks --smoke
POLL_EVERY = 20
DISPATCH_INTERVAL = 2.0
SECRET = "whsec_bench"
PRODUCTS = ("1003:10.00", "1003:25.00", "1004:10.00", "1004:25.00")
LIFTED = {"rate_limit_per_minute": 100000}
CONFIGS = (
    # name, vendor fields, webhooks
    ("engine defaults, polling only", {}, False),
    ("engine defaults + webhooks", {}, True),
    (f"poll every {POLL_EVERY} s, polling only",
     {"first_poll_delay": POLL_EVERY, "max_poll_interval": POLL_EVERY}, False),
    (f"poll every {POLL_EVERY} s + webhooks",
     {"first_poll_delay": POLL_EVERY, "max_poll_interval": POLL_EVERY}, True),
)


@dataclass
class Result:
    name: str
    vendor: object = None
    completed: int = 0
    polls: int = 0
    lags: list[float] = field(default_factory=list)


@contextmanager
def portal_server(var_dir):
    """The portal's own web server (gunicorn), for the sandbox's webhooks to reach."""
    port = free_port()
    log = open(var_dir / "logs" / "portal-web.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-k", "gthread", "-w", "1", "--threads", "4"],
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=2)
                break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the portal web server did not start; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def make_vendor(sandbox_url: str, portal_url: str, name: str, fields: dict, webhooks: bool):
    from orders.balances import sync_balances
    from vendors.models import Vendor
    from vendors.sandbox import starship
    from vendors.services import sync_catalog, vendor_set_credentials

    token = f"bench{uuid.uuid4().hex[:8]}"
    vendor = Vendor.objects.create(
        name=f"Starship {name} {token}", kind="starship",
        base_url=sandbox_url + starship.BASE_PATH, rate_limit_per_minute=100000, **fields,
    )
    account = f"sk_test_{token}"
    settings = dict(LIFTED)
    credentials = {"api_key": account, "api_secret": f"secret_{token}"}
    if webhooks:
        settings.update(webhook_url=f"{portal_url}/webhooks/starship/{vendor.pk}/",
                        webhook_secret=SECRET)
        credentials["webhook_secret"] = SECRET
    requests.post(f"{sandbox_url}/_sandbox/starship/faults/{account}", json=settings,
                  timeout=10).raise_for_status()
    vendor_set_credentials(vendor=vendor, credentials=credentials)
    sync_catalog(vendor=vendor)
    sync_balances(vendor=vendor)
    vendor.sandbox_account = account
    return vendor


def measure(result: Result, sandbox_url: str) -> None:
    from django.db.models import Min

    from orders.models import VendorOrder

    delivered = {
        str(o["id"]): o["delivered_at"] for o in requests.get(
            f"{sandbox_url}/_sandbox/starship/orders",
            params={"account": result.vendor.sandbox_account}, timeout=30).json()
    }
    done = VendorOrder.objects.filter(vendor=result.vendor, status=VendorOrder.Status.COMPLETED)
    result.completed = done.count()
    result.polls = sum(done.values_list("polls", flat=True))
    for vo in done.annotate(stored=Min("vouchers__created_at")):
        at = delivered.get(vo.supplier_order_id)
        if at and vo.stored:
            result.lags.append(vo.stored.timestamp() - at)


def run(args, *, var_dir, sandbox_url: str) -> list[Result]:
    import django_rq
    from django.contrib.auth import get_user_model
    from rq import Worker

    from orders import dispatch, services
    from orders.models import VendorOrder
    from orders.pricing import LineRequest
    from vendors.models import Product

    logging.getLogger("common.http").setLevel(logging.WARNING)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    orders_each, arrival = (SMOKE_ORDERS, SMOKE_ARRIVAL) if args.smoke else (ORDERS, ARRIVAL)
    rng = random.Random(args.seed)
    plan = sorted((rng.uniform(0, arrival), rng.choice(PRODUCTS), rng.randint(1, 3))
                  for _ in range(orders_each))
    print(f"running {len(CONFIGS)} Starship vendors side by side, {orders_each} DELAYED orders "
          f"each over {arrival:.0f} s ...", flush=True)
    with portal_server(var_dir) as portal_url, Workers(var_dir, "webhooks", count=2) as workers:
        results = [Result(name, make_vendor(sandbox_url, portal_url, name, fields, hooks))
                   for name, fields, hooks in CONFIGS]
        products = {(r.name, p.supplier_product_id): p
                    for r in results for p in Product.objects.filter(vendor=r.vendor)}
        connection = django_rq.get_connection("orders")
        wait_until = time.monotonic() + 60
        while len(Worker.all(connection=connection)) < 2:
            workers.check()
            if time.monotonic() > wait_until:
                raise RuntimeError("the RQ workers did not start")
            time.sleep(0.2)
        open_orders = VendorOrder.objects.filter(
            vendor__in=[r.vendor for r in results], attention=""
        ).exclude(status__in=VendorOrder.Status.FINAL)
        start, placed, next_dispatch = time.monotonic(), 0, 0.0
        deadline = arrival + POLL_EVERY * 3 + 30
        while True:
            now = time.monotonic() - start
            while placed < len(plan) and plan[placed][0] <= now:
                _, product, quantity = plan[placed]
                for r in results:
                    services.place_order(user=user, lines=[LineRequest(
                        product=products[(r.name, product)], quantity=quantity)])
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
    for r in results:
        measure(r, sandbox_url)
    report(results, seconds, orders=orders_each, arrival=arrival)
    polled, hooked = results[0], results[1]
    harness.record("webhooks", "Starship DELAYED lag p95 with webhooks",
                   percentile(hooked.lags, 95), "s", target="about 1 s",
                   met=percentile(hooked.lags, 95) <= 1.5,
                   baseline=f"polling only {percentile(polled.lags, 95):.1f} s")
    for r in results:
        if r.completed != orders_each or len(r.lags) != orders_each:
            raise SystemExit(f"{r.name}: {r.completed} of {orders_each} orders completed, "
                             f"{len(r.lags)} lags measured")
    return results


def report(results: list[Result], seconds: float, *, orders: int, arrival: float) -> None:
    print(f"\nwebhooks: {orders} Starship DELAYED orders per vendor (delivered 3-4 s after "
          f"placing), placed over {arrival:.0f} s; 2 rqworker processes, dispatch_due every "
          f"{DISPATCH_INTERVAL:.0f} s; webhooks to a gunicorn portal; run {seconds:.0f} s")
    header = (f"{'':<36}{'completed':>10}{'polls/order':>12}{'lag p50':>9}{'lag p95':>9}"
              f"{'lag max':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.name:<36}{r.completed:>10}{r.polls / max(r.completed, 1):>12.2f}"
              f"{percentile(r.lags, 50):>8.1f}s{percentile(r.lags, 95):>8.1f}s"
              f"{max(r.lags, default=float('nan')):>8.1f}s")
    print("lag: from the supplier's delivery (the sandbox's delivered_at) to the codes stored "
          "(Voucher.created_at); polls: supplier order reads per completed order.")
    print("engine defaults: first poll 2 s after submission, then about 5, 10, 20 s ... apart up "
          "to 300 s, so polling alone lags by up to the interval reached when the supplier "
          "delivers: seconds for these short sandbox delays, up to 5 minutes for real ones.")
