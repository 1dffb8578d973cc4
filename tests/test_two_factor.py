"""Two-factor authentication: who needs it, enrolment, verification, recovery codes, lock-out,
the admin's login, and the re-authentication asked before codes are revealed or exported."""

import logging
import re
import time
from html import unescape
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from portal import twofactor
from tests.conftest import authenticator, login_verified, totp_code

pytestmark = pytest.mark.django_db

CODE = "GIFT-7Q2X-99ZK-4F3M"
PASSWORD = "a-long-pass-123"


def make_user(django_user_model, username: str, *perms: str, superuser: bool = False):
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True,
                                                 is_superuser=superuser)
    for dotted in perms:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label,
                                                         codename=codename))
    return django_user_model.objects.get(pk=user.pk)


def password_login(client, user, next_path: str = "/orders/"):
    response = client.post(reverse("admin:login"), {
        "username": user.username, "password": PASSWORD, "next": next_path,
    })
    assert response.status_code == 302 and response.url == next_path
    return client


def with_next(name: str, next_path: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': next_path})}"


def edit_session(client, **values) -> None:
    session = client.session
    for key, value in values.items():
        session[key] = value
    session.save()


def recovery_codes(html: str) -> list[str]:
    block = re.search(r'<ul id="recovery-codes"[^>]*>(.*?)</ul>', html, re.S).group(1)
    return re.findall(r"<li>([a-z2-7]+)</li>", block)


# Who needs it


@pytest.mark.parametrize("perms, superuser, required", [
    ((), True, True),
    (("orders.approve_order",), False, True),
    (("orders.reveal_codes",), False, True),
    (("orders.export_codes",), False, True),
    (("vendors.change_vendor",), False, True),
    (("orders.add_order", "orders.view_order", "vendors.view_product"), False, False),
    ((), False, False),
])
def test_it_requires_two_factor_by_role(django_user_model, perms, superuser, required):
    user = make_user(django_user_model, "someone", *perms, superuser=superuser)
    assert twofactor.requires_two_factor(user) is required


def test_it_requires_it_through_a_group_too(django_user_model):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="custodians")
    group.permissions.add(Permission.objects.get(codename="reveal_codes"))
    user = make_user(django_user_model, "grouped")
    user.groups.add(group)
    assert twofactor.requires_two_factor(django_user_model.objects.get(pk=user.pk))


# Enrolment and enforcement


