import pytest
from django.urls import reverse

from audit.models import AuditEvent
from orders.models import Order, OrderLine, VendorOrder, Voucher
from tests.conftest import login_verified
from vendors.models import Balance, Product, Vendor

CODE = "GIFT-7Q2X-99ZK-4F3M"


@pytest.fixture
def admin_client(client, staff_user):
    return login_verified(client, staff_user)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model", [Vendor, Product, Balance, Order, OrderLine, VendorOrder, Voucher, AuditEvent]
)
def test_it_lists_every_model_in_the_admin(admin_client, make_voucher, model):
    make_voucher(CODE)
    if model is OrderLine:  # shown inline on its order
        assert OrderLine.objects.count() == 1
        return
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert CODE not in response.content.decode()


@pytest.mark.django_db
def test_it_shows_codes_only_masked(admin_client, make_voucher):
    voucher = make_voucher(CODE, pin="8842")
    for url in (
        reverse("admin:orders_voucher_changelist"),
        reverse("admin:orders_voucher_change", args=[voucher.pk]),
        reverse("admin:orders_order_change", args=[voucher.order.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert CODE not in page
        assert voucher.code_encrypted not in page
        assert "••••4F3M" in page or url.endswith(f"{voucher.order.pk}/change/")


@pytest.mark.django_db
def test_it_finds_an_order_by_the_blind_index_of_its_code_never_by_the_code(
    admin_client, make_voucher
):
    voucher = make_voucher(CODE)
    other = make_voucher("OTHER-CODE-0000-1111")
    url = reverse("admin:orders_order_changelist")
    page = admin_client.get(url, {"q": voucher.code_index}).content.decode()
    assert voucher.order.reference in page
    assert other.order.reference not in page
    page = admin_client.get(url, {"q": CODE}).content.decode()
    assert voucher.order.reference not in page


@pytest.mark.django_db
def test_it_keeps_audit_events_read_only(admin_client, make_vendor):
    from vendors.services import vendor_set_credentials

    vendor_set_credentials(vendor=make_vendor(), credentials={"api_key": "kal_test_x"})
    event = AuditEvent.objects.get(action="credentials_changed")
    change = admin_client.post(
        reverse("admin:audit_auditevent_change", args=[event.pk]), {"message": "edited"}
    )
    assert change.status_code == 403
    delete = admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]))
    assert delete.status_code == 403
    event.refresh_from_db()
    assert "kal_test_x" not in str(event.data)


@pytest.mark.django_db
def test_it_stores_credentials_entered_in_the_admin_encrypted(admin_client):
    response = admin_client.post(reverse("admin:vendors_vendor_add"), {
        "name": "Kalixo live", "kind": "kalixo_v2", "base_url": "https://api.kalixo.io/v2",
        "enabled": "on", "first_poll_delay": 30, "max_poll_interval": 300,
        "poll_deadline": 86400, "rate_limit_per_minute": 60, "low_balance_threshold": "100",
        "new_credentials": '{"api_key": "kal_live_secret123"}',
    })
    assert response.status_code == 302
    vendor = Vendor.objects.get(name="Kalixo live")
    assert vendor.credentials_encrypted
    assert "kal_live_secret123" not in vendor.credentials_encrypted
    page = admin_client.get(reverse("admin:vendors_vendor_change", args=[vendor.pk]))
    assert "kal_live_secret123" not in page.content.decode()


@pytest.mark.django_db
def test_it_rejects_credentials_that_are_not_a_json_object(admin_client):
    response = admin_client.post(reverse("admin:vendors_vendor_add"), {
        "name": "Broken", "kind": "kalixo_v2", "base_url": "https://api.kalixo.io/v2",
        "first_poll_delay": 30, "max_poll_interval": 300, "poll_deadline": 86400,
        "rate_limit_per_minute": 60, "low_balance_threshold": "100",
        "new_credentials": "not json",
    })
    assert response.status_code == 200
    assert "Enter a JSON object." in response.content.decode()
    assert not Vendor.objects.filter(name="Broken").exists()


@pytest.mark.django_db
def test_it_resends_a_supplier_order_a_person_confirmed_absent(admin_client, make_voucher):
    vendor_order = make_voucher("GIFT-ABSENT-0001").vendor_order
    vendor_order.status, vendor_order.attention = VendorOrder.Status.UNKNOWN, "check by hand"
    vendor_order.save()
    response = admin_client.post(reverse("admin:orders_vendororder_changelist"), {
        "action": "resend_confirmed_absent", "_selected_action": [vendor_order.pk],
    })
    assert response.status_code == 302
    vendor_order.refresh_from_db()
    assert vendor_order.status == VendorOrder.Status.CREATED
    assert vendor_order.attention == ""
    assert vendor_order.next_poll_at is not None
    assert AuditEvent.objects.filter(target_id=str(vendor_order.pk),
                                     message__contains="sending it again").exists()


@pytest.mark.django_db
def test_it_keeps_credentials_unchanged_when_their_audit_row_fails(make_vendor, monkeypatch):
    from audit import services as audit_services
    from vendors.services import vendor_set_credentials

    vendor = make_vendor()
    vendor_set_credentials(vendor=vendor, credentials={"api_key": "kal_test_before"})
    before = Vendor.objects.get(pk=vendor.pk).credentials_encrypted

    def refuse(**_):
        raise RuntimeError("the audit trail is down")

    monkeypatch.setattr(audit_services, "record", refuse)
    with pytest.raises(RuntimeError):
        vendor_set_credentials(vendor=vendor, credentials={"api_key": "kal_test_after"})
    assert Vendor.objects.get(pk=vendor.pk).credentials_encrypted == before


@pytest.mark.django_db
def test_it_refuses_an_action_on_a_row_id_that_is_no_id(admin_client, make_voucher):
    vendor_order = make_voucher("GIFT-NO-ID-0001").vendor_order
    vendor_order.status, vendor_order.attention = VendorOrder.Status.UNKNOWN, "check by hand"
    vendor_order.save()
    response = admin_client.post(reverse("admin:orders_vendororder_changelist"), {
        "action": "resend_confirmed_absent", "_selected_action": ["abc", vendor_order.pk],
    }, follow=True)
    assert response.status_code == 200
    assert any("does not exist" in str(m) for m in response.context["messages"])
    vendor_order.refresh_from_db()
    assert vendor_order.status == VendorOrder.Status.UNKNOWN
