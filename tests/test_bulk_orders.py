"""Bulk orders from a file: reading CSV and XLSX, the preview's check of every row, routing
over the whole file, placing one order per currency once, the warning of a file placed
before, bad files, and a query count that does not grow with the rows."""

import csv
import io
import uuid
from decimal import Decimal

import openpyxl
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import bulk
from orders.models import BulkUpload, Order
from portal.roles import role_group
from tests.auth import log_in
from vendors import matching
from vendors.models import Balance, Product

pytestmark = pytest.mark.django_db


# The catalog: Amazon US 10 USD at two suppliers, Steam GB 20 GBP at one, an open-value
# Visa card (10 to 100 USD), an Xbox card only at a supplier short of balance, and an Apple
# card whose only offer is withdrawn.


@pytest.fixture
def offer(make_vendor):
    def make(*, vendor, brand, face, currency="USD", cost, sku="", country="US",
             **fields) -> Product:
        made = Product.objects.create(
            vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], sku=sku,
            name=fields.pop("name", f"{brand} {face or 'any'} {currency}"), brand=brand,
            country=country, face_value=Decimal(face) if face else None,
            face_currency=currency, cost=Decimal(cost), cost_currency=currency, **fields,
        )
        matching.match_offers([made])
        made.refresh_from_db()
        return made

    return make


@pytest.fixture
def catalog(make_vendor, offer):
    alpha, beta = make_vendor(name="Alpha"), make_vendor(name="Beta")
    short = make_vendor(name="Shorty")
    for vendor, currency, amount in ((alpha, "USD", "1000"), (alpha, "GBP", "1000"),
                                     (beta, "USD", "1000"), (short, "USD", "10")):
        Balance.objects.create(vendor=vendor, currency=currency, reported=Decimal(amount))
    amazon_a = offer(vendor=alpha, brand="Amazon", face="10", cost="9.50", sku="AMZ-A10")
    amazon_b = offer(vendor=beta, brand="Amazon", face="10", cost="9.40", sku="AMZ-B10")
    steam = offer(vendor=alpha, brand="Steam", face="20", currency="GBP", country="GB",
                  cost="19.00", sku="STM-20")
    visa = offer(vendor=alpha, brand="Visa", face=None, cost="1", sku="VISA-OPEN",
                 denomination_type=Product.DenominationType.OPEN, min_value=Decimal("10"),
                 max_value=Decimal("100"))
    xbox = offer(vendor=short, brand="Xbox", face="50", cost="48", sku="XBX-50")
    apple = offer(vendor=alpha, brand="Apple", face="25", cost="24", sku="APL-25",
                  available=False)
    assert amazon_a.item_id == amazon_b.item_id
    return {"amazon": amazon_a.item, "steam": steam.item, "visa": visa.item,
            "xbox": xbox.item, "apple": apple.item, "alpha": alpha, "beta": beta,
            "amazon_a": amazon_a, "amazon_b": amazon_b}


@pytest.fixture
def orderer(django_user_model):
    def make(name: str = "bulk-orderer"):
        user = django_user_model.objects.create_user(name, is_staff=True)
        user.groups.add(role_group("orderer"))
        return user

    return make


@pytest.fixture
def buyer(orderer, client):
    user = orderer()
    log_in(client, user)
    return user


def csv_of(*rows: list, header=("item", "sku", "face_value", "quantity", "note",
                                "reference")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_of(*rows: list, header=("item", "sku", "face_value", "quantity", "note",
                                 "reference")) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, data: bytes, name: str = "lines.csv"):
    return client.post(reverse("orders:bulk_upload"),
                       {"file": SimpleUploadedFile(name, data)})


def preview_of(client, data: bytes, name: str = "lines.csv"):
    response = upload(client, data, name)
    assert response.status_code == 302, response.content.decode()[:2000]
    return client.get(response["Location"])


