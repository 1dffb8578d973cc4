"""Periodic jobs, loaded by django-rq's cron scheduler: ``manage.py rqcron portal.cron``.

Run exactly one scheduler per deployment (the run command starts it).
"""

from django.conf import settings
from rq import cron

from orders import jobs as order_jobs
from vendors import jobs as vendor_jobs

# Queue supplier orders whose time has come (submission, next poll, retry).
cron.register(order_jobs.dispatch_due, "polling", interval=2, result_ttl=0, ttl=30)
# Give back supplier orders whose job was lost (Redis flushed, worker killed).
cron.register(order_jobs.sweep, "polling", interval=settings.ORDER_SWEEP_INTERVAL, result_ttl=0,
              ttl=120)
# Keep catalogs and balances fresh.
cron.register(vendor_jobs.enqueue_catalog_syncs, "sync", interval=900, result_ttl=0)
cron.register(order_jobs.enqueue_balance_syncs, "sync", interval=900, result_ttl=0)
