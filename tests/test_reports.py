"""The reports: spend per supplier and month, codes per brand, the suppliers' scorecard, their
page with charts and their CSV downloads, and who may see them."""

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import reports
from orders.models import Order, OrderLine, VendorOrder
from portal import charts
from portal.roles import role_group
from tests.auth import log_in
from vendors.models import Product

pytestmark = pytest.mark.django_db

S = VendorOrder.Status
PERIOD = reports.Period(date(2025, 1, 1), date(2025, 3, 31))
QUERY = {"date_from": "2025-01-01", "date_to": "2025-03-31"}


def at(month: int, day: int = 10, year: int = 2025) -> datetime:
    return timezone.make_aware(datetime(year, month, day, 12, 0))


@pytest.fixture
def user_with(django_user_model):
    def make(*roles: str, username: str = ""):
        user = django_user_model.objects.create_user(
            username or f"u-{uuid.uuid4().hex[:6]}", is_staff=True)
        for role in roles:
            user.groups.add(role_group(role))
        return user
    return make


@pytest.fixture
def placer(user_with):
    return user_with("orderer", username="placer")


@pytest.fixture
def products(make_vendor):
    """Two suppliers; Kalixo sells in GBP and EUR, Ezcards in GBP."""
    kalixo, ezcards = make_vendor(name="Kalixo"), make_vendor(name="Ezcards")

    def product(vendor, brand, face, currency):
        return Product.objects.create(
            vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], name=f"{brand} {face}",
            brand=brand, face_value=Decimal(face), face_currency=currency)
    return {
        "steam": product(kalixo, "Steam", "10", "GBP"),
        "psn": product(kalixo, "PlayStation", "20", "EUR"),
        "xbox": product(ezcards, "Xbox", "25", "GBP"),
        "formula": product(ezcards, "=HYPERLINK(\"x\")", "5", "GBP"),
    }


@pytest.fixture
def send(placer):
    """A supplier order (with its order and line) sent at ``when``; delivered ``codes`` cost
    ``cost``, and the codes came ``took`` after sending."""

    def make(product, *, when, status=S.COMPLETED, cost=None, codes=0, quantity=None,
             took=timedelta(seconds=30), attention="", user=None):
        quantity = quantity or max(codes, 1)
        order = Order.objects.create(
            reference=f"VP-{uuid.uuid4().hex[:8].upper()}", placed_by=user or placer,
            currency=product.face_currency, status=Order.Status.COMPLETED, quantity=quantity)
        line = OrderLine.objects.create(
            order=order, product=product, vendor=product.vendor, quantity=quantity,
            unit_cost=Decimal("1"), currency=product.face_currency,
            face_value=product.face_value)
        delivered = status in (S.COMPLETED, S.PARTIALLY_COMPLETED)
        return VendorOrder.objects.create(
            order=order, line=line, vendor=product.vendor, quantity=quantity,
            client_reference=f"{order.reference}-1", currency=product.face_currency,
            status=status, cost=cost, delivered_quantity=codes, attention=attention,
            submitted_at=when, completed_at=when + took if delivered else None)
    return make


@pytest.fixture
def seeded(products, send):
    """Orders over three months of 2025 and two suppliers, one before the period, one never
    sent."""
    p = products
    send(p["steam"], when=at(1, 5), cost=Decimal("9.50"), codes=1)
    send(p["steam"], when=at(1, 20), cost=Decimal("19.01"), codes=2)
    send(p["psn"], when=at(1, 21), cost=Decimal("18.40"), codes=1)
    send(p["steam"], when=at(2, 3), cost=Decimal("28.49"), codes=3)
    send(p["xbox"], when=at(2, 14), cost=Decimal("23.75"), codes=1)
    send(p["xbox"], when=at(3, 1), status=S.PARTIALLY_COMPLETED, cost=Decimal("47.50"),
         codes=2, quantity=4)
    send(p["xbox"], when=at(3, 2), status=S.FAILED)
    send(p["xbox"], when=at(3, 3), status=S.UNKNOWN)
    send(p["formula"], when=at(3, 4), cost=Decimal("4.00"), codes=1)
    send(p["steam"], when=at(12, 30, year=2024), cost=Decimal("1000"), codes=100)
    send(p["steam"], when=None, status=S.CREATED)
    return p


@pytest.fixture
def operator_client(client, user_with):
    log_in(client, user_with("operator"))
    return client


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


# The figures