def place_from(client, page, **fields):
    form = page.context["form"]
    upload_pk = page.context["upload"].pk
    data = {"confirmation": form["confirmation"].value(),
            "fingerprint": form["fingerprint"].value(), "allow_other_suppliers": "on",
            "note": "", "purchase_order": "", **fields}
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(reverse("orders:bulk_place", args=[upload_pk]), data)


def row_errors(page) -> dict[int, tuple[str, ...]]:
    return {row.number: row.errors for row in page.context["preview"].rows if row.errors}


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# Reading and routing


def test_it_routes_each_row_of_a_csv_to_the_cheapest_offer_or_the_pinned_one(client, buyer,
                                                                            catalog):
    page = preview_of(client, csv_of(
        [catalog["amazon"].name, "", "10", "2", "for Ann", "R-1"],
        ["", "AMZ-A10", "10", "1", "", "R-2"],
        [str(catalog["steam"].pk), "", "", "3", "", ""],
        [catalog["visa"].name.upper(), "", "55", "1", "", ""],
    ))
    assert page.status_code == 200
    preview = page.context["preview"]
    assert preview.ok, row_errors(page)
    lines = [row.line for row in preview.rows]
    assert [line.product.vendor.name for line in lines] == ["Beta", "Alpha", "Alpha", "Alpha"]
    assert [row.number for row in preview.rows] == [2, 3, 4, 5]
    assert (lines[0].note, lines[0].reference) == ("for Ann", "R-1")
    assert lines[3].face_value == Decimal("55") and lines[3].unit_cost == Decimal("55")
    totals = {t.currency: t.total for t in preview.totals}
    assert totals == {"USD": Decimal("9.40") * 2 + Decimal("9.50") + Decimal("55"),
                      "GBP": Decimal("57.00")}
    after = {(b.vendor.name, b.currency): b.after for b in preview.balances}
    assert after[("Beta", "USD")] == Decimal("1000") - Decimal("18.80")
    assert after[("Alpha", "GBP")] == Decimal("943.00")
    html = page.content.decode()
    assert 'id="bulk-place-form"' in html and "Allow other suppliers" in html


def test_it_reads_an_xlsx_with_numbers_as_numbers(client, buyer, catalog):
    page = preview_of(client, xlsx_of(
        [catalog["amazon"].name, None, 10, 2, "xlsx", "X-1"],
        [catalog["visa"].pk, None, 12.5, 1.0, None, None],
        [None, "STM-20", 20, 1, None, None],
    ), name="Lines.XLSX")
    preview = page.context["preview"]
    assert preview.ok, row_errors(page)
    assert [row.line.quantity for row in preview.rows] == [2, 1, 1]
    assert preview.rows[1].line.face_value == Decimal("12.5")
    assert preview.rows[0].line.reference == "X-1"


def test_it_lets_a_later_row_see_the_balance_earlier_rows_used(client, buyer, catalog):
    # Beta (cheaper) has 1000 USD: 100 codes at 9.40 is 940, the next 10 (94) no longer fit.
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "100", "", ""],
                                     [catalog["amazon"].name, "", "10", "10", "", ""]))
    vendors = [row.line.product.vendor.name for row in page.context["preview"].rows]
    assert vendors == ["Beta", "Alpha"]
    assert "skipped" in page.context["preview"].rows[1].line.routing_note


ERRORS = [
    ("unknown item", ["No such card", "", "10", "1"], "Unknown item"),
    ("unknown sku", ["", "NOPE-1", "10", "1"], "Unknown SKU"),
    ("item and sku disagree", ["{steam}", "AMZ-A10", "10", "1"], "is an offer of"),
    ("quantity not whole", ["{amazon}", "", "10", "1.5"], "not a whole number"),
    ("quantity not a number", ["{amazon}", "", "10", "two"], "not a whole number"),
    ("quantity zero", ["{amazon}", "", "10", "0"], "Quantity must be from 1 to"),
    ("quantity too large", ["{amazon}", "", "10", "1001"], "Quantity must be from 1 to"),
    ("face value not a number", ["{amazon}", "", "ten", "1"], "not a positive number"),
    ("face value too large", ["{visa}", "", "99999999999999.9999", "1"], "is larger than"),
    ("not the item's face value", ["{amazon}", "", "25", "1"], "has the face value 10"),
    ("outside the offers' range", ["{visa}", "", "500", "1"], "outside the offers' range"),
    ("range without a value", ["{visa}", "", "", "1"], "choose a face value"),
    ("no offer", ["{apple}", "", "25", "1"], "not available"),
    ("balance short", ["{xbox}", "", "50", "1"], "balance US$10.00"),
    ("neither item nor sku", ["", "", "10", "1"], "Give an item"),
    ("reference too long", ["{amazon}", "", "10", "1", "", "R" * 65], "reference is longer"),
]


