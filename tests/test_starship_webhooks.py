"""Starship webhooks: a signed event about an open order makes the portal poll it at once; the
codes still come from the API. Refused deliveries (bad signature, stale timestamp, no such
vendor or secret) and ignored ones (unknown order, repeated event id) change nothing. And the
sandbox sends the events itself, with its retries, end to end with a worker."""

import json
import logging
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from audit.models import AuditEvent
from orders import services
from orders.models import Order, OrderLine, SupplierEvent, VendorOrder
from orders.pricing import LineRequest
from tests.conftest import sandbox_get, set_faults
from vendors.adapters import starship_webhook
from vendors.credentials import open_credentials
from vendors.models import Product
from vendors.services import vendor_set_credentials

SECRET = "whsec_test_secret"
CARD = "4000123412341234"  # a voucher number in an event's body, which must go nowhere


def signed_post(client, url: str, body: dict | bytes, *, secret: str = SECRET,
                timestamp: int | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return client.post(url, data=raw, content_type="application/json", headers={
        "X-Timestamp": ts,
        "X-Signature": starship_webhook.signature(secret=secret, timestamp=ts, body=raw),
    })


def event(name: str = "order.delivered", order_id="777", event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "event": name,
            "data": {"id": order_id, "status": name.split(".")[1],
                     "vouchers": [{"card_number": CARD, "pin_code": "123456"}]}}


@pytest.fixture
def starship_order(make_vendor, django_user_model, redis_conn):
    """A Starship vendor with a webhook secret and one order waiting at the supplier (its
    next poll an hour away); returns (vendor, vendor order, webhook URL)."""
    vendor = make_vendor(kind="starship", base_url="https://starship.invalid/api")
    vendor_set_credentials(vendor=vendor, credentials={
        "api_key": "sk_test_x", "api_secret": "secret_x", "webhook_secret": SECRET})
    user = django_user_model.objects.create_user("placer", is_staff=True)
    product = Product.objects.create(vendor=vendor, supplier_product_id="1003:10.00",
                                     name="Delayed card", face_value=Decimal("10"),
                                     face_currency="USD", cost=Decimal("9.75"),
                                     cost_currency="USD")
    order = Order.objects.create(reference="VP-HOOK1", placed_by=user, currency="USD",
                                 status=Order.Status.IN_PROGRESS, quantity=1,
                                 total_cost=Decimal("9.75"))
    line = OrderLine.objects.create(order=order, product=product, vendor=vendor, quantity=1,
                                    unit_cost=Decimal("9.75"), currency="USD")
    vo = VendorOrder.objects.create(
        order=order, line=line, vendor=vendor, client_reference="VP-HOOK1-1", quantity=1,
        currency="USD", status=VendorOrder.Status.PROCESSING, supplier_order_id="777",
        submitted_at=timezone.now(), next_poll_at=timezone.now() + timedelta(hours=1),
    )
    return vendor, vo, f"/webhooks/starship/{vendor.pk}/"


def unchanged(vo: VendorOrder) -> bool:
    """Nothing happened to the order: same next poll, no job, no audit row, no event kept."""
    before = vo.next_poll_at
    vo.refresh_from_db()
    return (vo.next_poll_at == before and django_rq.get_queue("orders").count == 0
            and not AuditEvent.objects.filter(action="repoll_asked").exists()
            and not SupplierEvent.objects.exists())


@pytest.mark.django_db
def test_it_queues_an_immediate_poll_for_a_signed_event(
        client, starship_order, django_capture_on_commit_callbacks, caplog):
    vendor, vo, url = starship_order
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, url, event())
    assert response.status_code == 200
    assert response.json() == {"status": "poll queued"}
    vo.refresh_from_db()
    assert vo.next_poll_at is None and vo.claimed_at is not None  # claimed by the dispatcher
    jobs = django_rq.get_queue("orders").jobs
    assert [job.args for job in jobs] == [(vo.pk, vo.claim_token)]
    assert AuditEvent.objects.filter(action="repoll_asked", order=vo.order).count() == 1
    assert vo.status == VendorOrder.Status.PROCESSING and not vo.vouchers.exists()
    logged = caplog.text + json.dumps(list(AuditEvent.objects.values("message", "data")),
                                      default=str)
    assert CARD not in logged and SECRET not in logged


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["bad signature", "no signature", "stale", "future",
                                   "not json"])
