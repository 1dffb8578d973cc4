"""Bypass regressions: every command and admin action tried where it must not work (orders
pending approval, rejected, cancelled, completed, and other people's), by the page, the
admin action and the service. Nothing may change, and for the approval bypass the sandbox
supplier's own order list proves nothing reached it."""

from datetime import timedelta
from functools import partial

import pytest
from django.contrib.messages import WARNING, get_messages
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditEvent
from orders import services
from orders.errors import OrderError
from orders.models import LedgerEntry, Order, VendorOrder
from portal.roles import role_group
from tests.auth import log_in
from tests.conftest import sandbox_get
from tests.test_authz_matrix import make_order
from tests.test_order_flow import finished, place
from vendors.models import Product

S, V = Order.Status, VendorOrder.Status
SENT = {"submitted_at": timezone.now() - timedelta(minutes=5), "supplier_order_id": "SUP-9"}


def person(django_user_model, name: str, *roles: str):
    user = django_user_model.objects.create_user(name, is_staff=True)
    user.groups.add(*(role_group(role) for role in roles))
    return user


def snapshot(order: Order) -> tuple:
    """Everything a refused command could have changed."""
    order = Order.objects.get(pk=order.pk)
    return (
        order.status, order.reviewed, order.total_cost, order.approved_by_id,
        [(vo.status, vo.next_poll_at, vo.claimed_at, vo.attention)
         for vo in order.vendor_orders.order_by("pk")],
        order.lines.count(),
        AuditEvent.objects.filter(order=order).count(),
        LedgerEntry.objects.filter(order=order).count(),
    )


# The approval bypass, against a real sandbox supplier


@pytest.fixture
def approval_needed(settings):
    settings.ORDER_APPROVAL_THRESHOLD = "1"


def test_it_sends_nothing_to_the_supplier_for_an_order_waiting_for_approval(
    approval_needed, sandbox_vendor, sandbox_url, orderer, django_user_model, client, work,
):
    vendor = sandbox_vendor("kalixo_v2")
    order = place(vendor, orderer, 1, sku="KTEST-OK")
    assert order.status == S.PENDING_APPROVAL
    operator = person(django_user_model, "op", "operator")
    boss = django_user_model.objects.create_superuser("boss")
    vo = order.vendor_orders.get()
    before = snapshot(order)

    # The order page's "Re-poll now", by its placer.
    log_in(client, orderer)
    client.post(f"/orders/{order.pk}/repoll/")
    # The admin's "Re-poll now" on the order (a superuser) and on its supplier order (an
    # operator), and the service itself.
    log_in(client, boss)
    client.post("/admin/orders/order/", {"action": "repoll_now", "index": 0,
                                         "_selected_action": [order.pk]})
    log_in(client, operator)
    client.post("/admin/orders/vendororder/", {"action": "repoll_now", "index": 0,
                                               "_selected_action": [vo.pk]})
    with pytest.raises(OrderError, match="not been sent"):
        services.repoll_now(vendor_order=vo, user=boss)
    # Even a supplier order made due by hand is not sent while its order waits.
    VendorOrder.objects.filter(pk=vo.pk).update(next_poll_at=timezone.now())
    work(lambda: True)
    work(lambda: True)

    assert sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account) == []
    vo.refresh_from_db()
    assert (vo.status, vo.submitted_at, vo.attempts) == (V.CREATED, None, 0)
    order.refresh_from_db()
    assert order.status == S.PENDING_APPROVAL
    assert not order.vouchers.exists()
    assert snapshot(order)[-1] == before[-1]  # no ledger movement

    # Approved, the same order goes to the supplier once: the check above could fail.
    approver = person(django_user_model, "approver", "approver")
    services.approve_order(order=order, user=approver)
    work(finished(order))
    assert order.status == S.COMPLETED
    assert len(sandbox_get(sandbox_url, "kalixo_v2", "orders", vendor.sandbox_account)) == 1


