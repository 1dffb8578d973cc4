"""An operator's way out of a stranded supplier order (Kalixo v1 has no look-up by our
reference): attach the supplier's order by its id, checked to be ours, or send again."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.models import AuditEvent
from orders import services
from orders.errors import OrderError
from orders.models import LedgerEntry, Order, VendorOrder
from tests.auth import log_in
from tests.conftest import sandbox_get, set_faults
from tests.test_order_flow import assert_ledger_settled, place
from vendors.adapters.base import OrderRequest
from vendors.models import Product
from vendors.services import adapter_for

PRODUCT = {"sku": "GB-EN-KTEST-OK"}


@pytest.fixture
def operator(django_user_model, transactional_db):
    user = django_user_model.objects.create_user("operator", password="operator-pass-123",
                                                 is_staff=True)
    for codename in ("change_vendororder", "view_vendororder", "approve_order", "view_order",
                     "view_balance"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def stranded(sandbox_vendor, orderer, work, sandbox_url, settings):
    """A Kalixo v1 order whose place-order answer was lost after the supplier took it."""
    settings.SUPPLIER_READ_TIMEOUT = 1
    vendor = sandbox_vendor("kalixo_v1")
    set_faults(sandbox_url, "kalixo_v1", vendor.sandbox_account,
               {"timeout_after_accept": 1, "timeout_seconds": 3})
    order = place(vendor, orderer, 2, **PRODUCT)
    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION)
    time.sleep(2.5)  # the supplier finishes the request whose answer was lost
    taken = sandbox_get(sandbox_url, "kalixo_v1", "orders", vendor.sandbox_account)
    assert len(taken) == 1
    vo = order.vendor_orders.get()
    assert vo.status == VendorOrder.Status.UNKNOWN and vo.attention
    vo.vendor = vendor  # with its sandbox account
    return vo, str(taken[0]["id"])


def other_supplier_order(vendor, quantity: int, **product_filter) -> str:
    """An order on the same supplier account that is not this one (placed directly)."""
    product = Product.objects.get(vendor=vendor, **product_filter)
    result = adapter_for(vendor).submit_order(OrderRequest(
        client_reference=f"ELSEWHERE-{quantity}-{product.pk}",
        product_id=product.supplier_product_id, sku=product.sku, quantity=quantity,
        currency=product.cost_currency, unit_price=product.cost,
    ))
    return result.supplier_order_id


def snapshot(vo: VendorOrder) -> tuple:
    return (VendorOrder.objects.values().get(pk=vo.pk), vo.order.vouchers.count(),
            LedgerEntry.objects.filter(vendor_order=vo).count())


def test_it_attaches_the_supplier_order_from_the_order_page_and_stores_its_codes_once(
    stranded, operator, client, sandbox_url
):
    vo, supplier_id = stranded
    account = vo.vendor.sandbox_account
    log_in(client, operator)
    page = client.get(reverse("orders:order_detail", args=[vo.order_id])).content.decode()
    assert "They have it: fetch that order, check it is ours, store its codes" in page
    assert "They have no such order: send it again" in page
    assert "buys twice" in page
    url = reverse("orders:vendor_order_resolve", args=[vo.pk])

    before = snapshot(vo)
    response = client.post(url, {"choice": "attach", "supplier_order_id": ""})
    assert response.status_code == 400
    assert "Enter the supplier&#x27;s order id." in response.content.decode()
    response = client.post(url, {"choice": "attach", "supplier_order_id": "not-a-number"})
    assert response.status_code == 400
    assert "could not show order not-a-number" in response.content.decode()
    assert snapshot(vo) == before

    response = client.post(url, {"choice": "attach", "supplier_order_id": supplier_id})
    assert response.status_code == 302
    order = Order.objects.get(pk=vo.order_id)
    vo.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert vo.supplier_order_id == supplier_id and vo.delivered_quantity == 2
    assert order.vouchers.count() == 2
    assert_ledger_settled(order)
    assert len(sandbox_get(sandbox_url, "kalixo_v1", "orders", account)) == 1
    assert AuditEvent.objects.filter(order=order, actor=operator,
                                     message__contains="attached by hand, not resent").exists()

    # Once settled, neither choice is offered or accepted again.
    page = client.get(reverse("orders:order_detail", args=[vo.order_id])).content.decode()
    assert "send it again" not in page
    assert client.post(url, {"choice": "resend"}).status_code == 403
    assert order.vouchers.count() == 2
    assert "Ledger" in page and "debit" in page.lower()


def test_it_refuses_a_supplier_order_that_is_not_ours_and_changes_nothing(
    stranded, operator, sandbox_vendor, sandbox_url
):
    vo, supplier_id = stranded
    vendor = vo.vendor
    cases = {
        other_supplier_order(vendor, 1, **PRODUCT): "it is for 1 code, ours for 2 codes",
        other_supplier_order(vendor, 2, sku="GB-EN-KTEST-SLOW"): "it is for product",
    }
    elsewhere = sandbox_vendor("kalixo_v1")  # another account's order: the supplier hides it
    cases[other_supplier_order(elsewhere, 2, **PRODUCT)] = "could not show order"
    before = snapshot(vo)
    for wrong_id, reason in cases.items():
        with pytest.raises(OrderError) as refused:
            services.attach_supplier_order(vendor_order=vo, user=operator,
                                           supplier_order_id=wrong_id)
        assert reason in refused.value.message, refused.value.message
        assert refused.value.field == "supplier_order_id"
        assert snapshot(vo) == before

    # The right one is accepted; afterwards it cannot be attached to anything else.
    services.attach_supplier_order(vendor_order=vo, user=operator, supplier_order_id=supplier_id)
    vo.refresh_from_db()
    assert vo.status == VendorOrder.Status.COMPLETED
    with pytest.raises(OrderError):
        services.attach_supplier_order(vendor_order=vo, user=operator,
                                       supplier_order_id=supplier_id)


def test_it_lets_only_operators_resolve(stranded, orderer, client):
    vo, supplier_id = stranded
    assert not services.can_resolve(orderer, vo)
    log_in(client, orderer)
    page = client.get(reverse("orders:order_detail", args=[vo.order_id])).content.decode()
    assert "send it again" not in page
    response = client.post(reverse("orders:vendor_order_resolve", args=[vo.pk]),
                           {"choice": "attach", "supplier_order_id": supplier_id})
    assert response.status_code == 403
    with pytest.raises(PermissionDenied):
        services.attach_supplier_order(vendor_order=vo, user=orderer,
                                       supplier_order_id=supplier_id)
    assert VendorOrder.objects.get(pk=vo.pk).status == VendorOrder.Status.UNKNOWN


def test_it_attaches_the_supplier_order_from_the_admin(stranded, operator, client):
    vo, supplier_id = stranded
    log_in(client, operator)
    url = reverse("admin:orders_vendororder_changelist")
    form = client.post(url, {"action": "attach_supplier_order", "_selected_action": [vo.pk]})
    assert form.status_code == 200
    assert "check it is ours" in form.content.decode()
    wrong = client.post(url, {"action": "attach_supplier_order", "_selected_action": [vo.pk],
                              "apply": "1", "supplier_order_id": "999999"})
    assert wrong.status_code == 400
    assert "could not show order 999999" in wrong.content.decode()
    done = client.post(url, {"action": "attach_supplier_order", "_selected_action": [vo.pk],
                             "apply": "1", "supplier_order_id": supplier_id})
    assert done.status_code == 302
    assert Order.objects.get(pk=vo.order_id).vouchers.count() == 2
