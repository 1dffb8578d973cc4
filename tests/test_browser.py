# The fixtures imported from tests.browser are parameters of the tests here: not redefinitions.
# ruff: noqa: F811
"""Staff pages in Chromium: a live server, a real RQ worker and scheduler in their own
processes, and the sandbox suppliers over HTTP.

Codes are compared in assertions whose failure shows a message, never the codes (the
comparison is computed first, so pytest has only a boolean to explain).
"""

import csv
import io
import re
import time
from base64 import b32encode
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from common.crypto import normalise_code
from orders import exports, pricing, services
from orders.models import Order, OrderLine, VendorOrder, Voucher
from portal.paths import BASE_DIR
from tests.browser import background_workers, chromium, page  # noqa: F401
from tests.conftest import authenticator, sandbox_get, set_faults, totp_code
from vendors.models import Product

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# What to order from each supplier's sandbox: a product that completes.
PRODUCTS = {
    "kalixo_v2": {"sku": "KTEST-OK"},
    "kalixo_v1": {"sku": "GB-EN-KTEST-OK"},
    "ezcards": {"sku": "EZTEST-INSTOCK"},
    "starship": {"supplier_product_id": "1001:25.00"},
}
# Each supplier call takes this long, so the order is still open when its page first loads
# and the page has to update itself to show it completed.
SUPPLIER_LATENCY = 1.5
LIVE_TIMEOUT = 60_000  # ms


@pytest.fixture(scope="module", autouse=True)
def allow_orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in the main thread while the browser
    is open, and Django refuses ORM calls from a thread with a running loop. Every call here
    is synchronous and on the main thread, so the check is lifted for this module only, whose
    browser closes before the check comes back."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(autouse=True)
def no_console_errors(page):
    """Every page a test visits runs without console errors, CSP violations among them
    (Chromium reports each refused inline script or style as a console error)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield errors
    assert not errors, f"console errors on the pages visited: {errors}"


# Helpers


def make_user(django_user_model, username: str, *codenames: str, superuser: bool = False):
    password = f"{username}-pass-123"
    if superuser:
        user = django_user_model.objects.create_superuser(username, password=password)
    else:
        user = django_user_model.objects.create_user(username, password=password,
                                                     is_staff=True)
        for codename in codenames:
            user.user_permissions.add(Permission.objects.get(codename=codename))
    user.raw_password = password
    return user


def log_in(page: Page, base_url: str, user, next_path: str = "/") -> None:
    """The password, then the second factor through its pages when the user needs one: the
    enrolment on the first login, an authenticator code afterwards."""
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", user.raw_password)
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "/admin/login/" not in url)
    if "/account/two-factor/enrol/" in page.url:
        enrol(page, user)
    elif "/account/two-factor/verify/" in page.url:
        page.fill("#id_code", totp_code(authenticator(user)))
        page.click("#verify-form button[type=submit]")
    page.wait_for_url(lambda url: "/account/two-factor/" not in url)
    expect(page.locator("#portal-nav")).to_be_visible()


def enrol(page: Page, user) -> list[str]:
    """Set up the authenticator on the enrolment page as a phone would (from the secret the
    page shows) and continue; returns the recovery codes shown once."""
    expect(page.locator("#enrol-qr svg")).to_be_visible()
    secret = page.locator("#enrol-secret").inner_text().replace(" ", "")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert b32encode(device.bin_key).decode() == secret, "the page shows another secret"
    page.fill("#id_code", totp_code(device))
    page.click("#enrol-form button[type=submit]")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    codes = page.locator("#recovery-codes li").all_inner_texts()
    page.click("#recovery-continue")
    return codes


class Navigations:
    """Counts the main frame's navigations: an htmx swap is not one, a reload is."""

    def __init__(self, page: Page) -> None:
        self.count = 0
        page.on("framenavigated",
                lambda frame: setattr(self, "count", self.count + 1)
                if frame == page.main_frame else None)


