"""Reports over a period: spend per supplier and month, codes bought per brand, and a scorecard
of each supplier.

What is counted: the supplier orders a user sees (selectors.visible_vendor_orders: every one
for approvers and operators) that were sent to their supplier within the period, each in the
month it was sent (``submitted_at``). Spend is what the suppliers charged for delivered codes
(``VendorOrder.cost``), summed per currency and never across currencies.

Reads only, like orders.selectors: each report is one aggregate query (the scorecard three),
whatever the number of orders. Nothing here touches a code.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import (
    Count,
    DateField,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber, TruncMonth
from django.utils import timezone

from orders.models import VendorOrder
from orders.selectors import can_see_all_vendor_orders, visible_vendor_orders

Status = VendorOrder.Status
DELIVERED = (Status.COMPLETED, Status.PARTIALLY_COMPLETED)
NO_BRAND = "(no brand)"
MONTHS_BY_DEFAULT = 12


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end``, both days included, in the portal's time zone."""

    start: date
    end: date

    @classmethod
    def default(cls, today: date | None = None) -> "Period":
        """The last twelve months: from the first day of the month eleven months ago to
        today."""
        today = today or timezone.localdate()
        month = today.year * 12 + today.month - 1 - (MONTHS_BY_DEFAULT - 1)
        return cls(date(month // 12, month % 12 + 1, 1), today)

    def months(self) -> list[date]:
        """The first day of every month the period touches, in order."""
        months, year, month = [], self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            months.append(date(year, month, 1))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months

    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of the period and the first instant after it."""
        return (timezone.make_aware(datetime.combine(self.start, time.min)),
                timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min)))


def covers_every_order(user) -> bool:
    """Whether the reports count every supplier order, or only those of ``user``'s orders."""
    return can_see_all_vendor_orders(user)


def sent_in(user, period: Period) -> QuerySet[VendorOrder]:
    """The supplier orders the reports count: seen by ``user``, sent within ``period``."""
    start, end = period.bounds()
    return visible_vendor_orders(user).filter(submitted_at__gte=start, submitted_at__lt=end)


# Spend per supplier and month


@dataclass(frozen=True)
class SpendRow:
    month: date
    vendor: str
    currency: str
    amount: Decimal
    orders: int


def spend(user, period: Period) -> list[SpendRow]:
    """What each supplier charged per month and currency, by currency, month and supplier."""
    rows = (sent_in(user, period).filter(cost__isnull=False)
            .annotate(month=TruncMonth("submitted_at", output_field=DateField()))
            .values("month", "vendor__name", "currency")
            .annotate(amount=Sum("cost"), orders=Count("id"))
            .order_by("currency", "month", "vendor__name"))
    return [SpendRow(month=row["month"], vendor=row["vendor__name"], currency=row["currency"],
                     amount=row["amount"], orders=row["orders"]) for row in rows]


# Codes bought per brand


@dataclass(frozen=True)
class BrandRow:
    brand: str
    codes: int


def codes_by_brand(user, period: Period) -> list[BrandRow]:
    """Codes delivered per brand, most first."""
    rows = (sent_in(user, period).filter(delivered_quantity__gt=0)
            .values("line__product__brand")
            .annotate(codes=Sum("delivered_quantity"))
            .order_by("-codes", "line__product__brand"))
    return [BrandRow(brand=row["line__product__brand"] or NO_BRAND, codes=row["codes"])
            for row in rows]


# The suppliers' scorecard


@dataclass
class Scorecard:
    """One supplier's record over the period. Rates are shares of the supplier orders sent;
    the times run from sending to the codes, of delivered orders (nearest-rank percentiles);
    the discount is per currency, face value against cost, where both are in one currency."""

    vendor: str
    sent: int
    completed: int
    partial: int
    failed: int
    attention: int
    p50: timedelta | None = None
    p95: timedelta | None = None
    discounts: dict[str, Decimal] = field(default_factory=dict)

    def _rate(self, count: int) -> Decimal:
        return Decimal(count) / Decimal(self.sent) if self.sent else Decimal(0)

    @property
    def failure_rate(self) -> Decimal:
        return self._rate(self.failed)

    @property
    def partial_rate(self) -> Decimal:
        return self._rate(self.partial)

    @property
    def attention_rate(self) -> Decimal:
        return self._rate(self.attention)


def scorecard(user, period: Period) -> list[Scorecard]:
    """Each supplier with a supplier order sent in the period, by name."""
    sent = sent_in(user, period)
    cards = {row["vendor_id"]: Scorecard(
        vendor=row["vendor__name"], sent=row["sent"], completed=row["completed"],
        partial=row["partial"], failed=row["failed"], attention=row["attention"],
    ) for row in sent.values("vendor_id", "vendor__name").annotate(
        sent=Count("id"),
        completed=Count("id", filter=Q(status=Status.COMPLETED)),
        partial=Count("id", filter=Q(status=Status.PARTIALLY_COMPLETED)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        # Waiting for a person now: flagged, or an outcome not learned.
        attention=Count("id", filter=~Q(attention="") | Q(status=Status.UNKNOWN)),
    ).order_by("vendor__name")}
    for vendor_id, which, took in _percentiles(sent):
        setattr(cards[vendor_id], which, took)
    for vendor_id, currency, discount in _discounts(sent):
        cards[vendor_id].discounts[currency] = discount
    return list(cards.values())


def _percentiles(sent: QuerySet[VendorOrder]) -> list[tuple[int, str, timedelta]]:
    """(vendor id, "p50" or "p95", time) of each supplier's delivered orders, in one query:
    the orders are ranked by time per supplier, and the rows at the nearest ranks kept
    (rank ⌈n/2⌉ and ⌈95n/100⌉ of n, in integer arithmetic)."""
    rows = (sent.filter(status__in=DELIVERED, completed_at__isnull=False)
            .annotate(took=ExpressionWrapper(F("completed_at") - F("submitted_at"),
                                             output_field=DurationField()))
            .annotate(rank=Window(RowNumber(), partition_by=[F("vendor_id")],
                                  order_by=[F("took").asc(), F("id").asc()]),
                      n=Window(Count("id"), partition_by=[F("vendor_id")]))
            .annotate(rank50=(F("n") + 1) / 2, rank95=(F("n") * 95 + 99) / 100)
            .filter(Q(rank=F("rank50")) | Q(rank=F("rank95")))
            .values_list("vendor_id", "took", "rank", "rank50", "rank95"))
    found = []
    for vendor_id, took, rank, rank50, rank95 in rows:
        if rank == rank50:
            found.append((vendor_id, "p50", took))
        if rank == rank95:
            found.append((vendor_id, "p95", took))
    return found


def _discounts(sent: QuerySet[VendorOrder]) -> list[tuple[int, str, Decimal]]:
    """(vendor id, currency, discount) of delivered codes whose cost and face value are in the
    same currency: 1 − cost ÷ face value, over all of them (weighted by face value)."""
    money = DecimalField(max_digits=18, decimal_places=4)
    face = Coalesce("line__face_value", "line__product__face_value", output_field=money)
    rows = (sent.filter(status__in=DELIVERED, delivered_quantity__gt=0, cost__isnull=False,
                        line__product__face_currency=F("currency"))
            .values("vendor_id", "currency")
            .annotate(cost=Sum("cost"),
                      face=Sum(ExpressionWrapper(face * F("delivered_quantity"),
                                                 output_field=money),
                               default=Value(Decimal(0)), output_field=money))
            .order_by("vendor_id", "currency"))
    return [(row["vendor_id"], row["currency"], 1 - row["cost"] / row["face"])
            for row in rows if row["face"]]
