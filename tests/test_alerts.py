"""Alerts: low balances on the dashboard and by email, orders needing attention or done by
email, each user's choice of them; through Django's locmem mail backend."""

import re
from decimal import Decimal

import django_rq
import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rq import SimpleWorker

from orders import alerts, ledger, services
from orders.balances import sync_balances
from orders.models import AlertPreference, LedgerEntry, Order
from portal.roles import role_group
from tests.auth import log_in
from tests.test_order_flow import finished, place
from vendors.models import Balance


@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_LOW_BALANCE_DAYS = 3
    settings.ALERT_SPEND_WINDOW_DAYS = 7
    settings.PORTAL_URL = "https://portal.example.com"
    mail.outbox = []


@pytest.fixture
def user_with(django_user_model):
    def make(name: str, *roles: str, email: str | None = None):
        user = django_user_model.objects.create_user(
            name, email=f"{name}@example.com" if email is None else email, is_staff=True
        )
        for role in roles:
            user.groups.add(role_group(role))
        return user
    return make


def deliver(redis_conn) -> None:
    """Run the queued alert jobs, as a worker on the default queue would."""
    SimpleWorker([django_rq.get_queue("default")], connection=redis_conn).work(
        burst=True, with_scheduler=False
    )


def report(vendor, currency: str, amount: str) -> None:
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency=currency, amount=Decimal(amount))


def sent_to(subject_start: str) -> list[str]:
    return sorted(address for m in mail.outbox if m.subject.startswith(subject_start)
                  for address in m.to)


# The rules


@pytest.mark.django_db
def test_it_measures_days_left_by_the_recent_debits(make_vendor, settings):
    vendor = make_vendor(low_balance_threshold=Decimal("10"))
    report(vendor, "GBP", "700")
    balance = Balance.objects.select_related("vendor").get(vendor=vendor)
    [state] = alerts.balance_states([balance])
    assert state.days_left is None and not state.low

    LedgerEntry.objects.create(balance=balance, kind=LedgerEntry.Kind.DEBIT,
                               amount=Decimal("1400"))
    [state] = alerts.balance_states([balance])
    assert state.daily_spend == Decimal("200")
    assert state.days_left == Decimal("3.5")
    assert not state.low

    settings.ALERT_LOW_BALANCE_DAYS = 4
    assert alerts.balance_states([balance])[0].low


# Low balance emails


@pytest.mark.django_db
def test_it_emails_operators_once_when_a_balance_runs_low_and_again_after_it_recovered(
    make_vendor, user_with, redis_conn, django_capture_on_commit_callbacks
):
    first = user_with("op1", "operator")
    second = user_with("op2", "operator")
    user_with("nomail", "operator", email="")
    user_with("orderer1", "orderer")
    quiet = user_with("op3", "operator")
    AlertPreference.objects.create(user=quiet, low_balance=False)
    vendor = make_vendor(name="Acme cards", low_balance_threshold=Decimal("100"))

    with django_capture_on_commit_callbacks(execute=True):
        report(vendor, "GBP", "500")
    deliver(redis_conn)
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        report(vendor, "GBP", "60")
    deliver(redis_conn)
    assert sent_to("Low balance") == sorted([first.email, second.email])
    message = mail.outbox[0]
    assert message.subject == "Low balance: Acme cards GBP"
    assert "£60.00 available (threshold £100.00)" in message.body
    assert "nothing spent in the last 7 days" in message.body
    assert "https://portal.example.com/" in message.body

    with django_capture_on_commit_callbacks(execute=True):
        report(vendor, "GBP", "55")  # still low: told already
    deliver(redis_conn)
    assert len(mail.outbox) == 2

    with django_capture_on_commit_callbacks(execute=True):
        report(vendor, "GBP", "900")
        report(vendor, "GBP", "40")
    deliver(redis_conn)
    assert len(mail.outbox) == 4
    assert "£40.00 available" in mail.outbox[-1].body


