"""Session expiry after inactivity (SESSION_IDLE_TIMEOUT) and after SESSION_COOKIE_AGE in all,
however active: Django's own expiry moves forward whenever the session is saved."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect

LAST_ACTIVITY = "idle.last_activity"
LOGGED_IN_AT = "idle.logged_in_at"


def not_user_activity(view):
    """Mark a view whose requests the page makes by itself (htmx polling): they neither count
    as activity nor keep the session alive."""
    view.not_user_activity = True
    return view


def on_login(sender, request, user, **kwargs) -> None:
    """Start the clocks at login (django.contrib.auth's user_logged_in)."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[LOGGED_IN_AT] = now
        request.session[LAST_ACTIVITY] = now


class SessionIdleMiddleware:
    """Logs out a session idle for longer than SESSION_IDLE_TIMEOUT, or older than
    SESSION_COOKIE_AGE. The last activity is written at most every tenth of the timeout (and
    at least every minute), so most requests do not write the session."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        now = time.time()
        session = request.session
        last = session.get(LAST_ACTIVITY, now)
        idle, age = now - last, now - session.get(LOGGED_IN_AT, now)
        if idle > settings.SESSION_IDLE_TIMEOUT or age > settings.SESSION_COOKIE_AGE:
            return self._expire(request)
        if getattr(view_func, "not_user_activity", False):
            return None
        if LAST_ACTIVITY not in session or idle >= min(60, settings.SESSION_IDLE_TIMEOUT / 10):
            session[LAST_ACTIVITY] = now
            session.setdefault(LOGGED_IN_AT, now)
        return None

    @staticmethod
    def _expire(request: HttpRequest) -> HttpResponse:
        logout(request)
        messages.info(request, "Your session expired: please log in again.")
        if getattr(request, "htmx", False):
            # A polled fragment: take the whole page to the login, back to it afterwards.
            page = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(redirect_to_login(page).url)
        return redirect_to_login(request.get_full_path())