def test_it_sends_a_custodian_without_a_device_to_enrol_and_shows_recovery_codes_once(
        client, django_user_model, caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user(django_user_model, "custodian", "orders.view_order", "orders.reveal_codes")
    password_login(client, user)
    response = client.get("/orders/")
    assert response.status_code == 302
    assert response.url == with_next("twofactor:enrol", "/orders/")

    page = client.get(response.url)
    html = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert '<div id="enrol-qr" class="qr-code"><svg' in html  # drawn inline, nothing fetched
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    secret = re.search(r'id="enrol-secret" class="secret">([A-Z2-7 ]+)<', html).group(1)
    from base64 import b32encode
    assert secret.replace(" ", "") == b32encode(device.bin_key).decode()
    # Reloading keeps the same secret, so a scanned code stays valid.
    assert secret in client.get(response.url).content.decode()

    wrong = client.post(response.url, {"code": "000000" if totp_code(device) != "000000"
                                       else "111111", "next": "/orders/"})
    assert wrong.status_code == 400 and "That code is not right" in wrong.content.decode()
    assert client.get("/orders/").status_code == 302  # still not verified
    locked = client.post(response.url, {"code": totp_code(device), "next": "/orders/"})
    assert "Too many wrong codes: try again in 1 second." in locked.content.decode()
    time.sleep(1.1)

    done = client.post(response.url, {"code": totp_code(device), "next": "/orders/"})
    codes = recovery_codes(done.content.decode())
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    assert len(codes) == twofactor.RECOVERY_CODE_COUNT == len(set(codes))
    assert sorted(StaticToken.objects.filter(device__user=user).values_list(
        "token", flat=True)) == sorted(codes)
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/orders/").status_code == 200
    # Enrolled: the enrol page does not offer a second device, nor show the codes again.
    again = client.get(reverse("twofactor:enrol"))
    assert again.status_code == 302 and again.url == reverse("twofactor:status")
    status = client.get(again.url).content.decode()
    assert "10 unused recovery codes" in status
    leaked = [c for c in [*codes, device.key, secret.replace(" ", "")] if c in caplog.text]
    assert not leaked, "a recovery code or the secret was logged"


def test_it_lets_a_plain_orderer_in_without_two_factor(client, django_user_model):
    user = make_user(django_user_model, "orderer", "orders.add_order", "orders.view_order",
                     "vendors.view_product")
    password_login(client, user)
    for url in ("/orders/", "/catalog/", "/orders/new/"):
        assert client.get(url).status_code == 200, url


def test_it_asks_a_voluntarily_enrolled_orderer_for_the_code_too(client, django_user_model):
    user = make_user(django_user_model, "careful", "orders.add_order", "orders.view_order")
    device = authenticator(user)
    password_login(client, user)
    response = client.get("/orders/")
    assert response.url == with_next("twofactor:verify", "/orders/")
    assert client.post(reverse("twofactor:verify"),
                       {"code": totp_code(device), "next": "/orders/"}).url == "/orders/"
    assert client.get("/orders/").status_code == 200


def test_it_verifies_a_code_after_the_password(client, django_user_model):
    user = make_user(django_user_model, "approver", "orders.approve_order", "orders.view_order",
                     "vendors.view_product")
    device = authenticator(user)
    password_login(client, user, "/catalog/")
    for url in ("/", "/catalog/", "/orders/", reverse("twofactor:reauthenticate"),
                reverse("twofactor:status")):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(
            reverse("twofactor:verify")), url
    # A form posted before verifying comes back to its page afterwards, not to the POST.
    posted = client.post(reverse("orders:order_search"), {"term": "x"},
                         HTTP_REFERER="http://testserver/orders/?status=failed")
    assert posted.url == with_next("twofactor:verify", "/orders/?status=failed")
    # An enrolled user cannot replace the device before verifying.
    assert client.get(reverse("twofactor:enrol")).url == reverse("twofactor:status")
    response = client.post(reverse("twofactor:verify"),
                           {"code": totp_code(device), "next": "/catalog/"})
    assert response.status_code == 302 and response.url == "/catalog/"
    assert client.get("/catalog/").status_code == 200
    # The same code does not work twice (another session trying it later).
    other = password_login(type(client)(), user, "/catalog/")
    device.refresh_from_db()
    from django_otp.oath import hotp
    used = f"{hotp(device.bin_key, device.last_t, device.digits):06d}"
    refused = other.post(reverse("twofactor:verify"), {"code": used, "next": "/catalog/"})
    assert refused.status_code == 400


def test_it_gives_the_session_a_new_key_when_the_second_factor_completes(client,
                                                                          django_user_model):
    user = make_user(django_user_model, "approver", "orders.approve_order", "orders.view_order")
    device = authenticator(user)
    password_login(client, user)
    before = client.session.session_key
    client.post(reverse("twofactor:verify"), {"code": totp_code(device), "next": "/orders/"})
    assert client.session.session_key != before
    assert client.get("/orders/").status_code == 200
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stolen.get("/orders/").status_code == 302  # the old key verifies nothing


def test_it_does_not_follow_a_next_to_another_site(client, django_user_model):
    user = make_user(django_user_model, "approver", "orders.approve_order")
    device = authenticator(user)
    password_login(client, user)
    response = client.post(reverse("twofactor:verify"),
                           {"code": totp_code(device), "next": "https://evil.example/"})
    assert response.url == "/"


def test_it_uses_up_a_recovery_code(client, django_user_model):
    user = make_user(django_user_model, "boss", superuser=True)
    authenticator(user)
    code = twofactor.replace_recovery_codes(user=user)[3]
    password_login(client, user)
    response = client.post(reverse("twofactor:verify"), {"code": code.upper(), "next": "/"},
                           follow=True)
    assert response.status_code == 200
    assert "You used a recovery code; 9 are left" in unescape(response.content.decode())
    assert twofactor.recovery_codes_left(user) == 9

    again = password_login(type(client)(), user)
    refused = again.post(reverse("twofactor:verify"), {"code": code, "next": "/"})
    assert refused.status_code == 400 and "That code is not right" in refused.content.decode()
    assert again.get("/orders/").status_code == 302


def test_it_locks_the_code_out_after_wrong_codes(client, django_user_model):
    user = make_user(django_user_model, "custodian", "orders.reveal_codes")
    device = authenticator(user)
    password_login(client, user)
    right = totp_code(device)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert client.post(reverse("twofactor:verify"), {"code": wrong}).status_code == 400
    # Locked now: even the right code is refused until the wait is over.
    locked = client.post(reverse("twofactor:verify"), {"code": right})
    assert locked.status_code == 400
    assert "Too many wrong codes: try again in" in locked.content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    for _ in range(4):
        TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=None)
        client.post(reverse("twofactor:verify"), {"code": wrong})
    device.refresh_from_db()
    assert device.throttling_failure_count == 5
    _allowed, info = device.verify_is_allowed()
    assert (info["locked_until"] - device.throttling_failure_timestamp).total_seconds() == 16
    assert client.get("/orders/").status_code == 302
    # Once the wait is over the right code works and the count starts again.
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=None)
    assert client.post(reverse("twofactor:verify"), {"code": right}).status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_it_does_not_let_recovery_codes_open_a_new_enrolment_without_them(client,
                                                                          django_user_model):
    user = make_user(django_user_model, "boss", superuser=True)
    code = twofactor.replace_recovery_codes(user=user)[0]  # an administrator removed the app
    password_login(client, user)
    assert client.get("/orders/").url == with_next("twofactor:verify", "/orders/")
    assert client.get(reverse("twofactor:enrol")).url.startswith(reverse("twofactor:verify"))
    assert not TOTPDevice.objects.filter(user=user).exists()
    # After a recovery code the user is sent to set up an app again.
    response = client.post(reverse("twofactor:verify"), {"code": code, "next": "/orders/"})
    assert response.url == with_next("twofactor:enrol", "/orders/")
    assert client.get(response.url).status_code == 200


