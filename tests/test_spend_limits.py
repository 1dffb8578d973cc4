"""Spend controls: per-order limit and daily cap per user and currency, approval by someone
else, rejection with a reason, and the decision shown to the placer."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import close_old_connections, transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from common.money import MoneyError, parse_amounts
from orders import ledger, services, spend
from orders.errors import OrderError
from orders.models import Order, SpendLimit
from orders.pricing import LineRequest
from portal.roles import role_group
from tests.auth import log_in
from vendors.models import Product


@pytest.fixture
def offer(make_vendor):
    """A fixed card at 9.50 in ``currency``, from a vendor with a large balance."""

    def make(currency="GBP"):
        vendor = make_vendor()
        product = Product.objects.create(
            vendor=vendor, supplier_product_id=f"p-{vendor.pk}", name=f"Card {currency}",
            brand="Steam", face_value=Decimal("10"), face_currency=currency,
            cost=Decimal("9.50"), cost_currency=currency,
        )
        with transaction.atomic():
            ledger.record_report(vendor=vendor, currency=currency, amount=Decimal("100000"))
        return product

    return make


@pytest.fixture
def placer(django_user_model, db):
    user = django_user_model.objects.create_user("placer", password="placer-pass-123",
                                                 is_staff=True)
    user.groups.add(role_group("orderer"))
    return user


@pytest.fixture
def approver(django_user_model, db):
    user = django_user_model.objects.create_user("boss", password="boss-pass-123",
                                                 is_staff=True)
    user.groups.add(role_group("approver"))
    return user


def place(user, product, quantity: int) -> Order:
    return services.place_order(user=user, lines=[LineRequest(product=product,
                                                              quantity=quantity)])


def test_it_waits_for_approval_above_the_per_order_limit(settings, offer, placer):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("50")}
    product = offer()
    within = place(placer, product, 5)  # 47.50
    above = place(placer, product, 6)  # 57.00
    assert within.status == Order.Status.QUEUED and within.approval_reason == ""
    assert above.status == Order.Status.PENDING_APPROVAL
    assert above.approval_reason == "The total £57.00 is above the per-order limit of £50.00."
    assert above.vendor_orders.get().next_poll_at is None  # nothing goes to the supplier
    event = AuditEvent.objects.get(order=above, action="placed")
    assert event.data["approval"] == [above.approval_reason]
    assert "waits for approval" in event.message


def test_it_counts_todays_orders_against_the_daily_cap(settings, offer, placer):
    settings.ORDER_DAILY_CAP_PER_USER = {"GBP": Decimal("100")}
    product = offer()
    first, second = place(placer, product, 5), place(placer, product, 5)  # 95.00 in all
    assert {first.status, second.status} == {Order.Status.QUEUED}
    third = place(placer, product, 1)  # 104.50
    assert third.status == Order.Status.PENDING_APPROVAL
    assert third.approval_reason == ("Today's orders in GBP would come to £104.50, above the "
                                     "daily cap of £100.00.")


def test_it_leaves_rejected_cancelled_and_yesterdays_orders_out_of_the_daily_cap(
    settings, offer, placer
):
    settings.ORDER_DAILY_CAP_PER_USER = {"GBP": Decimal("100")}
    product = offer()
    cancelled = place(placer, product, 10)
    services.cancel_order(order=cancelled, user=placer)
    old = place(placer, product, 10)
    Order.objects.filter(pk=old.pk).update(created_at=spend.start_of_today()
                                           - timedelta(seconds=1))
    assert spend.spent_today(placer, "GBP") == 0
    assert place(placer, product, 10).status == Order.Status.QUEUED  # 95.00


def test_it_takes_a_users_own_limits_over_the_defaults(settings, offer, placer,
                                                        django_user_model):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("50")}
    settings.ORDER_DAILY_CAP_PER_USER = {"GBP": Decimal("200")}
    product = offer()
    SpendLimit.objects.create(user=placer, currency="GBP", per_order=Decimal("1000"))
    assert place(placer, product, 20).status == Order.Status.QUEUED  # 190, own limit
    # the daily cap was left empty: the portal default (200) still applies
    assert place(placer, product, 2).status == Order.Status.PENDING_APPROVAL  # 209 today
    other = django_user_model.objects.create_user("other")
    assert place(other, product, 6).status == Order.Status.PENDING_APPROVAL  # 57 > 50


def test_it_waits_for_approval_in_a_currency_without_a_limit(settings, offer, placer):
    settings.ORDER_LIMIT_PER_ORDER = {"EUR": Decimal("1000")}
    order = place(placer, offer("GBP"), 1)
    assert order.status == Order.Status.PENDING_APPROVAL
    assert order.approval_reason == "No per-order limit is set in GBP."


def test_it_applies_a_users_limit_in_one_currency_to_every_currency(settings, offer, placer):
    settings.ORDER_LIMIT_PER_ORDER = {}
    SpendLimit.objects.create(user=placer, currency="EUR", daily_cap=Decimal("1000"))
    order = place(placer, offer("GBP"), 1)
    assert order.approval_reason == "No daily cap is set in GBP."


def test_it_places_without_approval_when_no_limit_is_set(settings, offer, placer):
    settings.ORDER_LIMIT_PER_ORDER, settings.ORDER_DAILY_CAP_PER_USER = {}, {}
    settings.ORDER_APPROVAL_THRESHOLD = None
    assert place(placer, offer(), 100).status == Order.Status.QUEUED


def test_it_keeps_the_older_threshold_until_a_per_order_limit_replaces_it(settings, offer,
                                                                          placer):
    settings.ORDER_APPROVAL_THRESHOLD = "50"
    product = offer()
    assert place(placer, product, 6).status == Order.Status.PENDING_APPROVAL
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("60")}
    assert place(placer, product, 6).status == Order.Status.QUEUED


def test_it_counts_concurrent_orders_of_one_user_one_after_the_other(
    transactional_db, settings, offer, placer
):
    settings.ORDER_DAILY_CAP_PER_USER = {"GBP": Decimal("100")}
    product = offer()
    barrier = threading.Barrier(4)
    statuses = []

    def run():
        try:
            barrier.wait()
            statuses.append(place(placer, product, 6).status)  # 57 each: two fit in no cap
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [Order.Status.PENDING_APPROVAL] * 3 + [Order.Status.QUEUED]


def test_it_never_lets_anyone_approve_their_own_order(settings, offer, approver):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("1")}
    order = place(approver, offer(), 1)
    with pytest.raises(OrderError, match="someone other"):
        services.approve_order(order=order, user=approver)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_APPROVAL


@pytest.mark.parametrize("text, error", [
    ("GBP:5,EUR", "is not <currency>:<amount>"),
    ("ZZZ:5", "unknown currency"),
    ("GBP:five", "not an amount"),
    ("GBP:-1", "negative"),
    ("GBP:1,gbp:2", "listed twice"),
])
def test_it_refuses_malformed_limit_settings(text, error):
    with pytest.raises(MoneyError, match=error):
        parse_amounts(text)


def test_it_reads_limit_settings_per_currency():
    assert parse_amounts(" gbp:500, EUR:580.50 ") == {"GBP": Decimal("500"),
                                                      "EUR": Decimal("580.50")}
    assert parse_amounts("") == {}


# Pages


def test_it_says_on_the_confirmation_page_that_the_order_will_wait(client, settings, offer,
                                                                   placer):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("50")}
    product = offer()
    log_in(client, placer)
    html = client.post(reverse("orders:order_new"), {"product": product.pk, "quantity": 6,
                                                     "step": "confirm"}).content.decode()
    assert 'id="approval-warning"' in html
    assert "above the per-order limit of £50.00" in html
    small = client.post(reverse("orders:order_new"), {"product": product.pk, "quantity": 1,
                                                      "step": "confirm"}).content.decode()
    assert 'id="approval-warning"' not in small
    assert not Order.objects.exists()


@pytest.mark.parametrize("reason, error", [
    ("", "Give the reason for the rejection."),
    ("   ", "Give the reason for the rejection."),
    ("x" * 301, "Ensure this value has at most 300 characters (it has 301)."),
])
def test_it_refuses_a_rejection_without_a_good_reason(client, settings, offer, placer,
                                                      approver, reason, error):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("1")}
    order = place(placer, offer(), 1)
    log_in(client, approver)
    response = client.post(reverse("orders:order_reject", args=[order.pk]), {"reason": reason})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="reject-errors"' in html and error in html
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_APPROVAL and order.rejected_by is None
    assert not AuditEvent.objects.filter(order=order, action="rejected").exists()
    with pytest.raises(OrderError):
        services.reject_order(order=order, user=approver, reason=reason)


def test_it_shows_the_placer_who_rejected_when_and_why(client, settings, offer, placer,
                                                       approver):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("1")}
    order = place(placer, offer(), 1)
    log_in(client, approver)
    reason = "Not in this quarters budget " + "x" * 272  # exactly 300 characters
    response = client.post(reverse("orders:order_reject", args=[order.pk]), {"reason": reason})
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.rejected_by, order.rejection_reason) == (
        Order.Status.REJECTED, approver, reason)
    assert timezone.now() - order.rejected_at < timedelta(minutes=1)
    assert AuditEvent.objects.get(order=order, action="rejected").actor == approver
    log_in(client, placer)
    html = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert "above the per-order limit of £1.00" in html
    decision = html.split('id="approval-decision">')[1].split("</td>")[0]
    assert "by boss" in decision and reason in decision
    assert order.rejected_at.strftime("%Y-%m-%d") in decision


def test_it_shows_the_placer_who_approved(client, settings, offer, placer, approver):
    settings.ORDER_LIMIT_PER_ORDER = {"GBP": Decimal("1")}
    order = place(placer, offer(), 1)
    log_in(client, approver)
    client.post(reverse("orders:order_approve", args=[order.pk]))
    log_in(client, placer)
    html = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    decision = html.split('id="approval-decision">')[1].split("</td>")[0]
    assert "by boss" in decision


# Admin


@pytest.fixture
def operator(django_user_model, db):
    user = django_user_model.objects.create_user("op", password="op-pass-123", is_staff=True)
    for codename in ("view_spendlimit", "add_spendlimit", "change_spendlimit",
                     "delete_spendlimit"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_it_lets_an_operator_set_another_users_limits_with_an_audit_row(client, operator,
                                                                         placer):
    log_in(client, operator)
    response = client.post(reverse("admin:orders_spendlimit_add"), {
        "user": placer.pk, "currency": "gbp", "per_order": "250", "daily_cap": "",
    })
    assert response.status_code == 302
    limit = SpendLimit.objects.get()
    assert (limit.user, limit.currency, limit.per_order, limit.daily_cap) == (
        placer, "GBP", Decimal("250"), None)
    event = AuditEvent.objects.get(action="limits_changed")
    assert event.actor == operator and event.data["per_order"] == "250"
    client.post(reverse("admin:orders_spendlimit_delete", args=[limit.pk]), {"post": "yes"})
    assert not SpendLimit.objects.exists()
    assert AuditEvent.objects.filter(action="limits_changed").count() == 2


@pytest.mark.parametrize("fields, error", [
    ({"currency": "ZZZ"}, "Not an ISO 4217 currency code."),
    ({"per_order": "-5"}, "A limit cannot be negative."),
    ({"user": "self"}, "You may not set your own spend limits."),
])
def test_it_refuses_bad_limits_in_the_admin(client, operator, placer, fields, error):
    log_in(client, operator)
    data = {"user": placer.pk, "currency": "GBP", "per_order": "10", "daily_cap": "",
            **fields}
    if data["user"] == "self":
        data["user"] = operator.pk
    response = client.post(reverse("admin:orders_spendlimit_add"), data)
    assert response.status_code == 200 and error in response.content.decode()
    assert not SpendLimit.objects.exists()
    assert not AuditEvent.objects.filter(action="limits_changed").exists()


def test_it_keeps_the_limit_pages_from_users_without_the_permission(client, placer, operator):
    limit = SpendLimit.objects.create(user=operator, currency="GBP", per_order=Decimal("5"))
    log_in(client, placer)
    assert client.get(reverse("admin:orders_spendlimit_changelist")).status_code == 403
    log_in(client, operator)  # may not raise their own limit
    response = client.post(reverse("admin:orders_spendlimit_change", args=[limit.pk]), {
        "user": operator.pk, "currency": "GBP", "per_order": "5000", "daily_cap": ""})
    assert response.status_code == 403
    limit.refresh_from_db()
    assert limit.per_order == Decimal("5")