def test_it_does_not_count_unsent_supplier_orders_of_unapproved_orders_as_repollable():
    for status in (S.PENDING_APPROVAL, S.REJECTED, S.CANCELLED):
        order = Order(status=status)
        vo = VendorOrder(status=V.CREATED, attention="stuck", submitted_at=timezone.now())
        assert not services.repollable(order, vo)
    queued = Order(status=S.QUEUED)
    assert not services.repollable(queued, VendorOrder(status=V.CREATED))
    assert services.repollable(queued, VendorOrder(status=V.PROCESSING))


# Every command on orders where it must not work


@pytest.fixture
def people(django_user_model):
    return {
        "placer": person(django_user_model, "placer", "orderer", "custodian"),
        "other": person(django_user_model, "other", "orderer", "custodian"),
        "viewer": person(django_user_model, "viewer", "viewer"),
        "approver": person(django_user_model, "approver", "approver", "custodian"),
        "operator": person(django_user_model, "operator", "operator"),
        "superuser": django_user_model.objects.create_superuser("root"),
    }


@pytest.fixture
def product(make_vendor):
    from decimal import Decimal

    return Product.objects.create(
        vendor=make_vendor(), supplier_product_id="b-10", name="Steam £10", brand="Steam",
        face_value=Decimal("10"), face_currency="GBP", cost=Decimal("9.50"),
        cost_currency="GBP",
    )


STATES = {
    "pending": (S.PENDING_APPROVAL, V.CREATED, {}),
    "rejected": (S.REJECTED, V.CANCELLED, {}),
    "cancelled": (S.CANCELLED, V.CANCELLED, {}),
    "completed": (S.COMPLETED, V.COMPLETED, SENT),
}


def order_in(state: str, placer, product) -> Order:
    status, vo_status, fields = STATES[state]
    codes = 1 if state == "completed" else 0
    return make_order(placer, product, status, vo_status, codes=codes, **fields)


# (command, state, who): who tries it on an order of "placer" in that state.
PAGE_CASES = [
    *[("repoll", state, "placer") for state in STATES],
    *[("repoll", state, "superuser") for state in STATES],
    *[("cancel", state, "placer") for state in ("rejected", "cancelled", "completed")],
    *[("cancel", state, "approver") for state in ("rejected", "cancelled", "completed")],
    *[("top-up", state, "placer") for state in STATES],
    *[("approve", state, "approver") for state in ("rejected", "cancelled", "completed")],
    *[("reject", state, "approver") for state in ("rejected", "cancelled", "completed")],
    ("approve", "pending", "placer"),
    ("reject", "pending", "placer"),
    # Other people's orders: not visible, or visible but not theirs to act on.
    *[(command, "pending", "other") for command in ("repoll", "cancel", "top-up", "approve",
                                                   "reject")],
    *[(command, "pending", "viewer") for command in ("repoll", "cancel", "top-up", "approve",
                                                    "reject")],
    ("cancel", "pending", "operator"),
    ("approve", "pending", "operator"),
]


@pytest.mark.parametrize(("command", "state", "who"), PAGE_CASES)
def test_it_refuses_the_command_on_the_order_page_and_changes_nothing(
    command, state, who, people, product, client
):
    order = order_in(state, people["placer"], product)
    before = snapshot(order)
    log_in(client, people[who])
    response = client.post(f"/orders/{order.pk}/{command}/", {"reason": "no"})
    assert response.status_code in (302, 403, 404)
    if response.status_code == 302:  # back to the order page, saying why not
        said = [m.message for m in get_messages(response.wsgi_request)]
        assert said and not any(m.startswith(f"Order {order.reference} ") for m in said), said
    assert snapshot(order) == before


def test_it_refuses_others_repoll_and_top_up_it_would_grant_their_placer(people, product,
                                                                          client):
    in_flight = make_order(people["placer"], product, S.IN_PROGRESS, V.PROCESSING, **SENT)
    partial = make_order(people["placer"], product, S.PARTIALLY_COMPLETED,
                         V.PARTIALLY_COMPLETED, codes=1, quantity=2, **SENT)
    for order, command in ((in_flight, "repoll"), (partial, "top-up")):
        before = snapshot(order)
        log_in(client, people["approver"])  # sees every order, but is neither
        assert client.post(f"/orders/{order.pk}/{command}/").status_code == 403
        assert snapshot(order) == before
    # The placer may: the refusal above is about who, not about the state.
    log_in(client, people["placer"])
    client.post(f"/orders/{in_flight.pk}/repoll/")
    assert in_flight.vendor_orders.get().next_poll_at is not None