@pytest.mark.django_db
def test_it_tells_the_days_left_when_a_debit_makes_a_balance_low(
    make_vendor, user_with, redis_conn, django_capture_on_commit_callbacks
):
    operator = user_with("op1", "operator")
    vendor = make_vendor(name="Acme cards", low_balance_threshold=Decimal("10"))
    report(vendor, "GBP", "1000")
    order = Order.objects.create(reference="VP-DEBIT", placed_by=operator, currency="GBP")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        # 840 spent today: 120 a day over the 7-day window; the 160 left last 1.3 days
        ledger.settle(vendor=vendor, currency="GBP", reserved=Decimal("0"),
                      spent=Decimal("840"), order=order, vendor_order=None)
    deliver(redis_conn)
    [message] = mail.outbox
    assert message.to == [operator.email]
    assert "about 1.3 days left at the last 7 days' spending (£120.00 a day)" in message.body


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_when_the_transaction_rolls_back(make_vendor, user_with, redis_conn):
    user_with("op1", "operator")
    vendor = make_vendor(low_balance_threshold=Decimal("100"))

    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.record_report(vendor=vendor, currency="GBP", amount=Decimal("5"))
        raise RuntimeError("something after the report failed")
    deliver(redis_conn)

    assert mail.outbox == []
    assert django_rq.get_queue("default").count == 0
    assert not Balance.objects.filter(vendor=vendor, low_alerted_at__isnull=False).exists()


def test_it_alerts_on_a_real_debit_and_sync_once_until_the_balance_recovers(
    sandbox_vendor, orderer, user_with, work
):
    operator = user_with("op1", "operator")
    vendor = sandbox_vendor("kalixo_v2")
    gbp = Balance.objects.get(vendor=vendor, currency="GBP")
    vendor.low_balance_threshold = gbp.available - Decimal("1")
    vendor.save()

    order = place(vendor, orderer, 1, sku="KTEST-OK")
    work(finished(order))
    assert order.status == Order.Status.COMPLETED
    assert sent_to("Low balance") == [operator.email]
    assert "days left" in mail.outbox[0].body

    sync_balances(vendor=vendor)
    work(lambda: True)
    assert sent_to("Low balance") == [operator.email]

    vendor.low_balance_threshold = Decimal("100")
    vendor.save()
    sync_balances(vendor=vendor)
    vendor.low_balance_threshold = gbp.available
    vendor.save()
    sync_balances(vendor=vendor)
    work(lambda: True)
    assert sent_to("Low balance") == [operator.email, operator.email]


# Order emails


def test_it_emails_the_placer_when_an_order_completes_and_never_a_code(
    sandbox_vendor, orderer, user_with, work
):
    from django.contrib.auth.models import Permission

    user_with("op1", "operator")
    orderer.email = "orderer@example.com"
    orderer.save()
    orderer.user_permissions.add(Permission.objects.get(codename="reveal_codes"))
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 2, sku="KTEST-OK")
    work(finished(order))

    assert order.status == Order.Status.COMPLETED
    [message] = mail.outbox
    assert message.to == ["orderer@example.com"]
    assert message.subject == f"Order {order.reference} completed"
    assert "2 of 2 codes delivered" in message.body
    assert f"https://portal.example.com/orders/{order.pk}/" in message.body
    orderer = type(orderer).objects.get(pk=orderer.pk)
    codes = [services.reveal_voucher(voucher=v, user=orderer).code
             for v in order.vouchers.all()]
    assert len(codes) == 2
    leaked = any(code in m.body or code in m.subject for code in codes for m in mail.outbox)
    assert not leaked, "an alert email carries a code"


def test_it_emails_the_placer_of_a_partial_order_unless_they_opted_out(
    sandbox_vendor, orderer, work
):
    orderer.email = "orderer@example.com"
    orderer.save()
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 4, sku="KTEST-PARTIAL")
    work(finished(order))
    assert order.status == Order.Status.PARTIALLY_COMPLETED
    [message] = mail.outbox
    assert message.subject == f"Order {order.reference} partially completed"

    AlertPreference.objects.create(user=orderer, completed=False)
    again = place(vendor, orderer, 4, sku="KTEST-PARTIAL")
    work(finished(again))
    assert len(mail.outbox) == 1


def test_it_emails_the_placer_and_the_operators_when_an_order_needs_attention(
    sandbox_vendor, orderer, user_with, work
):
    operator = user_with("op1", "operator")
    quiet = user_with("op2", "operator")
    AlertPreference.objects.create(user=quiet, needs_attention=False)
    orderer.email = "orderer@example.com"
    orderer.save()
    vendor = sandbox_vendor("kalixo_v2", poll_deadline=1)
    order = place(vendor, orderer, 1, sku="KTEST-SLOW")
    work(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NEEDS_ATTENTION,
         timeout=30)
    work(lambda: True)

    subject = f"Order {order.reference} needs attention"
    assert sent_to(subject) == sorted(["orderer@example.com", operator.email])
    by_address = {m.to[0]: m.body for m in mail.outbox}
    reference = order.vendor_orders.get().client_reference
    assert reference in by_address[operator.email]
    assert f"/orders/{order.pk}/" in by_address["orderer@example.com"]
    assert f"/admin/orders/vendororder/?q={order.reference}" in by_address[operator.email]


