"""The one periodic scheduler: dispatches due supplier orders, sweeps lost jobs, syncs.

Run exactly one per deployment (the run command starts it).
"""

import django_rq
from django.core.management.base import BaseCommand
from rq.cron import CronScheduler

from orders import jobs as order_jobs
from vendors import jobs as vendor_jobs


class Command(BaseCommand):
    help = "Run RQ's cron scheduler with the portal's periodic jobs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dispatch-interval", type=int, default=2)

    def handle(self, *args, dispatch_interval: int, **options) -> None:
        scheduler = CronScheduler(connection=django_rq.get_connection("default"))
        scheduler.register(order_jobs.dispatch_due, "polling", interval=dispatch_interval,
                           result_ttl=0, ttl=30)
        scheduler.register(order_jobs.sweep, "polling", interval=60, result_ttl=0, ttl=120)
        scheduler.register(vendor_jobs.enqueue_syncs, "sync", interval=900, result_ttl=0)
        scheduler.start()
