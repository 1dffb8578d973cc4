"""Catalog and balance sync against the sandbox suppliers, over HTTP."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction

from audit.models import AuditEvent
from common.http import SupplierError
from orders import balances, ledger
from orders.models import LedgerEntry
from tests.conftest import set_faults
from vendors import services
from vendors.models import Balance, Product


@pytest.mark.parametrize("kind", ["kalixo_v2", "kalixo_v1", "ezcards", "starship"])
def test_it_upserts_every_catalog_idempotently(kind, sandbox_vendor):
    vendor = sandbox_vendor(kind)  # synced once already
    count = Product.objects.filter(vendor=vendor).count()
    assert count > 100  # more than one page of the supplier's paging
    counts = services.sync_catalog(vendor=vendor)
    assert counts == {"created": 0, "updated": count, "withdrawn": 0}
    assert Product.objects.filter(vendor=vendor).count() == count
    product = Product.objects.filter(vendor=vendor, cost__isnull=False).first()
    assert isinstance(product.cost, Decimal)
    assert len(product.cost_currency) == 3


def test_it_marks_withdrawn_products_unavailable_and_never_deletes_them(sandbox_vendor):
    vendor = sandbox_vendor("kalixo_v2")
    gone = Product.objects.create(vendor=vendor, supplier_product_id="retired-1", name="Old")
    services.sync_catalog(vendor=vendor)
    gone.refresh_from_db()
    assert gone.available is False


def test_it_keeps_the_previous_catalog_when_a_sync_fails_and_says_why(
    sandbox_vendor, sandbox_url
):
    vendor = sandbox_vendor("kalixo_v2")
    before = Product.objects.filter(vendor=vendor, available=True).count()
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"error_5xx": -1})
    with pytest.raises(SupplierError):
        services.sync_catalog(vendor=vendor)
    vendor.refresh_from_db()
    assert "Catalog sync failed: supplier error 502" in vendor.catalog_sync_error
    assert Product.objects.filter(vendor=vendor, available=True).count() == before
    assert AuditEvent.objects.filter(action="sync_failed", target_id=str(vendor.pk)).exists()


def test_it_records_the_difference_between_supplier_and_ledger(sandbox_vendor):
    vendor = sandbox_vendor("ezcards")
    balance = Balance.objects.get(vendor=vendor, currency="USD")
    assert balance.reported == Decimal("10000.00")
    with transaction.atomic():  # the ledger believes 25 more was spent than the supplier did
        balance = ledger.locked_balance(vendor, "USD")
        balance.spent_since_report = Decimal("25")
        balance.save()
    balances.sync_balances(vendor=vendor)
    difference = LedgerEntry.objects.get(balance=balance, kind="difference")
    assert difference.amount == Decimal("25")
    balance.refresh_from_db()
    assert balance.spent_since_report == 0
    assert balance.available == Decimal("10000.00")


def test_it_syncs_from_the_management_commands(sandbox_vendor, capsys):
    vendor = sandbox_vendor("starship")
    call_command("sync_catalog", vendor=vendor.name)
    call_command("sync_balances", vendor=vendor.name)
    out = capsys.readouterr().out
    assert f"{vendor.name}: 0 created" in out
    assert "USD" in out
