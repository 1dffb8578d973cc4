"""Bulk orders from a file: read a CSV or XLSX of order lines, preview it, place it.

A file has a header row and one order line per row, in the columns of ``COLUMNS``: ``item``
(a catalog item's id or exact name, case-insensitive) or ``sku`` (a supplier product's SKU or
supplier product id, which pins that offer), ``face_value``, ``quantity``, and optionally
``note`` and ``reference`` (the buyer's own reference for the line). ``read_file`` turns the
bytes into rows of strings, or refuses the whole file (``BadFile``); ``create_upload`` keeps
them as a ``BulkUpload`` with the file's digest, and nothing else happens until a person
confirms the preview.

``preview`` validates every row and routes the valid ones with one ``pricing.Router`` over
the items of the whole file, in the file's order: each routed row takes its total off the
balance it draws on, so a later row sees what earlier ones left. It reads the items, the
pinned products, the offers and balances in bulk: the number of queries does not grow with
the rows. ``place`` routes the rows again and places them (``services.place_lines``: one
order per currency, in one transaction) only when every row is valid, the routes are those
the preview showed (``pricing.routes_fingerprint``), and a file placed before in the last
``BULK_DUPLICATE_DAYS`` was confirmed again.

Row numbers are the file's own (the header is row 1). File contents are never logged.

Dependency order: a command module beside ``orders.services``, which it calls to place; the
pages (``orders.bulk_views``) import it, nothing of the engine does.
"""

import csv
import hashlib
import io
import time
import zipfile
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import ParseError

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from common.money import MONEY_MAX
from orders import pricing, services
from orders.errors import OrderError
from orders.models import BulkUpload, Order
from orders.pricing import PricedLine
from vendors.models import CatalogItem, Product

COLUMNS = ("item", "sku", "face_value", "quantity", "note", "reference")
# The columns a file must have: quantity, and item or sku (face_value may be left out of a
# file of fixed-value items; note and reference are optional).
REQUIRED = ("quantity",)
ONE_OF = ("item", "sku")
NOTE_MAX = 300
REFERENCE_MAX = 64
# XLSX cells beyond this column are not read: a file of order lines needs a few.
XLSX_MAX_COLUMNS = 30
XLSX_MAX_PARTS = 100  # files in the zip; a workbook of one sheet has about ten
# The longest cell of a column read (a note is at most NOTE_MAX): anything longer is no order
# line, and is refused before the file's rows are kept.
CELL_MAX = 1000
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BadFile(Exception):
    """The file cannot be read as order lines: nothing is kept of it."""


class RoutesChanged(OrderError):
    """The rows are no longer routed as the preview showed them."""


class PlacedBefore(OrderError):
    """The same file was placed in the last ``BULK_DUPLICATE_DAYS`` and not confirmed again."""


# Reading a file


Row = dict[str, str]


def read_file(*, name: str, data: bytes) -> list[Row]:
    """The file's data rows as dicts of strings (``COLUMNS`` and ``"row"``, the row's number
    in the file), blank rows left out; ``BadFile`` saying why the file cannot be used."""
    if len(data) > settings.BULK_MAX_BYTES:
        raise BadFile(f"The file is larger than {settings.BULK_MAX_BYTES // 1024} KB: split "
                      "it into smaller files.")
    if not data:
        raise BadFile("The file is empty.")
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind == "xlsx":
        table = _xlsx_rows(data)
    elif kind in ("csv", "txt"):
        table = _csv_rows(data)
    else:
        raise BadFile("Upload a CSV (.csv) or Excel (.xlsx) file.")
    return _rows(table)


def _csv_rows(data: bytes):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadFile("The file is not a UTF-8 CSV: save it as \"CSV UTF-8\" and upload it "
                      "again.") from None
    if "\x00" in text:
        raise BadFile("The file is not a CSV file.")
    first = text.split("\n", 1)[0]
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    except csv.Error as exc:
        raise BadFile(f"The file is not a readable CSV: {exc}.") from None


