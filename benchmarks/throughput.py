"""Scenario ``throughput``: completed orders per minute with 1, 2 and 4 workers.

Each run is one batch of ``--batch`` orders (quantity 1 of EZ Cards' in-stock test product,
an instant order: the job sends the order and reads its code, two supplier requests, and
stores the code) on a fresh sandbox account whose every answer comes after ``LATENCY``
seconds (the sandbox's ``latency`` fault), with the supplier's rate limit lifted on both
sides. The orders are placed through ``place_order`` while the workers are suspended (RQ's
``rq suspend``), so their jobs wait in the queue; then the workers are resumed and the run
lasts until every supplier order is final. The dispatcher runs every 2 s as
``portal/cron.py`` schedules it, for an order whose code could not be read at once.

Throughput is the batch over the time from the first submission (``submitted_at``) to the last
code stored (``Voucher.created_at``), per minute; the 2- and 4-worker runs are set against the
1-worker run of the same invocation. The work waits on the supplier, so on a machine with
spare CPU it scales with the workers; where it does not, the CPU seconds of each kind of
process per order (workers with any work horses they forked, the sandbox server, this process,
Redis when embedded) and how busy the whole machine was say where the time went.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field

import psutil
import requests

from benchmarks import harness
from benchmarks.harness import Workers

LATENCY = 0.05
WORKER_COUNTS = (1, 2, 4)
TARGETS = {2: 1.8, 4: 3.2}
PRODUCT_SKU = "EZTEST-INSTOCK"
LIFTED = {"rate_limit_per_minute": 100000}
DISPATCH_INTERVAL = 2.0


@dataclass
class Run:
    workers: int
    orders: int
    completed: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by kind of process
    busy: float = 0.0  # share of the machine's CPU time busy during the run

    @property
    def per_minute(self) -> float:
        return self.completed / self.seconds * 60 if self.seconds else 0.0


def make_vendor(sandbox_url: str):
    from orders.balances import sync_balances
    from vendors.models import Vendor
    from vendors.sandbox import ezcards
    from vendors.services import sync_catalog, vendor_set_credentials

    account = f"tp{uuid.uuid4().hex[:8]}"
    requests.post(f"{sandbox_url}/_sandbox/ezcards/faults/{account}", json=LIFTED,
                  timeout=10).raise_for_status()
    vendor = Vendor.objects.create(
        name=f"EZ Cards throughput {account}", kind="ezcards",
        base_url=sandbox_url + ezcards.BASE_PATH, rate_limit_per_minute=100000,
    )
    vendor_set_credentials(vendor=vendor, credentials={"api_key": f"ez_test_{account}",
                                                       "token": f"tok_{account}"})
    sync_catalog(vendor=vendor)
    sync_balances(vendor=vendor)
    vendor.sandbox_account = account
    return vendor


def process_kind(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    if "benchmarks.worker" in command:
        return "workers"
    if "gunicorn" in command:
        return "sandbox"
    if "redis" in command:
        return "redis"
    return "other"


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds of this process and each of its descendants, by pid, with their kind. A
    worker's count includes the work horses it forked and reaped."""
    me = psutil.Process()
    times = {me.pid: ("benchmark", sum(me.cpu_times()[:4]))}
    for child in me.children(recursive=True):
        try:
            times[child.pid] = (process_kind(child), sum(child.cpu_times()[:4]))
        except psutil.NoSuchProcess:
            pass
    return times


def cpu_used(before: dict[int, tuple[str, float]],
             after: dict[int, tuple[str, float]]) -> dict[str, float]:
    used: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        used[kind] = used.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    return used


def machine_busy(before, after) -> float:
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    total = sum(after) - sum(before)
    return 1 - idle / total if total else 0.0


