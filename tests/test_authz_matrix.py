"""The authorization matrix: every URL the resolver knows (the portal, the admin with every
registered model's pages, the RQ dashboard at both its mounts), by GET and by POST, for an
anonymous visitor, an active non-staff user, a staff user with no permission, each role and
a superuser, against the table in tests/authz_matrix.py. Every admin action too.

Each request runs in a savepoint rolled back afterwards, so one set of fixtures serves every
request: an order in each state, all placed by a user outside the matrix."""

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

import django_rq
import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import WARNING, get_messages
from django.db import transaction
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rq import Queue
from rq.job import Job

from audit.models import AuditEvent
from orders.custody import seal
from orders.models import (
    BasketLine,
    BulkUpload,
    LedgerEntry,
    Order,
    OrderLine,
    SpendLimit,
    VendorOrder,
    Voucher,
)
from portal.roles import ROLES, role_group
from tests import authz_matrix as matrix
from tests.auth import log_in
from vendors import matching
from vendors.models import Balance, Product, Vendor
from vendors.services import vendor_set_credentials

pytestmark = pytest.mark.django_db

JOB_ID = "authz-matrix-job"
LOGIN = "/admin/login/"


def routes() -> list[str]:
    """Every route of the URL resolver, spelled as in the table."""
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            else:
                assert isinstance(p, URLPattern)
                yield prefix + str(p.pattern)
    return list(dict.fromkeys(walk(get_resolver().url_patterns)))


@dataclass
class World:
    users: dict[str, User | None]
    orders: dict[str, Order]
    objects: dict[str, object]  # admin model path -> the object its pages show
    voucher: Voucher
    product: Product
    starship: Vendor  # with a webhook secret: its endpoint checks signatures
    basket_line: BasketLine  # the placer's
    upload: BulkUpload  # the placer's file of order lines


def make_order(placer, product, status, vo_status, *, codes=0, quantity=1, **vo_fields):
    order = Order.objects.create(
        reference=f"VP-{uuid.uuid4().hex[:8].upper()}", placed_by=placer, currency="GBP",
        status=status, quantity=quantity, delivered_quantity=codes,
        total_cost=Decimal("9.50") * quantity,
    )
    line = OrderLine.objects.create(order=order, product=product, vendor=product.vendor,
                                    quantity=quantity, unit_cost=Decimal("9.50"),
                                    currency="GBP", delivered_quantity=codes)
    vo = VendorOrder.objects.create(order=order, line=line, vendor=product.vendor,
                                    client_reference=f"{order.reference}-1", quantity=quantity,
                                    currency="GBP", status=vo_status, **vo_fields)
    for i in range(codes):
        voucher = Voucher(order=order, vendor_order=vo)
        seal(voucher, code=f"MATRIX-CODE-{i:04d}", pin="1234")
        voucher.save()
    return order


