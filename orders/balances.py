"""The supplier's own figure for each balance, synced into the ledger.

A balance sync reads what the supplier says it holds per currency and records it with
``ledger.record_report``: the report entry, and the difference from what the ledger expected
(or the adjustment settling estimated debits). It lives with the ledger, above vendors.
"""

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from common.http import SupplierError
from common.money import MoneyError
from orders import ledger
from orders.models import VendorOrder
from vendors import services
from vendors.models import Balance, Vendor


def _in_flight(vendor: Vendor, currency: str) -> bool:
    """Supplier orders the supplier may have charged and the ledger not yet debited."""
    return VendorOrder.objects.filter(
        vendor=vendor, currency=currency, status__in=VendorOrder.Status.UNSETTLED
    ).exists()


def sync_balances(*, vendor: Vendor) -> list[Balance]:
    """Record what the supplier reports it holds, per currency."""
    adapter = services.adapter_for(vendor)
    if not adapter.has_balances:
        return []
    try:
        reported = services.with_retries(adapter.fetch_balances)
    except (SupplierError, MoneyError) as exc:
        services.record_sync_failure(vendor, "balance_sync_error", "Balance", exc)
        raise
    differences = {}
    with transaction.atomic():
        for info in reported:
            difference = ledger.record_report(
                vendor=vendor, currency=info.currency, amount=info.amount,
                in_flight=_in_flight(vendor, info.currency),
            )
            if difference:
                differences[info.currency] = str(difference)
        vendor.balances_synced_at = timezone.now()
        vendor.balance_sync_error = ""
        vendor.save(update_fields=["balances_synced_at", "balance_sync_error", "updated_at"])
        balances = list(vendor.balances.filter(currency__in=[i.currency for i in reported]))
        audit.record(
            action=audit.Action.BALANCE_SYNCED, target=vendor,
            message=f"Balances of {vendor} synced"
            + (f"; differs from the ledger in {', '.join(differences)}" if differences else ""),
            data={"reported": {b.currency: str(b.reported) for b in balances},
                  "differences": differences},
        )
    return balances
