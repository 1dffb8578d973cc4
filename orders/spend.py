"""Spend controls: a per-order limit and a daily cap per user, in each currency.

Limits are per currency and never converted: the portal-wide defaults are
``ORDER_LIMIT_PER_ORDER`` and ``ORDER_DAILY_CAP_PER_USER`` (``{"GBP": Decimal("500")}``), and
a user's ``SpendLimit`` row for a currency overrides either of them (an empty field keeps the
default). A kind of limit is in force for a user when the portal default names any currency
or one of the user's rows sets it; an order in a currency for which a limit in force names no
amount waits for approval, so nobody escapes a limit by ordering in another currency. The older
``ORDER_APPROVAL_THRESHOLD`` (one number for every currency) is the per-order default while
``ORDER_LIMIT_PER_ORDER`` is empty.

The daily cap counts the user's orders in the currency placed today (local time, ``TIME_ZONE``)
that are not rejected or cancelled. ``place_order`` locks the user's row before it asks, so
two orders placed at once by one user are counted one after the other.
"""

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from common.money import format_money
from orders.models import Order, SpendLimit


@dataclass(frozen=True)
class Limits:
    """A user's limits in one currency; ``None`` with ``*_in_force`` means none is named."""

    currency: str
    per_order: Decimal | None
    daily_cap: Decimal | None
    per_order_in_force: bool
    daily_cap_in_force: bool


def limits_for(user, currency: str) -> Limits:
    rows = list(SpendLimit.objects.filter(user=user))
    own = next((row for row in rows if row.currency == currency), None)
    per_order_default = settings.ORDER_LIMIT_PER_ORDER.get(currency)
    if not settings.ORDER_LIMIT_PER_ORDER and settings.ORDER_APPROVAL_THRESHOLD is not None:
        per_order_default = Decimal(settings.ORDER_APPROVAL_THRESHOLD)
    per_order = own.per_order if own and own.per_order is not None else per_order_default
    daily_cap = own.daily_cap if own and own.daily_cap is not None else (
        settings.ORDER_DAILY_CAP_PER_USER.get(currency)
    )
    return Limits(
        currency=currency, per_order=per_order, daily_cap=daily_cap,
        per_order_in_force=per_order is not None or bool(settings.ORDER_LIMIT_PER_ORDER)
        or any(row.per_order is not None for row in rows),
        daily_cap_in_force=daily_cap is not None or bool(settings.ORDER_DAILY_CAP_PER_USER)
        or any(row.daily_cap is not None for row in rows),
    )


def start_of_today() -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def spent_today(user, currency: str) -> Decimal:
    """The total of the user's orders in ``currency`` placed today, rejected and cancelled
    ones left out. Added up here, exactly: SQLite's SUM of decimals goes through floats."""
    totals = Order.objects.filter(
        placed_by=user, currency=currency, created_at__gte=start_of_today(),
    ).exclude(status__in=(Order.Status.REJECTED, Order.Status.CANCELLED)).values_list(
        "total_cost", flat=True)
    return sum(totals, Decimal("0"))


def approval_reasons(*, user, currency: str, total: Decimal) -> list[str]:
    """Why an order of ``total`` in ``currency`` by ``user`` must wait for approval (empty:
    it need not). Inside ``place_order`` the caller holds the lock of ``lock_user``."""
    limits = limits_for(user, currency)
    reasons = []
    if limits.per_order is not None:
        if total > limits.per_order:
            reasons.append(f"The total {format_money(total, currency)} is above the per-order "
                           f"limit of {format_money(limits.per_order, currency)}.")
    elif limits.per_order_in_force:
        reasons.append(f"No per-order limit is set in {currency}.")
    if limits.daily_cap is not None:
        day = spent_today(user, currency) + total
        if day > limits.daily_cap:
            reasons.append(f"Today's orders in {currency} would come to "
                           f"{format_money(day, currency)}, above the daily cap of "
                           f"{format_money(limits.daily_cap, currency)}.")
    elif limits.daily_cap_in_force:
        reasons.append(f"No daily cap is set in {currency}.")
    return reasons


def lock_user(user) -> None:
    """Serialise one user's placements (call inside the placing transaction)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()


# Setting a user's limits (the admin's spend limit pages)


def can_set_spend_limit(actor, user=None) -> bool:
    """Operators set limits, never their own."""
    return actor.is_active and actor.has_perm("orders.change_spendlimit") and (
        user is None or user.pk != actor.pk
    )


def _describe(limit: SpendLimit) -> str:
    parts = [f"per order {limit.per_order}" if limit.per_order is not None
             else "per order: default",
             f"daily cap {limit.daily_cap}" if limit.daily_cap is not None
             else "daily cap: default"]
    return f"{limit.currency} " + ", ".join(parts)


@transaction.atomic
def set_spend_limit(*, actor, limit: SpendLimit) -> SpendLimit:
    """Save a user's limits in one currency, with its audit row."""
    if not can_set_spend_limit(actor, limit.user):
        raise PermissionDenied("You may not set this user's spend limits.")
    limit.save()
    audit.record(action=audit.Action.LIMITS_CHANGED, target=limit, actor=actor,
                 message=f"Spend limits of {limit.user}: {_describe(limit)}",
                 data={"user": limit.user_id, "currency": limit.currency,
                       "per_order": None if limit.per_order is None else str(limit.per_order),
                       "daily_cap": None if limit.daily_cap is None else str(limit.daily_cap)})
    return limit


@transaction.atomic
def delete_spend_limit(*, actor, limit: SpendLimit) -> None:
    """Remove a user's limits in one currency: the portal defaults apply again."""
    if not can_set_spend_limit(actor, limit.user):
        raise PermissionDenied("You may not set this user's spend limits.")
    audit.record(action=audit.Action.LIMITS_CHANGED, target=limit, actor=actor,
                 message=f"Spend limits of {limit.user} in {limit.currency} removed: the "
                 "portal defaults apply", data={"user": limit.user_id,
                                                "currency": limit.currency})
    limit.delete()
