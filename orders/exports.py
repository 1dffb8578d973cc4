"""CSV export of codes: with the reveal service, the only place that decrypts them.

``export_csv`` checks every permission and writes its audit event before it returns, so a
refusal is a clean 403 and every export that starts streaming is already on record.
"""

import csv
from collections.abc import Iterator, Sequence
from itertools import islice

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import CharField, DateField, QuerySet
from django.db.models.functions import Cast

from audit import services as audit
from common.crypto import Keyring, default_keyring
from orders import services
from orders.custody import open_field
from orders.models import Order, VendorOrder, Voucher
from orders.pricing import codes

COLUMNS = ["order reference", "placed at", "vendor", "product", "SKU", "face value",
           "currency", "code", "PIN", "serial", "expiry"]
BOM = "\ufeff"
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Vouchers fetched at a time (a server-side cursor on PostgreSQL), and written to one piece
# of the streamed CSV: the memory an export holds whatever its size.
CHUNK = 2000
# Rows of CSV in each piece that csv_stream yields.
ROWS_PER_PIECE = 500
# How many order references an export's audit row names (the count is always exact).
AUDITED_REFERENCES = 1000


def neutralise(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_csv(*, orders_queryset: QuerySet[Order], user) -> Iterator[str]:
    """Check, audit, then give the CSV text (UTF-8 BOM and header first) of every code of
    the orders, in pieces. Raises PermissionDenied before anything is written or streamed."""
    if not services.can_export(user):
        raise PermissionDenied("You may not export codes.")
    orders = orders_queryset.order_by()
    order_count, single, references, order_ids = 0, None, [], []
    for order in orders.only("pk", "reference", "placed_by_id").iterator(chunk_size=CHUNK):
        if not services.can_export(user, order):
            raise PermissionDenied(f"You may not see the codes of order {order.reference}.")
        order_count += 1
        single = order
        if order_count <= AUDITED_REFERENCES:
            references.append(order.reference)
            order_ids.append(order.pk)
    vouchers = Voucher.objects.filter(order__in=orders.values("pk"))
    with transaction.atomic():
        code_count = vouchers.count()
        one = single if order_count == 1 else None
        audit.record(
            action=audit.Action.EXPORTED, target=one, actor=user, order=one,
            message=f"Exported {codes(code_count)} of {order_count} orders: "
            f"{', '.join(references)}",
            data={"orders": order_count, "codes": code_count, "order_ids": order_ids,
                  "references": references},
        )
    return _csv(vouchers)


def _csv(vouchers: QuerySet[Voucher]) -> Iterator[str]:
    """The BOM and the header, then the rows of the vouchers as CSV text, one piece to a
    chunk. A voucher is read as plain columns; the columns of its order and of its supplier
    order (with its line and product) are written once a chunk, from one query each, and
    only the code and PIN are decrypted."""
    yield BOM + _csv_line(COLUMNS)
    keyring = default_keyring()
    # The id is read as text and the expiry as its date, which load several times faster
    # than a UUID and an aware datetime. The date is the UTC one: SQLite holds UTC times and
    # Django sets a PostgreSQL connection's time zone to UTC.
    stream = vouchers.order_by("order__created_at", "order_id", "created_at", "id").values_list(
        "order_id", "vendor_order_id", Cast("id", CharField()), "code_encrypted",
        "pin_encrypted", "serial", Cast("expires_at", DateField()),
    ).iterator(chunk_size=CHUNK)
    while chunk := list(islice(stream, CHUNK)):
        orders = _order_columns({row[0] for row in chunk})
        supplier_orders = _supplier_order_columns({row[1] for row in chunk})
        lines = _Lines()
        csv.writer(lines).writerows(_voucher_columns(chunk, keyring))
        yield "".join(orders[row[0]] + supplier_orders[row[1]] + line
                      for row, line in zip(chunk, lines, strict=True))


def _voucher_columns(chunk: list[tuple], keyring: Keyring) -> Iterator[tuple[str, ...]]:
    """Code, PIN, serial and expiry of each voucher of the chunk."""
    for _, _, id_text, code, pin, serial, expiry in chunk:
        voucher_id = _hyphenated(id_text)
        yield (
            neutralise(open_field(voucher_id, "code", code, keyring=keyring)),
            neutralise(open_field(voucher_id, "pin", pin, keyring=keyring)),
            neutralise(serial),
            expiry.isoformat() if expiry else "",
        )


def _hyphenated(id_text: str) -> str:
    """A UUID as ``str(uuid)`` writes it, from its text in the database: PostgreSQL's is
    that already, SQLite holds the 32 hex digits (lower case, as Django writes them)."""
    if len(id_text) == 36:
        return id_text
    return f"{id_text[:8]}-{id_text[8:12]}-{id_text[12:16]}-{id_text[16:20]}-{id_text[20:]}"


def _order_columns(ids: set[int]) -> dict[int, str]:
    """Reference and placing time of each order, as the start of a CSV row."""
    found = Order.objects.filter(pk__in=ids).order_by().values_list(
        "pk", "reference", "created_at")
    return {pk: _csv_cells((reference, placed.isoformat(timespec="seconds")))
            for pk, reference, placed in found}


def _supplier_order_columns(ids: set[int]) -> dict[int, str]:
    """Vendor, product, SKU, face value and currency of each supplier order, as the middle
    of a CSV row."""
    found = VendorOrder.objects.filter(pk__in=ids).order_by().values_list(
        "pk", "vendor__name", "line__product__name", "line__product__sku",
        "line__product__supplier_product_id", "line__face_value", "line__product__face_value",
        "line__product__face_currency", "line__currency",
    )
    return {pk: _csv_cells((
        vendor, product, sku or supplier_product_id,
        line_face_value if line_face_value is not None else product_face_value,
        face_currency or line_currency,
    )) for pk, vendor, product, sku, supplier_product_id, line_face_value, product_face_value,
        face_currency, line_currency in found}


class _Lines(list):
    """Where a ``csv.writer`` puts each line it writes."""

    write = list.append


def _csv_line(values: Sequence[str]) -> str:
    lines = _Lines()
    csv.writer(lines).writerow(values)
    return lines[0]


def _csv_cells(values: Sequence[object]) -> str:
    """Neutralised values as CSV cells, each followed by its comma: the same text as they
    have in a whole row, since the csv module quotes each field on its own."""
    return _csv_line([neutralise(value) for value in values]).removesuffix("\r\n") + ","


def csv_stream(rows: Iterator[Sequence[str]]) -> Iterator[str]:
    """Rows as CSV text, UTF-8 BOM first so that Excel reads the file as UTF-8, written
    ``ROWS_PER_PIECE`` to a piece: for the other exports (the audit trail's)."""
    yield BOM
    while piece := list(islice(rows, ROWS_PER_PIECE)):
        lines = _Lines()
        csv.writer(lines).writerows(piece)
        yield "".join(lines)
