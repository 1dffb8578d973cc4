"""One confirmation places one order, whatever happens to Redis; a second tab is warned."""

import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, close_old_connections, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders import confirmations, ledger, pricing, services
from orders.models import Order
from portal.roles import role_group
from tests.auth import log_in
from tests.conftest import sandbox_get
from vendors.models import Product

URL = "/orders/new/"


def may_order(user):
    user.groups.add(role_group("orderer"))
    return type(user).objects.get(pk=user.pk)


def confirm(client, product, quantity=2) -> dict:
    """Post the form to its confirmation page; return the page's hidden fields (with the
    confirmation token) as a place-step POST."""
    response = client.post(URL, {"product": product.pk, "quantity": quantity,
                                 "step": "confirm"})
    assert response.status_code == 200
    html = response.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert re.fullmatch(r"[0-9a-f]{32}[0-9]{13}[0-9a-f]{64}", fields["confirmation"])
    return {**fields, "step": "place"}


@pytest.fixture
def offer(make_vendor):
    vendor = make_vendor()
    product = Product.objects.create(
        vendor=vendor, supplier_product_id="p-1", name="Steam £10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )
    with transaction.atomic():
        ledger.record_report(vendor=vendor, currency="GBP", amount=Decimal("10000"))
    return product


@pytest.fixture
def placer(django_user_model, db):
    return may_order(django_user_model.objects.create_user("placer", is_staff=True))


def test_it_places_one_order_and_one_supplier_purchase_across_a_redis_flush(
    client, orderer, sandbox_vendor, sandbox_url, work, redis_conn
):
    vendor = sandbox_vendor("kalixo_v2")
    product = Product.objects.get(vendor=vendor, sku="KTEST-OK")
    log_in(client, may_order(orderer))
    place = confirm(client, product)
    first = client.post(URL, place)
    order = Order.objects.get()
    assert first.url == reverse("orders:order_detail", args=[order.pk])

    def finished() -> bool:
        order.refresh_from_db()
        return order.status == Order.Status.COMPLETED

    work(finished)
    redis_conn.flushdb()  # the cache, the queues: everything the portal kept in Redis
    again = client.post(URL, place, follow=True)
    assert again.redirect_chain == [(first.url, 302)]
    assert f"This order was already placed as {order.reference}." in again.content.decode()
    work(lambda: True, sweep=True)
    work(lambda: True)
    assert Order.objects.count() == 1
    assert len(sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account)) == 1


def test_it_refuses_a_second_order_with_the_same_token_in_the_database(offer, placer):
    services.place_order(user=placer, lines=[pricing.LineRequest(product=offer, quantity=1)],
                         confirmation_token="a" * 32)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(reference="VP-X", placed_by=placer, currency="GBP",
                             confirmation_token="a" * 32)


def test_it_places_one_order_when_the_same_confirmation_is_posted_at_once(
    transactional_db, offer, placer
):
    barrier = threading.Barrier(4)
    outcomes = []

    def run():
        try:
            barrier.wait()
            services.place_order(user=placer,
                                 lines=[pricing.LineRequest(product=offer, quantity=1)],
                                 confirmation_token="b" * 32)
            outcomes.append("placed")
        except services.AlreadyPlaced as exc:
            outcomes.append(exc.order.pk)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    order = Order.objects.get()
    assert sorted(outcomes, key=str) == sorted(["placed"] + [order.pk] * 3, key=str)


def test_it_refuses_another_users_token(client, offer, placer, django_user_model):
    log_in(client, placer)
    place = confirm(client, offer)
    assert client.post(URL, place).status_code == 302
    thief = may_order(django_user_model.objects.create_user("thief", is_staff=True))
    other = Client()
    log_in(other, thief)
    response = other.post(URL, place)
    assert response.status_code == 400
    html = response.content.decode()
    assert "This confirmation is not valid any more" in html
    assert "already placed" not in html  # the token says nothing about its order
    assert Order.objects.count() == 1


@pytest.mark.parametrize("token", [
    "forged",
    "0" * 32 + "1" * 13 + "0" * 64,  # the right shape, a wrong MAC
])
def test_it_refuses_a_forged_token(client, offer, placer, token):
    log_in(client, placer)
    response = client.post(URL, {"product": offer.pk, "quantity": 1, "step": "place",
                                 "confirmation": token})
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_it_refuses_an_expired_token(placer, monkeypatch):
    token = confirmations.issue(placer)
    later = confirmations.time.time() + confirmations.MAX_AGE + 1
    monkeypatch.setattr(confirmations.time, "time", lambda: later)
    with pytest.raises(confirmations.InvalidConfirmation, match="expired"):
        confirmations.open_token(placer, token)


