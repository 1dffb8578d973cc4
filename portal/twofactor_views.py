"""The two-factor pages: enrolment, verification after the password, re-authentication
before codes are revealed or exported, and new recovery codes. Recovery codes and the secret
appear only in the response that creates or shows them (never cached, never in a URL)."""

from base64 import b32encode
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.contrib import admin, messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import twofactor
from portal.twofactor_forms import AuthenticatorCodeForm, CodeForm, ReauthenticateForm

app_name = "twofactor"


def _render(request: HttpRequest, template: str, context: dict, *, title: str,
            status: int = 200) -> HttpResponse:
    frame = {"site_header": admin.site.site_header, "site_title": admin.site.site_title,
             "has_permission": True, "is_nav_sidebar_enabled": False, "is_popup": False,
             "title": title}
    return render(request, template, {**frame, **context}, status=status)


def _next(request: HttpRequest) -> str:
    return twofactor.safe_next(request, request.POST.get("next") or request.GET.get("next"))


def _lock_message(check: twofactor.CodeCheck) -> str:
    if check.locked_until is None:
        return "That code is not right."
    wait = max(1, int((check.locked_until - timezone.now()).total_seconds()) + 1)
    return f"Too many wrong codes: try again in {wait} second{'s' if wait != 1 else ''}."


def _qr_svg(url: str) -> str:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


@never_cache
@login_required
def status(request: HttpRequest) -> HttpResponse:
    user = request.user
    return _render(request, "portal/two_factor/status.html", {
        "enrolled": twofactor.has_authenticator(user),
        "required": twofactor.requires_two_factor(user),
        "recovery_left": twofactor.recovery_codes_left(user),
    }, title="Two-factor authentication")


@never_cache
@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    """Show a new authenticator secret (QR code and text); a current code confirms it, and the
    recovery codes are shown once in that response."""
    user = request.user
    if twofactor.has_authenticator(user):
        return redirect("twofactor:status")
    if not user.is_verified() and user_has_device(user):
        # Only recovery codes left: prove one before replacing the authenticator.
        return redirect(f"{reverse('twofactor:verify')}?{urlencode({'next': request.path})}")
    form = AuthenticatorCodeForm(request.POST or None)
    device = twofactor.pending_authenticator(user=user)
    if request.method == "POST" and form.is_valid():
        locked = twofactor.locked_until(device)
        confirmed = None if locked else twofactor.confirm_authenticator(
            user=user, code=form.cleaned_data["code"])
        if confirmed is not None:
            device, codes = confirmed
            twofactor.mark_verified(request, device)
            return _render(request, "portal/two_factor/recovery_codes.html", {
                "codes": codes, "next": _next(request), "enrolled_now": True,
            }, title="Your recovery codes")
        form.add_error("code", _lock_message(twofactor.CodeCheck(None, locked))
                       + " Check the time on your phone and enter the code it shows now.")
    secret = b32encode(device.bin_key).decode()
    qr_svg = mark_safe(_qr_svg(device.config_url))  # noqa: S308 - an SVG we drew ourselves
    return _render(request, "portal/two_factor/enrol.html", {
        "form": form, "next": _next(request), "qr_svg": qr_svg,
        "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
    }, title="Set up two-factor authentication", status=400 if form.errors else 200)


@never_cache
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of the login: an authenticator code or a recovery code."""
    user = request.user
    if user.is_verified():
        return redirect(_next(request))
    if not user_has_device(user):
        return redirect(f"{reverse('twofactor:enrol')}?{urlencode({'next': _next(request)})}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = twofactor.check_code(user=user, code=form.cleaned_data["code"])
        if check.device is not None:
            twofactor.mark_verified(request, check.device)
            if not isinstance(check.device, TOTPDevice):
                left = twofactor.recovery_codes_left(user)
                messages.warning(request, f"You used a recovery code; {left} are left. Make "
                                          "new ones on the two-factor page if you run low.")
                if not twofactor.has_authenticator(user):
                    return redirect(f"{reverse('twofactor:enrol')}?"
                                    f"{urlencode({'next': _next(request)})}")
            return redirect(_next(request))
        form.add_error("code", _lock_message(check))
    return _render(request, "portal/two_factor/verify.html", {
        "form": form, "next": _next(request),
    }, title="Two-factor authentication", status=400 if form.errors else 200)


@never_cache
@login_required
def reauthenticate(request: HttpRequest) -> HttpResponse:
    """Password and an authenticator code again, then back to the page the user came from."""
    user = request.user
    form = ReauthenticateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        checked = authenticate(request, username=user.get_username(),
                               password=form.cleaned_data["password"])
        if checked is None or checked.pk != user.pk:
            form.add_error("password", "That password is not right.")
        else:
            check = twofactor.check_code(user=user, code=form.cleaned_data["code"],
                                         authenticator_only=True)
            if check.device is not None:
                twofactor.mark_password(request)
                twofactor.mark_verified(request, check.device)
                messages.success(request, "Confirmed: press the button again.")
                return redirect(_next(request))
            form.add_error("code", _lock_message(check))
    return _render(request, "portal/two_factor/reauthenticate.html", {
        "form": form, "next": _next(request),
        "enrolled": twofactor.has_authenticator(user),
    }, title="Confirm it is you", status=400 if form.errors else 200)


@never_cache
@login_required
@require_POST
@twofactor.fresh_authentication_required
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown once; the old ones stop working."""
    if not twofactor.has_authenticator(request.user):
        return redirect("twofactor:enrol")
    codes = twofactor.replace_recovery_codes(user=request.user)
    return _render(request, "portal/two_factor/recovery_codes.html", {
        "codes": codes, "next": reverse("twofactor:status"),
    }, title="Your recovery codes")


urlpatterns = [
    path("", status, name="status"),
    path("enrol/", enrol, name="enrol"),
    path("verify/", verify, name="verify"),
    path("reauthenticate/", reauthenticate, name="reauthenticate"),
    path("recovery-codes/", recovery_codes, name="recovery_codes"),
]