def test_it_refuses_a_delivery_it_cannot_trust(client, starship_order, fault):
    _vendor, vo, url = starship_order
    now = int(time.time())
    if fault == "bad signature":
        response = signed_post(client, url, event(), secret="not-the-secret")
    elif fault == "no signature":
        response = client.post(url, data=json.dumps(event()), content_type="application/json",
                               headers={"X-Timestamp": str(now)})
    elif fault == "stale":  # a replay of a delivery signed six minutes ago
        response = signed_post(client, url, event(), timestamp=now - 360)
    elif fault == "future":
        response = signed_post(client, url, event(), timestamp=now + 360)
    else:
        response = signed_post(client, url, b"not json")
    assert response.status_code == (401 if "signature" in fault else 400)
    assert unchanged(vo)


@pytest.mark.django_db
def test_it_has_no_endpoint_without_a_starship_vendor_and_its_secret(
        client, starship_order, make_vendor):
    vendor, vo, url = starship_order
    assert signed_post(client, "/webhooks/starship/999999/", event()).status_code == 404
    kalixo = make_vendor(kind="kalixo_v2")
    vendor_set_credentials(vendor=kalixo, credentials={"api_key": "k", "webhook_secret": SECRET})
    assert signed_post(client, f"/webhooks/starship/{kalixo.pk}/", event()).status_code == 404
    credentials = open_credentials(vendor)
    del credentials["webhook_secret"]
    vendor_set_credentials(vendor=vendor, credentials=credentials)
    assert signed_post(client, url, event()).status_code == 404
    assert client.get(url).status_code == 405
    assert unchanged(vo)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["order.created", "order.pending"])
def test_it_ignores_events_with_nothing_to_fetch_and_unknown_orders(
        client, starship_order, name, django_capture_on_commit_callbacks):
    _vendor, vo, url = starship_order
    with django_capture_on_commit_callbacks(execute=True):
        unknown = signed_post(client, url, event(order_id="12345"))
        nothing = signed_post(client, url, event(name))
    assert unknown.status_code == 200 and unknown.json()["status"].startswith("no such order")
    assert nothing.status_code == 200 and nothing.json()["status"] == "nothing to fetch"
    assert unchanged(vo)


@pytest.mark.django_db
def test_it_ignores_a_repeated_event_id(client, starship_order,
                                        django_capture_on_commit_callbacks):
    _vendor, vo, url = starship_order
    first = event(event_id="evt_once")
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(client, url, first).json() == {"status": "poll queued"}
    # The poll ran and set the next one; the supplier retries the same event (newly signed).
    later = timezone.now() + timedelta(hours=1)
    VendorOrder.objects.filter(pk=vo.pk).update(next_poll_at=later, claimed_at=None)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = signed_post(client, url, first, timestamp=int(time.time()) + 1)
    assert again.status_code == 200 and again.json() == {"status": "repeated event, ignored"}
    assert callbacks == []
    vo.refresh_from_db()
    assert vo.next_poll_at == later
    assert django_rq.get_queue("orders").count == 1
    assert AuditEvent.objects.filter(action="repoll_asked").count() == 1


@pytest.mark.django_db
def test_it_leaves_an_order_needing_attention_alone(client, starship_order,
                                                    django_capture_on_commit_callbacks):
    _vendor, vo, url = starship_order
    VendorOrder.objects.filter(pk=vo.pk).update(attention="check by hand", next_poll_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, url, event())
    assert response.json()["status"] == "not waiting for the supplier, ignored"
    vo.refresh_from_db()
    assert vo.next_poll_at is None and django_rq.get_queue("orders").count == 0