@pytest.mark.parametrize(("kind", "cells", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_it_shows_each_kind_of_error_on_its_row(client, buyer, catalog, kind, cells, message):
    names = {key: catalog[key].name for key in ("amazon", "steam", "visa", "apple", "xbox")}
    bad = [cell.format(**names) for cell in cells]
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "1", "", ""], bad,
                                     ["", "AMZ-B10", "10", "1", "", ""]))
    errors = row_errors(page)
    assert list(errors) == [3], errors
    assert any(message in error for error in errors[3]), errors[3]
    html = page.content.decode()
    assert 'id="bulk-row-3" class="bulk-error"' in html
    assert 'id="bulk-place-form"' not in html and "fix the file" in html


def test_it_names_every_row_with_an_error_and_counts_them(client, buyer, catalog):
    rows = [[catalog["amazon"].name, "", "10", "1", "", ""] for _ in range(20)]
    for n in (2, 7, 19):
        rows[n][3] = "x"
    page = preview_of(client, csv_of(*rows))
    assert sorted(row_errors(page)) == [4, 9, 21]
    assert "3 rows of the file cannot be ordered" in page.content.decode()


# Placing


def test_it_places_one_order_per_currency_with_each_lines_note_and_reference(
        client, buyer, catalog):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "2", "gift", "R-1"],
                                     [catalog["steam"].name, "", "20", "1", "team", "R-2"],
                                     ["", "AMZ-A10", "10", "3", "", "R-3"]), name="q3.csv")
    response = place_from(client, page, note="Q3 gifts", purchase_order="PO-77")
    orders = list(Order.objects.filter(placed_by=buyer).order_by("pk"))
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:order_detail", args=[orders[0].pk])
    assert sorted(o.currency for o in orders) == ["GBP", "USD"]
    upload = BulkUpload.objects.get(user=buyer)
    assert upload.placed_at is not None
    for order in orders:
        assert order.source_upload == upload
        assert (order.note, order.purchase_order) == ("Q3 gifts", "PO-77")
        assert order.allow_other_suppliers
    lines = {line.reference: line for o in orders for line in o.lines.all()}
    assert (lines["R-1"].note, lines["R-1"].vendor.name, lines["R-1"].quantity) == (
        "gift", "Beta", 2)
    assert (lines["R-2"].note, lines["R-2"].currency) == ("team", "GBP")
    assert lines["R-3"].vendor.name == "Alpha" and lines["R-3"].item_id == catalog["amazon"].pk
    [message] = messages_of(response)
    assert all(order.reference in message for order in orders) and "q3.csv" in message


def test_it_places_without_other_suppliers_when_unticked(client, buyer, catalog):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "1", "", ""]))
    place_from(client, page, allow_other_suppliers=None)
    assert not Order.objects.get(placed_by=buyer).allow_other_suppliers


def test_it_refuses_a_route_changed_since_the_preview(client, buyer, catalog):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "2", "", ""]))
    Product.objects.filter(pk=catalog["amazon_b"].pk).update(cost=Decimal("9.60"))
    response = place_from(client, page)
    assert response.status_code == 409
    assert not Order.objects.exists()
    assert BulkUpload.objects.get().placed_at is None
    assert any("changed since the preview" in m for m in messages_of(response))
    # Shown again with the new route: placing that one works.
    assert response.context["preview"].rows[0].line.product.vendor.name == "Alpha"
    assert place_from(client, response).status_code == 302
    assert Order.objects.get().lines.get().vendor.name == "Alpha"