def test_it_warns_a_second_tab_before_it_places_the_same_order(client, offer, placer):
    log_in(client, placer)
    tab1, tab2 = confirm(client, offer), confirm(client, offer)
    client.post(URL, tab1)
    first = Order.objects.get()
    held = client.post(URL, tab2)
    assert held.status_code == 409
    html = held.content.decode()
    assert 'id="repeated-since"' in html and first.reference in html
    assert Order.objects.count() == 1
    # Placing again from the warned page is a deliberate second order.
    again = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert again["confirmation"] != tab2["confirmation"]
    assert client.post(URL, {**again, "step": "place"}).status_code == 302
    assert Order.objects.count() == 2


def test_it_shows_the_repeat_on_the_confirmation_page(client, offer, placer, settings):
    log_in(client, placer)
    client.post(URL, confirm(client, offer, quantity=3))
    placed = Order.objects.get()
    html = client.post(URL, {"product": offer.pk, "quantity": 3,
                             "step": "confirm"}).content.decode()
    assert 'id="repeat-warning"' in html and placed.reference in html
    other = client.post(URL, {"product": offer.pk, "quantity": 4,
                              "step": "confirm"}).content.decode()
    assert 'id="repeat-warning"' not in other
    settings.ORDER_REPEAT_WARNING_MINUTES = 10
    Order.objects.filter(pk=placed.pk).update(created_at=timezone.now()
                                              - timedelta(minutes=11))
    older = client.post(URL, {"product": offer.pk, "quantity": 3,
                              "step": "confirm"}).content.decode()
    assert 'id="repeat-warning"' not in older


def test_it_places_a_repeat_shown_on_its_own_confirmation_page(client, offer, placer):
    """The warning was on the page when "Place order" was pressed: no second question."""
    log_in(client, placer)
    client.post(URL, confirm(client, offer))
    place = confirm(client, offer)
    assert client.post(URL, place).status_code == 302
    assert Order.objects.count() == 2


# In Chromium: two tabs of one session confirming the same basket.


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch):
    """Playwright's sync API runs an event loop in the main thread; the ORM calls here are
    synchronous and on that thread (see tests/test_browser.py)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_it_warns_the_second_tab_in_a_browser(allow_orm_beside_playwright, live_server,
                                              offer, django_user_model):
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    user = may_order(django_user_model.objects.create_user(
        "tabs", password="tabs-pass-123", is_staff=True))
    # Its own browser, closed before the test's database teardown (Playwright's loop with it).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        two_tabs(browser.new_context(), live_server.url, offer, user)
        browser.close()


def two_tabs(context, base_url: str, offer, user) -> None:
    """Log in, confirm the same basket in two tabs, place from both."""
    from playwright.sync_api import expect

    tab1 = context.new_page()
    tab1.set_default_timeout(15000)
    tab1.goto(f"{base_url}/admin/login/?next=/")
    tab1.fill("#id_username", "tabs")
    tab1.fill("#id_password", "tabs-pass-123")
    tab1.click("input[type=submit]")
    expect(tab1.locator("#portal-nav")).to_be_visible()
    tab2 = context.new_page()
    tab2.set_default_timeout(15000)
    for tab in (tab1, tab2):
        tab.goto(f"{base_url}/orders/new/?product={offer.pk}")
        tab.fill("#id_quantity", "2")
        tab.click("button[name=step][value=confirm]")
        expect(tab.locator("#confirm-form")).to_be_visible()
    tab1.click("button[name=step][value=place]")
    expect(tab1.locator(".messagelist")).to_contain_text("placed")
    first = Order.objects.get()
    tab2.click("button[name=step][value=place]")
    expect(tab2.locator("#repeated-since")).to_contain_text(first.reference)
    assert Order.objects.count() == 1
    tab2.click("button[name=step][value=place]")  # deliberately, a second time
    expect(tab2.locator(".messagelist")).to_contain_text("placed")
    assert Order.objects.filter(placed_by=user).count() == 2