def test_it_lets_an_approver_cancel_someone_elses_unsent_order_but_not_an_orderer(
    people, product, client
):
    order = make_order(people["placer"], product, S.QUEUED, V.CREATED)
    log_in(client, people["other"])
    assert client.post(f"/orders/{order.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=order.pk).status == S.QUEUED
    with pytest.raises(PermissionDenied):
        services.cancel_order(order=order, user=people["other"])
    log_in(client, people["approver"])
    client.post(f"/orders/{order.pk}/cancel/")
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED


def test_it_refuses_an_approver_their_own_order(people, product):
    mine = make_order(people["approver"], product, S.PENDING_APPROVAL, V.CREATED)
    before = snapshot(mine)
    reject = partial(services.reject_order, reason="Too dear")
    for command in (services.approve_order, reject):
        with pytest.raises(OrderError, match="someone other"):
            command(order=mine, user=people["approver"])
    assert not services.can_approve(people["approver"], mine)
    assert not services.can_mark_reviewed(people["approver"], mine)
    assert snapshot(mine) == before


# Every admin action where it must not work


def act(client, user, model_path: str, action: str, pk) -> list[str]:
    log_in(client, user)
    response = client.post(f"/admin/{model_path}/", {
        "action": action, "index": 0, "_selected_action": [pk],
    })
    if response.streaming:
        return ["streamed: " + b"".join(response.streaming_content).decode()]
    assert response.status_code in (200, 302, 403), response.status_code
    refusals = [m.message for m in get_messages(response.wsgi_request) if m.level >= WARNING]
    return refusals or (["403"] if response.status_code == 403 else [])


@pytest.mark.parametrize("state", [*STATES, "others"])
def test_it_refuses_every_admin_action_on_orders_it_must_not_touch(state, people, product,
                                                                   client):
    owner = people["other"] if state == "others" else people["placer"]
    order = order_in("completed" if state == "others" else state, owner, product)
    vo = order.vendor_orders.get()
    before = snapshot(order)
    attempts = [
        # Re-poll: nothing sent is open in any of these states.
        (people["superuser"], "orders/order", "repoll_now", order.pk),
        (people["operator"], "orders/vendororder", "repoll_now", vo.pk),
        (people["operator"], "orders/vendororder", "resend_confirmed_absent", vo.pk),
        # Reviewing is a second person's: never the placer.
        (owner, "orders/order", "mark_reviewed", order.pk),
        # Another orderer sees neither the order nor its codes.
        (people["other"] if owner is people["placer"] else people["placer"],
         "orders/order", "export_codes", order.pk),
        (people["viewer"], "orders/order", "mark_reviewed", order.pk),
        (people["viewer"], "orders/order", "export_codes", order.pk),
    ]
    for user, model_path, action, pk in attempts:
        errors = act(client, user, model_path, action, pk)
        assert errors, f"{user} ran {action} on a {state} order"
        assert not any(e.startswith("streamed") and "MATRIX-CODE" in e for e in errors)
    assert snapshot(order) == before


def test_it_keeps_the_audit_trail_out_of_reach_of_admin_actions_and_deletes(
    people, product, client, django_user_model
):
    order = order_in("completed", people["placer"], product)
    event = AuditEvent.objects.create(action="placed", order=order, message="Placed")
    auditor = person(django_user_model, "auditor", "auditor")
    for user in (auditor, people["superuser"]):
        log_in(client, user)
        page = client.get("/admin/audit/auditevent/").content.decode()
        assert 'value="delete_selected"' not in page
        assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
        assert client.post(f"/admin/audit/auditevent/{event.pk}/change/",
                           {"message": "edited"}).status_code == 403
        client.post("/admin/audit/auditevent/", {"action": "delete_selected", "index": 0,
                                                  "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert event.message == "Placed"
    # Orders, whose deletion would take their audit rows along, cannot be deleted either.
    log_in(client, people["superuser"])
    assert client.post(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()