class RequestLog:
    """Every URL the browser asked for: what would end up in access logs and history."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def contains(self, code: str) -> bool:
        wanted = normalise_code(code)
        return any(wanted in normalise_code(url) for url in self.urls)


def place_through_the_form(page: Page, base_url: str, product: Product, quantity: int) -> int:
    """New order -> live quote -> review -> place; returns the new order's id."""
    page.click("#portal-nav >> text=New order")
    expect(page).to_have_url(f"{base_url}/orders/new/")
    page.select_option("#id_product", str(product.pk))
    page.fill("#id_quantity", str(quantity))
    page.fill("#id_purchase_order", "PO-BROWSER")
    # The quote updates by htmx while the form is filled in.
    expect(page.locator("#quote")).to_contain_text(product.name)
    expect(page.locator("#quote-total")).not_to_be_empty()
    page.click("button[name=step][value=confirm]")
    expect(page.locator("#confirm-form")).to_be_visible()
    expect(page.locator("#quote")).to_contain_text(product.name)
    page.click("button[name=step][value=place]")
    expect(page.locator(".messagelist")).to_contain_text("placed")
    match = re.search(r"/orders/(\d+)/$", page.url)
    assert match, f"not on an order page: {page.url}"
    return int(match.group(1))


def watch_until_completed(page: Page, navigations: Navigations, live_requests: list) -> None:
    """On an open order's page, wait for "Completed" without the page being reloaded."""
    status = page.locator("#order-summary .status")
    # The page was rendered while the order was open, so it polls its live fragment.
    expect(page.locator("#order-live[hx-trigger]")).to_have_count(1)
    assert status.inner_text() != "Completed", "the order was already complete on arrival"
    before = navigations.count
    expect(status).to_have_text("Completed", timeout=LIVE_TIMEOUT)
    assert navigations.count == before, "the page was reloaded or left while waiting"
    assert live_requests, "the order page never asked for its live fragment"
    # Finished: the fragment stops polling and shows the codes, masked.
    expect(page.locator("#order-live[hx-trigger]")).to_have_count(0)


def issued_codes(sandbox_url: str, vendor) -> list[str]:
    return [i["code"] for i in sandbox_get(sandbox_url, vendor.kind, "issued",
                                           vendor.sandbox_account)]


def read_download(download) -> list[list[str]]:
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "the CSV does not start with a UTF-8 BOM"
    return list(csv.reader(io.StringIO(data.decode("utf-8")[1:])))


def wait_for_orders(*orders: Order, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for order in orders:
        while True:
            order.refresh_from_db()
            if order.status not in (Order.Status.QUEUED, Order.Status.IN_PROGRESS):
                break
            assert time.monotonic() < deadline, f"{order.reference} is still {order.status}"
            time.sleep(0.25)


def listed_references(page: Page) -> set[str]:
    return set(page.locator("#result_list tbody td:first-child a").all_inner_texts())


# Scenarios


def test_it_logs_in_through_the_admin_login_page(live_server, page, django_user_model):
    user = make_user(django_user_model, "boss", superuser=True)
    page.goto(f"{live_server.url}/orders/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/orders/$"))
    page.fill("#id_username", user.username)
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_contain_text("correct username and password")
    page.fill("#id_password", user.raw_password)
    page.click("input[type=submit]")
    # A superuser needs a second factor: set up on the first login, before any page.
    expect(page).to_have_url(re.compile(r"/account/two-factor/enrol/\?next=%2Forders%2F$"))
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/account/two-factor/enrol/\?next=%2Fadmin%2F$"))
    enrol(page, user)
    expect(page).to_have_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/orders/")
    expect(page.locator("#result_list")).to_contain_text("No orders match.")
    page.click("#portal-nav >> text=Dashboard")
    expect(page.locator("#balances h2")).to_have_text("Balances")
    expect(page.locator("#user-tools")).to_contain_text(user.username, ignore_case=True)
    # The admin's own pages (their scripts and styles) pass the content security policy.
    for path, shown in (("/admin/orders/order/", "#changelist"),
                        ("/admin/vendors/vendor/add/", "#vendor_form"),
                        ("/admin/password_change/", "#content-main form"),
                        ("/account/two-factor/", "#two-factor-status")):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator(shown)).to_be_visible()


