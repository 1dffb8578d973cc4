"""The doors around the pages: staff only on every request, the dashboard by permission,
admin search boxes that never match a code, roles and demo users."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import RequestFactory

from audit.models import AuditEvent
from orders.models import Order, VendorOrder
from portal import demo
from portal.roles import ROLES, role_group
from tests.auth import log_in
from tests.test_authz_matrix import make_order
from vendors import matching
from vendors.models import Balance, Product

pytestmark = pytest.mark.django_db

CODE = "GIFT-7Q2X-99ZK-4F3M"


@pytest.fixture
def product(make_vendor):
    vendor = make_vendor(name="Kalixo")
    Balance.objects.create(vendor=vendor, currency="GBP", reported=Decimal("4321.00"))
    made = Product.objects.create(
        vendor=vendor, supplier_product_id="s-10", name="Steam £10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.37"),
        cost_currency="GBP",
    )
    matching.match_offers([made])  # as the catalog sync does
    return made


@pytest.mark.parametrize("change", ["is_staff", "is_active"])
def test_it_signs_out_a_user_who_lost_staff_or_was_deactivated_on_the_next_request(
    change, client, django_user_model
):
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    user.groups.add(role_group("orderer"))
    log_in(client, user)
    assert client.get("/orders/").status_code == 200
    django_user_model.objects.filter(pk=user.pk).update(**{change: False})
    for url in ("/orders/", "/admin/", "/catalog/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    # The session is gone: making the user staff again does not sign them back in.
    django_user_model.objects.filter(pk=user.pk).update(is_staff=True, is_active=True)
    assert client.get("/orders/")["Location"].startswith("/admin/login/")


def test_it_shows_balances_and_costs_only_to_who_may_see_them(client, django_user_model,
                                                               product):
    nobody = django_user_model.objects.create_user("nobody", is_staff=True)
    log_in(client, nobody)
    dashboard = client.get("/").content.decode()
    assert "4,321" not in dashboard and "4321" not in dashboard and "Balances" not in dashboard
    for url in ("/catalog/", f"/catalog/{product.pk}/", "/admin/vendors/balance/",
                "/admin/vendors/product/"):
        response = client.get(url)
        assert response.status_code == 403
        assert "9.37" not in response.content.decode()

    operator = django_user_model.objects.create_user("op", is_staff=True)
    operator.groups.add(role_group("operator"))
    log_in(client, operator)
    assert "4,321" in client.get("/").content.decode()
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.groups.add(role_group("viewer"))
    log_in(client, viewer)
    assert "9.37" in client.get("/catalog/").content.decode()
    assert "Balances" not in client.get("/").content.decode()


def test_it_shows_an_orderer_only_their_own_orders_in_the_admin(client, django_user_model,
                                                                product):
    mine_user = django_user_model.objects.create_user("mine", is_staff=True)
    mine_user.groups.add(role_group("orderer"))
    other = django_user_model.objects.create_user("other", is_staff=True)
    mine = make_order(mine_user, product, Order.Status.COMPLETED, VendorOrder.Status.COMPLETED)
    theirs = make_order(other, product, Order.Status.COMPLETED, VendorOrder.Status.COMPLETED)
    log_in(client, mine_user)
    listing = client.get("/admin/orders/order/").content.decode()
    assert mine.reference in listing and theirs.reference not in listing
    assert client.get(f"/admin/orders/order/{mine.pk}/change/").status_code == 200
    for page in ("change", "history", "delete"):
        assert client.get(f"/admin/orders/order/{theirs.pk}/{page}/").status_code in (403, 404)


def test_it_matches_no_plain_code_in_any_admin_search_box(make_voucher, django_user_model):
    voucher = make_voucher(CODE, pin="8842")
    AuditEvent.objects.create(action="revealed", order=voucher.order,
                              message=f"Code ending {voucher.last4} revealed")
    request = RequestFactory().get("/admin/", {"q": CODE})
    request.user = django_user_model.objects.create_superuser("root")
    searched = 0
    for model, model_admin in admin.site._registry.items():
        if not model_admin.get_search_fields(request):
            continue
        queryset = model_admin.get_queryset(request)
        for term in (CODE, CODE.lower(), "8842"):
            found, _ = model_admin.get_search_results(request, queryset, term)
            assert not found.exists(), f"{model.__name__} admin matches a plain code"
        searched += 1
    assert searched >= 7
    # The blind index, which the portal's POSTed search hands over, does match.
    order_admin = admin.site._registry[Order]
    found, _ = order_admin.get_search_results(request, order_admin.get_queryset(request),
                                              voucher.code_index)
    assert list(found) == [voucher.order]


def test_it_creates_every_role_and_demo_users_for_each(django_user_model):
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)  # the migration
    for name, perms in ROLES.items():
        group = Group.objects.get(name=name)
        assert {f"{p.content_type.app_label}.{p.codename}"
                for p in group.permissions.select_related("content_type")} == set(perms)
    logins = demo.seed_users()
    held = {role for _username, _password, roles in logins for role in roles}
    assert held == set(ROLES)
    for username, password, roles in logins:
        user = django_user_model.objects.get(username=username)
        assert user.check_password(password) and user.is_staff
        assert set(user.groups.values_list("name", flat=True)) == set(roles)
    assert {u for u, _p, _r in logins} >= {"admin", "orderer", "approver"}


def test_it_answers_the_rq_dashboards_missing_pages_with_404_not_500(client,
                                                                      django_user_model):
    log_in(client, django_user_model.objects.create_superuser("root"))
    for url in ("/admin/django_rq/dashboard/1/change/", "/admin/django_rq/dashboard/1/history/",
                "/admin/django_rq/dashboard/1/delete/", "/admin/django_rq/dashboard/add/",
                "/admin/rq/schedulers/0/", "/admin/rq/queues/99/",
                "/admin/rq/workers/0/no-such-worker/", "/admin/rq/queues/0/no-such-job/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/admin/django_rq/dashboard/").status_code == 200
