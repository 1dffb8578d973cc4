"""RQ entry points for orders, the ledger and the alerts: thin, taking ids and calling the engine.

``advance_vendor_order``'s dotted path is orders.dispatch.JOB, the alert jobs' are in
orders.alerts (which queues them on commit); portal.cron schedules the dispatch, the sweep and
the balance syncs.
"""

import django_rq

from common.http import SupplierError
from orders import alerts, balances, dispatch, fulfilment
from vendors.models import Vendor
from vendors.selectors import enabled_vendors


def advance_vendor_order(vendor_order_id: int, claim: str | None = None) -> str:
    return fulfilment.advance(vendor_order_id=vendor_order_id, claim=claim)


def dispatch_due() -> int:
    return dispatch.dispatch_due()


def sweep() -> dict[str, int]:
    return dispatch.sweep()


def sync_balances(vendor_id: int) -> int | None:
    vendor = Vendor.objects.filter(pk=vendor_id, enabled=True).first()
    if vendor is None:
        return None
    try:
        return len(balances.sync_balances(vendor=vendor))
    except SupplierError:
        return None  # recorded on the vendor; the next scheduled sync tries again


def enqueue_balance_syncs() -> int:
    """Queue a balance sync for every enabled vendor (the scheduler calls this)."""
    queue = django_rq.get_queue("sync")
    vendors = list(enabled_vendors().values_list("pk", flat=True))
    for vendor_id in vendors:
        queue.enqueue(sync_balances, vendor_id, job_id=f"sync-balances-{vendor_id}")
    return len(vendors)


def send_low_balance_alert(balance_id: int) -> int:
    return alerts.send_low_balance(balance_id)


def send_order_alert(order_id: int, event: str) -> int:
    return alerts.send_order_alert(order_id, event)
