"""What staff see: what became of a failed or cancelled order, the ledger, a favicon."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.urls import reverse

from orders.models import LedgerEntry
from tests.test_order_flow import finished, place


def detail(client, order) -> str:
    return client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()


@pytest.mark.parametrize(("kind", "product", "says"), [
    ("starship", {"supplier_product_id": "1007:10.00"},
     "the supplier says it refunded the charge"),
    ("kalixo_v2", {"sku": "KTEST-FAIL"}, "Failed"),
])
def test_it_says_what_became_of_an_order_without_codes(
    kind, product, says, sandbox_vendor, orderer, work, client
):
    vendor = sandbox_vendor(kind)
    order = place(vendor, orderer, 1, **product)
    work(finished(order))
    client.force_login(orderer)
    html = detail(client, order)
    assert "No codes yet." not in html
    assert f"No codes: the order is {order.get_status_display().lower()}." in html
    assert f"{order.reference}-1: " in html and says in html
    assert 'id="ledger"' not in html  # the ledger is for those who may see balances


@pytest.fixture
def operator(django_user_model, db):
    user = django_user_model.objects.create_user("operator", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_balance"))
    return user


def test_it_shows_the_ledger_read_only_to_operators_only(
    make_voucher, operator, orderer, client
):
    from decimal import Decimal

    from django.db import transaction

    from orders import ledger

    voucher = make_voucher("LEDGER-CODE-1")
    vendor_order = voucher.vendor_order
    with transaction.atomic():
        ledger.reserve(vendor=vendor_order.vendor, currency="GBP", amount=Decimal("9.50"),
                       order=voucher.order)
    entry = LedgerEntry.objects.get(order=voucher.order)
    changelist = reverse("admin:orders_ledgerentry_changelist")
    change = reverse("admin:orders_ledgerentry_change", args=[entry.pk])

    client.force_login(operator)
    listing = client.get(changelist)
    assert listing.status_code == 200 and voucher.order.reference in listing.content.decode()
    assert client.get(change).status_code == 200
    assert client.get(reverse("admin:orders_ledgerentry_add")).status_code == 403
    assert client.post(change, {"amount": "0", "note": "x"}).status_code == 403
    assert client.post(reverse("admin:orders_ledgerentry_delete", args=[entry.pk]),
                       {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal("9.50")

    orderer.is_staff = True
    orderer.save()
    client.force_login(orderer)
    assert client.get(changelist).status_code == 403


def test_it_answers_the_favicon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("portal/favicon.svg")
    assert finders.find("portal/favicon.svg")
