"""The order list, the order page, code reveal and the CSV export."""

import base64
import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, unquote_plus, urlencode, urljoin, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from common.crypto import default_keyring
from orders import selectors
from orders.custody import seal
from orders.models import Order, OrderLine, VendorOrder, Voucher
from tests.conftest import login_verified
from vendors.models import Product

pytestmark = pytest.mark.django_db

CODE = "GIFT-7Q2X-99ZK-4F3M"
# Session, user, the session's two-factor device, then the list: orders, their lines (with
# product and vendor), and the vendor, product and user options of the filters; the order
# page: order, lines, supplier orders, codes, events.
PAGE_QUERIES = 8
ORDER_PAGE_QUERIES = PAGE_QUERIES + 2  # the order page also shows its ledger entries and money


def grant(user, *codenames: str):
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)  # drop the permission cache


@pytest.fixture
def product(make_vendor):
    vendor = make_vendor(name="Kalixo")
    return Product.objects.create(
        vendor=vendor, supplier_product_id="steam-10", sku="STEAM-GB-10", name="Steam £10",
        brand="Steam", face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )


@pytest.fixture
def make_order(product, staff_user):
    """An order in any state, written directly, with ``codes`` delivered."""

    def make(*, user=None, status=Order.Status.COMPLETED, codes=(), quantity=None,
             supplier_order_id="", product=product, currency="GBP", created_at=None,
             vendor_orders=1, events=0):
        user = user or staff_user
        quantity = quantity or max(len(codes), 1)
        order = Order.objects.create(
            reference=f"VP-{uuid.uuid4().hex[:8].upper()}", placed_by=user, currency=currency,
            status=status, quantity=quantity, delivered_quantity=len(codes),
            total_cost=Decimal("9.50") * quantity,
        )
        if created_at:
            Order.objects.filter(pk=order.pk).update(created_at=created_at)
            order.refresh_from_db()
        line = OrderLine.objects.create(
            order=order, product=product, vendor=product.vendor, quantity=quantity,
            face_value=product.face_value, unit_cost=product.cost, currency=currency,
            delivered_quantity=len(codes),
        )
        vos = [
            VendorOrder.objects.create(
                order=order, line=line, vendor=product.vendor,
                client_reference=f"{order.reference}-{i + 1}", quantity=quantity,
                currency=currency, supplier_order_id=supplier_order_id if i == 0 else "",
                status=VendorOrder.Status.COMPLETED if codes else VendorOrder.Status.CREATED,
            )
            for i in range(vendor_orders)
        ]
        for code in codes:
            voucher = Voucher(order=order, vendor_order=vos[0], serial=f"S-{code[-4:]}",
                              expires_at=timezone.now() + timedelta(days=365))
            seal(voucher, code=code, pin="8842")
            voucher.save()
        for i in range(events):
            AuditEvent.objects.create(action="polled", order=order, actor=user,
                                      message=f"poll {i}")
        return order

    return make


@pytest.fixture
def staff_client(client, staff_user):
    return login_verified(client, staff_user)


@pytest.fixture
def orderer(django_user_model):
    user = django_user_model.objects.create_user("orderer1", password="orderer-pass-123",
                                                 is_staff=True)
    return grant(user, "view_order", "add_order", "reveal_codes", "export_codes")


def login(client, user):
    return login_verified(client, user)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# Every page


@pytest.mark.parametrize("name", ["orders:dashboard", "orders:catalog", "orders:order_list",
                                  "orders:order_new"])
def test_it_redirects_anonymous_users_to_the_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_it_redirects_anonymous_users_away_from_an_order_and_its_actions(client, make_order):
    order = make_order(codes=[CODE])
    voucher = order.vouchers.get()
    for url in (reverse("orders:order_detail", args=[order.pk]),
                reverse("orders:order_live", args=[order.pk])):
        assert client.get(url).url.startswith(reverse("admin:login"))
    for url in (reverse("orders:voucher_reveal", args=[voucher.pk]),
                reverse("orders:export_order", args=[order.pk]),
                reverse("orders:order_cancel", args=[order.pk]),
                reverse("orders:order_repoll", args=[order.pk])):
        assert client.post(url).url.startswith(reverse("admin:login"))
    assert not AuditEvent.objects.filter(action__in=["revealed", "exported"]).exists()


def test_it_renders_the_order_list_and_the_order_page_in_the_admin_look(staff_client,
                                                                        make_order):
    order = make_order(codes=[CODE])
    listing = page(staff_client.get(reverse("orders:order_list")))
    assert order.reference in listing
    assert 'id="result_list"' in listing and "Portal" in listing
    detail = page(staff_client.get(reverse("orders:order_detail", args=[order.pk])))
    assert "••••4F3M" in detail
    assert "Timeline" in detail


