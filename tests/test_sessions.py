"""Sessions end after SESSION_IDLE_TIMEOUT without activity, and after SESSION_COOKIE_AGE
however active; the order page's htmx polling is not activity."""

import time

import pytest
from django.urls import reverse

from orders.models import Order
from portal import idle
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_superuser("boss", password="boss-pass-123")


@pytest.fixture
def open_order(make_voucher):
    order = make_voucher("GIFT-0000-1111-2222").order
    Order.objects.filter(pk=order.pk).update(status=Order.Status.IN_PROGRESS)
    return order


def session_value(client, key):
    return client.session.get(key)


def age_session(client, *, idle_for: float, logged_in_for: float | None = None) -> None:
    session = client.session
    now = time.time()
    session[idle.LAST_ACTIVITY] = now - idle_for
    session[idle.LOGGED_IN_AT] = now - (logged_in_for if logged_in_for is not None else idle_for)
    session.save()


def test_it_logs_out_a_session_idle_for_longer_than_the_timeout(client, user, settings):
    assert settings.SESSION_IDLE_TIMEOUT == 1800
    login_verified(client, user)
    age_session(client, idle_for=1700)
    assert client.get("/orders/").status_code == 200
    age_session(client, idle_for=1801)
    response = client.get("/orders/")
    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next=/orders/"
    assert "_auth_user_id" not in client.session
    login_page = client.get(response.url).content.decode()
    assert "Your session expired" in login_page


def test_it_counts_a_page_the_user_asked_for_as_activity(client, user):
    login_verified(client, user)
    age_session(client, idle_for=1700)
    before = time.time()
    assert client.get("/catalog/").status_code == 200
    assert session_value(client, idle.LAST_ACTIVITY) >= before


def test_it_does_not_let_htmx_polling_keep_the_session_alive(client, user, open_order):
    live = reverse("orders:order_live", args=[open_order.pk])
    page = reverse("orders:order_detail", args=[open_order.pk])
    login_verified(client, user)
    assert f'hx-get="{live}"' in client.get(page).content.decode()
    age_session(client, idle_for=1700)
    last = session_value(client, idle.LAST_ACTIVITY)
    for _ in range(3):
        poll = client.get(live, HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="order-live",
                          HTTP_HX_CURRENT_URL=f"http://testserver{page}")
        assert poll.status_code == 200
    assert session_value(client, idle.LAST_ACTIVITY) == last
    # Past the timeout the poll takes the whole page to the login, and back to it after.
    age_session(client, idle_for=1801)
    poll = client.get(live, HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="order-live",
                      HTTP_HX_CURRENT_URL=f"http://testserver{page}")
    assert poll["HX-Redirect"] == f"{reverse('admin:login')}?next={page}"
    assert "_auth_user_id" not in client.session


def test_it_ends_a_session_older_than_the_cookie_age_however_active(client, user, settings):
    login_verified(client, user)
    age_session(client, idle_for=5, logged_in_for=settings.SESSION_COOKIE_AGE + 1)
    response = client.get("/orders/")
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))


def test_it_starts_the_clocks_at_login(client, user):
    before = time.time()
    client.post(reverse("admin:login"), {"username": "boss", "password": "boss-pass-123"})
    assert session_value(client, idle.LOGGED_IN_AT) >= before
    assert session_value(client, idle.LAST_ACTIVITY) >= before
