"""Money reconciles with the supplier, not only with itself: the portal's ledger against what
each sandbox says it charged (its control API's ``charges``), for tests that ran orders."""

from collections import defaultdict
from decimal import Decimal

import requests

from orders.models import LedgerEntry, VendorOrder


def sandbox_charges(sandbox_url: str, vendor) -> dict:
    response = requests.get(f"{sandbox_url}/_sandbox/{vendor.kind}/charges",
                            params={"account": vendor.sandbox_account}, timeout=30)
    response.raise_for_status()
    return response.json()


def assert_money_reconciles(sandbox_url: str, vendors) -> list[str]:
    """Every debit equals the sandbox's charge for its order to the cent, and per vendor and
    currency the debits (with the adjustments that settled estimated ones) equal the drop in
    the sandbox's balance. An estimated debit a balance sync settled is checked with its
    adjustment: the estimates it names plus the adjustment equal their charges.
    Returns one line per vendor and currency for a report."""
    lines = []
    for vendor in vendors:
        answer = sandbox_charges(sandbox_url, vendor)
        charged = defaultdict(Decimal)
        for row in answer["orders"]:
            charged[(row["reference"], row["currency"])] += Decimal(row["charged"])
        ours = {vo.pk: vo for vo in VendorOrder.objects.filter(vendor=vendor)}
        entries = LedgerEntry.objects.filter(balance__vendor=vendor).select_related("balance")
        debits = defaultdict(Decimal)
        groups = defaultdict(lambda: [Decimal(0), Decimal(0)])  # adjustment -> [debits, charges]
        for entry in entries.filter(kind=LedgerEntry.Kind.DEBIT):
            vo = ours[entry.vendor_order_id]
            key = (vo.client_reference, entry.balance.currency)
            debits[key] += entry.amount
            if entry.reconciled_by_id:
                groups[entry.reconciled_by_id][0] += entry.amount
                groups[entry.reconciled_by_id][1] += charged[key]
        settled = {key for e in entries.filter(kind=LedgerEntry.Kind.DEBIT,
                                               reconciled_by__isnull=False)
                   for key in [(ours[e.vendor_order_id].client_reference, e.balance.currency)]}
        for key in set(charged) | set(debits):
            if key in settled:
                continue
            assert debits[key] == charged[key], (
                f"{vendor.kind} {key[0]}: debited {debits[key]} {key[1]}, the supplier "
                f"charged {charged[key]}")
        adjustments = {e.pk: e for e in entries.filter(kind=LedgerEntry.Kind.ADJUSTMENT)}
        for pk, (estimates, charges) in groups.items():
            assert estimates + adjustments[pk].amount == charges, (
                f"{vendor.kind}: estimates {estimates} + adjustment {adjustments[pk].amount} "
                f"!= charged {charges}")
        by_currency = defaultdict(Decimal)
        for (_, currency), amount in debits.items():
            by_currency[currency] += amount
        for entry in adjustments.values():
            by_currency[entry.balance.currency] += entry.amount
        for currency, opening in answer["opening"].items():
            drop = Decimal(opening) - Decimal(answer["balances"].get(currency, opening))
            spent = by_currency.pop(currency, Decimal(0))
            assert spent == drop, (
                f"{vendor.kind} {currency}: debits {spent} but the supplier's balance fell by "
                f"{drop}")
            if drop:
                lines.append(f"{vendor.kind} {currency}: debited {spent} = charged {drop}")
        assert not any(by_currency.values()), f"{vendor.kind}: debits in {dict(by_currency)}"
    return lines
