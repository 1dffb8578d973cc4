"""Alerts: the rules of a low balance, and the emails that tell people about balances and orders.

A balance is low when its available amount is below its vendor's ``low_balance_threshold``, or
when it lasts fewer than ``ALERT_LOW_BALANCE_DAYS`` at the recent spending rate: the debits of
the last ``ALERT_SPEND_WINDOW_DAYS`` days, averaged per day. A balance nobody reports (the
supplier has no balance call) is never low.

Who is told:
- a balance becomes low (after a debit or a balance sync, ``balance_changed``): the operators,
  once; ``Balance.low_alerted_at`` remembers it until the balance recovers;
- an order comes to need attention (``order_status_changed``): its placer and the operators;
- an order is completed or partially completed: its placer.

Operators are the active users who see balances (``vendors.view_balance``). Each user may turn
each kind off (``AlertPreference``); every recipient needs an email address. Emails are queued
on commit as RQ jobs (orders.jobs), so a rolled-back change sends nothing and a slow mail
server holds up no request nor the engine. They name vendors, orders and references and link
to the portal; they never carry a code.

Called by the ledger (orders.ledger) and the engine (orders.fulfilment.refresh_order); it
imports neither, so both may import it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone
from rq import Retry

from common.money import format_money
from orders.models import AlertPreference, LedgerEntry, Order
from vendors.models import Balance

LOW_BALANCE_JOB = "orders.jobs.send_low_balance_alert"
ORDER_JOB = "orders.jobs.send_order_alert"
QUEUE = "default"


class Event:
    """What happened to an order, as a job argument."""

    NEEDS_ATTENTION = "needs_attention"
    COMPLETED = "completed"


DONE = frozenset({Order.Status.COMPLETED, Order.Status.PARTIALLY_COMPLETED})


@dataclass(frozen=True)
class BalanceState:
    """A balance with what the alert rules make of it."""

    balance: Balance
    available: Decimal | None
    daily_spend: Decimal | None  # None: nothing debited in the window
    days_left: Decimal | None  # None: no recent spending to measure it by
    low: bool


# The rules


def _window_start() -> datetime:
    return timezone.now() - timedelta(days=settings.ALERT_SPEND_WINDOW_DAYS)


def daily_spend(balance_ids: Iterable[int]) -> dict[int, Decimal]:
    """The average daily debits of each balance over the window, for those with any (one
    query)."""
    rows = (LedgerEntry.objects
            .filter(balance_id__in=list(balance_ids), kind=LedgerEntry.Kind.DEBIT,
                    created_at__gte=_window_start())
            .values("balance_id").annotate(total=Sum("amount")))
    days = Decimal(settings.ALERT_SPEND_WINDOW_DAYS)
    return {row["balance_id"]: row["total"] / days for row in rows if row["total"] > 0}


def assess(balance: Balance, spend: Decimal | None) -> BalanceState:
    """Apply the rules to ``balance`` (its vendor loaded) spending ``spend`` a day."""
    available = balance.available
    if available is None:
        return BalanceState(balance, None, spend, None, low=False)
    days_left = None
    if spend:
        days_left = max(available, Decimal("0")) / spend
        days_left = days_left.quantize(Decimal("0.1"), rounding=ROUND_DOWN)
    low = available < balance.vendor.low_balance_threshold or (
        days_left is not None and days_left < settings.ALERT_LOW_BALANCE_DAYS
    )
    return BalanceState(balance, available, spend, days_left, low=low)


def balance_states(balances: Iterable[Balance]) -> list[BalanceState]:
    """Each balance (vendors loaded) assessed; one query however many there are."""
    balances = list(balances)
    spend = daily_spend(b.pk for b in balances)
    return [assess(b, spend.get(b.pk)) for b in balances]


def describe(state: BalanceState) -> str:
    """One line about a balance: what is available and how long it lasts."""
    balance = state.balance
    text = (f"{balance.vendor.name} {balance.currency}: "
            f"{format_money(state.available, balance.currency)} available "
            f"(threshold {format_money(balance.vendor.low_balance_threshold, balance.currency)})")
    window = settings.ALERT_SPEND_WINDOW_DAYS
    if state.days_left is None:
        return f"{text}; nothing spent in the last {window} days"
    return (f"{text}; about {state.days_left} days left at the last {window} days' spending "
            f"({format_money(state.daily_spend, balance.currency)} a day)")


# What the ledger and the engine call, inside their transactions


def balance_changed(balance: Balance) -> None:
    """After a debit or a supplier report on ``balance`` (locked by the caller): when it has
    become low, remember it and tell the operators on commit; once it is no longer low, forget,
    so that the next drop is told again."""
    low = assess(balance, daily_spend([balance.pk]).get(balance.pk)).low
    if low and balance.low_alerted_at is None:
        balance.low_alerted_at = timezone.now()
        Balance.objects.filter(pk=balance.pk).update(low_alerted_at=balance.low_alerted_at)
        _enqueue_on_commit(LOW_BALANCE_JOB, balance.pk)
    elif not low and balance.low_alerted_at is not None:
        balance.low_alerted_at = None
        Balance.objects.filter(pk=balance.pk).update(low_alerted_at=None)


def order_status_changed(order: Order, previous: str) -> None:
    """After ``order``'s status was derived anew: when it has just come to need attention,
    or to be done, tell the people concerned on commit."""
    if order.status == previous:
        return
    if order.status == Order.Status.NEEDS_ATTENTION:
        _enqueue_on_commit(ORDER_JOB, order.pk, Event.NEEDS_ATTENTION)
    elif order.status in DONE and previous not in DONE:
        _enqueue_on_commit(ORDER_JOB, order.pk, Event.COMPLETED)


def _enqueue_on_commit(job: str, *args) -> None:
    def enqueue() -> None:
        django_rq.get_queue(QUEUE).enqueue(job, *args, result_ttl=0, failure_ttl=7 * 86400,
                                           retry=Retry(max=3, interval=[10, 60, 300]))

    transaction.on_commit(enqueue)


# Who wants what


def preferences(user) -> AlertPreference:
    """The user's choices; the defaults (every alert) when they never chose."""
    return AlertPreference.objects.filter(user=user).first() or AlertPreference(user=user)