def test_it_does_not_place_twice_when_place_is_pressed_again(client, buyer, catalog):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "1", "", ""],
                                     [catalog["steam"].name, "", "20", "1", "", ""]))
    first = place_from(client, page)
    assert Order.objects.count() == 2
    again = place_from(client, page)
    assert Order.objects.count() == 2
    assert again.status_code == 302 and again["Location"] == first["Location"]
    assert any("already placed" in m for m in messages_of(again))


def test_it_never_places_a_file_with_errors(client, buyer, catalog):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "1", "", ""],
                                     ["Nothing", "", "10", "1", "", ""]))
    assert page.context["form"]["fingerprint"].value()
    response = place_from(client, page)
    assert response.status_code == 400 and not Order.objects.exists()


def test_it_warns_of_a_file_placed_before_and_asks_to_place_it_again(client, buyer, catalog):
    data = csv_of([catalog["amazon"].name, "", "10", "1", "", ""])
    first = preview_of(client, data)
    assert not first.context["preview"].placed_before
    place_from(client, first)
    [placed] = Order.objects.all()

    again = preview_of(client, data, name="same-bytes-other-name.csv")
    assert again.context["preview"].placed_before == [placed]
    html = again.content.decode()
    assert 'id="bulk-placed-before"' in html and placed.reference in html
    assert "Place it again" in html

    refused = place_from(client, again)
    assert refused.status_code == 409 and Order.objects.count() == 1
    assert any(placed.reference in m and "Place it again" in m for m in messages_of(refused))
    assert place_from(client, refused, place_again="on").status_code == 302
    assert Order.objects.count() == 2


def test_it_does_not_warn_of_another_users_file_or_one_placed_long_ago(client, buyer, catalog,
                                                                       orderer, settings):
    data = csv_of([catalog["amazon"].name, "", "10", "1", "", ""])
    place_from(client, preview_of(client, data))
    other = orderer("other-orderer")
    log_in(client, other)
    assert preview_of(client, data).context["preview"].placed_before == []
    log_in(client, buyer)
    BulkUpload.objects.update(placed_at="2000-01-01T00:00:00Z")
    assert preview_of(client, data).context["preview"].placed_before == []


def test_it_shows_and_places_an_upload_only_for_its_uploader(client, buyer, catalog, orderer):
    page = preview_of(client, csv_of([catalog["amazon"].name, "", "10", "1", "", ""]))
    log_in(client, orderer("someone-else"))
    upload_pk = page.context["upload"].pk
    assert client.get(reverse("orders:bulk_preview", args=[upload_pk])).status_code == 404
    assert place_from(client, page).status_code == 404
    assert not Order.objects.exists()


# Queries


def rows_of(count: int, catalog) -> bytes:
    kinds = [[catalog["amazon"].name, "", "10", "1"], [str(catalog["steam"].pk), "", "", "1"],
             ["", "AMZ-A10", "10", "1"], [catalog["visa"].name, "", "15", "1"],
             ["", "STM-20", "20", "1"]]
    return csv_of(*[[*kinds[n % len(kinds)], f"note {n}", f"R-{n}"] for n in range(count)])


def test_it_runs_as_many_queries_for_200_rows_as_for_10(client, buyer, catalog):
    Balance.objects.update(reported=Decimal("100000"))
    counts = {}
    for rows in (10, 200):
        made = bulk.create_upload(user=buyer, name="q.csv", data=rows_of(rows, catalog))
        with CaptureQueriesContext(connection) as queries:
            preview = bulk.preview(upload=made, user=buyer)
        assert preview.ok and len(preview.rows) == rows, [r.errors for r in preview.errors]
        with CaptureQueriesContext(connection) as page_queries:
            page = client.get(reverse("orders:bulk_preview", args=[made.pk]))
        assert page.status_code == 200
        counts[rows] = (len(queries), len(page_queries))
    assert counts[10] == counts[200], counts
    assert counts[10][0] <= 10, counts