def test_it_verifies_with_a_recovery_code_and_reauthenticates_before_a_reveal(
        live_server, page, django_user_model, make_voucher):
    user = make_user(django_user_model, "boss", superuser=True)
    order = make_voucher("GIFT-7Q2X-99ZK-4F3M").order
    requests = RequestLog(page)
    page.goto(f"{live_server.url}/admin/login/?next=/orders/{order.pk}/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", user.raw_password)
    page.click("input[type=submit]")
    codes = enrol(page, user)
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    page.click("#logout-form button")

    # The next login: a recovery code instead of the phone, once.
    log_in_url = f"{live_server.url}/admin/login/?next=/orders/{order.pk}/"
    page.goto(log_in_url)
    page.fill("#id_username", user.username)
    page.fill("#id_password", user.raw_password)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/account/two-factor/verify/\?next="))
    page.fill("#id_code", codes[0])
    page.click("#verify-form button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.locator(".messagelist")).to_contain_text("You used a recovery code; 9 are left")

    # A recovery code is not a fresh authenticator code: the reveal asks for both again,
    # then comes back here to be pressed again.
    page.locator("#vouchers button", has_text="Reveal").click()
    expect(page).to_have_url(re.compile(r"/account/two-factor/reauthenticate/\?next="))
    page.fill("#id_password", user.raw_password)
    page.fill("#id_code", totp_code(authenticator(user)))
    page.click("#reauth-form button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.locator(".messagelist")).to_contain_text("press the button again")
    page.locator("#vouchers button", has_text="Reveal").click()
    expect(page.locator("#revealed-code")).to_have_text("GIFT-7Q2X-99ZK-4F3M")
    assert AuditEvent.objects.filter(action="revealed", actor=user).count() == 1
    # More pages under the content security policy (no console error is the assertion).
    product = order.lines.get().product
    for path, shown in (("/catalog/", "#content-main"),
                        (f"/catalog/{product.pk}/", "#content-main"),
                        (f"/admin/orders/order/{order.pk}/change/", "#order_form"),
                        ("/admin/orders/voucher/", "#changelist")):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator(shown)).to_be_visible()
    leaked = requests.contains("GIFT-7Q2X-99ZK-4F3M") or any(
        code in url for code in codes for url in requests.urls)
    assert not leaked, "a code appeared in a URL the browser requested"


@pytest.mark.parametrize("kind", PRODUCTS)
def test_it_places_an_order_watches_it_complete_live_and_gets_the_issued_codes(
        kind, live_server, page, background_workers, sandbox_vendor, sandbox_url,
        django_user_model):
    vendor = sandbox_vendor(kind)
    set_faults(sandbox_url, kind, vendor.sandbox_account, {"latency": SUPPLIER_LATENCY})
    product = Product.objects.get(vendor=vendor, **PRODUCTS[kind])
    user = make_user(django_user_model, "boss", superuser=True)
    navigations = Navigations(page)
    live_requests: list[str] = []
    page.on("request", lambda r: live_requests.append(r.url) if "/live/" in r.url else None)
    requests = RequestLog(page)

    log_in(page, live_server.url, user)
    order_pk = place_through_the_form(page, live_server.url, product, quantity=2)
    watch_until_completed(page, navigations, live_requests)
    expect(page.locator("#order-progress")).to_contain_text("2 / 2")
    expect(page.locator("#vouchers tbody tr")).to_have_count(2)
    expect(page.locator("#vouchers")).to_contain_text("••••")

    order = Order.objects.get(pk=order_pk)
    assert (order.status, order.delivered_quantity) == (Order.Status.COMPLETED, 2)
    issued = issued_codes(sandbox_url, vendor)
    assert len(issued) == 2, f"the sandbox issued {len(issued)} codes, not 2"

    # Reveal one code: it is one the supplier issued, and the reveal is on record.
    page.locator("#vouchers button", has_text="Reveal").first.click()
    revealed = page.locator("#revealed-code").inner_text()
    is_issued = revealed in issued
    assert is_issued, "the revealed code is not one the sandbox issued"
    assert AuditEvent.objects.filter(action="revealed", order=order, actor=user).count() == 1

    # Export the order's codes: exactly those the sandbox issued, in Excel-friendly CSV.
    page.click("text=Back to the order")
    with page.expect_download() as download_info:
        page.click("#order-actions button:has-text('Export codes (CSV)')")
    download = download_info.value
    assert download.suggested_filename == f"{order.reference}-codes.csv"
    rows = read_download(download)
    assert rows[0] == exports.COLUMNS
    assert len(rows) == 3
    assert {row[0] for row in rows[1:]} == {order.reference}
    assert {row[2] for row in rows[1:]} == {vendor.name}
    same_codes = sorted(row[7] for row in rows[1:]) == sorted(issued)
    assert same_codes, "the exported codes differ from the codes the sandbox issued"
    leaked = any(requests.contains(code) for code in issued)
    assert not leaked, "a code appeared in a URL the browser requested"


def test_it_does_not_let_an_orderer_without_the_reveal_permission_reveal(
        live_server, page, background_workers, sandbox_vendor, sandbox_url,
        django_user_model):
    vendor = sandbox_vendor("kalixo_v2")
    set_faults(sandbox_url, "kalixo_v2", vendor.sandbox_account, {"latency": SUPPLIER_LATENCY})
    product = Product.objects.get(vendor=vendor, sku="KTEST-OK")
    orderer = make_user(django_user_model, "clerk", "view_order", "view_product", "add_order")
    navigations = Navigations(page)
    live_requests: list[str] = []
    page.on("request", lambda r: live_requests.append(r.url) if "/live/" in r.url else None)

    log_in(page, live_server.url, orderer)
    order_pk = place_through_the_form(page, live_server.url, product, quantity=1)
    watch_until_completed(page, navigations, live_requests)
    expect(page.locator("#vouchers tbody tr")).to_have_count(1)
    expect(page.locator("#vouchers")).to_contain_text("••••")
    expect(page.locator("#vouchers button", has_text="Reveal")).to_have_count(0)
    expect(page.locator("#order-actions button", has_text="Export")).to_have_count(0)

    # Posting the reveal form by hand (with a valid CSRF token) is refused too.
    voucher = Voucher.objects.get(order_id=order_pk)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(f"{live_server.url}/vouchers/{voucher.pk}/reveal/",
                                 headers={"X-CSRFToken": csrf,
                                          "Referer": f"{live_server.url}/orders/{order_pk}/"})
    assert response.status == 403
    issued = issued_codes(sandbox_url, vendor)
    assert len(issued) == 1
    shown = issued[0] in response.text()
    assert not shown, "the refused reveal showed the code"
    assert not AuditEvent.objects.filter(action="revealed").exists()


def test_it_filters_and_searches_the_order_list(live_server, page,
                                                background_workers,
                                                sandbox_vendor, sandbox_url,
                                                django_user_model):
    kalixo, ez = sandbox_vendor("kalixo_v2"), sandbox_vendor("ezcards")
    user = make_user(django_user_model, "boss", superuser=True)

    def place(vendor, quantity=1, **product):
        line = pricing.LineRequest(product=Product.objects.get(vendor=vendor, **product),
                                    quantity=quantity)
        return services.place_order(user=user, lines=[line])

    kalixo_ok = place(kalixo, sku="KTEST-OK")
    kalixo_failed = place(kalixo, sku="KTEST-FAIL")
    ez_ok = place(ez, quantity=2, sku="EZTEST-INSTOCK")
    old = place(kalixo, sku="KTEST-OK")
    wait_for_orders(kalixo_ok, kalixo_failed, ez_ok, old)
    assert kalixo_failed.status == Order.Status.FAILED
    assert {kalixo_ok.status, ez_ok.status, old.status} == {Order.Status.COMPLETED}
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    every = {o.reference for o in (kalixo_ok, kalixo_failed, ez_ok, old)}
    requests = RequestLog(page)

    log_in(page, live_server.url, user)
    page.click("#portal-nav >> text=Orders")
    assert listed_references(page) == every

    # Status.
    page.select_option("#id_status", "failed")
    page.click("#order-filters input[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]status=failed"))
    assert listed_references(page) == {kalixo_failed.reference}

    # Status and vendor combined, then the vendor alone.
    page.select_option("#id_status", "completed")
    page.select_option("#id_vendor", str(kalixo.pk))
    page.click("#order-filters input[type=submit]")
    expect(page).to_have_url(re.compile(rf"status=completed&vendor={kalixo.pk}"))
    assert listed_references(page) == {kalixo_ok.reference, old.reference}
    page.select_option("#id_status", "")
    page.select_option("#id_vendor", str(ez.pk))
    page.click("#order-filters input[type=submit]")
    assert listed_references(page) == {ez_ok.reference}

    # Dates: the last week, then only before it.
    today = timezone.localdate()
    page.click("text=Clear")
    page.fill("#id_placed_from", (today - timedelta(days=7)).isoformat())
    page.click("#order-filters input[type=submit]")
    expect(page).to_have_url(re.compile(r"placed_from="))
    assert listed_references(page) == every - {old.reference}
    page.fill("#id_placed_from", "")
    page.fill("#id_placed_to", (today - timedelta(days=30)).isoformat())
    page.click("#order-filters input[type=submit]")
    assert listed_references(page) == {old.reference}

    # Our reference and the supplier's order id are searched as such, in the URL.
    page.click("text=Clear")
    page.fill("#id_term", kalixo_failed.reference)
    page.click("#order-search input[type=submit]")
    expect(page).to_have_url(re.compile(rf"q={kalixo_failed.reference}"))
    assert listed_references(page) == {kalixo_failed.reference}
    supplier_id = ez_ok.vendor_orders.exclude(supplier_order_id="").first().supplier_order_id
    assert supplier_id
    page.fill("#id_term", supplier_id)
    page.click("#order-search input[type=submit]")
    assert listed_references(page) == {ez_ok.reference}

    # A full code, posted: the order holding it, and the code in no URL.
    ez_codes = issued_codes(sandbox_url, ez)
    assert len(ez_codes) == 2
    page.click("text=Clear")
    page.select_option("#id_status", "completed")
    page.click("#order-filters input[type=submit]")
    page.fill("#id_term", ez_codes[1].lower())
    page.click("#order-search input[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]code=[0-9a-f]{64}"))
    expect(page.locator("#code-search-note")).to_be_visible()
    assert "status=completed" in page.url, "the search dropped the status filter"
    assert listed_references(page) == {ez_ok.reference}
    # The search box is not filled back with the code.
    code_shown = ez_codes[1].lower() in page.content() or ez_codes[1] in page.content()
    assert not code_shown, "the code is shown back on the list"
    # The filters keep the code search: a status it does not have finds nothing.
    page.select_option("#id_status", "failed")
    page.click("#order-filters input[type=submit]")
    expect(page.locator("#result_list")).to_contain_text("No orders match.")
    # A code of another supplier's order finds that one.
    page.click("#clear-search")
    page.select_option("#id_status", "")
    page.click("#order-filters input[type=submit]")
    kalixo_code = issued_codes(sandbox_url, kalixo)[0]
    page.fill("#id_term", kalixo_code)
    page.click("#order-search input[type=submit]")
    found = listed_references(page)
    assert len(found) == 1 and found <= {kalixo_ok.reference, old.reference}
    # A code nobody holds finds nothing.
    page.fill("#id_term", "NOT-A-REAL-CODE-0000")
    page.click("#order-search input[type=submit]")
    expect(page.locator("#result_list")).to_contain_text("No orders match.")

    leaked = any(requests.contains(code) for code in [*ez_codes, kalixo_code])
    assert not leaked, "a code appeared in a URL the browser requested"


