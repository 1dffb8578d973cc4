"""Supplier credentials stay with the host they were issued for, and in production the
workers call only https URLs of public addresses, whoever typed the URL."""

import pytest
import responses
from django.urls import reverse

from audit.models import AuditEvent
from common import http
from common.addresses import url_problem
from tests.conftest import login_verified
from vendors.models import Vendor
from vendors.services import vendor_save, vendor_set_credentials

FORM = {"name": "Kalixo live", "kind": "kalixo_v2", "base_url": "https://api.kalixo.io/v2",
        "first_poll_delay": 30, "max_poll_interval": 300, "poll_deadline": 3600,
        "rate_limit_per_minute": 60, "low_balance_threshold": "100", "enabled": "on",
        "new_credentials": ""}


@pytest.fixture
def admin_client(client, staff_user):
    return login_verified(client, staff_user)


@pytest.fixture
def vendor(make_vendor):
    made = make_vendor(name="Kalixo live", base_url="https://api.kalixo.io/v2")
    vendor_set_credentials(vendor=made, credentials={"api_key": "kal_live_secret"})
    return made


def change(admin_client, vendor, **fields):
    return admin_client.post(reverse("admin:vendors_vendor_change", args=[vendor.pk]),
                             {**FORM, **fields})


@pytest.mark.django_db
def test_it_drops_the_credentials_when_the_url_moves_to_another_host(admin_client, vendor):
    response = change(admin_client, vendor, base_url="https://collector.example.net/v2")
    assert response.status_code == 302
    vendor.refresh_from_db()
    assert not vendor.has_credentials
    dropped = AuditEvent.objects.get(action="credentials_changed", data__dropped=True)
    assert "api.kalixo.io" in dropped.message and "collector.example.net" in dropped.message
    shown = [str(m) for m in admin_client.get(reverse("admin:vendors_vendor_changelist"))
             .context["messages"]]
    assert any("dropped" in m for m in shown)


@pytest.mark.django_db
def test_it_keeps_new_credentials_entered_with_the_new_url(admin_client, vendor):
    change(admin_client, vendor, base_url="https://api2.kalixo.io/v2",
           new_credentials='{"api_key": "kal_live_other"}')
    vendor.refresh_from_db()
    assert vendor.has_credentials


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["https://api.kalixo.io/v3", "HTTPS://API.kalixo.io/v2/"])
def test_it_keeps_the_credentials_when_only_the_path_changes(vendor, url):
    before = {"base_url": vendor.base_url}
    vendor.base_url = url
    vendor_save(vendor=vendor, before=before)
    vendor.refresh_from_db()
    assert vendor.has_credentials


@pytest.mark.django_db
def test_it_drops_the_credentials_when_the_url_falls_back_to_plain_http(vendor):
    before = {"base_url": vendor.base_url}
    vendor.base_url = "http://api.kalixo.io/v2"
    vendor_save(vendor=vendor, before=before)
    vendor.refresh_from_db()
    assert not vendor.has_credentials


@pytest.mark.parametrize(("url", "problem"), [
    ("http://93.184.216.34/v2", "must use https"),
    ("https://127.0.0.1:8000/v2", "not public"),
    ("https://10.1.2.3/v2", "not public"),
    ("https://192.168.0.10/v2", "not public"),
    ("https://169.254.169.254/latest/meta-data", "not public"),
    ("https://[::1]/v2", "not public"),
    ("https://[fe80::1]/v2", "not public"),
    ("https://0.0.0.0/v2", "not public"),
    ("ftp://93.184.216.34/v2", "http(s) URL"),
])
def test_it_refuses_plain_http_and_non_public_addresses_in_production(settings, url, problem):
    settings.SUPPLIER_URLS_ALLOW_LOCAL = False
    assert problem in url_problem(url)


def test_it_allows_an_https_url_of_a_public_address_in_production(settings):
    settings.SUPPLIER_URLS_ALLOW_LOCAL = False
    assert url_problem("https://93.184.216.34/v2") is None


def test_it_allows_the_sandboxes_when_local_urls_are_allowed(settings):
    settings.SUPPLIER_URLS_ALLOW_LOCAL = True
    assert url_problem("http://127.0.0.1:8001/kalixo-v2/v2") is None


@responses.activate
def test_it_sends_nothing_to_a_forbidden_address(settings):
    settings.SUPPLIER_URLS_ALLOW_LOCAL = False
    with pytest.raises(http.SupplierError) as refused:
        http.request("POST", "https://10.0.0.5/v2/orders", headers={"x-api-key": "k"})
    assert refused.value.kind == http.Kind.REFUSED
    assert len(responses.calls) == 0


@pytest.mark.django_db
def test_it_shows_a_field_error_for_a_forbidden_url_in_the_admin(admin_client, settings):
    settings.SUPPLIER_URLS_ALLOW_LOCAL = False
    response = admin_client.post(reverse("admin:vendors_vendor_add"),
                                 {**FORM, "base_url": "https://169.254.169.254/v2"})
    assert response.status_code == 200
    assert "not public" in response.content.decode()
    assert not Vendor.objects.exists()
