"""The reports page (spend per supplier and month, codes per brand, the suppliers' scorecard)
and its CSV downloads, for who may see reports (services.can_see_reports). The figures come
from orders.reports, the charts from portal.charts."""

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.text import Truncator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from common.money import format_money, round_money
from orders import reports, services
from orders.exports import csv_stream, neutralise
from orders.forms import ReportPeriodForm
from orders.views import _render
from portal import charts
from portal.access import allowed_by

# Brands in the chart, most codes first; the CSV has them all.
CHART_BRANDS = 20
BRAND_LABEL_CHARS = 40


_reports_only = allowed_by(services.can_see_reports, "Reports are for approvers and operators.")


def _invalid(request: HttpRequest, form: ReportPeriodForm) -> HttpResponse:
    return _render(request, "orders/reports.html", {"form": form}, title="Reports",
                   status=400)


@never_cache
@login_required
@_reports_only
@require_GET
def report_page(request: HttpRequest) -> HttpResponse:
    form = ReportPeriodForm(request.GET)
    period = form.period()
    if period is None:
        return _invalid(request, form)
    user = request.user
    brands = reports.codes_by_brand(user, period)
    return _render(request, "orders/reports.html", {
        "form": form, "period": period, "covers_all": reports.covers_every_order(user),
        "spend": _spend_charts(reports.spend(user, period), period),
        "brand_chart": _brand_chart(brands[:CHART_BRANDS]) if brands else None,
        "brands_left_out": max(len(brands) - CHART_BRANDS, 0),
        "scorecard": [_score_row(card) for card in reports.scorecard(user, period)],
        "query": urlencode({"date_from": period.start, "date_to": period.end}),
    }, title="Reports")


def _spend_charts(rows: list[reports.SpendRow], period: reports.Period) -> list[dict]:
    """Per currency: a chart of the months stacked by supplier, and each supplier's total."""
    months = period.months()
    by_currency: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_currency.setdefault(row.currency, {}).setdefault(row.vendor, {})[row.month] = (
            row.amount)
    charts_ = []
    for currency, vendors in by_currency.items():
        def money(amount: Decimal, currency: str = currency) -> str:
            return format_money(round_money(amount, currency), currency)

        series = [charts.Series(vendor, [amounts.get(month, Decimal(0)) for month in months])
                  for vendor, amounts in sorted(vendors.items())]
        charts_.append({
            "currency": currency,
            "chart": charts.stacked_bars(
                label=f"Spend in {currency} per supplier and month", value_text=money,
                categories=[f"{month:%b %y}" for month in months], series=series),
            "totals": [(s.name, money(sum(s.values, Decimal(0)))) for s in series],
        })
    return charts_


def _brand_chart(brands: list[reports.BrandRow]):
    return charts.horizontal_bars(
        label="Codes bought per brand", value_text=lambda codes: f"{codes:,}",
        labels=[Truncator(row.brand).chars(BRAND_LABEL_CHARS) for row in brands],
        values=[Decimal(row.codes) for row in brands])


def _percent(rate: Decimal) -> str:
    return f"{rate * 100:.1f} %"


def _duration(took: timedelta | None) -> str:
    if took is None:
        return "–"
    seconds = round(took.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _discounts(card: reports.Scorecard) -> str:
    return "; ".join(f"{currency} {_percent(discount)}"
                     for currency, discount in sorted(card.discounts.items())) or "–"


def _score_row(card: reports.Scorecard) -> dict:
    rates = []
    for name, rate in (("Failed", card.failure_rate), ("Partial", card.partial_rate),
                       ("Needs attention", card.attention_rate)):
        rates.append({"text": _percent(rate),
                      "bar": charts.rate_bar(rate, label=f"{name}: {_percent(rate)}")})
    return {"card": card, "rates": rates, "p50": _duration(card.p50),
            "p95": _duration(card.p95), "discounts": _discounts(card)}


# CSV downloads


def _csv(request: HttpRequest, filename: str,
         rows: Callable[[reports.Period], Iterable[list[object]]]) -> HttpResponse:
    form = ReportPeriodForm(request.GET)
    period = form.period()
    if period is None:
        return _invalid(request, form)
    response = StreamingHttpResponse(csv_stream(_neutralised(rows(period))),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{filename}-{period.start}-{period.end}.csv"')
    return response


def _neutralised(rows: Iterable[list[object]]) -> Iterator[list[str]]:
    for row in rows:
        yield [neutralise(value) for value in row]


@never_cache
@login_required
@_reports_only
@require_GET
def spend_csv(request: HttpRequest) -> HttpResponse:
    def rows(period: reports.Period) -> Iterator[list[object]]:
        yield ["month", "supplier", "currency", "spend", "supplier orders"]
        for row in reports.spend(request.user, period):
            yield [f"{row.month:%Y-%m}", row.vendor, row.currency,
                   round_money(row.amount, row.currency), row.orders]
    return _csv(request, "spend", rows)


@never_cache
@login_required
@_reports_only
@require_GET
def brands_csv(request: HttpRequest) -> HttpResponse:
    def rows(period: reports.Period) -> Iterator[list[object]]:
        yield ["brand", "codes"]
        for row in reports.codes_by_brand(request.user, period):
            yield [row.brand, row.codes]
    return _csv(request, "brands", rows)


@never_cache
@login_required
@_reports_only
@require_GET
def scorecard_csv(request: HttpRequest) -> HttpResponse:
    def seconds(took: timedelta | None) -> str:
        return "" if took is None else f"{took.total_seconds():.0f}"

    def rows(period: reports.Period) -> Iterator[list[object]]:
        yield ["supplier", "sent", "completed", "partially completed", "failed",
               "needs attention", "failure rate", "partial rate", "needs-attention rate",
               "p50 seconds to codes", "p95 seconds to codes", "average discount"]
        for card in reports.scorecard(request.user, period):
            yield [card.vendor, card.sent, card.completed, card.partial, card.failed,
                   card.attention, f"{card.failure_rate:.4f}", f"{card.partial_rate:.4f}",
                   f"{card.attention_rate:.4f}", seconds(card.p50), seconds(card.p95),
                   "; ".join(f"{currency} {discount:.4f}"
                             for currency, discount in sorted(card.discounts.items()))]
    return _csv(request, "scorecard", rows)