def test_it_checks_signatures_as_documented():
    body, ts = b'{"id": "evt_1"}', "1700000000"
    # hex HMAC-SHA256 of timestamp + "." + body, computed by hand with the secret "s"
    import hashlib
    import hmac
    expected = hmac.new(b"s", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert starship_webhook.signature(secret="s", timestamp=ts, body=body) == expected
    starship_webhook.verify(secret="s", timestamp=ts, signature_header=expected.upper(),
                            body=body, now=1700000000 + 299)
    with pytest.raises(starship_webhook.Refused) as stale:
        starship_webhook.verify(secret="s", timestamp=ts, signature_header=expected, body=body,
                                now=1700000000 + 301)
    assert stale.value.status == 400
    with pytest.raises(starship_webhook.Refused) as tampered:
        starship_webhook.verify(secret="s", timestamp=ts, signature_header=expected,
                                body=body + b" ", now=1700000000)
    assert tampered.value.status == 401


def test_it_reads_the_event_id_or_the_bodys_digest():
    named = starship_webhook.parse(b'{"id": "evt_9", "event": "order.delivered", '
                                   b'"data": {"id": 42}}')
    assert (named.event_id, named.name, named.supplier_order_id, named.is_news) == (
        "evt_9", "order.delivered", "42", True)
    body = b'{"type": "ORDER.PENDING", "order_id": "43"}'
    anonymous = starship_webhook.parse(body)
    assert anonymous.event_id == starship_webhook.parse(body).event_id
    assert len(anonymous.event_id) == 64 and not anonymous.is_news
    with pytest.raises(starship_webhook.Refused):
        starship_webhook.parse(b'{"event": "order.delivered", "data": {}}')


# End to end: the sandbox sends the events, a worker polls.


@pytest.fixture
def buyer(orderer):
    orderer.user_permissions.add(Permission.objects.get(codename="reveal_codes"))
    return type(orderer).objects.get(pk=orderer.pk)


POLL_INTERVAL = 60  # the vendor's polling: first poll after about a minute, then every minute


def test_it_stores_a_delayed_orders_codes_about_a_second_after_delivery(
        sandbox_vendor, buyer, work, sandbox_url, live_server):
    vendor = sandbox_vendor("starship", first_poll_delay=POLL_INTERVAL,
                            max_poll_interval=POLL_INTERVAL)
    vendor_set_credentials(vendor=vendor,
                           credentials={**open_credentials(vendor), "webhook_secret": SECRET})
    set_faults(sandbox_url, "starship", vendor.sandbox_account, {
        "webhook_url": f"{live_server.url}/webhooks/starship/{vendor.pk}/",
        "webhook_secret": SECRET, "webhook_retries": [0.5, 1]})
    product = Product.objects.get(vendor=vendor, supplier_product_id="1003:10.00")
    order = services.place_order(user=buyer, lines=[
        LineRequest(product=product, quantity=2)])

    def stored() -> bool:
        order.refresh_from_db()
        return order.status == Order.Status.COMPLETED

    work(stored, timeout=30)
    vo = order.vendor_orders.get()
    [supplier_order] = sandbox_get(sandbox_url, "starship", "orders", vendor.sandbox_account)
    lag = vo.completed_at.timestamp() - supplier_order["delivered_at"]
    assert 0 <= lag < 5, f"codes stored {lag:.1f} s after delivery"
    assert lag < POLL_INTERVAL / 10
    assert vo.polls == 1  # the one poll the webhook asked for: the codes came from the API
    issued = {i["code"] for i in sandbox_get(sandbox_url, "starship", "issued",
                                             vendor.sandbox_account)}
    same = {services.reveal_voucher(voucher=v, user=buyer).code
            for v in order.vouchers.all()} == issued
    assert same, "the stored codes differ from those the sandbox issued"
    sent = sandbox_get(sandbox_url, "starship", "webhooks", vendor.sandbox_account)
    assert [e["event"] for e in sent] == ["order.created", "order.pending", "order.delivered"]
    assert all(e["attempts"][0]["answer"] == 200 for e in sent)


def test_the_sandbox_retries_a_delivery_not_answered_2xx(sandbox_vendor, sandbox_url,
                                                         live_server, buyer, work):
    vendor = sandbox_vendor("starship")  # no webhook secret: the endpoint answers 404
    set_faults(sandbox_url, "starship", vendor.sandbox_account, {
        "webhook_url": f"{live_server.url}/webhooks/starship/{vendor.pk}/",
        "webhook_secret": SECRET, "webhook_retries": [0.2, 0.4]})
    product = Product.objects.get(vendor=vendor, supplier_product_id="1001:25.00")
    order = services.place_order(user=buyer, lines=[
        LineRequest(product=product, quantity=1)])

    def completed() -> bool:
        order.refresh_from_db()
        return order.status == Order.Status.COMPLETED

    work(completed)
    deadline = time.monotonic() + 10
    while True:
        sent = sandbox_get(sandbox_url, "starship", "webhooks", vendor.sandbox_account)
        if sent and all(len(e["attempts"]) == 3 for e in sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {e["event"] for e in sent} == {"order.created", "order.delivered"}
    for e in sent:
        assert [a["answer"] for a in e["attempts"]] == [404, 404, 404]
        gaps = [b["at"] - a["at"] for a, b in zip(e["attempts"], e["attempts"][1:],
                                                   strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4