def test_it_sends_the_admin_login_through_the_verify_step(client, django_user_model):
    user = make_user(django_user_model, "operator", "vendors.change_vendor",
                     "vendors.view_vendor")
    device = authenticator(user)
    password_login(client, user, "/admin/")
    for url in ("/admin/", "/admin/vendors/vendor/", "/admin/rq/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("twofactor:verify")), url
    assert client.post(reverse("twofactor:verify"),
                       {"code": totp_code(device), "next": "/admin/"}).url == "/admin/"
    assert client.get("/admin/vendors/vendor/").status_code == 200


def test_it_lets_an_unverified_user_log_out_and_reach_healthz(client, django_user_model):
    user = make_user(django_user_model, "boss", superuser=True)
    password_login(client, user)
    assert client.get("/healthz").status_code in (200, 503)
    assert client.post(reverse("admin:logout")).status_code == 200
    assert client.get("/orders/").url.startswith(reverse("admin:login"))


# Re-authentication before codes are revealed or exported


@pytest.fixture
def custodian(django_user_model):
    return make_user(django_user_model, "custodian", "orders.view_order",
                     "orders.reveal_codes", "orders.export_codes", "orders.approve_order")


@pytest.fixture
def order(make_voucher, custodian):
    return make_voucher(CODE).order


def make_stale(client) -> None:
    edit_session(client, **{twofactor.AUTHENTICATOR_AT: time.time() - 901})


def reveal(client, order):
    voucher = order.vouchers.get()
    return client.post(reverse("orders:voucher_reveal", args=[voucher.pk]),
                       HTTP_REFERER=f"http://testserver/orders/{order.pk}/")


def export_order(client, order):
    return client.post(reverse("orders:export_order", args=[order.pk]),
                       HTTP_REFERER=f"http://testserver/orders/{order.pk}/")


def export_list(client, order):
    return client.post(reverse("orders:export_list") + "?status=completed",
                       HTTP_REFERER="http://testserver/orders/?status=completed")


def export_in_admin(client, order):
    return client.post(reverse("admin:orders_order_changelist") + "?status__exact=completed", {
        "action": "export_codes", "_selected_action": [order.pk],
    })


COMMANDS = {
    "reveal": (reveal, "/orders/{pk}/"),
    "export_order": (export_order, "/orders/{pk}/"),
    "export_list": (export_list, "/orders/?status=completed"),
    "admin_export": (export_in_admin, "/admin/orders/order/?status__exact=completed"),
}


def shows_code(response) -> bool:
    if response.streaming:
        return CODE in b"".join(response.streaming_content).decode()
    return CODE in response.content.decode()


@pytest.mark.parametrize("command", COMMANDS)
def test_it_asks_for_the_password_and_a_code_again_before_codes_after_15_minutes(
        client, custodian, order, command, settings):
    assert settings.REAUTHENTICATION_MAX_AGE == 900
    do, back = COMMANDS[command]
    back = back.format(pk=order.pk)
    login_verified(client, custodian)
    device = authenticator(custodian)
    make_stale(client)

    stale = do(client, order)
    assert stale.status_code == 302
    assert stale.url == with_next("twofactor:reauthenticate", back)
    assert not shows_code(stale)
    assert not AuditEvent.objects.filter(action__in=["revealed", "exported"]).exists()

    page = client.get(stale.url).content.decode()
    assert "needs your password and a code" in unescape(page)
    wrong = client.post(reverse("twofactor:reauthenticate"),
                        {"password": "wrong-pass", "code": totp_code(device), "next": back})
    assert wrong.status_code == 400 and "That password is not right" in wrong.content.decode()
    recovery = twofactor.replace_recovery_codes(user=custodian)[0]
    refused = client.post(reverse("twofactor:reauthenticate"),
                          {"password": PASSWORD, "code": recovery, "next": back})
    assert refused.status_code == 400  # a recovery code is not the authenticator
    done = client.post(reverse("twofactor:reauthenticate"),
                       {"password": PASSWORD, "code": totp_code(device), "next": back})
    assert done.status_code == 302 and done.url == back
    assert "press the button again" in client.get(back).content.decode()

    fresh = do(client, order)
    assert fresh.status_code == 200 and shows_code(fresh)
    assert AuditEvent.objects.filter(action__in=["revealed", "exported"]).count() == 1


def test_it_counts_the_login_itself_as_fresh(client, custodian, order):
    device = authenticator(custodian)
    password_login(client, custodian)
    client.post(reverse("twofactor:verify"), {"code": totp_code(device)})
    assert reveal(client, order).status_code == 200
    # A recovery code at login is not an authenticator code: reveal asks again.
    other = password_login(type(client)(), custodian)
    code = twofactor.replace_recovery_codes(user=custodian)[0]
    other.post(reverse("twofactor:verify"), {"code": code})
    assert other.get("/orders/").status_code == 200
    assert reveal(other, order).url.startswith(reverse("twofactor:reauthenticate"))


def test_it_makes_new_recovery_codes_only_after_a_fresh_reauthentication(client, custodian):
    login_verified(client, custodian)
    old = twofactor.replace_recovery_codes(user=custodian)
    make_stale(client)
    stale = client.post(reverse("twofactor:recovery_codes"),
                        HTTP_REFERER="http://testserver/account/two-factor/")
    assert stale.url == with_next("twofactor:reauthenticate", "/account/two-factor/")
    assert twofactor.recovery_codes_left(custodian) == 10
    login_verified(client, custodian)
    new = recovery_codes(client.post(reverse("twofactor:recovery_codes")).content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    stored = set(StaticToken.objects.filter(device__user=custodian).values_list("token",
                                                                               flat=True))
    assert stored == set(new)


def test_it_never_shows_secrets_or_recovery_codes_in_the_admin(client, custodian):
    device = authenticator(custodian)
    codes = twofactor.replace_recovery_codes(user=custodian)
    static = custodian.staticdevice_set.get()
    boss = make_user(type(custodian), "boss", superuser=True)
    login_verified(client, boss)
    pages = [client.get(reverse(name, args=[pk])) for name, pk in (
        ("admin:otp_totp_totpdevice_change", device.pk),
        ("admin:otp_static_staticdevice_change", static.pk))]
    assert [p.status_code for p in pages] == [200, 200]
    html = "".join(p.content.decode() for p in pages)
    assert device.key not in html and not [c for c in codes if c in html]
    for name in ("admin:otp_totp_totpdevice_config", "admin:otp_totp_totpdevice_qrcode"):
        assert client.get(reverse(name, args=[device.pk])).status_code == 403
    # Deleting the device (a lost phone) sends the user to set up a new one after a
    # recovery code.
    client.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert not twofactor.has_authenticator(custodian)


# Headers


def test_it_sends_a_content_security_policy_without_inline_scripts(client, custodian):
    login_verified(client, custodian)
    for url in ("/orders/", "/admin/", reverse("twofactor:status"), reverse("admin:login")):
        policy = client.get(url)["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