def test_it_redirects_home_to_the_dashboard(staff_client):
    assert reverse("home") == reverse("orders:dashboard") == "/"
    assert "Balances" in page(staff_client.get("/"))


# Order list: filters, search, sorting, pagination


def test_it_combines_filters_and_keeps_them_in_the_links(staff_client, make_order, make_vendor,
                                                         product, django_user_model):
    other_user = django_user_model.objects.create_user("someone")
    other_product = Product.objects.create(
        vendor=make_vendor(name="EZ"), supplier_product_id="x", name="Xbox $10", brand="Xbox",
        face_value=Decimal("10"), face_currency="USD", cost=Decimal("9"), cost_currency="USD",
    )
    match = make_order(status=Order.Status.COMPLETED, codes=["AAAA-1111-2222"])
    wrong_status = make_order(status=Order.Status.FAILED)
    wrong_user = make_order(status=Order.Status.COMPLETED, user=other_user)
    wrong_product = make_order(status=Order.Status.COMPLETED, product=other_product,
                               currency="USD")
    too_old = make_order(status=Order.Status.COMPLETED,
                         created_at=timezone.now() - timedelta(days=40))
    today = timezone.localdate()
    params = {
        "status": "completed", "vendor": product.vendor.pk, "product": product.pk,
        "placed_by": match.placed_by.pk, "currency": "gbp",
        "placed_from": (today - timedelta(days=7)).isoformat(), "placed_to": today.isoformat(),
        "sort": "reference",
    }
    html = page(staff_client.get(reverse("orders:order_list"), params))
    assert match.reference in html
    for other in (wrong_status, wrong_user, wrong_product, too_old):
        assert other.reference not in html
    # The form shows the filters back, and the sort links keep them.
    assert 'value="gbp"' in html
    assert f"status=completed&amp;vendor={product.vendor.pk}" in html
    assert "sort=-reference" in html


def test_it_shows_non_approvers_only_their_own_orders(client, make_order, orderer):
    mine = make_order(user=orderer)
    theirs = make_order()
    html = page(login(client, orderer).get(reverse("orders:order_list")))
    assert mine.reference in html and theirs.reference not in html
    assert client.get(reverse("orders:order_detail", args=[theirs.pk])).status_code == 404


def search(client, term: str, **filters):
    """Post the order list's search box, as the browser does, with the filters it carries."""
    return client.post(reverse("orders:order_search"), {"term": term, **filters})


@pytest.mark.parametrize("how", ["reference", "supplier_order_id", "code", "code_spaced"])
def test_it_finds_an_order_by_reference_supplier_id_or_full_code(staff_client, make_order, how):
    wanted = make_order(codes=[CODE], supplier_order_id="KX-998877")
    other = make_order(codes=["OTHER-CODE-0000-1111"], supplier_order_id="KX-112233")
    term = {"reference": wanted.reference.lower(), "supplier_order_id": "KX-998877",
            "code": CODE, "code_spaced": "gift 7q2x 99zk 4f3m"}[how]
    response = search(staff_client, term)
    assert response.status_code == 302
    url = unquote_plus(response.url)
    assert url.startswith(reverse("orders:order_list") + "?")
    if how.startswith("code"):
        # Neither the code nor a piece of it reaches the URL: only its blind index.
        assert "q=" not in url and f"code={default_keyring().blind_index(CODE)}" in url
        for piece in (CODE, term, "7Q2X", "7q2x", "4F3M"):
            assert piece not in url, "the code leaked into the URL"
    else:
        assert f"q={term}" in url and "code=" not in url
    html = page(staff_client.get(response.url))
    assert wanted.reference in html
    assert other.reference not in html
    assert CODE not in html and "7q2x" not in html, "the code is shown back on the list"


def test_it_searches_only_by_post(staff_client, make_order):
    assert staff_client.get(reverse("orders:order_search"), {"term": CODE}).status_code == 405
    # An old bookmark with a code in ``q`` finds nothing: codes are searched by blind index.
    order = make_order(codes=[CODE])
    html = page(staff_client.get(reverse("orders:order_list"), {"q": CODE}))
    assert order.reference not in html


def test_it_redirects_anonymous_searches_to_the_login(client):
    response = client.post(reverse("orders:order_search"), {"term": CODE})
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    assert CODE not in unquote_plus(response.url)


