"""RQ entry points for catalog syncs: take a vendor id, call the service."""

import django_rq

from common.http import SupplierError
from vendors import services
from vendors.models import Vendor
from vendors.selectors import enabled_vendors


def sync_catalog(vendor_id: int) -> dict[str, int] | None:
    vendor = Vendor.objects.filter(pk=vendor_id, enabled=True).first()
    if vendor is None:
        return None
    try:
        return services.sync_catalog(vendor=vendor)
    except SupplierError:
        return None  # recorded on the vendor; the next scheduled sync tries again


def enqueue_catalog_syncs() -> int:
    """Queue a catalog sync for every enabled vendor (the scheduler calls this; the balance
    syncs are orders.jobs.enqueue_balance_syncs)."""
    queue = django_rq.get_queue("sync")
    vendors = list(enabled_vendors().values_list("pk", flat=True))
    for vendor_id in vendors:
        queue.enqueue(sync_catalog, vendor_id, job_id=f"sync-catalog-{vendor_id}")
    return len(vendors)
