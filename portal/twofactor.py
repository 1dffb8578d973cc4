"""Two-factor authentication: who needs it, enrolment, checking codes, and the session's
record of when the password and an authenticator code were last proved.

Devices are django-otp's: one confirmed TOTP device (the authenticator app) and one static
device holding the one-time recovery codes, stored as django-otp stores them.
"""

import time
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from urllib.parse import urlencode

import django_otp
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

# Holding any of these moves money or codes: the holder must use a second factor.
TWO_FACTOR_PERMISSIONS = ("orders.approve_order", "orders.reveal_codes", "orders.export_codes",
                          "vendors.change_vendor")
RECOVERY_CODE_COUNT = 10
PASSWORD_AT = "twofactor.password_at"
AUTHENTICATOR_AT = "twofactor.authenticator_at"
# Pages a signed-in user reaches before the second factor: to give it, or to leave; and the
# public endpoints, which a session neither opens nor closes.
EXEMPT_VIEWS = frozenset({"admin:login", "admin:logout", "twofactor:verify", "twofactor:enrol",
                          "healthz", "orders:starship_webhook"})


def requires_two_factor(user) -> bool:
    """The one rule: superusers and holders of a permission over money or codes."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or any(user.has_perm(p) for p in TWO_FACTOR_PERMISSIONS)


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


# Enrolment


def pending_authenticator(*, user) -> TOTPDevice:
    """The unconfirmed device whose secret the enrolment page shows (the same one on reload,
    so a scanned QR code stays valid)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app",
                                               confirmed=False)


@transaction.atomic
def confirm_authenticator(*, user, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the pending device with a current code; returns it and fresh recovery codes
    (to be shown once), or None when the code is wrong."""
    device = (TOTPDevice.objects.select_for_update()
              .filter(user=user, confirmed=False).order_by("pk").first())
    if device is None or not device.verify_token(_normal(code)):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    return device, replace_recovery_codes(user=user)


@transaction.atomic
def replace_recovery_codes(*, user) -> list[str]:
    """New one-time recovery codes; the old ones stop working."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def _recovery_code() -> str:
    """A random recovery code with a letter in it: all digits would read as an app code."""
    while (code := StaticToken.random_token()).isdigit():
        pass
    return code


# Checking a code


@dataclass(frozen=True)
class CodeCheck:
    device: Device | None
    locked_until: datetime | None = None


def _normal(code: str) -> str:
    return "".join(code.split()).lower()


def locked_until(device: Device) -> datetime | None:
    """When the device takes codes again after wrong ones; None when it takes them now."""
    allowed, info = device.verify_is_allowed()
    return None if allowed else (info or {}).get("locked_until")


def check_code(*, user, code: str, authenticator_only: bool = False) -> CodeCheck:
    """Check an authenticator code (digits) or, unless ``authenticator_only``, a recovery code
    (used up when it matches). Wrong codes slow the device down exponentially (django-otp's
    throttling); while it is locked every code is refused."""
    code = _normal(code)
    if code.isdigit():
        devices = TOTPDevice.objects.devices_for_user(user, confirmed=True)
    elif not authenticator_only:
        devices = StaticDevice.objects.devices_for_user(user, confirmed=True)
    else:
        return CodeCheck(None)
    for device in devices:
        if locked := locked_until(device):
            return CodeCheck(None, locked)
        matched = django_otp.verify_token(user, device.persistent_id, code)
        if matched is not None:
            return CodeCheck(matched)
    return CodeCheck(None)


# The session


def mark_password(request: HttpRequest) -> None:
    request.session[PASSWORD_AT] = time.time()


def mark_verified(request: HttpRequest, device: Device) -> None:
    """Verify the session with ``device``; an authenticator code also counts towards a fresh
    re-authentication, a recovery code does not. The session gets a new key: one read before
    the second factor must not become a verified one."""
    request.session.cycle_key()
    django_otp.login(request, device)
    if isinstance(device, TOTPDevice):
        request.session[AUTHENTICATOR_AT] = time.time()


def on_login(sender, request, user, **kwargs) -> None:
    """A password login (django.contrib.auth's user_logged_in)."""
    if request is not None and hasattr(request, "session"):
        mark_password(request)


def is_fresh(request: HttpRequest) -> bool:
    """Password and an authenticator code both proved within REAUTHENTICATION_MAX_AGE."""
    oldest = min(request.session.get(PASSWORD_AT, 0), request.session.get(AUTHENTICATOR_AT, 0))
    return time.time() - oldest <= settings.REAUTHENTICATION_MAX_AGE


def needs_reauthentication(request: HttpRequest) -> bool:
    """Whether revealing or exporting codes must first ask for the password and a code.
    Whoever may reveal or export requires two factors; others are refused by the command."""
    return requires_two_factor(request.user) and not is_fresh(request)


def safe_next(request: HttpRequest, url: str | None, default: str = "/") -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return default


def reauthentication_redirect(request: HttpRequest, return_to: str | None = None) -> HttpResponse:
    """To the re-authentication page, which sends the user back to ``return_to`` (by default
    the page the button was on) to press it again: a POST cannot be replayed by a redirect."""
    back = safe_next(request, return_to or _referer_path(request))
    minutes = settings.REAUTHENTICATION_MAX_AGE // 60
    messages.warning(request, "This needs your password and a code from your authenticator "
                              f"app again (they are asked at most every {minutes} minutes).")
    return redirect(f"{reverse('twofactor:reauthenticate')}?{urlencode({'next': back})}")


def _referer_path(request: HttpRequest) -> str | None:
    referer = request.headers.get("Referer", "")
    origin = f"{request.scheme}://{request.get_host()}"
    return referer.removeprefix(origin) if referer.startswith(origin + "/") else None


def fresh_authentication_required(view):
    """Decorate a view that reveals or exports codes."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if needs_reauthentication(request):
            return reauthentication_redirect(request)
        return view(request, *args, **kwargs)

    return wrapped


class TwoFactorMiddleware:
    """Sends a signed-in user who needs a second factor and has not given one in this session
    to the verify page (or to enrolment without a device), from every page but EXEMPT_VIEWS.
    A user who enrolled voluntarily is asked too. Runs after django-otp's OTPMiddleware."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or user.is_verified():
            return None
        match = request.resolver_match
        if match is not None and match.view_name in EXEMPT_VIEWS:
            return None
        has_device = django_otp.user_has_device(user, confirmed=True)
        if not has_device and not requires_two_factor(user):
            return None
        target = "twofactor:verify" if has_device else "twofactor:enrol"
        # A form's POST cannot be replayed: back to the page that held the form.
        back = (request.get_full_path() if request.method == "GET"
                else safe_next(request, _referer_path(request)))
        return redirect(f"{reverse(target)}?{urlencode({'next': back})}")