def test_it_keeps_the_other_filters_across_a_code_search(staff_client, make_order):
    wanted = make_order(codes=[CODE])
    failed = make_order(status=Order.Status.FAILED, codes=["FAILED-CODE-0000"])
    response = search(staff_client, CODE, status="completed", sort="reference", page="3")
    query = parse_qs(urlsplit(response.url).query)
    assert query == {"status": ["completed"], "sort": ["reference"],
                     "code": [default_keyring().blind_index(CODE)]}
    html = page(staff_client.get(response.url))
    assert wanted.reference in html and failed.reference not in html
    # The filter form carries the code search on, the search form carries the filters.
    assert f'name="code" value="{query["code"][0]}"' in html
    assert '<input type="hidden" name="status" value="completed">' in html
    assert "Showing the order that holds the code you searched for" in html
    # The same filters with another code: nothing.
    html = page(staff_client.get(search(staff_client, "FAILED-CODE-0000",
                                        status="completed").url))
    assert "No orders match." in html


def test_it_finds_only_codes_of_orders_the_user_may_see(client, make_order, orderer):
    mine = make_order(user=orderer, codes=["MINE-CODE-0001"])
    theirs = make_order(codes=[CODE], supplier_order_id="KX-THEIRS")
    login(client, orderer)
    for term in (CODE, theirs.reference, "KX-THEIRS"):
        response = search(client, term)
        # Another person's reference is not confirmed by putting it back in the URL.
        assert "code=" in response.url and "q=" not in response.url
        html = page(client.get(response.url))
        assert theirs.reference not in html and mine.reference not in html
    html = page(client.get(search(client, "mine code 0001").url))
    assert mine.reference in html


def test_it_reports_a_malformed_code_search(staff_client, make_order):
    order = make_order(codes=[CODE])
    html = page(staff_client.get(reverse("orders:order_list"), {"code": "not-an-index"}))
    assert "This code search is not valid" in html
    assert order.reference in html
    response = search(staff_client, "x" * 201)
    assert response.url == reverse("orders:order_list")
    assert "too long" in page(staff_client.get(response.url))


def test_it_never_shows_a_code_on_list_pages(staff_client, make_order):
    order = make_order(codes=[CODE])
    for url in (reverse("orders:order_list"), reverse("orders:dashboard"),
                reverse("orders:order_detail", args=[order.pk]),
                reverse("orders:order_live", args=[order.pk])):
        text = page(staff_client.get(url))
        assert CODE not in text and "8842" not in text
    assert not AuditEvent.objects.filter(action="revealed").exists()


def test_it_sorts_only_by_whitelisted_columns(staff_client, make_order):
    first, second = make_order(), make_order()
    by_reference = page(staff_client.get(reverse("orders:order_list"), {"sort": "reference"}))
    low, high = sorted([first.reference, second.reference])
    assert by_reference.index(low) < by_reference.index(high)
    descending = page(staff_client.get(reverse("orders:order_list"), {"sort": "-reference"}))
    assert descending.index(high) < descending.index(low)
    assert staff_client.get(reverse("orders:order_list"),
                            {"sort": "placed_by__password"}).status_code == 200


def rel_link(html: str, rel: str) -> str | None:
    """The pager's link of that ``rel``, as a URL to get."""
    match = re.search(rf'<a href="([^"]*)" rel="{rel}">', html)
    return urljoin(reverse("orders:order_list"), unescape(match.group(1))) if match else None


def listed(html: str) -> list[str]:
    """The references of the list's rows, in order."""
    return re.findall(r'<td><a href="/orders/\d+/">([^<]+)</a></td>', html)


def test_it_pages_without_counting(staff_client, make_order, django_assert_max_num_queries):
    from orders import views

    orders = [make_order() for _ in range(views.PAGE_SIZE + 1)]
    with django_assert_max_num_queries(PAGE_QUERIES) as queries:
        first = page(staff_client.get(reverse("orders:order_list"), {"sort": "reference"}))
    assert 'rel="next"' in first and 'rel="prev"' not in first
    sql = " ".join(query["sql"] for query in queries.captured_queries).upper()
    assert "COUNT(" not in sql and "OFFSET" not in sql
    second = page(staff_client.get(rel_link(first, "next")))
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "sort=reference" in rel_link(second, "prev")
    last = sorted(o.reference for o in orders)[-1]
    assert listed(second) == [last] and last not in first


def walk(client, url: str) -> tuple[list[list[str]], list[list[str]]]:
    """Follow "Next" from ``url`` to the last page, then "Previous" back to the first:
    the pages' references either way, in the order they were visited."""
    forward = [page(client.get(url))]
    while (link := rel_link(forward[-1], "next")) is not None:
        assert len(forward) < 50, "the pager never ends"
        forward.append(page(client.get(link)))
    backward = [forward[-1]]
    while (link := rel_link(backward[-1], "prev")) is not None:
        assert len(backward) < 50, "the pager never gets back to the start"
        backward.append(page(client.get(link)))
    return [listed(html) for html in forward], [listed(html) for html in backward]