def test_it_sums_spend_per_supplier_month_and_currency_to_the_cent(seeded, user_with):
    rows = reports.spend(user_with("operator"), PERIOD)
    assert [(r.currency, f"{r.month:%Y-%m}", r.vendor, r.amount, r.orders) for r in rows] == [
        ("EUR", "2025-01", "Kalixo", Decimal("18.40"), 1),
        ("GBP", "2025-01", "Kalixo", Decimal("28.51"), 2),
        ("GBP", "2025-02", "Ezcards", Decimal("23.75"), 1),
        ("GBP", "2025-02", "Kalixo", Decimal("28.49"), 1),
        ("GBP", "2025-03", "Ezcards", Decimal("51.50"), 2),
    ]


def test_it_counts_codes_per_brand(seeded, user_with):
    rows = reports.codes_by_brand(user_with("approver"), PERIOD)
    assert [(r.brand, r.codes) for r in rows] == [
        ("Steam", 6), ("Xbox", 3), ("=HYPERLINK(\"x\")", 1), ("PlayStation", 1)]


def test_it_scores_each_supplier(seeded, user_with):
    kalixo, ezcards = (None, None)
    for card in reports.scorecard(user_with("operator"), PERIOD):
        if card.vendor == "Kalixo":
            kalixo = card
        else:
            ezcards = card
    assert (ezcards.sent, ezcards.completed, ezcards.partial, ezcards.failed,
            ezcards.attention) == (5, 2, 1, 1, 1)
    assert (ezcards.failure_rate, ezcards.partial_rate, ezcards.attention_rate) == (
        Decimal("0.2"), Decimal("0.2"), Decimal("0.2"))
    assert (kalixo.sent, kalixo.failure_rate) == (4, Decimal(0))
    # Ezcards: GBP 75.25 for face value 25 + 2 × 25 + 5 = 80; Kalixo: GBP 57 for 60, EUR
    # 18.40 for 20.
    assert ezcards.discounts == {"GBP": 1 - Decimal("75.25") / Decimal("80")}
    assert kalixo.discounts == {"GBP": Decimal("0.05"), "EUR": Decimal("0.08")}


def test_it_takes_nearest_rank_percentiles_of_the_time_to_codes(products, send, user_with):
    for seconds in (7, 1, 10, 3, 9, 2, 8, 4, 6, 5):  # Kalixo: 1 to 10 s, in any order
        send(products["steam"], when=at(2), codes=1, cost=Decimal("9"),
             took=timedelta(seconds=seconds))
    for seconds in (70, 30):
        send(products["xbox"], when=at(2), codes=1, cost=Decimal("9"),
             took=timedelta(seconds=seconds))
    send(products["xbox"], when=at(2), status=S.FAILED)  # no time: not counted
    cards = {c.vendor: c for c in reports.scorecard(user_with("operator"), PERIOD)}
    assert (cards["Kalixo"].p50, cards["Kalixo"].p95) == (timedelta(seconds=5),
                                                          timedelta(seconds=10))
    assert (cards["Ezcards"].p50, cards["Ezcards"].p95) == (timedelta(seconds=30),
                                                            timedelta(seconds=70))


def test_it_counts_only_the_orders_a_user_sees(seeded, send, user_with):
    own = user_with("orderer")
    own.user_permissions.add(*role_group("approver").permissions.filter(
        codename="view_reports"))
    send(seeded["steam"], when=at(2), cost=Decimal("3.33"), codes=1, user=own)
    assert not reports.covers_every_order(own)
    assert [(r.vendor, r.amount) for r in reports.spend(own, PERIOD)] == [
        ("Kalixo", Decimal("3.33"))]


def test_it_starts_the_default_period_eleven_months_back():
    assert reports.Period.default(date(2025, 3, 15)) == reports.Period(date(2024, 4, 1),
                                                                       date(2025, 3, 15))
    assert len(reports.Period.default(date(2025, 12, 31)).months()) == 12


# The page and its downloads


def test_it_shows_the_charts_as_inline_svg(operator_client, seeded):
    response = operator_client.get("/reports/", QUERY)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="chart" role="img"') == 3  # spend in EUR and GBP, brands
    assert 'aria-label="Spend in GBP per supplier and month"' in html
    assert "<title>Ezcards · Mar 25: £51.50</title>" in html
    assert 'class="chart chart-rate"' in html
    assert "every supplier order" in html
    assert 'href="/reports/spend.csv?date_from=2025-01-01&amp;date_to=2025-03-31"' in html


