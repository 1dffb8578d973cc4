# The fixtures imported from tests.browser are parameters of the tests here: not redefinitions.
# ruff: noqa: F811
"""A bulk order from a file in Chromium, against a live portal: upload 200 rows of which 5 are
bad, see each error on its row, upload the fixed file, place it, land on the order. Saves the
preview as the README's screenshot (docs/screenshots/bulk_preview.png)."""

import csv
import io
import re
import uuid
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from orders.models import BulkUpload, Order
from portal.paths import BASE_DIR
from portal.roles import role_group
from tests.browser import chromium, page  # noqa: F401
from vendors import matching
from vendors.models import Balance, Product

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ROWS = 200
BAD_ROWS = {3: "Unknown item", 6: "not a whole number", 9: "has the face value 25",
            12: "Unknown SKU", 15: "Quantity must be from 1 to"}  # row numbers in the file


@pytest.fixture(scope="module", autouse=True)
def allow_orm_beside_playwright():
    """As in tests/test_browser.py: Playwright's sync API keeps an event loop in the main
    thread, and every ORM call here is synchronous on that thread."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(autouse=True)
def no_console_errors(page):
    """No console error or CSP violation on any page visited."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield errors
    assert not errors, f"console errors on the pages visited: {errors}"


def offer(vendor, brand: str, face: str, cost: str, sku: str) -> Product:
    made = Product.objects.create(
        vendor=vendor, supplier_product_id=uuid.uuid4().hex[:8], sku=sku,
        name=f"{brand} {face} GBP", brand=brand, country="GB", face_value=Decimal(face),
        face_currency="GBP", cost=Decimal(cost), cost_currency="GBP")
    matching.match_offers([made])
    made.refresh_from_db()
    return made


def file_of(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["item", "sku", "face_value", "quantity", "note", "reference"])
    writer.writerows(rows)
    return out.getvalue().encode()


def lines(steam, amazon, *, broken: bool) -> list[list[str]]:
    rows = []
    for number in range(2, ROWS + 2):
        if number % 2:
            row = [steam.item.name, "", "25", "1", f"team {number}", f"R-{number}"]
        else:
            row = ["", amazon.sku, "10", "2", "", f"R-{number}"]
        if broken and number in BAD_ROWS:
            row = {3: ["Nosuch card", "", "25", "1", "", ""],
                   6: ["", amazon.sku, "10", "two", "", ""],
                   9: [steam.item.name, "", "50", "1", "", ""],
                   12: ["", "NO-SUCH-SKU", "10", "1", "", ""],
                   15: [steam.item.name, "", "25", "5000", "", ""]}[number]
        rows.append(row)
    return rows


def upload(page: Page, base_url: str, name: str, data: bytes) -> None:
    page.goto(f"{base_url}/orders/bulk/")
    page.set_input_files("#id_file", files=[{"name": name, "mimeType": "text/csv",
                                             "buffer": data}])
    page.click("#bulk-upload-form button[type=submit]")
    expect(page.locator("#bulk-rows")).to_be_visible()


def test_it_shows_a_files_errors_on_their_rows_then_places_the_fixed_file(
        live_server, page, django_user_model, make_vendor):
    alpha, beta = make_vendor(name="Alpha Cards"), make_vendor(name="Beta Gifts")
    for vendor in (alpha, beta):
        Balance.objects.create(vendor=vendor, currency="GBP", reported=Decimal("20000"))
    steam = offer(alpha, "Steam", "25", "23.75", "STEAM-25")
    offer(beta, "Steam", "25", "23.50", "B-STEAM-25")
    amazon = offer(alpha, "Amazon", "10", "9.60", "AMZ-GB-10")
    user = django_user_model.objects.create_user("bulk-buyer", password="bulk-buyer-pass-1",
                                                 is_staff=True)
    user.groups.add(role_group("orderer"))

    page.goto(f"{live_server.url}/admin/login/?next=/orders/new/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "bulk-buyer-pass-1")
    page.click("input[type=submit]")
    expect(page.locator("#bulk-link")).to_be_visible()
    page.click("#bulk-link a")
    expect(page).to_have_url(f"{live_server.url}/orders/bulk/")

    upload(page, live_server.url, "gifts.csv", file_of(lines(steam, amazon, broken=True)))
    expect(page.locator("#bulk-rows tbody tr")).to_have_count(ROWS)
    expect(page.locator("#bulk-rows tr.bulk-error")).to_have_count(len(BAD_ROWS))
    for number, message in BAD_ROWS.items():
        expect(page.locator(f"#bulk-row-{number}")).to_contain_text(message)
    expect(page.locator("#bulk-errors")).to_contain_text("5 rows of the file cannot be ordered")
    expect(page.locator("#bulk-place-form")).to_have_count(0)
    screenshots = BASE_DIR / "docs" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "bulk_preview.png"))
    assert not Order.objects.exists()

    page.click("text=Upload the fixed file")
    upload(page, live_server.url, "gifts-fixed.csv", file_of(lines(steam, amazon, broken=False)))
    expect(page.locator("#bulk-rows tr.bulk-error")).to_have_count(0)
    expect(page.locator("#bulk-row-3")).to_contain_text("Beta Gifts")  # the cheaper offer
    expect(page.locator("#bulk-row-4")).to_contain_text("Alpha Cards")  # the pinned SKU
    expect(page.locator("#total-GBP")).to_contain_text("£4,270.00")  # 100 × 23.50 + 200 × 9.60
    expect(page.locator("#id_allow_other_suppliers")).to_be_checked()
    page.fill("#id_purchase_order", "PO-BULK-1")
    page.click("#bulk-place")

    expect(page.locator(".messagelist")).to_contain_text("from gifts-fixed.csv")
    match = re.search(r"/orders/(\d+)/$", page.url)
    assert match, f"not on an order page: {page.url}"
    order = Order.objects.get(pk=int(match.group(1)))
    expect(page.locator(".messagelist")).to_contain_text(order.reference)
    assert order.purchase_order == "PO-BULK-1"
    assert order.source_upload == BulkUpload.objects.get(filename="gifts-fixed.csv")
    assert order.lines.count() == ROWS and order.quantity == 300