@pytest.mark.parametrize("sort", ["", "quantity", "-total", "placed_by"])
def test_it_walks_the_pages_forward_and_back_by_cursor(staff_client, make_order, sort,
                                                       monkeypatch, django_user_model):
    from orders import views

    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    another = django_user_model.objects.create_user("another")
    now = timezone.now().replace(microsecond=0)
    for i in range(23):
        # Ties on every sort (the same time, quantity, total or person) only the id separates.
        make_order(quantity=1 + i % 3, created_at=now - timedelta(minutes=i // 4),
                   user=another if i % 2 else None,
                   status=Order.Status.FAILED if i % 5 == 0 else Order.Status.COMPLETED)
    params = {"status": "completed", "currency": "GBP", **({"sort": sort} if sort else {})}
    expected = list(selectors.sort_orders(
        Order.objects.filter(status="completed"), sort or selectors.DEFAULT_ORDER_SORT,
    ).values_list("reference", flat=True))
    assert len(expected) == 18

    forward, backward = walk(staff_client, f"{reverse('orders:order_list')}?{urlencode(params)}")
    assert [len(rows) for rows in forward] == [4, 4, 4, 4, 2]
    assert sum(forward, []) == expected, "a row was skipped, repeated or out of order"
    assert backward == forward[::-1], "going back did not retrace the same pages"


def test_it_keeps_the_filters_and_the_sort_in_the_cursor_links(staff_client, make_order,
                                                                monkeypatch):
    from orders import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for _ in range(5):
        make_order()
    html = page(staff_client.get(reverse("orders:order_list"),
                                 {"status": "completed", "sort": "-reference", "page": "7"}))
    second = page(staff_client.get(rel_link(html, "next")))
    for link in (rel_link(second, "next"), rel_link(second, "prev"), rel_link(second, "first")):
        query = parse_qs(urlsplit(link).query)
        assert query["status"] == ["completed"] and query["sort"] == ["-reference"]
        assert "page" not in query and len({"after", "before"} & set(query)) <= 1
    assert parse_qs(urlsplit(rel_link(second, "first")).query).keys() == {"status", "sort"}
    # Sorting again, or searching, starts from the first page.
    assert "after=" not in second.split('id="result_list"')[1].split("</thead>")[0]


def test_it_shows_the_first_page_for_a_bad_or_tampered_cursor(staff_client, make_order,
                                                             monkeypatch):
    from orders import views

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    for _ in range(10):
        make_order()
    url = reverse("orders:order_list")
    first = page(staff_client.get(url))
    cursor = parse_qs(urlsplit(rel_link(first, "next")).query)["after"][0]
    value, signature = cursor.rsplit(":", 1)
    payload = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    payload[2] -= 1  # another id, with the same signature
    forged = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for params in (
        {"after": forged.decode().rstrip("=") + ":" + signature},
        {"after": flipped}, {"before": flipped}, {"after": "garbage"}, {"before": "%%%"},
        {"after": value}, {"after": cursor, "sort": "reference"},  # another sort's cursor
        {"after": cursor, "before": cursor},
        {"after": cursor + "x" * 5000},
    ):
        html = page(staff_client.get(url, params))
        expected = first if "sort" not in params else page(
            staff_client.get(url, {"sort": params["sort"]}))
        assert listed(html) == listed(expected), params
        assert 'rel="prev"' not in html and 'rel="next"' in html
    # The genuine cursor moves on.
    assert listed(page(staff_client.get(url, {"after": cursor})))[0] not in listed(first)


def test_it_shows_the_first_page_when_a_cursor_has_gone_stale(staff_client, make_order,
                                                               monkeypatch):
    from orders import views

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    orders = [make_order() for _ in range(6)]  # the list: 5 4 3 | 2 1 0
    first = page(staff_client.get(reverse("orders:order_list")))
    second = page(staff_client.get(rel_link(first, "next")))
    assert 'rel="next"' not in second
    # Orders before the second page are deleted: "Previous" shows a full first page.
    Order.objects.filter(pk__in=[orders[5].pk, orders[4].pk]).delete()
    back = page(staff_client.get(rel_link(second, "prev")))
    assert listed(back) == [orders[i].reference for i in (3, 2, 1)]
    assert 'rel="prev"' not in back and 'rel="next"' in back
    # Nothing is left after the cursor: the first page again rather than an empty one.
    Order.objects.filter(pk__in=[orders[i].pk for i in (2, 1, 0)]).delete()
    html = page(staff_client.get(rel_link(first, "next")))
    assert listed(html) == [orders[3].reference] and 'rel="prev"' not in html


# Query counts


@pytest.mark.parametrize("rows", [1, 30])
def test_it_lists_orders_in_a_fixed_number_of_queries(staff_client, make_order, rows,
                                                      django_assert_max_num_queries):
    for _ in range(rows):
        make_order(codes=[uuid.uuid4().hex], vendor_orders=2)
    with django_assert_max_num_queries(PAGE_QUERIES):
        html = page(staff_client.get(reverse("orders:order_list"),
                                     {"status": "completed", "currency": "GBP"}))
    assert html.count("<progress") == rows


@pytest.mark.parametrize("direction", ["next", "prev"])
def test_it_lists_a_page_by_cursor_in_a_fixed_number_of_queries(
        staff_client, make_order, direction, monkeypatch, django_assert_max_num_queries):
    from orders import views

    monkeypatch.setattr(views, "PAGE_SIZE", 10)
    for _ in range(25):
        make_order(codes=[uuid.uuid4().hex], vendor_orders=2)
    url = rel_link(page(staff_client.get(reverse("orders:order_list"))), "next")
    if direction == "prev":
        url = rel_link(page(staff_client.get(rel_link(page(staff_client.get(url)), "next"))),
                       "prev")
    with django_assert_max_num_queries(PAGE_QUERIES):
        html = page(staff_client.get(url))
    assert html.count("<progress") == 10


@pytest.mark.parametrize("rows", [1, 30])
def test_it_shows_an_order_in_a_fixed_number_of_queries(staff_client, make_order, rows,
                                                        django_assert_max_num_queries):
    order = make_order(codes=[f"CODE-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(rows)],
                       vendor_orders=rows, events=rows)
    for url in (reverse("orders:order_detail", args=[order.pk]),
                reverse("orders:order_live", args=[order.pk])):
        with django_assert_max_num_queries(ORDER_PAGE_QUERIES):
            html = page(staff_client.get(url))
        assert html.count(">Reveal</button>") == rows


# Order page: live status and actions


def test_it_polls_the_live_fragment_only_while_the_order_is_open(staff_client, make_order):
    open_order = make_order(status=Order.Status.IN_PROGRESS)
    done = make_order(status=Order.Status.COMPLETED, codes=[CODE])
    live = reverse("orders:order_live", args=[open_order.pk])
    html = page(staff_client.get(reverse("orders:order_detail", args=[open_order.pk])))
    assert f'hx-get="{live}"' in html and 'hx-trigger="every 2s"' in html
    fragment = page(staff_client.get(live, HTTP_HX_REQUEST="true"))
    assert "<html" not in fragment and 'hx-trigger="every 2s"' in fragment
    html = page(staff_client.get(reverse("orders:order_detail", args=[done.pk])))
    assert 'hx-trigger="every 2s"' not in html


def test_it_cancels_a_queued_order(staff_client, make_order):
    order = make_order(status=Order.Status.QUEUED)
    html = page(staff_client.get(reverse("orders:order_detail", args=[order.pk])))
    assert "Cancel order" in html
    response = staff_client.post(reverse("orders:order_cancel", args=[order.pk]), follow=True)
    assert "cancelled" in page(response)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_it_shows_a_refused_cancel_as_an_error(staff_client, make_order):
    order = make_order(status=Order.Status.COMPLETED, codes=[CODE])
    html = page(staff_client.get(reverse("orders:order_detail", args=[order.pk])))
    assert "Cancel order" not in html
    response = staff_client.post(reverse("orders:order_cancel", args=[order.pk]), follow=True)
    assert 'class="error"' in page(response)
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED


def test_it_repolls_open_supplier_orders_now(staff_client, make_order):
    order = make_order(status=Order.Status.NEEDS_ATTENTION)
    VendorOrder.objects.filter(order=order).update(status="processing", attention="stuck")
    response = staff_client.post(reverse("orders:order_repoll", args=[order.pk]), follow=True)
    assert "Asked the supplier again" in page(response)
    vo = order.vendor_orders.get()
    assert vo.attention == "" and vo.next_poll_at is not None


def test_it_lets_another_approver_approve_or_reject(client, make_order, orderer,
                                                    django_user_model):
    approver = grant(django_user_model.objects.create_user("approver1", is_staff=True),
                     "view_order", "approve_order")
    first = make_order(user=orderer, status=Order.Status.PENDING_APPROVAL)
    second = make_order(user=orderer, status=Order.Status.PENDING_APPROVAL)
    # The orderer may not approve.
    login(client, orderer)
    assert client.post(reverse("orders:order_approve", args=[first.pk])).status_code == 403
    login(client, approver)
    assert "Approve" in page(client.get(reverse("orders:order_detail", args=[first.pk])))
    client.post(reverse("orders:order_approve", args=[first.pk]))
    client.post(reverse("orders:order_reject", args=[second.pk]), {"reason": "too many"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.approved_by) == (Order.Status.QUEUED, approver)
    assert second.status == Order.Status.REJECTED


# Money


def test_it_shows_what_a_partial_order_was_charged_and_gave_back(client, make_order, orderer):
    """Ordered 4 x £9.50; three codes came (£28.50 charged), the fourth's money returned."""
    from django.db import transaction

    from orders import ledger

    order = make_order(user=orderer, status=Order.Status.PARTIALLY_COMPLETED,
                       codes=["CODE-A-0001", "CODE-B-0002", "CODE-C-0003"], quantity=4)
    vendor_order = order.vendor_orders.get()
    with transaction.atomic():
        ledger.record_report(vendor=vendor_order.vendor, currency="GBP", amount=Decimal("500"))
        ledger.reserve(vendor=vendor_order.vendor, currency="GBP", amount=Decimal("38.00"),
                       order=order)
        ledger.settle(vendor=vendor_order.vendor, currency="GBP", reserved=Decimal("38.00"),
                      spent=Decimal("28.50"), order=order, vendor_order=vendor_order)
    html = page(login(client, orderer).get(reverse("orders:order_detail", args=[order.pk])))
    assert re.search(r'id="order-total">£38\.00<', html)
    assert re.search(r'class="charged">£28\.50<', html)
    assert re.search(r'class="released">£9\.50<', html)
    assert 'class="reserved"' not in html  # nothing is still set aside
    [money] = selectors.order_money(order)
    assert (money.charged, money.released, money.reserved) == (
        Decimal("28.50"), Decimal("9.50"), Decimal("0"))


def test_it_shows_the_money_still_set_aside_for_an_order_in_flight(client, make_order, orderer):
    from django.db import transaction

    from orders import ledger

    order = make_order(user=orderer, status=Order.Status.IN_PROGRESS, quantity=2)
    with transaction.atomic():
        ledger.reserve(vendor=order.vendor_orders.get().vendor, currency="GBP",
                       amount=Decimal("19.00"), order=order)
    html = page(login(client, orderer).get(reverse("orders:order_detail", args=[order.pk])))
    assert re.search(r'class="reserved">£19\.00<', html)
    assert re.search(r'class="charged">£0\.00<', html)


# Reveal


def test_it_reveals_a_code_once_with_an_audit_event(client, make_order, orderer):
    order = make_order(user=orderer, codes=[CODE])
    voucher = order.vouchers.get()
    response = login(client, orderer).post(
        reverse("orders:voucher_reveal", args=[voucher.pk])
    )
    html = page(response)
    assert CODE in html and "8842" in html
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="revealed")
    assert (event.actor, event.order) == (orderer, order)


def test_it_says_what_is_true_of_a_second_reveal(client, make_order, orderer):
    """It may be revealed again, each time recorded: the page must not say "once"."""
    voucher = make_order(user=orderer, codes=[CODE]).vouchers.get()
    login(client, orderer)
    url = reverse("orders:voucher_reveal", args=[voucher.pk])
    first, second = page(client.post(url)), page(client.post(url))
    assert CODE in second and "shown once" not in first
    assert "Every reveal of this code is recorded" in second
    assert AuditEvent.objects.filter(action="revealed").count() == 2


def test_it_refuses_to_reveal_without_the_permission(client, make_order, django_user_model):
    user = grant(django_user_model.objects.create_user("looker", is_staff=True),
                 "view_order", "add_order")
    order = make_order(user=user, codes=[CODE])
    voucher = order.vouchers.get()
    login(client, user)
    assert ">Reveal</button>" not in page(
        client.get(reverse("orders:order_detail", args=[order.pk]))
    )
    response = client.post(reverse("orders:voucher_reveal", args=[voucher.pk]))
    assert response.status_code == 403
    assert CODE not in response.content.decode()
    assert not AuditEvent.objects.filter(action="revealed").exists()


def test_it_reveals_only_by_post(staff_client, make_order):
    voucher = make_order(codes=[CODE]).vouchers.get()
    response = staff_client.get(reverse("orders:voucher_reveal", args=[voucher.pk]))
    assert response.status_code == 405


def test_it_hides_other_peoples_codes_from_non_approvers(client, make_order, orderer):
    voucher = make_order(codes=[CODE]).vouchers.get()
    response = login(client, orderer).post(
        reverse("orders:voucher_reveal", args=[voucher.pk])
    )
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="revealed").exists()


# Export


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_it_exports_one_orders_codes_as_streamed_csv(client, make_order, orderer):
    order = make_order(user=orderer, codes=[CODE, "=HYPERLINK(1)", "+1", "-2", "@SUM"])
    response = login(client, orderer).post(reverse("orders:export_order", args=[order.pk]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    event = AuditEvent.objects.get(action="exported")  # written before the first byte
    assert (event.actor, event.order, event.data["codes"]) == (orderer, order, 5)
    rows = read_csv(response)
    assert rows[0] == ["order reference", "placed at", "vendor", "product", "SKU",
                       "face value", "currency", "code", "PIN", "serial", "expiry"]
    assert rows[1][:3] == [order.reference, order.created_at.isoformat(timespec="seconds"),
                           "Kalixo"]
    assert rows[1][3:9] == ["Steam £10", "STEAM-GB-10", "10.0000", "GBP", CODE, "8842"]
    codes = [row[7] for row in rows[1:]]
    assert codes == [CODE, "'=HYPERLINK(1)", "'+1", "'-2", "'@SUM"]
    assert AuditEvent.objects.filter(action="exported").count() == 1


def test_it_exports_the_filtered_list(staff_client, make_order):
    wanted = make_order(codes=["AAAA-0000-0001", "AAAA-0000-0002"])
    make_order(status=Order.Status.FAILED, codes=["BBBB-0000-0003"])
    url = reverse("orders:export_list") + "?status=completed"
    rows = read_csv(staff_client.post(url))
    assert sorted(row[7] for row in rows[1:]) == ["AAAA-0000-0001", "AAAA-0000-0002"]
    assert {row[0] for row in rows[1:]} == {wanted.reference}
    event = AuditEvent.objects.get(action="exported")
    assert event.data == {"orders": 1, "codes": 2, "order_ids": [wanted.pk],
                          "references": [wanted.reference]}
    assert wanted.reference in event.message


def test_it_refuses_to_export_without_the_permission(client, make_order, django_user_model):
    user = grant(django_user_model.objects.create_user("noexport", is_staff=True),
                 "view_order", "add_order", "reveal_codes")
    order = make_order(user=user, codes=[CODE])
    login(client, user)
    for response in (client.post(reverse("orders:export_order", args=[order.pk])),
                     client.post(reverse("orders:export_list"))):
        assert response.status_code == 403
        assert CODE not in response.content.decode()
    assert not AuditEvent.objects.filter(action="exported").exists()


def test_it_refuses_to_export_codes_the_user_may_not_reveal(client, make_order,
                                                            django_user_model):
    user = grant(django_user_model.objects.create_user("exporter", is_staff=True),
                 "view_order", "export_codes")
    order = make_order(user=user, codes=[CODE])
    response = login(client, user).post(reverse("orders:export_order", args=[order.pk]))
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="exported").exists()


def test_it_exports_and_repolls_from_admin_actions(staff_client, make_order):
    done = make_order(codes=[CODE])
    stuck = make_order(status=Order.Status.IN_PROGRESS)
    VendorOrder.objects.filter(order=stuck).update(status="processing", attention="stuck")
    url = reverse("admin:orders_order_changelist")
    response = staff_client.post(url, {"action": "export_codes",
                                       "_selected_action": [done.pk]})
    assert read_csv(response)[1][7] == CODE
    staff_client.post(url, {"action": "repoll_now", "_selected_action": [stuck.pk]})
    assert stuck.vendor_orders.get().attention == ""


def test_it_exports_with_bounded_queries(staff_client, make_order,
                                         django_assert_max_num_queries):
    order = make_order(codes=[f"CODE-{i:05d}" for i in range(40)])
    response = staff_client.post(reverse("orders:export_order", args=[order.pk]))
    with django_assert_max_num_queries(3):
        rows = read_csv(response)
    assert len(rows) == 41


def test_it_exports_every_row_across_chunks_and_pieces(staff_client, make_order, make_vendor,
                                                      monkeypatch, settings):
    from orders import exports

    settings.TIME_ZONE = "Pacific/Auckland"  # the expiry is still the UTC date
    monkeypatch.setattr(exports, "CHUNK", 3)  # a chunk ends inside an order
    other = Product.objects.create(
        vendor=make_vendor(name="=Other"), supplier_product_id="xbox-25", name="Xbox $25",
        face_value=Decimal("25"), face_currency="", cost=Decimal("24"), cost_currency="USD",
    )
    first = make_order(codes=[f"FIRST-{i:04d}" for i in range(5)],
                       created_at=timezone.now() - timedelta(days=2))
    second = make_order(codes=[f"SECOND-{i:04d}" for i in range(4)], product=other,
                        currency="USD", created_at=timezone.now() - timedelta(days=1))
    OrderLine.objects.filter(order=second).update(face_value=None)
    late = datetime(2027, 3, 1, 23, 30, tzinfo=UTC)
    Voucher.objects.filter(order=first, last4="0003").update(expires_at=late)
    Voucher.objects.filter(order=first, last4="0004").update(expires_at=None)
    response = staff_client.post(reverse("orders:export_list"))
    pieces = [piece.decode() for piece in response.streaming_content]
    assert pieces[0].startswith("\ufeff") and all(p.endswith("\r\n") for p in pieces)
    assert [len(p.splitlines()) for p in pieces] == [1, 3, 3, 3]  # header, a piece a chunk
    rows = list(csv.reader(io.StringIO("".join(pieces).removeprefix("\ufeff"))))
    assert [row[0] for row in rows[1:]] == [first.reference] * 5 + [second.reference] * 4
    assert sorted(row[7] for row in rows[1:6]) == [f"FIRST-{i:04d}" for i in range(5)]
    assert sorted(row[7] for row in rows[6:]) == [f"SECOND-{i:04d}" for i in range(4)]
    assert {tuple(row[1:7]) for row in rows[1:6]} == {(
        first.created_at.isoformat(timespec="seconds"), "Kalixo", "Steam £10",
        "STEAM-GB-10", "10.0000", "GBP")}
    # No SKU: the supplier's product id; no face value on the line: the product's; no face
    # currency on the product: the line's. A vendor name like a formula is neutralised.
    assert {tuple(row[1:7]) for row in rows[6:]} == {(
        second.created_at.isoformat(timespec="seconds"), "'=Other", "Xbox $25", "xbox-25",
        "25.0000", "USD")}
    expiries = {row[7]: row[8:] for row in rows[1:]}
    assert expiries["FIRST-0003"] == ["8842", "S-0003", "2027-03-01"]
    assert expiries["FIRST-0004"] == ["8842", "S-0004", ""]
    voucher = Voucher.objects.get(order=first, last4="0002")
    assert expiries["FIRST-0002"] == ["8842", "S-0002", voucher.expires_at.date().isoformat()]


def test_it_exports_codes_sealed_with_older_keys_after_a_rotation(staff_client, make_order,
                                                                  settings):
    from common.crypto import default_keyring

    default_keyring.cache_clear()
    old = make_order(codes=["OLD-KEY-0001", "OLD-KEY-0002"])
    settings.VOUCHER_KEYS = f"7:{base64.b64encode(bytes(range(32))).decode()}," \
                            f"{settings.VOUCHER_KEYS}"
    default_keyring.cache_clear()
    try:
        new = make_order(codes=["NEW-KEY-0003"])
        assert {v.key_version for v in Voucher.objects.filter(order=new)} == {7}
        assert 7 not in {v.key_version for v in Voucher.objects.filter(order=old)}
        rows = read_csv(staff_client.post(reverse("orders:export_list")))
    finally:
        default_keyring.cache_clear()
    assert sorted(row[7] for row in rows[1:]) == ["NEW-KEY-0003", "OLD-KEY-0001",
                                                  "OLD-KEY-0002"]


def test_it_reports_bad_filter_values_and_applies_the_good_ones(staff_client, make_order):
    completed = make_order(status=Order.Status.COMPLETED)
    failed = make_order(status=Order.Status.FAILED)
    response = staff_client.get(reverse("orders:order_list"), {
        "vendor": "999999", "product": "abc", "placed_from": "yesterday", "status": "bogus",
        "currency": "GBP", "page": "x",
    })
    html = page(response)
    assert html.count('class="errorlist') == 4
    assert completed.reference in html and failed.reference in html
    html = page(staff_client.get(reverse("orders:order_list"),
                                 {"vendor": "999999", "status": "failed"}))
    assert failed.reference in html and completed.reference not in html


def test_it_offers_a_top_up_for_a_partially_delivered_order(staff_client, make_order):
    order = make_order(status=Order.Status.PARTIALLY_COMPLETED, codes=[CODE], quantity=3)
    html = page(staff_client.get(reverse("orders:order_detail", args=[order.pk])))
    assert "Top up the missing codes" in html
    response = staff_client.post(reverse("orders:order_top_up", args=[order.pk]), follow=True)
    assert "No other offer of" in page(response)  # no other supplier in this test
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_COMPLETED