# Bad files


BAD_FILES = [
    ("not csv or xlsx", "lines.pdf", b"%PDF-1.4", "CSV (.csv) or Excel (.xlsx)"),
    ("undecodable", "lines.csv", "item,quantity\ncafé,1\n".encode("latin-1"), "UTF-8"),
    ("missing columns", "lines.csv", b"name,count\nAmazon,1\n", "missing: item or sku"),
    ("no quantity column", "lines.csv", b"item,face_value\nAmazon,10\n", "missing: quantity"),
    ("empty", "lines.csv", b"", "empty"),
    ("header only", "lines.csv", b"item,sku,face_value,quantity\n", "no rows"),
    ("blank rows only", "lines.csv", b"item,quantity\n,\n , \n", "no rows"),
    ("not an xlsx", "lines.xlsx", b"item,quantity\nAmazon,1\n", "not a readable Excel"),
    ("too many rows", "lines.csv", b"item,quantity\n" + b"Amazon,1\n" * 6, "more than 5 rows"),
    ("too large", "lines.csv", b"item,quantity\n" + b"Amazon,1\n" * 200, "larger than 1 KB"),
]


@pytest.mark.parametrize(("kind", "name", "data", "message"), BAD_FILES,
                         ids=[b[0] for b in BAD_FILES])
def test_it_refuses_a_bad_file_with_a_clear_error_and_keeps_nothing(client, buyer, settings,
                                                                    kind, name, data, message):
    settings.BULK_MAX_ROWS, settings.BULK_MAX_BYTES = 5, 1024
    response = upload(client, data, name)
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    assert any(message in error for error in errors), errors
    assert not BulkUpload.objects.exists()


def test_it_refuses_a_bad_file_through_the_service_too(buyer):
    with pytest.raises(bulk.BadFile):
        bulk.create_upload(user=buyer, name="x.csv", data=b"nothing,here\n1,2\n")
    assert not BulkUpload.objects.exists()


def test_it_keeps_the_rows_digest_and_file_row_numbers(client, buyer, catalog):
    data = b"Item,SKU,Face Value,Quantity\n\nAmazon x,,10,1\n"
    response = upload(client, data, "a.csv")
    made = BulkUpload.objects.get()
    assert response["Location"] == reverse("orders:bulk_preview", args=[made.pk])
    assert made.user == buyer and made.filename == "a.csv" and len(made.digest) == 64
    assert made.rows == [{"row": "3", "item": "Amazon x", "sku": "", "face_value": "10",
                          "quantity": "1", "note": "", "reference": ""}]


# Templates


def test_it_offers_templates_with_examples_from_the_catalog_that_preview_cleanly(
        client, buyer, catalog):
    page = client.get(reverse("orders:bulk_upload")).content.decode()
    assert reverse("orders:bulk_template_csv") in page
    assert reverse("orders:bulk_template_xlsx") in page
    csv_file = client.get(reverse("orders:bulk_template_csv"))
    assert csv_file["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
    assert rows[0] == list(bulk.COLUMNS) and 2 <= len(rows) - 1 <= 3
    xlsx_file = client.get(reverse("orders:bulk_template_xlsx"))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_file.content), read_only=True).active
    assert [[c or "" for c in row] for row in sheet.iter_rows(values_only=True)] == rows
    for data, name in ((csv_file.content, "t.csv"), (xlsx_file.content, "t.xlsx")):
        preview = preview_of(client, data, name).context["preview"]
        assert preview.ok and len(preview.rows) == len(rows) - 1, preview.errors


def test_it_links_the_bulk_upload_from_the_new_order_page(client, buyer):
    page = client.get(reverse("orders:order_new")).content.decode()
    assert reverse("orders:bulk_upload") in page and "Bulk order from a file" in page
