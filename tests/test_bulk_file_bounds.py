"""Hostile bulk files: an XLSX that unpacks to hundreds of megabytes, one that jumps to row ten
million, millions of tiny shared strings, a DTD, cells longer than any order line, a request
body far over the limit. Each is refused with a clear error, in bounded time and memory, and
nothing is kept."""

import io
import tracemalloc
import zipfile

import pytest
from django.urls import reverse

from orders import bulk
from orders.models import BulkUpload
from tests.test_bulk_orders import buyer, orderer, upload, xlsx_of  # noqa: F401

pytestmark = pytest.mark.django_db

SHEET = "xl/worksheets/sheet1.xml"
STRINGS = "xl/sharedStrings.xml"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def with_part(xlsx: bytes, name: str, content: bytes) -> bytes:
    """``xlsx`` with its part ``name`` replaced (or added), compressed as Excel would."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for part in source.infolist():
            if part.filename != name:
                target.writestr(part, source.read(part))
        target.writestr(name, content)
    return out.getvalue()


def one_string(length: int) -> bytes:
    return (f'<sst xmlns="{MAIN}" count="1" uniqueCount="1"><si><t>'.encode()
            + b"A" * length + b"</t></si></sst>")


def many_strings(count: int) -> bytes:
    return (f'<sst xmlns="{MAIN}" count="{count}" uniqueCount="{count}">'.encode()
            + b"<si><t>x</t></si>" * count + b"</sst>")


def far_row(number: int) -> bytes:
    return (f'<worksheet xmlns="{MAIN}"><sheetData>'
            f'<row r="1"><c r="A1" t="inlineStr"><is><t>item</t></is></c>'
            f'<c r="B1" t="inlineStr"><is><t>quantity</t></is></c></row>'
            f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>Amazon</t></is></c>'
            f'<c r="B{number}"><v>1</v></c></row></sheetData></worksheet>').encode()


DTD = (b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "aaaaaaaaaa">'
       b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
       + f'<sst xmlns="{MAIN}"><si><t>&b;</t></si></sst>'.encode())

BOMBS = [
    ("a 200 MB string", lambda: with_part(xlsx_of(["Amazon", "", "10", "1"]), STRINGS,
                                           one_string(200 * 2**20)), "once unpacked"),
    ("row ten million", lambda: with_part(xlsx_of(), SHEET, far_row(10_000_000)),
     "runs past line"),
    ("five million strings", lambda: with_part(xlsx_of(["Amazon", "", "10", "1"]), STRINGS,
                                               many_strings(5_000_000)), "once unpacked"),
    ("a DTD", lambda: with_part(xlsx_of(["Amazon", "", "10", "1"]), STRINGS, DTD),
     "declares a DTD"),
    ("a 5,000-character cell", lambda: xlsx_of(["A" * 5000, "", "10", "1"]),
     "longer than 1000 characters"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("kind", "make", "message"), BOMBS, ids=[b[0] for b in BOMBS])
def test_it_refuses_a_hostile_workbook_in_bounded_memory(buyer, kind, make, message):  # noqa: F811
    data = make()
    assert len(data) < 2 * 2**20  # each fits under BULK_MAX_BYTES as sent
    tracemalloc.start()
    try:
        with pytest.raises(bulk.BadFile, match=message):
            bulk.create_upload(user=buyer, name="lines.xlsx", data=data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"reading it took {peak / 2**20:.0f} MB"
    assert not BulkUpload.objects.exists()


def test_it_answers_a_dtd_with_a_field_error_not_a_500(client, buyer):  # noqa: F811
    response = upload(client, with_part(xlsx_of(["Amazon", "", "10", "1"]), STRINGS, DTD),
                      "lines.xlsx")
    assert response.status_code == 400
    assert any("DTD" in error for error in response.context["form"].errors["file"])


def test_it_refuses_a_csv_cell_longer_than_any_order_line(buyer):  # noqa: F811
    with pytest.raises(bulk.BadFile, match="Row 2: the note cell is longer"):
        bulk.create_upload(user=buyer, name="lines.csv",
                           data=b"item,quantity,note\nAmazon,1," + b"n" * 1001 + b"\n")
    assert not BulkUpload.objects.exists()


def test_it_refuses_a_body_over_the_limit_before_reading_it(client, buyer, settings):  # noqa: F811
    """Django would spool the whole body to disk while the CSRF check reads the form."""
    body = b"x" * (settings.REQUEST_MAX_BYTES + 1)
    response = client.generic("POST", reverse("orders:bulk_upload"), body,
                              content_type="multipart/form-data; boundary=nothing")
    assert response.status_code == 413
    assert f"{settings.BULK_MAX_BYTES // 1024} KB" in response.content.decode()
    assert not BulkUpload.objects.exists()
