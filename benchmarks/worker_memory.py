"""Scenario ``worker_memory``: does a worker's resident memory grow with the jobs it runs?

One ``manage.py rqworker`` process runs ``--jobs`` jobs (10,000) queued at once: the jobs a
running portal gives its workers all day long, in the proportions ``portal/cron.py`` schedules
them, five ``dispatch_due`` to one ``sweep``, against a database holding the completed orders
of a small batch placed first through the real engine (so the queries find rows). The
worker's resident set size (RSS, psutil) is read after the first 1,000 jobs and after every
further 1,000; the figure is the growth from 1,000 to the last.

The worker is the portal's own (``RQ["WORKER_CLASS"]``, ``PortalWorker``), which runs every
job in its own process, the measured one; ``--worker-class`` names another (RQ's forking
``rq.Worker`` measures only the long-lived parent, its horses exit after each job).
"""

import logging
import time

import psutil
from rq import Queue

from benchmarks import harness
from benchmarks.harness import Workers

CHECKPOINT = 1000
TARGET = 20.0  # per cent
SWEEPS_EVERY = 6  # one sweep to five dispatch_due: every 10 s and every 2 s
SEED_ORDERS = 20


def seed_orders(sandbox_url: str, user) -> None:
    """A few completed orders, placed and completed through the engine in this process."""
    import django_rq

    from benchmarks.throughput import PRODUCT_SKU, make_vendor
    from orders import pricing, services
    from portal.worker import PortalWorker
    from vendors.models import Product

    product = Product.objects.get(vendor=make_vendor(sandbox_url), sku=PRODUCT_SKU)
    for _ in range(SEED_ORDERS):
        services.place_order(user=user, lines=[pricing.LineRequest(product=product,
                                                                   quantity=1)])
    queue = django_rq.get_queue("orders")
    logging.getLogger("rq.worker").setLevel(logging.WARNING)  # three lines a job otherwise
    PortalWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)


def enqueue(jobs: int) -> None:
    import django_rq

    queue = django_rq.get_queue("polling")
    data = [Queue.prepare_data("orders.jobs.sweep" if i % SWEEPS_EVERY == SWEEPS_EVERY - 1
                               else "orders.jobs.dispatch_due", result_ttl=0)
            for i in range(jobs)]
    for start in range(0, jobs, 1000):
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many(data[start:start + 1000], pipeline=pipe)
            pipe.execute()


def run(args, *, var_dir, sandbox_url: str) -> list[tuple[int, int]]:
    """Return (jobs done, worker RSS in bytes) at each checkpoint."""
    import django_rq
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    seed_orders(sandbox_url, user)
    jobs = args.jobs
    enqueue(jobs)
    queue = django_rq.get_queue("polling")
    worker_class = args.worker_class or "portal.worker.PortalWorker"
    samples: list[tuple[int, int]] = []
    print(f"running {jobs} jobs through one worker ...", flush=True)
    with Workers(var_dir, "memory", count=1, worker_class=worker_class) as workers:
        worker = psutil.Process(workers.processes[0].pid)
        started = time.monotonic()
        deadline = started + 60 + jobs * 0.2
        every = min(CHECKPOINT, max(1, jobs // 3))  # a smoke run's few jobs: three samples
        checkpoint = every
        while checkpoint <= jobs:
            workers.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker ran {jobs - queue.count} of {jobs} jobs "
                                   "before the deadline")
            left = queue.count
            # A job leaves the queue when it starts: the one after the checkpoint has started
            # once the queue is one shorter, or once it is empty and the worker idle again.
            done = jobs - left - 1 if left else jobs - len(queue.started_job_registry)
            if done >= checkpoint:
                samples.append((done, worker.memory_info().rss))
                checkpoint += every
                continue
            time.sleep(0.05)
        seconds = time.monotonic() - started
    report(samples, seconds=seconds, worker_class=worker_class)
    first, last = samples[0][1], samples[-1][1]
    growth = (last - first) / first * 100
    harness.record("worker_memory", f"RSS growth {samples[-1][0]:,} jobs", growth, "%",
                   target=f"< {TARGET:.0f} %", met=growth < TARGET,
                   baseline=f"{first / 2**20:.1f} MiB after {samples[0][0]:,} jobs; "
                            f"{last / 2**20:.1f} MiB after {samples[-1][0]:,}"
                            f" ({worker_class})")
    return samples


def report(samples: list[tuple[int, int]], *, seconds: float, worker_class: str) -> None:
    print(f"\nworker_memory: one worker ({worker_class}), {samples[-1][0]:,} jobs in "
          f"{seconds:.0f} s ({SWEEPS_EVERY - 1} dispatch_due to 1 sweep); RSS of the worker "
          "process at each thousand jobs")
    first = samples[0][1]
    for done, rss in samples:
        print(f"{done:>8,} jobs {rss / 2**20:>8.1f} MiB {(rss - first) / first * 100:>+7.1f} %")
