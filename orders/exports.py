"""CSV export of codes: with the reveal service, the only place that decrypts them.

``export_rows`` checks every permission and writes its audit event before it returns, so a
refusal is a clean 403 and every export that starts streaming is already on record.
"""

import csv
from collections.abc import Iterator

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet

from audit import services as audit
from orders import services
from orders.custody import open_voucher
from orders.models import Order, Voucher
from orders.pricing import codes

COLUMNS = ["order reference", "placed at", "vendor", "product", "SKU", "face value",
           "currency", "code", "PIN", "serial", "expiry"]
BOM = "\ufeff"
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 500
# How many order references an export's audit row names (the count is always exact).
AUDITED_REFERENCES = 1000


def neutralise(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_rows(*, orders_queryset: QuerySet[Order], user) -> Iterator[list[str]]:
    """Check, audit, then give an iterator of rows (header first) of every code of the
    orders. Raises PermissionDenied before anything is written or streamed."""
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
    return _rows(vouchers)


def _rows(vouchers: QuerySet[Voucher]) -> Iterator[list[str]]:
    yield COLUMNS
    rows = vouchers.select_related(
        "order", "vendor_order__vendor", "vendor_order__line__product"
    ).order_by("order__created_at", "order_id", "created_at", "id")
    for voucher in rows.iterator(chunk_size=CHUNK):
        line = voucher.vendor_order.line
        product = line.product
        secrets = open_voucher(voucher)
        yield [neutralise(value) for value in (
            voucher.order.reference,
            voucher.order.created_at.isoformat(timespec="seconds"),
            voucher.vendor_order.vendor.name,
            product.name,
            product.sku or product.supplier_product_id,
            line.face_value if line.face_value is not None else product.face_value,
            product.face_currency or line.currency,
            secrets.code,
            secrets.pin,
            voucher.serial,
            voucher.expires_at.date().isoformat() if voucher.expires_at else "",
        )]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(rows: Iterator[list[str]]) -> Iterator[str]:
    """The rows as CSV text, UTF-8 BOM first so that Excel reads the file as UTF-8."""
    writer = csv.writer(_Echo())
    yield BOM
    for row in rows:
        yield writer.writerow(row)
