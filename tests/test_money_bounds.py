"""Every amount a person types or a supplier sends is bounded by ``MONEY_MAX``, which every
backend stores and reads back exactly: one typed number can no longer break pages for all."""

from decimal import Decimal

import pytest
from django.urls import reverse

from common.money import MONEY_MAX, MoneyError, to_decimal
from orders.models import BasketLine, SpendLimit
from tests.auth import log_in
from tests.conftest import login_verified
from vendors.models import Vendor

pytestmark = pytest.mark.django_db

TOO_LARGE = "99999999999999.9999"  # within max_digits=18; SQLite read it back as 1e14


@pytest.fixture
def admin_client(client, staff_user):
    return login_verified(client, staff_user)


def test_it_stores_and_reads_back_the_largest_amount_exactly(make_vendor):
    vendor = make_vendor(low_balance_threshold=MONEY_MAX)
    assert Vendor.objects.get(pk=vendor.pk).low_balance_threshold == MONEY_MAX
    assert list(Vendor.objects.values_list("low_balance_threshold", flat=True)) == [MONEY_MAX]


def test_it_refuses_a_larger_low_balance_threshold_with_a_field_error(admin_client,
                                                                     make_vendor):
    vendor = make_vendor(name="Kalixo", low_balance_threshold=Decimal("100"))
    response = admin_client.post(reverse("admin:vendors_vendor_change", args=[vendor.pk]), {
        "name": "Kalixo", "kind": "kalixo_v2", "base_url": vendor.base_url,
        "first_poll_delay": 30, "max_poll_interval": 300, "poll_deadline": 3600,
        "rate_limit_per_minute": 60, "low_balance_threshold": TOO_LARGE, "new_credentials": "",
    })
    assert response.status_code == 200
    assert "Enter an amount of at most" in response.content.decode()
    assert Vendor.objects.get(pk=vendor.pk).low_balance_threshold == Decimal("100")
    assert admin_client.get(reverse("admin:vendors_vendor_changelist")).status_code == 200


@pytest.mark.parametrize("field", ["per_order", "daily_cap"])
def test_it_refuses_a_larger_spend_limit_with_a_field_error(admin_client, staff_user, field):
    response = admin_client.post(reverse("admin:orders_spendlimit_add"), {
        "user": staff_user.pk, "currency": "GBP", field: TOO_LARGE,
    })
    assert response.status_code == 200
    assert "Enter an amount of at most" in response.content.decode()
    assert not SpendLimit.objects.exists()


def test_it_refuses_a_larger_face_value_in_the_basket(client, django_user_model, make_vendor):
    from portal.roles import role_group
    from vendors.models import CatalogItem

    user = django_user_model.objects.create_user("bounded", is_staff=True)
    user.groups.add(role_group("orderer"))
    log_in(client, user)
    item = CatalogItem.objects.create(key="visa|US|USD|range", name="Visa US any USD",
                                      currency="USD")
    client.post(reverse("orders:basket_add"), {"item": item.pk, "quantity": "1",
                                               "face_value": TOO_LARGE})
    assert not BasketLine.objects.exists()


@pytest.mark.parametrize("amount", [TOO_LARGE, 1e20, "-1e15"])
def test_it_refuses_a_suppliers_amount_out_of_range(amount):
    with pytest.raises(MoneyError, match="out of range"):
        to_decimal(amount)