def save_preferences(*, user, low_balance: bool, needs_attention: bool,
                     completed: bool) -> AlertPreference:
    """Record which alert emails ``user`` wants."""
    preference, _ = AlertPreference.objects.update_or_create(user=user, defaults={
        "low_balance": low_balance, "needs_attention": needs_attention,
        "completed": completed,
    })
    return preference


def is_operator(user) -> bool:
    return user.has_perm("vendors.view_balance")


def _reachable():
    return get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")


def operators(wanting: str) -> QuerySet:
    """Active staff with an email address who see balances and did not turn ``wanting`` (an
    AlertPreference field) off."""
    view_balance = Permission.objects.get(content_type__app_label="vendors",
                                          codename="view_balance")
    return (_reachable()
            .filter(Q(is_superuser=True) | Q(user_permissions=view_balance)
                    | Q(groups__permissions=view_balance))
            .exclude(**{f"alert_preference__{wanting}": False})
            .distinct().order_by("pk"))


def _wants(user, wanting: str) -> bool:
    return _reachable().filter(pk=user.pk).exclude(
        **{f"alert_preference__{wanting}": False}
    ).exists()


# Sending (the jobs call these)


def _link(path: str) -> str:
    return f"{settings.PORTAL_URL}{path}"


def _send(recipients: Iterable, subject: str, body: str) -> int:
    """One plain-text message per recipient, so that no one sees the others' addresses."""
    messages = [(subject, body, None, [user.email]) for user in recipients]
    return mail.send_mass_mail(messages, fail_silently=False) if messages else 0


def send_low_balance(balance_id: int) -> int:
    """Tell the operators that a balance ran low; nothing if it recovered meanwhile. Returns
    how many emails went out."""
    balance = Balance.objects.select_related("vendor").filter(pk=balance_id).first()
    if balance is None:
        return 0
    state = balance_states([balance])[0]
    if not state.low:
        return 0
    subject = f"Low balance: {balance.vendor.name} {balance.currency}"
    body = (f"The balance of {describe(state)}.\n\n"
            f"Top it up at the supplier, then sync the balances. Balances: "
            f"{_link(reverse('orders:dashboard'))}\n\n"
            f"Alerts you receive: {_link(reverse('orders:alert_settings'))}\n")
    return _send(operators("low_balance"), subject, body)


def send_order_alert(order_id: int, event: str) -> int:
    """Tell the people concerned that an order needs attention or is done. Returns how many
    emails went out."""
    order = Order.objects.select_related("placed_by").filter(pk=order_id).first()
    if order is None:
        return 0
    if event == Event.NEEDS_ATTENTION:
        return _send_needs_attention(order)
    return _send_completed(order)


def _footer() -> str:
    return f"\nAlerts you receive: {_link(reverse('orders:alert_settings'))}\n"


def _send_needs_attention(order: Order) -> int:
    subject = f"Order {order.reference} needs attention"
    stuck = list(order.vendor_orders.exclude(attention="").values_list("client_reference",
                                                                       flat=True))
    about = (f"Order {order.reference}, placed by {order.placed_by.get_username()}, needs a "
             f"person's attention" + (f": supplier orders {', '.join(stuck)}." if stuck else "."))
    sent = 0
    placer = order.placed_by
    if _wants(placer, "needs_attention"):
        sent += _send([placer], subject, f"{about}\n\nThe order: "
                      f"{_link(reverse('orders:order_detail', args=[order.pk]))}\n{_footer()}")
    others = operators("needs_attention").exclude(pk=placer.pk)
    admin = f"{reverse('admin:orders_vendororder_changelist')}?q={order.reference}"
    sent += _send(others, subject, f"{about}\n\nIts supplier orders: {_link(admin)}\n"
                  f"{_footer()}")
    return sent


def _send_completed(order: Order) -> int:
    placer = order.placed_by
    if not _wants(placer, "completed"):
        return 0
    status = order.get_status_display().lower()
    subject = f"Order {order.reference} {status}"
    body = (f"Order {order.reference} is {status}: {order.delivered_quantity} of "
            f"{order.quantity} codes delivered.\n\n"
            f"The codes are on the order's page: "
            f"{_link(reverse('orders:order_detail', args=[order.pk]))}\n{_footer()}")
    return _send([placer], subject, body)