def run_once(count: int, batch: int, *, var_dir, sandbox_url: str, user,
             worker_class: str | None = None) -> Run:
    import django_rq
    from django.db.models import Max, Min
    from rq import Worker
    from rq.suspension import resume, suspend

    from orders import dispatch, pricing, services
    from orders.models import VendorOrder, Voucher
    from vendors.models import Product

    vendor = make_vendor(sandbox_url)
    product = Product.objects.get(vendor=vendor, sku=PRODUCT_SKU)
    connection = django_rq.get_connection("orders")
    result = Run(count, batch)
    suspend(connection)
    try:
        options = {"worker_class": worker_class} if worker_class else {}
        with Workers(var_dir, f"throughput{count}", count=count, **options) as workers:
            wait_until = time.monotonic() + 60
            while len(Worker.all(connection=connection)) < count:
                workers.check()
                if time.monotonic() > wait_until:
                    raise RuntimeError("the RQ workers did not start")
                time.sleep(0.2)
            for _ in range(batch):
                services.place_order(user=user, lines=[
                    pricing.LineRequest(product=product, quantity=1)])
            requests.post(f"{sandbox_url}/_sandbox/ezcards/faults/{vendor.sandbox_account}",
                          json={**LIFTED, "latency": LATENCY}, timeout=10).raise_for_status()
            open_orders = VendorOrder.objects.filter(vendor=vendor, attention="").exclude(
                status__in=VendorOrder.Status.FINAL)
            cpu_before, machine_before = cpu_seconds(), psutil.cpu_times()
            resume(connection)
            deadline = time.monotonic() + 60 + batch * 2 * LATENCY * 3
            next_dispatch = time.monotonic() + DISPATCH_INTERVAL
            while open_orders.exists():
                workers.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{count} workers: orders still open after the deadline")
                if time.monotonic() >= next_dispatch:
                    dispatch.dispatch_due()
                    next_dispatch += DISPATCH_INTERVAL
                time.sleep(0.25)
            result.cpu = cpu_used(cpu_before, cpu_seconds())
            result.busy = machine_busy(machine_before, psutil.cpu_times())
    finally:
        resume(connection)
    done = VendorOrder.objects.filter(vendor=vendor, status=VendorOrder.Status.COMPLETED)
    result.completed = done.count()
    first = done.aggregate(first=Min("submitted_at"))["first"]
    last = Voucher.objects.filter(vendor_order__vendor=vendor).aggregate(
        last=Max("created_at"))["last"]
    result.seconds = (last - first).total_seconds()
    return result


def report(runs: list[Run], batch: int) -> None:
    print(f"\nthroughput: batches of {batch} instant EZ Cards orders (1 code each: submit and "
          f"read the code) against a sandbox answering after {LATENCY * 1000:.0f} ms, rate "
          "limits lifted; rqworker processes as configured (RQ['WORKER_CLASS'])")
    kinds = ("workers", "sandbox", "benchmark", "redis")
    header = (f"{'workers':>8}{'orders':>8}{'seconds':>9}{'orders/min':>12}{'vs 1':>7}"
              f"{'busy':>7}" + "".join(f"{k + ' ms':>14}" for k in kinds))
    print(header)
    print("-" * len(header))
    one = runs[0].per_minute
    for r in runs:
        per_order = {k: v / max(r.completed, 1) * 1000 for k, v in r.cpu.items()}
        print(f"{r.workers:>8}{r.completed:>8}{r.seconds:>9.1f}{r.per_minute:>12.0f}"
              f"{r.per_minute / one:>6.2f}x{r.busy:>6.0%}"
              + "".join(f"{per_order.get(k, 0.0):>14.1f}" for k in kinds))
    print("seconds: first submission to last code stored; busy: the whole machine's CPU "
          f"({psutil.cpu_count()} CPUs) busy during the run, whoever used it; '<kind> ms': CPU "
          "milliseconds per order of the workers (their work horses included), the sandbox "
          "server, this process (waiting on the orders) and the embedded Redis.")


def run(args, *, var_dir, sandbox_url: str) -> list[Run]:
    from django.contrib.auth import get_user_model

    logging.getLogger("common.http").setLevel(logging.WARNING)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    runs = []
    for count in WORKER_COUNTS:
        print(f"running {args.batch} orders through {count} worker(s) ...", flush=True)
        runs.append(run_once(count, args.batch, var_dir=var_dir, sandbox_url=sandbox_url,
                             user=user, worker_class=args.worker_class))
    report(runs, args.batch)
    one = runs[0]
    for r in runs:
        if r.completed != args.batch:
            raise SystemExit(f"{r.workers} workers: {r.completed} of {args.batch} orders "
                             "completed")
    harness.record("throughput", "1 worker", one.per_minute, "orders/min",
                   baseline=f"{LATENCY * 1000:.0f} ms supplier, {args.batch} orders")
    for r in runs[1:]:
        ratio = r.per_minute / one.per_minute
        harness.record("throughput", f"{r.workers} workers / 1", ratio, "x",
                       target=f">= {TARGETS[r.workers]}", met=ratio >= TARGETS[r.workers],
                       baseline=f"1 worker {one.per_minute:.0f} orders/min; "
                                f"{r.workers}: {r.per_minute:.0f}")
    return runs