def _check_xlsx_archive(data: bytes) -> None:
    """Refuse a workbook whose parts unpack to more than ``BULK_MAX_XLSX_BYTES`` (a zip
    member is never read past the size it declares), or whose XML declares a DTD (entities
    that expand, or a parser error), before openpyxl reads a byte of it."""
    unreadable = BadFile("The file is not a readable Excel (.xlsx) workbook.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise unreadable from None
    with archive:
        parts = archive.infolist()
        if len(parts) > XLSX_MAX_PARTS:
            raise unreadable
        if sum(part.file_size for part in parts) > settings.BULK_MAX_XLSX_BYTES:
            raise BadFile(f"The workbook holds more than "
                          f"{settings.BULK_MAX_XLSX_BYTES // 2**20} MB once unpacked: save "
                          "only the order lines, or split it into smaller files.")
        for part in parts:
            if not part.filename.endswith((".xml", ".rels")):
                continue
            try:
                xml = archive.read(part)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
                raise unreadable from None
            # Excel writes UTF-8; another encoding could hide a DTD from the search below.
            if xml.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in xml[:200]:
                raise unreadable
            if b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
                raise BadFile("The workbook declares a DTD, which Excel never writes: save it "
                              "again from a spreadsheet program.")


def _xlsx_rows(data: bytes):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    _check_xlsx_archive(data)
    unreadable = BadFile("The file is not a readable Excel (.xlsx) workbook.")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError,
            ParseError):
        raise unreadable from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise BadFile("The workbook has no sheet.")
        for values in sheet.iter_rows(max_col=XLSX_MAX_COLUMNS, values_only=True):
            yield [_cell_text(value) for value in values]
    except (zipfile.BadZipFile, KeyError, ValueError, ParseError):
        raise unreadable from None
    finally:
        book.close()


