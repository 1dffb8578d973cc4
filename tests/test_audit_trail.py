"""The audit trail: what it records, that it only grows, and the auditors' page and export."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.urls import reverse

from audit.models import AppendOnlyError, AuditEvent
from orders import pricing, services
from orders.models import Order, VendorOrder
from portal.roles import role_group
from tests.auth import log_in
from vendors import matching
from vendors.models import Product, Vendor

pytestmark = pytest.mark.django_db


def grant(user, *perms: str):
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename))
    return type(user).objects.get(pk=user.pk)


def member(django_user_model, name: str, *roles: str):
    """A staff user holding ``roles``."""
    user = django_user_model.objects.create_user(name, is_staff=True)
    user.groups.add(*(role_group(role) for role in roles))
    return type(user).objects.get(pk=user.pk)


def events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


@pytest.fixture
def auditor(django_user_model):
    user = django_user_model.objects.create_user("audrey", password="audrey-pass-123",
                                                 is_staff=True)
    return grant(user, "audit.view_auditevent")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_user("root", password="root-pass-123",
                                                 is_staff=True, is_superuser=True)


@pytest.fixture
def product(make_vendor):
    vendor = make_vendor(name="Kalixo")
    return Product.objects.create(
        vendor=vendor, supplier_product_id="steam-10", sku="STEAM-GB-10", name="Steam £10",
        brand="Steam", face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )


def place(user, product, quantity=1) -> Order:
    return services.place_order(
        user=user, lines=[pricing.LineRequest(product=product, quantity=quantity)])


# What is recorded


def test_it_records_logins_and_failed_logins_without_the_password(client, superuser):
    url = reverse("admin:login")
    client.post(url, {"username": "root", "password": "wrong-secret-9"})
    client.post(url, {"username": "root", "password": "root-pass-123"})
    failed = events("login_failed")
    assert len(failed) == 1 and failed[0].actor is None
    assert failed[0].data["username"] == "root" and "'root'" in failed[0].message
    assert "wrong-secret-9" not in f"{failed[0].message}{failed[0].data}"
    [ok] = events("logged_in")
    assert (ok.actor, ok.target_id) == (superuser, str(superuser.pk))


def test_it_records_every_order_command_with_its_actor(settings, product, django_user_model,
                                                      redis_conn):
    settings.ORDER_APPROVAL_THRESHOLD = "5"
    placer = member(django_user_model, "placer", "orderer")
    approver = member(django_user_model, "approver", "approver", "operator")
    approved, rejected, cancelled = (place(placer, product) for _ in range(3))
    assert [e.order for e in events("placed", actor=placer)] == [approved, rejected, cancelled]
    services.approve_order(order=approved, user=approver)
    services.reject_order(order=rejected, user=approver, reason="Too dear")
    services.cancel_order(order=cancelled, user=placer)
    assert events("approved", actor=approver, order=approved)
    assert "Too dear" in events("rejected", actor=approver, order=rejected)[0].message
    assert events("cancelled", actor=placer, order=cancelled)

    vo = approved.vendor_orders.get()
    VendorOrder.objects.filter(pk=vo.pk).update(status=VendorOrder.Status.PROCESSING,
                                                attention="stuck")
    services.repoll_now(vendor_order=vo, user=approver)
    assert events("repoll_asked", actor=approver, order=approved, target_id=str(vo.pk))
    VendorOrder.objects.filter(pk=vo.pk).update(status=VendorOrder.Status.UNKNOWN,
                                                attention="outcome unknown")
    vo.refresh_from_db()
    services.resolve_unknown(vendor_order=vo, user=approver, absent=True)
    assert "sending it again" in events("resolved", actor=approver, order=approved)[0].message


def test_it_records_a_top_up(settings, product, make_vendor, django_user_model, redis_conn):
    other = make_vendor(name="Other")
    matching.match_offers([product, Product.objects.create(
        vendor=other, supplier_product_id="s10", name="Steam 10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.60"),
        cost_currency="GBP")])
    product.refresh_from_db()
    user = member(django_user_model, "placer", "orderer")
    order = place(user, product, quantity=2)
    vo = order.vendor_orders.get()
    VendorOrder.objects.filter(pk=vo.pk).update(status=VendorOrder.Status.PARTIALLY_COMPLETED,
                                                delivered_quantity=1)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PARTIALLY_COMPLETED,
                                             delivered_quantity=1)
    order.lines.update(delivered_quantity=1)
    services.top_up_order(order=order, user=user)
    [event] = events("topped_up", actor=user, order=order)
    assert "Top-up of 1 missing" in event.message


def test_it_names_the_revealed_code_and_the_exported_orders(client, make_voucher, superuser):
    voucher = make_voucher("GIFT-AAAA-BBBB-7788", vendor=None)
    services.reveal_voucher(voucher=voucher, user=superuser)
    [revealed] = events("revealed", actor=superuser)
    assert revealed.data == {"voucher": str(voucher.pk), "last4": "7788"}
    log_in(client, superuser)
    response = client.post(reverse("orders:export_order", args=[voucher.order_id]))
    b"".join(response.streaming_content)
    [exported] = events("exported", actor=superuser)
    assert exported.data["references"] == [voucher.order.reference]
    assert (exported.data["orders"], exported.data["codes"]) == (1, 1)


def test_it_records_vendor_changes_and_deletions_in_the_admin(client, superuser):
    log_in(client, superuser)
    form = {"name": "Kalixo live", "kind": "kalixo_v2", "base_url": "https://api.kalixo.io/v2",
            "enabled": "on", "first_poll_delay": 30, "max_poll_interval": 300,
            "poll_deadline": 3600, "rate_limit_per_minute": 60, "low_balance_threshold": "100",
            "new_credentials": '{"api_key": "kal_live_secret"}'}
    assert client.post(reverse("admin:vendors_vendor_add"), form).status_code == 302
    vendor = Vendor.objects.get(name="Kalixo live")
    [created] = events("vendor_created", actor=superuser)
    assert created.target_id == str(vendor.pk)
    assert events("credentials_changed", actor=superuser, target_id=str(vendor.pk))
    form.update(base_url="https://api2.kalixo.io/v2", new_credentials="")
    del form["enabled"]
    client.post(reverse("admin:vendors_vendor_change", args=[vendor.pk]), form)
    [changed] = events("vendor_changed", actor=superuser)
    assert changed.data["changes"] == {
        "base_url": ["https://api.kalixo.io/v2", "https://api2.kalixo.io/v2"],
        "enabled": [True, False],
    }
    client.post(reverse("admin:vendors_vendor_delete", args=[vendor.pk]), {"post": "yes"})
    assert not Vendor.objects.filter(pk=vendor.pk).exists()
    assert events("vendor_deleted", actor=superuser, target_id=str(vendor.pk))
    every = "".join(f"{e.message}{e.data}" for e in AuditEvent.objects.all())
    assert "kal_live_secret" not in every


def test_it_records_role_and_permission_changes_made_in_the_admin(client, superuser,
                                                                  django_user_model):
    log_in(client, superuser)
    approvers = Group.objects.create(name="approvers-test")
    target = django_user_model.objects.create_user("bob")
    approve = Permission.objects.get(codename="approve_order")
    reveal = Permission.objects.get(codename="reveal_codes")
    response = client.post(reverse("admin:auth_user_change", args=[target.pk]), {
        "username": "bob", "is_active": "on", "is_staff": "on", "groups": [approvers.pk],
        "user_permissions": [reveal.pk], "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00", "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "10:00:00",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    [flags] = events("user_flags_changed", actor=superuser, target_id=str(target.pk))
    assert flags.data == {"is_staff": [False, True]}
    [groups] = events("groups_changed", actor=superuser, target_id=str(target.pk))
    assert groups.data == {"added": ["approvers-test"]}
    [perms] = events("permissions_changed", actor=superuser, target_id=str(target.pk))
    assert perms.data == {"added": ["orders.reveal_codes"]}
    client.post(reverse("admin:auth_group_change", args=[approvers.pk]),
                {"name": "approvers-test", "permissions": [approve.pk]})
    [group_perms] = events("permissions_changed", actor=superuser,
                           target_id=str(approvers.pk))
    assert group_perms.data == {"added": ["orders.approve_order"]}
    approvers.user_set.clear()  # the reverse side, outside a request: no actor
    [removed] = events("groups_changed", target_id=str(target.pk), data__has_key="removed")
    assert removed.data == {"removed": ["approvers-test"]} and removed.actor is None


# Append-only


def test_it_refuses_to_change_or_delete_audit_rows_through_the_orm(make_vendor, superuser):
    from vendors.services import vendor_set_credentials

    vendor_set_credentials(vendor=make_vendor(), credentials={"k": "v"}, actor=superuser)
    event = AuditEvent.objects.get(action="credentials_changed")
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():  # it runs in its own atomic
        AuditEvent.objects.bulk_update([event], ["message"])
    with pytest.raises(ProtectedError):
        superuser.delete()  # the actor stays named
    event.refresh_from_db()
    assert event.message.startswith("Credentials of") and event.actor == superuser


def test_it_keeps_an_audited_orders_events_when_the_order_is_deleted(product,
                                                                      django_user_model):
    order = place(django_user_model.objects.create_user("placer"), product)
    with pytest.raises(ProtectedError):
        order.delete()
    assert Order.objects.filter(pk=order.pk).exists()
    assert events("placed", order=order)


def test_it_offers_no_way_to_change_or_delete_audit_rows_in_the_admin(client, superuser,
                                                                       product):
    place(superuser, product)
    event = AuditEvent.objects.get(action="placed")
    log_in(client, superuser)
    changelist = client.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert 'name="action"' not in changelist and "delete_selected" not in changelist
    response = client.post(reverse("admin:audit_auditevent_changelist"), {
        "action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]),
                       {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_it_has_postgresql_refuse_an_update_or_delete_of_an_audit_row(product,
                                                                    django_user_model):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's (run with DATABASE_URL=postgres://...)")
    place(django_user_model.objects.create_user("placer"), product)
    event = AuditEvent.objects.get(action="placed")
    for sql in ("UPDATE portal_auditevent SET message = 'rewritten' WHERE id = %s",
                "DELETE FROM portal_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.message.startswith("Placed")


# The auditors' page and export


def test_it_shows_the_audit_trail_to_auditors_only(client, auditor, superuser,
                                                   django_user_model):
    other = django_user_model.objects.create_user("nosy", is_staff=True)
    log_in(client, other)
    assert client.get(reverse("audit_list")).status_code == 403
    assert client.post(reverse("audit_export")).status_code == 403
    assert not events("audit_exported")
    log_in(client, auditor)
    page = client.get(reverse("audit_list"))
    assert page.status_code == 200 and "Audit trail" in page.content.decode()
    assert reverse("audit_list") in client.get(reverse("orders:dashboard")).content.decode()
    client.logout()
    assert client.get(reverse("audit_list")).status_code == 302


def test_it_filters_the_audit_trail_by_who_what_when_and_order(client, auditor, product,
                                                                django_user_model):
    alice = member(django_user_model, "alice", "orderer")
    bob = member(django_user_model, "bob", "orderer")
    mine, theirs = place(alice, product), place(bob, product)
    services.cancel_order(order=theirs, user=bob)
    log_in(client, auditor)
    url = reverse("audit_list")

    def listed(**params) -> str:
        response = client.get(url, params)
        assert response.status_code == 200
        return response.content.decode()

    assert mine.reference in listed(actor="alice")
    assert theirs.reference not in listed(actor="alice")
    html = listed(action="cancelled")
    assert theirs.reference in html and mine.reference not in html
    html = listed(order=mine.reference.lower())
    assert mine.reference in html and theirs.reference not in html
    assert "No audit events match." in listed(date_to="2001-01-01")
    assert theirs.reference in listed(date_from="2001-01-01", date_to="2099-12-31")
    bad = client.get(url, {"date_to": "9999-12-31", "action": "nonsense"})
    assert bad.status_code == 400
    assert "Enter a date between" in bad.content.decode()


def test_it_pages_the_audit_trail_by_id(client, auditor, product, django_user_model,
                                        monkeypatch):
    from portal import audit_views

    monkeypatch.setattr(audit_views, "PAGE_SIZE", 2)
    user = django_user_model.objects.create_user("placer")
    orders = [place(user, product) for _ in range(5)]
    log_in(client, auditor)
    pages, params = [], {"action": "placed"}
    for _ in range(4):
        response = client.get(reverse("audit_list"), params)
        html = response.content.decode()
        pages.append({o.reference for o in orders if o.reference in html})
        nxt = response.context["page"].next_before
        if nxt is None:
            break
        params["before"] = nxt
    refs = [o.reference for o in reversed(orders)]
    assert pages == [set(refs[0:2]), set(refs[2:4]), set(refs[4:])]


def test_it_exports_the_filtered_trail_as_safe_csv_and_audits_the_export(client, auditor,
                                                                         product,
                                                                         django_user_model):
    user = member(django_user_model, "=cmd|evil", "orderer")
    order = place(user, product)
    services.cancel_order(order=order, user=user)
    log_in(client, auditor)
    url = reverse("audit_export") + f"?actor={user.username}"
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 200 and response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()[1:])))
    assert rows[0][:4] == ["id", "when", "who", "action"]
    assert sorted(r[3] for r in rows[1:]) == ["cancelled", "placed"]
    assert {r[2] for r in rows[1:]} == {"'=cmd|evil"}
    [exported] = events("audit_exported", actor=auditor)
    assert exported.data == {"events": 2, "filters": {"actor": "=cmd|evil"}}
    refused = client.post(reverse("audit_export") + "?date_from=1000-01-01")
    assert refused.status_code == 400
    assert len(events("audit_exported")) == 1