def test_it_draws_the_reports_charts(live_server, page, django_user_model, make_vendor):
    """The reports page with its charts, saved as the README's screenshot."""
    user = make_user(django_user_model, "reporter", "view_reports", "change_vendororder")
    now = timezone.now()
    sent = [("Kalixo", "Steam", "GBP", 0), ("Kalixo", "PlayStation", "GBP", 1),
            ("Kalixo", "Steam", "EUR", 2), ("Ezcards", "Xbox", "GBP", 1),
            ("Ezcards", "Nintendo", "GBP", 3), ("Ezcards", "Xbox", "GBP", 4)]
    vendors = {name: make_vendor(name=name) for name in ("Kalixo", "Ezcards")}
    for i, (vendor, brand, currency, months_ago) in enumerate(sent * 3):
        product, _ = Product.objects.get_or_create(
            vendor=vendors[vendor], supplier_product_id=f"{brand}-{currency}",
            defaults={"name": f"{brand} 25", "brand": brand, "face_value": Decimal(25),
                      "face_currency": currency})
        order = Order.objects.create(reference=f"VP-REPORT-{i}", placed_by=user,
                                     currency=currency, quantity=i % 4 + 1)
        line = OrderLine.objects.create(order=order, product=product, vendor=product.vendor,
                                        quantity=i % 4 + 1, unit_cost=Decimal("23.50"),
                                        currency=currency, face_value=Decimal(25))
        submitted = now - timedelta(days=30 * months_ago + i)
        failed = i % 7 == 6
        VendorOrder.objects.create(
            order=order, line=line, vendor=product.vendor, client_reference=f"R-{i}",
            quantity=line.quantity, currency=currency, submitted_at=submitted,
            status=VendorOrder.Status.FAILED if failed else VendorOrder.Status.COMPLETED,
            delivered_quantity=0 if failed else line.quantity,
            cost=None if failed else Decimal("23.50") * line.quantity,
            completed_at=None if failed else submitted + timedelta(seconds=5 + i * 3))

    log_in(page, live_server.url, user, "/reports/")
    expect(page.locator("#report-scope")).to_contain_text("every supplier order")
    charts = page.locator("svg.chart[role=img]:not(.chart-rate)")
    expect(charts).to_have_count(3)  # spend in EUR and in GBP, codes per brand
    for n in range(3):
        box = charts.nth(n).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20, box
        assert charts.nth(n).locator("rect").count() > 1
    expect(page.locator("#scorecard tbody tr")).to_have_count(2)
    screenshots = BASE_DIR / "docs" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "reports.png"), full_page=True)