def _cell_text(value: object) -> str:
    """A spreadsheet cell as the text a CSV would hold: 10 for 10.0, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _column_name(header: str) -> str:
    return header.strip().lower().replace(" ", "_").replace("-", "_")


def _rows(table) -> list[Row]:
    """The data rows of ``table``, bounded: every line of the file counts against the row
    limit (a spreadsheet's blank rows too, up to as many again), each cell read against
    ``CELL_MAX``, the whole against ``BULK_READ_SECONDS``."""
    rows: list[Row] = []
    columns: list[str] | None = None
    last_line = 2 * settings.BULK_MAX_ROWS + 1
    deadline = time.monotonic() + settings.BULK_READ_SECONDS
    for number, cells in enumerate(table, start=1):
        if number > last_line:
            raise BadFile(f"The file runs past line {last_line} (blank lines count): keep "
                          f"at most {settings.BULK_MAX_ROWS} rows, without gaps.")
        if time.monotonic() > deadline:
            raise BadFile("The file takes too long to read: save only the order lines, or "
                          "split it into smaller files.")
        if columns is None:
            columns = [_column_name(cell) for cell in cells]
            missing = [c for c in REQUIRED if c not in columns]
            if not any(c in columns for c in ONE_OF):
                missing.insert(0, " or ".join(ONE_OF))
            if missing:
                raise BadFile(f"The first row must name the columns; missing: "
                              f"{', '.join(missing)}. Download the template to see them.")
            continue
        values = {col: cell.strip() for col, cell in zip(columns, cells, strict=False)
                  if col in COLUMNS}
        if long := next((col for col, value in values.items() if len(value) > CELL_MAX), None):
            raise BadFile(f"Row {number}: the {long} cell is longer than {CELL_MAX} "
                          "characters.")
        if not any(values.values()):
            continue
        if len(rows) >= settings.BULK_MAX_ROWS:
            raise BadFile(f"The file has more than {settings.BULK_MAX_ROWS} rows: split it "
                          "into smaller files.")
        rows.append({"row": str(number), **{col: values.get(col, "") for col in COLUMNS}})
    if columns is None:
        raise BadFile("The file is empty.")
    if not rows:
        raise BadFile("The file has a header but no rows to order.")
    return rows


def create_upload(*, user, name: str, data: bytes) -> BulkUpload:
    """Read the file and keep its rows for the preview; ``BadFile`` keeps nothing."""
    if not services.can_order(user):
        raise PermissionDenied("You may not place orders.")
    rows = read_file(name=name, data=data)
    return BulkUpload.objects.create(user=user, filename=name[:255],
                                     digest=hashlib.sha256(data).hexdigest(), rows=rows)


# The template


def template_rows() -> list[list[str]]:
    """The header and up to three examples from the catalog's available items: one by name,
    one by id, one by an offer's SKU."""
    offers = Product.objects.filter(
        available=True, vendor__enabled=True, cost__isnull=False, item__isnull=False,
    ).select_related("item").order_by("item__name", "cost", "pk")[:100]
    seen: dict[int, Product] = {}
    for offer in offers:
        seen.setdefault(offer.item_id, offer)
        if len(seen) == 3:
            break
    rows = [list(COLUMNS)]
    for n, offer in enumerate(seen.values()):
        item = offer.item
        value = item.face_value if item.face_value is not None else (
            offer.min_value if offer.min_value is not None else offer.face_value)
        by = ([_neutralise(item.name), ""], [str(item.pk), ""],
              ["", _neutralise(offer.sku or offer.supplier_product_id)])[n]
        rows.append([*by, _plain(value), str(n + 1), f"Example {n + 1}", f"REF-{n + 1}"])
    return rows


def template_csv() -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(template_rows())
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Order lines"
    for row in template_rows():
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _neutralise(text: str) -> str:
    """A spreadsheet must not take a supplier's name for a formula; read back as written."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def _unneutralise(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_PREFIXES) \
        else text


def _plain(value: Decimal | None) -> str:
    if value is None:
        return ""
    return format(value.normalize(), "f")


# The preview


@dataclass(frozen=True)
class PreviewRow:
    """One row of the file: its line as routed, or why it cannot be ordered."""

    number: int
    values: Row
    item: CatalogItem | None = None
    line: PricedLine | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.line is not None and not self.errors


@dataclass(frozen=True)
class Preview:
    upload: BulkUpload
    rows: list[PreviewRow]
    totals: list[pricing.CurrencyTotal]
    balances: list[pricing.BalanceAfter]
    # Orders placed from the same file (same digest) by the same user within
    # BULK_DUPLICATE_DAYS: placing again needs a second confirmation.
    placed_before: list[Order] = field(default_factory=list)

    @property
    def errors(self) -> list[PreviewRow]:
        return [row for row in self.rows if not row.ok]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.errors

    @property
    def priced(self) -> list[PricedLine]:
        return [row.line for row in self.rows if row.line is not None]

    @property
    def fingerprint(self) -> str:
        return pricing.routes_fingerprint(self.priced)


def preview(*, upload: BulkUpload, user) -> Preview:
    """Validate and route every row of ``upload`` as placing would, with the totals per
    currency, the balances after and why an order would wait for approval. A fixed number
    of queries, whatever the number of rows."""
    rows = upload.rows
    items_by_id, items_by_name = _items(rows)
    products = _products(rows)
    checked = [_check(row, items_by_id, items_by_name, products) for row in rows]
    router = pricing.Router.for_items(
        {row.item.pk for row in checked if row.item is not None and not row.errors})
    checked = _range_errors(checked, router)
    routed = []
    for row in checked:
        if row.errors or row.item is None:
            routed.append(row.result())
            continue
        pinned, quantity, face_value = row.line_args
        try:
            line = router.route(item=row.item, quantity=quantity, face_value=face_value,
                                pinned=pinned)
        except OrderError as exc:
            routed.append(row.result(errors=(exc.message,)))
            continue
        line = replace(line, note=row.values.get("note", ""),
                       reference=row.values.get("reference", ""))
        routed.append(row.result(line=line))
    lines = [row.line for row in routed if row.line is not None]
    return Preview(upload=upload, rows=routed, totals=pricing.currency_totals(lines, user),
                   balances=pricing.balances_after(lines, router),
                   placed_before=placed_before(upload=upload, user=user))


@dataclass(frozen=True)
class _Checked:
    """A row read and checked, before routing."""

    number: int
    values: Row
    item: CatalogItem | None
    errors: tuple[str, ...]
    line_args: tuple[Product | None, int, Decimal | None]

    def result(self, *, line: PricedLine | None = None,
               errors: tuple[str, ...] = ()) -> PreviewRow:
        return PreviewRow(number=self.number, values=self.values, item=self.item, line=line,
                          errors=self.errors + errors)


def _items(rows: list[Row]) -> tuple[dict[int, CatalogItem], dict[str, list[CatalogItem]]]:
    """The items the rows name, by id and by lower-case name: two queries."""
    ids, names = set(), set()
    for row in rows:
        named = _unneutralise(row.get("item", ""))
        if named.isdigit():
            ids.add(int(named))
        if named:
            names.add(named.lower())
    by_id = {item.pk: item for item in CatalogItem.objects.filter(pk__in=ids)} if ids else {}
    by_name: dict[str, list[CatalogItem]] = {}
    if names:
        for item in CatalogItem.objects.annotate(lower_name=Lower("name")).filter(
                lower_name__in=names).order_by("pk"):
            by_name.setdefault(item.name.lower(), []).append(item)
    return by_id, by_name


def _products(rows: list[Row]) -> dict[str, list[Product]]:
    """The products the rows' SKUs name, by SKU and by supplier product id: one query."""
    skus = {_unneutralise(row["sku"]) for row in rows if row.get("sku")}
    found: dict[str, list[Product]] = {}
    if not skus:
        return found
    for product in Product.objects.filter(
            Q(sku__in=skus) | Q(supplier_product_id__in=skus)).select_related(
            "vendor", "item").order_by("vendor__name", "pk"):
        for key in {product.sku, product.supplier_product_id} & skus:
            found.setdefault(key, []).append(product)
    return found


def _check(row: Row, items_by_id: dict[int, CatalogItem],
           items_by_name: dict[str, list[CatalogItem]],
           products: dict[str, list[Product]]) -> _Checked:
    errors: list[str] = []
    quantity = _quantity(row.get("quantity", ""), errors)
    face_value = _face_value(row.get("face_value", ""), errors)
    if len(row.get("note", "")) > NOTE_MAX:
        errors.append(f"The note is longer than {NOTE_MAX} characters.")
    if len(row.get("reference", "")) > REFERENCE_MAX:
        errors.append(f"The reference is longer than {REFERENCE_MAX} characters.")
    named, sku = _unneutralise(row.get("item", "")), _unneutralise(row.get("sku", ""))
    item, pinned = None, None
    if not named and not sku:
        errors.append("Give an item (its id or name) or a SKU.")
    if named:
        item = _item_named(named, items_by_id, items_by_name, errors)
    if sku:
        pinned = _pinned(sku, item, products.get(sku, []), errors)
        if pinned is not None:
            if pinned.item is None:
                errors.append(f"SKU {sku} ({pinned.vendor}) is matched to no catalog item.")
            elif item is None and not named:
                item = pinned.item
            elif item is not None and pinned.item_id != item.pk:
                errors.append(f"SKU {sku} is an offer of {pinned.item}, not of {item}: give "
                              "one of them, or two that agree.")
    if item is not None and face_value is not None and not errors:
        _check_face_value(item, face_value, errors)
    return _Checked(number=int(row.get("row", 0)), values=row, item=item,
                    errors=tuple(errors), line_args=(pinned, quantity or 0, face_value))


def _quantity(text: str, errors: list[str]) -> int | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        errors.append(f"Quantity {text!r} is not a whole number." if text
                      else "Give a quantity.")
        return None
    if not 1 <= number <= settings.ORDER_MAX_QUANTITY:
        errors.append(f"Quantity must be from 1 to {settings.ORDER_MAX_QUANTITY}, not "
                      f"{int(number)}.")
        return None
    return int(number)


def _face_value(text: str, errors: list[str]) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        errors.append(f"Face value {text!r} is not a positive number.")
        return None
    if value > MONEY_MAX:
        errors.append(f"Face value {text!r} is larger than {MONEY_MAX:,}.")
        return None
    return value


def _item_named(named: str, items_by_id: dict[int, CatalogItem],
                items_by_name: dict[str, list[CatalogItem]],
                errors: list[str]) -> CatalogItem | None:
    if named.isdigit() and int(named) in items_by_id:
        return items_by_id[int(named)]
    same_name = items_by_name.get(named.lower(), [])
    if len(same_name) == 1:
        return same_name[0]
    if same_name:
        errors.append(f"{len(same_name)} catalog items are named {named!r}: give the item's "
                      f"id ({', '.join(str(item.pk) for item in same_name)}).")
    else:
        errors.append(f"Unknown item {named!r}: give a catalog item's id or exact name.")
    return None


def _pinned(sku: str, item: CatalogItem | None, candidates: list[Product],
            errors: list[str]) -> Product | None:
    if item is not None and len(candidates) > 1:
        candidates = [p for p in candidates if p.item_id == item.pk] or candidates
    if not candidates:
        errors.append(f"Unknown SKU {sku!r}: give a supplier product's SKU or id.")
        return None
    if len(candidates) > 1:
        errors.append(f"SKU {sku!r} names {len(candidates)} offers ("
                      f"{', '.join(str(p.vendor) for p in candidates)}): give the item "
                      "instead, or the supplier product id.")
        return None
    return candidates[0]


def _check_face_value(item: CatalogItem, face_value: Decimal, errors: list[str]) -> None:
    """A fixed item's own value, or within the range of its offers (the router checks each
    offer's own range and steps)."""
    if item.face_value is not None:
        if face_value != item.face_value:
            errors.append(f"{item} has the face value {_plain(item.face_value)}, not "
                          f"{_plain(face_value)}.")


def _range_errors(rows: list[_Checked], router: pricing.Router) -> list[_Checked]:
    """Rows of range items whose face value no offer's range takes, said as such."""
    checked = []
    for row in rows:
        pinned, _, face_value = row.line_args
        item = row.item
        if row.errors or item is None or item.face_value is not None or face_value is None:
            checked.append(row)
            continue
        offers = [o for o in ([pinned] if pinned is not None else router.offers_of(item))
                  if o.available and o.vendor.enabled]
        if not offers:
            checked.append(row)
            continue
        lows = [o.min_value for o in offers if o.min_value is not None]
        highs = [o.max_value for o in offers if o.max_value is not None]
        low = min(lows) if len(lows) == len(offers) and lows else None
        high = max(highs) if len(highs) == len(offers) and highs else None
        if (low is not None and face_value < low) or (high is not None and face_value > high):
            checked.append(replace(row, errors=(
                f"Face value {_plain(face_value)} is outside the offers' range "
                f"{_plain(low)} to {_plain(high)}.",)))
        else:
            checked.append(row)
    return checked


def placed_before(*, upload: BulkUpload, user) -> list[Order]:
    """The orders ``user`` placed from a file with the same digest in the last
    ``BULK_DUPLICATE_DAYS`` (this upload's own, once placed, among them)."""
    since = timezone.now() - timedelta(days=settings.BULK_DUPLICATE_DAYS)
    return list(Order.objects.filter(
        placed_by=user, source_upload__user=user, source_upload__digest=upload.digest,
        source_upload__placed_at__gte=since,
    ).order_by("pk"))


# Placing


def place(*, upload: BulkUpload, user, fingerprint: str, confirmation_token: str,
          note: str = "", purchase_order: str = "", allow_other_suppliers: bool = True,
          place_again: bool = False) -> list[Order]:
    """Route the file's rows again and place them as one order per currency, each line with
    its note and reference, in one transaction with the upload's ``placed_at``.

    Refuses (OrderError) a file with errors; ``RoutesChanged`` when the routes are not those
    of ``fingerprint``; ``PlacedBefore`` when the same file was placed in the last
    ``BULK_DUPLICATE_DAYS`` and ``place_again`` is not set; ``services.AlreadyPlaced`` when
    ``confirmation_token`` (a confirmation's nonce) placed its orders already.
    """
    if upload.user_id != user.pk or not services.can_order(user):
        raise PermissionDenied("Only who uploaded a file may place it.")
    done = Order.objects.filter(confirmation_token=confirmation_token, placed_by=user).first()
    if done is not None:
        raise services.AlreadyPlaced(done)
    shown = preview(upload=upload, user=user)
    if not shown.ok:
        raise OrderError(f"{len(shown.errors)} rows of the file have errors: fix the file and "
                         "upload it again.")
    if shown.fingerprint != fingerprint:
        raise RoutesChanged("The routes or prices changed since the preview was shown: check "
                            "them and place the file again.")
    if shown.placed_before and not place_again:
        raise PlacedBefore("This file was placed already as "
                           f"{', '.join(o.reference for o in shown.placed_before)}: tick "
                           "\"Place it again\" to buy it a second time.")
    with transaction.atomic(durable=True):  # the command: its orders are placed once, here
        orders = services.place_lines(
            user=user, priced=shown.priced, note=note, purchase_order=purchase_order,
            confirmation_token=confirmation_token,
            allow_other_suppliers=allow_other_suppliers, source_upload=upload,
        )
        upload.placed_at = timezone.now()
        upload.save(update_fields=["placed_at"])
    return orders