# The dashboard


@pytest.fixture
def low_vendors(make_vendor):
    made = []

    def make(count: int) -> None:
        for _ in range(count):
            made.append(make_vendor(name=f"Low {len(made)}",
                                    low_balance_threshold=Decimal("100")))
            vendor = made[-1]
            report(vendor, "GBP", "20")
            report(vendor, "EUR", "500")
    return make


@pytest.mark.django_db
def test_it_explains_the_gap_between_reported_and_available(client, user_with, make_vendor):
    """Reported £500.00, £28.50 spent on codes since, £19.00 set aside: £452.50 available."""
    vendor = make_vendor(name="Explained", low_balance_threshold=Decimal("10"))
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency="GBP", amount=Decimal("500"))
        ledger.reserve(vendor=vendor, currency="GBP", amount=Decimal("47.50"), order=None)
        ledger.settle(vendor=vendor, currency="GBP", reserved=Decimal("28.50"),
                      spent=Decimal("28.50"), order=None, vendor_order=None)
    log_in(client, user_with("op-gap", "operator"))
    html = client.get(reverse("orders:dashboard")).content.decode()
    row = re.search(r"<td>Explained</td>.*?</tr>", html, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[2:6] == ["£500.00", "£28.50", "£19.00", "£452.50"]
    assert "less what was spent on codes delivered since that report" in html


@pytest.mark.django_db
def test_it_shows_the_low_balances_banner_to_operators_only(client, user_with, low_vendors):
    low_vendors(1)
    operator = user_with("op1", "operator")
    log_in(client, operator)
    html = client.get(reverse("orders:dashboard")).content.decode()
    banner = re.search(r'<div class="module" id="low-balances".*?</div>', html, re.S)
    assert banner, "no banner"
    assert "Low 0 GBP: £20.00 available (threshold £100.00)" in banner.group(0)
    assert "EUR" not in banner.group(0)

    client.logout()
    log_in(client, user_with("viewer1", "viewer", "orderer"))
    html = client.get(reverse("orders:dashboard")).content.decode()
    assert 'id="low-balances"' not in html
    assert "Low 0" not in html


@pytest.mark.django_db
def test_it_keeps_the_dashboard_queries_flat_whatever_the_number_of_vendors(
    client, user_with, low_vendors
):
    log_in(client, user_with("op1", "operator"))
    low_vendors(1)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("orders:dashboard"))
    low_vendors(5)
    with CaptureQueriesContext(connection) as many:
        html = client.get(reverse("orders:dashboard")).content.decode()
    assert html.count('<li class="low-balance">') == 6
    assert len(many.captured_queries) == len(few.captured_queries)


# The preferences page


@pytest.mark.django_db
def test_it_saves_a_users_choice_of_alert_emails(client, user_with):
    operator = user_with("op1", "operator")
    log_in(client, operator)
    url = reverse("orders:alert_settings")
    html = client.get(url).content.decode()
    assert 'name="low_balance"' in html and 'checked' in html
    assert f"href=\"{url}\"" in html  # linked from the user menu

    response = client.post(url, {"needs_attention": "on"})
    assert response.status_code == 302
    preference = AlertPreference.objects.get(user=operator)
    assert (preference.low_balance, preference.needs_attention, preference.completed) == (
        False, True, False
    )
    assert list(alerts.operators("low_balance")) == []
    assert list(alerts.operators("needs_attention")) == [operator]


@pytest.mark.django_db
def test_it_offers_low_balance_emails_only_to_who_sees_balances(client, user_with):
    orderer = user_with("orderer1", "orderer")
    log_in(client, orderer)
    url = reverse("orders:alert_settings")
    html = client.get(url).content.decode()
    assert 'name="low_balance"' not in html and 'name="completed"' in html

    client.post(url, {"completed": "on"})
    preference = AlertPreference.objects.get(user=orderer)
    assert (preference.needs_attention, preference.completed) == (False, True)


@pytest.mark.django_db
def test_it_refuses_the_page_without_the_csrf_token(user_with):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    log_in(client, user_with("orderer1", "orderer"))
    response = client.post(reverse("orders:alert_settings"), {"completed": "on"})
    assert response.status_code == 403
    assert not AlertPreference.objects.exists()
