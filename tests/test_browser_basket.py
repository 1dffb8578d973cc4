# The fixtures imported from tests.browser and tests.test_browser are parameters of the tests
# here (or autouse): not redefinitions.
# ruff: noqa: F811
"""The basket in Chromium: a live server, a real RQ worker and scheduler, and the sandbox
suppliers over HTTP. Building a basket from the picker and the catalog, placing it, the
fallback to another supplier when the cheaper one refuses, and "Order again"."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from orders.models import BasketLine, Order
from portal.paths import BASE_DIR
from tests.browser import background_workers, chromium, page  # noqa: F401
from tests.conftest import set_faults
from tests.test_browser import (  # noqa: F401
    allow_orm_beside_playwright,
    log_in,
    make_user,
    no_console_errors,
    wait_for_orders,
)
from vendors.models import Product

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SCREENSHOTS = BASE_DIR / "docs" / "screenshots"


def pick(page: Page, term: str, item_name: str, quantity: int = 1) -> None:
    """Type into the basket's picker and add the item it offers."""
    page.fill("#picker-q", "")
    page.type("#picker-q", term, delay=20)
    row = page.locator("#picker-results .picker-item", has_text=item_name)
    expect(row).to_have_count(1)
    row.locator("input[name=quantity]").fill(str(quantity))
    row.locator("button", has_text="Add").click()
    expect(page.locator(".messagelist")).to_contain_text(f"{item_name} added to the basket")


def basket_line(page: Page, item_name: str):
    return page.locator("#basket-lines .basket-line", has_text=item_name)


def test_it_builds_a_basket_of_three_items_from_two_suppliers_places_it_and_orders_again(
        live_server, page, background_workers, sandbox_vendor, django_user_model):
    kalixo, ezcards = sandbox_vendor("kalixo_v2"), sandbox_vendor("ezcards")
    ten = Product.objects.get(vendor=kalixo, sku="KTEST-OK").item
    legacy = Product.objects.get(vendor=kalixo, sku="KTEST-LEGACY")
    # Every sandbox test product of Kalixo is one item; keep KTEST-OK its cheapest offer.
    Product.objects.filter(vendor=kalixo, item=ten).exclude(sku="KTEST-OK").update(
        cost=legacy.cost + Decimal("1"))
    five = Product.objects.get(vendor=kalixo, sku="KTEST-PARTIAL").item
    instant = Product.objects.get(vendor=ezcards, sku="EZTEST-INSTOCK").item
    user = make_user(django_user_model, "buyer", superuser=True)

    log_in(page, live_server.url, user, "/basket/")
    expect(page.locator("#basket-lines")).to_contain_text("The basket is empty")
    pick(page, "KTEST-OK", ten.name, quantity=2)
    pick(page, "EZTEST-INSTOCK", instant.name)
    # The third from the catalog: its item page adds it.
    page.goto(f"{live_server.url}/catalog/items/{five.pk}/")
    page.click("#add-item-form button[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text(f"{five.name} added to the basket")
    page.click("#portal-nav >> text=Basket")

    expect(page.locator("#basket-lines .basket-line")).to_have_count(3)
    expect(basket_line(page, ten.name).locator(".route")).to_contain_text(kalixo.name)
    expect(basket_line(page, instant.name).locator(".route")).to_contain_text(ezcards.name)
    line = basket_line(page, five.name)
    line.locator("input[name=quantity]").fill("1")
    line.locator("button", has_text="Update").click()
    expect(page.locator("#basket-totals .basket-total").first).not_to_be_empty()
    expect(page.locator("#basket-totals")).to_contain_text("balance after")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "basket.png"), full_page=True)

    page.fill("#id_note", "Quarterly prizes")
    page.click("#place-basket")
    expect(page.locator(".messagelist")).to_contain_text("Placed")
    orders = list(Order.objects.filter(placed_by=user))
    assert sum(o.lines.count() for o in orders) == 3
    assert {v for o in orders for v in o.lines.values_list("vendor", flat=True)} == {
        kalixo.pk, ezcards.pk}
    assert not BasketLine.objects.filter(user=user).exists()
    wait_for_orders(*orders)
    assert {o.status for o in orders} == {Order.Status.COMPLETED}, [o.status for o in orders]

    # Order again: the order's lines come back into the basket.
    kalixo_order = next(o for o in orders if o.lines.filter(vendor=kalixo).exists())
    page.goto(f"{live_server.url}/orders/{kalixo_order.pk}/")
    page.click("#order-actions button:has-text('Order again')")
    expect(page).to_have_url(f"{live_server.url}/basket/")
    expect(page.locator("#basket-lines .basket-line")).to_have_count(
        kalixo_order.lines.count())
    expect(basket_line(page, ten.name).locator("input[name=quantity]")).to_have_value("2")


def test_it_routes_to_the_cheaper_offer_then_to_the_other_when_it_refuses(
        live_server, page, background_workers, sandbox_vendor, sandbox_url, django_user_model):
    """PlayStation GB 10 GBP costs 9.50 at Kalixo v2 and 9.60 at Kalixo v1 (their sandboxes'
    discounts); Kalixo v2 refuses every order (HTTP 400)."""
    refusing, other = sandbox_vendor("kalixo_v2"), sandbox_vendor("kalixo_v1")
    cheaper = Product.objects.get(vendor=refusing, brand="PlayStation", country="GB",
                                  face_value=10)
    dearer = Product.objects.get(vendor=other, item=cheaper.item)
    assert (cheaper.cost, dearer.cost) == (Decimal("9.50"), Decimal("9.60"))
    set_faults(sandbox_url, "kalixo_v2", refusing.sandbox_account,
               {"fail_paths": {"/v2/orders": 400}})
    user = make_user(django_user_model, "fallback-buyer", superuser=True)
    item = cheaper.item

    log_in(page, live_server.url, user, f"/catalog/items/{item.pk}/")
    expect(page.locator("#offers tbody tr.offer")).to_have_count(2)
    expect(page.locator("#offers tbody tr.offer").first).to_contain_text(refusing.name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "item_comparison.png"), full_page=True)
    page.fill("#add-item-form input[name=quantity]", "2")
    page.click("#add-item-form button[type=submit]")
    page.click("#portal-nav >> text=Basket")
    expect(basket_line(page, item.name).locator(".route")).to_contain_text(refusing.name)
    expect(page.locator("#id_allow_other_suppliers")).to_be_checked()
    page.click("#place-basket")
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))

    status = page.locator("#order-summary .status")
    expect(status).to_have_text("Completed", timeout=60_000)
    lines = page.locator("#order-lines tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.nth(1)).to_contain_text(other.name)
    expect(lines.nth(1).locator(".cost-difference")).to_contain_text("+£0.20")
    expect(lines.nth(1).locator(".cost-difference")).to_contain_text(
        f"instead of {refusing.name}")
    order = Order.objects.get(placed_by=user)
    assert order.vouchers.count() == 2
    assert order.vendor_orders.filter(vendor=refusing, status="failed").count() == 1