@pytest.fixture
def world(django_user_model) -> World:
    users: dict[str, User | None] = {"anonymous": None}
    users["nonstaff"] = django_user_model.objects.create_user("m-nonstaff")
    users["staff"] = django_user_model.objects.create_user("m-staff", is_staff=True)
    for role in ROLES:
        users[role] = django_user_model.objects.create_user(f"m-{role}", is_staff=True)
        users[role].groups.add(role_group(role))
    users["superuser"] = django_user_model.objects.create_superuser("m-super")
    placer = django_user_model.objects.create_user("m-placer", is_staff=True)
    placer.groups.add(role_group("orderer"), role_group("custodian"))

    vendor = Vendor.objects.create(name="Matrix vendor", kind="kalixo_v2",
                                   base_url="https://sandbox.kalixo.io/v2")
    product = Product.objects.create(
        vendor=vendor, supplier_product_id="m-10", name="Steam £10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )
    balance = Balance.objects.create(vendor=vendor, currency="GBP", reported=Decimal("500"))
    S, V = Order.Status, VendorOrder.Status
    sent = {"submitted_at": timezone.now(), "supplier_order_id": "SUP-1"}
    orders = {
        "pending": make_order(placer, product, S.PENDING_APPROVAL, V.CREATED),
        "in_flight": make_order(placer, product, S.IN_PROGRESS, V.PROCESSING, **sent),
        "stuck": make_order(placer, product, S.NEEDS_ATTENTION, V.UNKNOWN,
                            attention="check by hand", **sent),
        "partial": make_order(placer, product, S.PARTIALLY_COMPLETED, V.PARTIALLY_COMPLETED,
                              codes=1, quantity=2, **sent),
        "completed": make_order(placer, product, S.COMPLETED, V.COMPLETED, codes=1, **sent),
    }
    completed = orders["completed"]
    event = AuditEvent.objects.create(action="placed", order=completed, actor=placer,
                                      message="Placed")
    attempt = AccessAttempt.objects.create(username="x", ip_address="10.0.0.1",
                                           failures_since_start=1)
    log = AccessLog.objects.create(username="x", ip_address="10.0.0.1")
    failure = AccessFailureLog.objects.create(username="x", ip_address="10.0.0.1")
    objects = {
        "auth/group": Group.objects.get(name="viewer"), "auth/user": placer,
        "axes/accessattempt": attempt, "axes/accesslog": log,
        "axes/accessfailurelog": failure, "audit/auditevent": event,
        "vendors/vendor": vendor, "vendors/product": product, "vendors/balance": balance,
        "vendors/catalogitem": matching.items_for({matching.key_of(product): product})[
            matching.key_of(product)],
        "orders/order": completed, "orders/vendororder": orders["in_flight"].vendor_orders.get(),
        "orders/voucher": completed.vouchers.get(),
        "orders/spendlimit": SpendLimit.objects.create(user=placer, currency="GBP",
                                                       per_order=Decimal("100")),
        "orders/ledgerentry": LedgerEntry.objects.create(
            balance=balance, kind=LedgerEntry.Kind.DEBIT, amount=Decimal("-9.50"),
            order=completed),
        "otp_totp/totpdevice": TOTPDevice.objects.create(user=placer, name="phone"),
        "otp_static/staticdevice": StaticDevice.objects.create(user=placer, name="backup"),
    }
    starship = Vendor.objects.create(name="Matrix Starship", kind="starship",
                                     base_url="https://starship.invalid")
    vendor_set_credentials(vendor=starship, credentials={"webhook_secret": "matrix-secret"})
    basket_line = BasketLine.objects.create(user=placer, item=objects["vendors/catalogitem"],
                                            quantity=1)
    upload = BulkUpload.objects.create(user=placer, filename="lines.csv", digest="0" * 64,
                                       rows=[{"row": "2", "item": "Steam £10", "sku": "",
                                              "face_value": "10", "quantity": "1",
                                              "note": "", "reference": ""}])
    return World(users=users, orders=orders, objects=objects,
                 voucher=completed.vouchers.get(), product=product, starship=starship,
                 basket_line=basket_line, upload=upload)


@pytest.fixture
def rq_job(redis_conn):
    """A failed job of the first queue for the job pages to show and requeue (made again
    before each request: the dashboard's POSTs delete and requeue it)."""
    # rq's own Queue: django-rq's would wait for a commit that a test never makes.
    queue = Queue("default", connection=django_rq.get_connection("default"))

    def ensure() -> None:
        Job.create("os.getcwd", id=JOB_ID, connection=queue.connection, origin=queue.name).save()
        queue.failed_job_registry.add(Job.fetch(JOB_ID, connection=queue.connection),
                                      exc_string="made by the matrix test")

    ensure()
    yield ensure
    redis_conn.flushdb()


# Turning a route into URLs to request

REGEX_EXAMPLES = {
    "^stats.json/?$": ["stats.json"],
    "^stats.json/(?P<token>[\\w]+)?/?$": ["stats.json/nottoken/"],
    "(?P<url>.*)$": ["no-such-page/"],
}
APP_LABELS = ("auth", "axes", "otp_totp", "otp_static", "django_rq", "vendors", "orders",
              "audit")
APP_LIST = f"^(?P<app_label>{'|'.join(APP_LABELS)})/$"


def object_for(route: str, world: World) -> object:
    for model_path, obj in world.objects.items():
        if route.startswith(f"admin/{model_path}/"):
            return obj
    raise AssertionError(f"no fixture object for {route}")


def urls_of(route: str, world: World) -> list[tuple[str, str]]:
    """(table key, URL) pairs to request for one resolver route."""
    if route.endswith(APP_LIST):
        prefix = route.removesuffix(APP_LIST)
        return [(f"{prefix}{label}/", f"/{prefix}{label}/")
                for label in APP_LABELS]
    for regex, examples in REGEX_EXAMPLES.items():
        if route.endswith(regex):
            return [(route, "/" + route.removesuffix(regex) + example) for example in examples]
    completed = world.orders["completed"]
    values = {
        "queue_index": "0", "job_id": JOB_ID, "result_id": "0-0", "key": "no-such-worker",
        "scheduler_index": "0", "connection_index": "0", "scheduler_name": "no-such",
        "cron_job_name": "no-such", "id": str(world.objects["auth/user"].pk),
        "content_type_id": str(ContentType.objects.get_for_model(Order).pk),
    }
    if route.startswith("admin/r/"):
        values["object_id"] = str(completed.pk)
    elif "<path:object_id>" in route:
        values["object_id"] = str(object_for(route, world).pk)
    if route.startswith("admin/otp_totp/totpdevice/<int:pk>/"):
        values["pk"] = str(world.objects["otp_totp/totpdevice"].pk)
    if route.startswith("catalog/items/"):
        values["pk"] = str(world.objects["vendors/catalogitem"].pk)
    elif route.startswith("catalog/"):
        values["pk"] = str(world.product.pk)
    elif route.startswith("vouchers/"):
        values["pk"] = str(world.voucher.pk)
    elif route.startswith("orders/bulk/<int:pk>"):
        values["pk"] = str(world.upload.pk)
    elif route.startswith("orders/<int:pk>"):
        values["pk"] = str(world.orders[matrix.ORDER_FOR[route]].pk)
    elif route.startswith("vendor-orders/<int:pk>"):
        values["pk"] = str(world.orders["stuck"].vendor_orders.get().pk)
    elif route.startswith("basket/lines/"):
        values["pk"] = str(world.basket_line.pk)
    if route.startswith("webhooks/starship/"):
        values["vendor_id"] = str(world.starship.pk)

    def fill(match: re.Match) -> str:
        return values[match.group(1)]

    return [(route, "/" + re.sub(r"<(?:\w+:)?(\w+)>", fill, route))]


# Requests and outcomes


def request(client, user, method: str, url: str):
    """One request as ``user``, in a savepoint rolled back afterwards."""
    client.cookies.clear()
    with transaction.atomic():
        if user is not None:
            log_in(client, user)
        response = client.get(url) if method == "GET" else client.post(url)
        if response.streaming:
            b"".join(response.streaming_content)
        transaction.set_rollback(True)
    return response


def outcome(route: str, response) -> str:
    status = response.status_code
    if route == "healthz" and status == 503:  # no worker runs in this test
        return "allowed"
    if status >= 500:
        return f"error {status}"
    if route.startswith("webhooks/") and status in (400, 401):  # refused by the signature
        return "refused"
    if status == 302 and response["Location"].startswith(LOGIN):
        return "login"
    return {403: "refused", 404: "not found", 405: "405"}.get(status, "allowed")


def expected(rule: matrix.Rule, who: str, method: str) -> set[str]:
    allowed = rule.get if method == "GET" else rule.post
    wrong_method = rule.get_405 if method == "GET" else rule.post_405
    if who in allowed:
        return {"not found"} if who in rule.not_found else {"allowed"}
    if who in wrong_method:
        return {"405"}
    if not rule.public and who in ("anonymous", "nonstaff"):
        return {"login"}
    return {"refused", "not found"}


def test_it_has_a_rule_for_every_url_and_no_rule_for_a_url_that_is_gone(world):
    keys = {key for route in routes() for key, _url in urls_of(route, world)}
    assert sorted(keys - set(matrix.RULES)) == [], "URLs without a rule in authz_matrix.py"
    assert sorted(set(matrix.RULES) - keys) == [], "rules for URLs that do not exist"


@pytest.mark.parametrize("who", matrix.USERS)
def test_it_lets_each_user_reach_exactly_what_the_table_says(who, world, rq_job, client):
    user = world.users[who]
    wrong = []
    for route in routes():
        for key, url in urls_of(route, world):
            rule = matrix.RULES[key]
            for method in ("GET", "POST"):
                if "rq" in key:
                    rq_job()
                got = outcome(key, request(client, user, method, url))
                want = expected(rule, who, method)
                if got not in want:
                    wrong.append(f"{method} {url}: {got}, expected {' or '.join(sorted(want))}")
    assert wrong == [], f"{who}:\n" + "\n".join(wrong)


# Admin actions


def every_admin_action() -> set[tuple[str, str]]:
    """(model path, action) of every action a superuser is offered on every admin."""
    superuser = User(is_superuser=True, is_staff=True, is_active=True)
    probe = RequestFactory().get("/admin/")
    probe.user = superuser
    return {
        (f"{model._meta.app_label}/{model._meta.model_name}", name)
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(probe)
    }


def test_it_has_a_rule_for_every_admin_action():
    assert every_admin_action() == set(matrix.ACTIONS)


ACTION_OBJECTS = {
    ("orders/order", "repoll_now"): lambda w: w.orders["in_flight"],
    ("orders/vendororder", "resend_confirmed_absent"):
        lambda w: w.orders["stuck"].vendor_orders.get(),
    ("orders/vendororder", "attach_supplier_order"):
        lambda w: w.orders["stuck"].vendor_orders.get(),
}


def run_action(client, user, model_path: str, action: str, obj) -> str:
    client.cookies.clear()
    with transaction.atomic():
        log_in(client, user)
        response = client.post(f"/admin/{model_path}/", {
            "action": action, "index": 0, "_selected_action": [obj.pk],
        })
        if response.streaming:
            b"".join(response.streaming_content)
        messages = list(get_messages(response.wsgi_request))
        transaction.set_rollback(True)
    if response.status_code >= 500:
        return f"error {response.status_code}"
    if response.status_code in (403, 404) or any(m.level >= WARNING for m in messages):
        return "refused"
    if "admin/change_list.html" in [t.name for t in response.templates]:
        return "refused"  # no action offered at all: the POST shows the list again
    return "ran"


@pytest.mark.parametrize("who", sorted(matrix.STAFF))
def test_it_runs_each_admin_action_only_for_who_the_table_says(who, world, client, redis_conn):
    wrong = []
    for (model_path, action), allowed in matrix.ACTIONS.items():
        pick = ACTION_OBJECTS.get((model_path, action))
        obj = pick(world) if pick else world.objects[model_path]
        got = run_action(client, world.users[who], model_path, action, obj)
        want = "ran" if who in allowed else "refused"
        if got != want:
            wrong.append(f"{model_path} {action}: {got}, expected {want}")
    assert wrong == [], f"{who}:\n" + "\n".join(wrong)