def test_it_escapes_supplier_names_in_the_charts(operator_client, products, send):
    products["xbox"].brand = "<script>alert(1)</script>"
    products["xbox"].save()
    send(products["xbox"], when=at(2), cost=Decimal("1"), codes=1)
    html = operator_client.get("/reports/", QUERY).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_draws_an_empty_period_without_charts(operator_client):
    response = operator_client.get("/reports/")
    assert response.status_code == 200
    assert b"Nothing was spent in this period." in response.content
    assert b'<svg class="chart' not in response.content


def test_it_downloads_the_spend_as_csv(operator_client, seeded):
    response = operator_client.get("/reports/spend.csv", QUERY)
    assert response["Content-Disposition"] == (
        'attachment; filename="spend-2025-01-01-2025-03-31.csv"')
    assert csv_rows(response) == [
        ["month", "supplier", "currency", "spend", "supplier orders"],
        ["2025-01", "Kalixo", "EUR", "18.40", "1"],
        ["2025-01", "Kalixo", "GBP", "28.51", "2"],
        ["2025-02", "Ezcards", "GBP", "23.75", "1"],
        ["2025-02", "Kalixo", "GBP", "28.49", "1"],
        ["2025-03", "Ezcards", "GBP", "51.50", "2"],
    ]


def test_it_neutralises_formulas_in_the_brands_csv(operator_client, seeded):
    rows = csv_rows(operator_client.get("/reports/brands.csv", QUERY))
    assert rows == [["brand", "codes"], ["Steam", "6"], ["Xbox", "3"],
                    ["'=HYPERLINK(\"x\")", "1"], ["PlayStation", "1"]]


def test_it_downloads_the_scorecard_as_csv(operator_client, seeded):
    rows = csv_rows(operator_client.get("/reports/scorecard.csv", QUERY))
    assert rows[0][:2] == ["supplier", "sent"]
    assert rows[1] == ["Ezcards", "5", "2", "1", "1", "1", "0.2000", "0.2000", "0.2000",
                       "30", "30", "GBP 0.0594"]
    assert rows[2][0] == "Kalixo"
    assert rows[2][-1] == "EUR 0.0800; GBP 0.0500"


@pytest.mark.parametrize("query, field", [
    ({"date_from": "1999-12-31"}, "date_from"),
    ({"date_to": "not-a-date"}, "date_to"),
    ({"date_from": "2025-03-01", "date_to": "2025-01-01"}, "date_to"),
    ({"date_from": "2000-01-01", "date_to": "2099-12-31"}, "date_to"),
])
@pytest.mark.parametrize("path", ["/reports/", "/reports/spend.csv"])
def test_it_refuses_a_bad_period_with_the_field_error(operator_client, query, field, path):
    response = operator_client.get(path, query)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert b'<svg class="chart' not in response.content


# Who may see them


@pytest.mark.parametrize("roles, allowed", [
    (("approver",), True), (("operator",), True), (("viewer",), False),
    (("orderer",), False), (("custodian",), False), (("auditor",), False),
])
def test_it_shows_reports_to_approvers_and_operators_only(client, user_with, roles, allowed):
    log_in(client, user_with(*roles))
    assert client.get("/reports/").status_code == (200 if allowed else 403)
    assert client.get("/reports/scorecard.csv").status_code == (200 if allowed else 403)
    nav = client.get("/").content.decode()
    assert ('href="/reports/"' in nav) is allowed


def test_it_sends_an_anonymous_visitor_to_the_login(client):
    assert client.get("/reports/").url.startswith("/admin/login/")


# Query counts


def test_it_runs_as_many_queries_for_50_orders_as_for_5(operator_client, products, send):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator_client.get("/reports/", QUERY).status_code == 200
        return len(captured)

    brands = list(products.values())
    for i in range(5):
        send(brands[i % 4], when=at(1 + i % 3), cost=Decimal("5"), codes=1)
    few = queries()
    for i in range(45):
        send(brands[i % 4], when=at(1 + i % 3), cost=Decimal("5"), codes=1,
             status=(S.COMPLETED, S.FAILED, S.PARTIALLY_COMPLETED)[i % 3])
    assert queries() == few


# The charts module


def test_it_escapes_every_label_of_a_chart():
    svg = charts.stacked_bars(
        label='Spend "x"', categories=["<m>"], value_text=str,
        series=[charts.Series("<b>&", [Decimal("1.5")])])
    assert "<b>" not in svg and "<m>" not in svg
    assert "&lt;b&gt;&amp;" in svg and 'aria-label="Spend &quot;x&quot;"' in svg
    bars = charts.horizontal_bars(label="Brands", labels=["<i>"], values=[Decimal(3)],
                                  value_text=str)
    assert "<i>" not in bars and "<title>&lt;i&gt;: 3</title>" in bars
