"""The balance ledger: reservations, debits, releases and supplier reports, per vendor and currency.

Every function runs inside its caller's transaction and locks the balance row it changes, so
concurrent placements cannot overdraw: available = reported - reserved - spent since the report.
A debit or a report may leave the balance low: orders.alerts decides, and tells on commit.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orders import alerts
from orders.models import LedgerEntry
from vendors.models import Balance, Vendor


class InsufficientBalance(Exception):
    pass


def locked_balance(vendor: Vendor, currency: str) -> Balance:
    Balance.objects.get_or_create(vendor=vendor, currency=currency)
    return Balance.objects.select_for_update().get(vendor=vendor, currency=currency)


def _entry(balance: Balance, kind: str, amount: Decimal, **links) -> LedgerEntry:
    return LedgerEntry.objects.create(balance=balance, kind=kind, amount=amount, **links)


def reserve(*, vendor: Vendor, currency: str, amount: Decimal, order) -> Balance:
    """Set money aside for an order; refused when the known balance cannot cover it.

    A vendor whose supplier reports no balance (Kalixo v1) is not checked here: the
    supplier refuses an order it cannot cover.
    """
    assert transaction.get_connection().in_atomic_block
    balance = locked_balance(vendor, currency)
    available = balance.available
    if available is not None and available < amount:
        raise InsufficientBalance(
            f"{vendor} has {available} {currency} available; this order needs {amount} {currency}"
        )
    balance.reserved += amount
    balance.save(update_fields=["reserved", "updated_at"])
    _entry(balance, LedgerEntry.Kind.RESERVE, amount, order=order)
    return balance


def settle(*, vendor: Vendor, currency: str, reserved: Decimal, spent: Decimal, order,
           vendor_order, note: str = "", estimated: bool = False) -> None:
    """Close a reservation: ``spent`` is debited and the rest of ``reserved`` released.

    A supplier may charge a little more than reserved (its own rounding): the debit is what
    it charged, and nothing is released. ``estimated``: the supplier did not state what it
    charged; the debit is marked so, for the next balance sync to settle.
    """
    balance = locked_balance(vendor, currency)
    balance.reserved -= reserved
    balance.spent_since_report += spent
    balance.save(update_fields=["reserved", "spent_since_report", "updated_at"])
    if spent:
        _entry(balance, LedgerEntry.Kind.DEBIT, spent, order=order, vendor_order=vendor_order,
               note=note, estimated=estimated)
    if reserved > spent:
        _entry(balance, LedgerEntry.Kind.RELEASE, reserved - spent, order=order,
               vendor_order=vendor_order, note=note)
    alerts.balance_changed(balance)


def record_report(*, vendor: Vendor, currency: str, amount: Decimal,
                  in_flight: bool = False) -> Decimal | None:
    """Store the supplier's figure; return how far it is from what the ledger expected.

    Estimated debits since the last report are settled by the difference, as one adjustment
    entry naming them (its amount is what the supplier charged minus the estimates), unless
    ``in_flight``: orders the supplier has charged but the ledger has not debited yet would
    blur the difference, so the estimates wait for a later sync.
    """
    balance = locked_balance(vendor, currency)
    difference = None
    if balance.reported is not None:
        expected = balance.reported - balance.spent_since_report
        difference = amount - expected
    _entry(balance, LedgerEntry.Kind.REPORT, amount)
    estimates = LedgerEntry.objects.none()
    if difference is not None and not in_flight:
        estimates = balance.entries.filter(kind=LedgerEntry.Kind.DEBIT, estimated=True,
                                           reconciled_by__isnull=True)
    ids = list(estimates.values_list("pk", flat=True))
    if ids:
        names = ", ".join(f"#{pk}" for pk in ids)
        adjustment = _entry(
            balance, LedgerEntry.Kind.ADJUSTMENT, -difference,
            note=f"supplier reports {amount}, ledger expected {amount - difference}; "
            f"settles estimated debits {names}"[:300],
        )
        LedgerEntry.objects.filter(pk__in=ids).update(reconciled_by=adjustment)
    elif difference:
        _entry(balance, LedgerEntry.Kind.DIFFERENCE, difference,
               note=f"supplier reports {amount}, ledger expected {amount - difference}")
    balance.reported = amount
    balance.reported_at = timezone.now()
    balance.spent_since_report = Decimal("0")
    balance.save(update_fields=["reported", "reported_at", "spent_since_report", "updated_at"])
    alerts.balance_changed(balance)
    return difference
