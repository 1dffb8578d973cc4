"""Who may come in at all: the portal is a back office for active staff users only, and the
RQ dashboard is for operators.

What a user may do with one order is decided by the ``can_*`` functions of
``orders.services``; the rules here are the doors around them.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from portal.roles import QUEUE_DASHBOARD_PERMISSION


def is_portal_user(user) -> bool:
    """Signed in, active and staff: the only users the portal serves."""
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def allowed_by(rule: Callable[..., bool], refusal: str) -> Callable[[Callable], Callable]:
    """A view decorator: refuse (403) a user ``rule`` refuses, before anything else answers
    (a wrong method too). The rule is a page's ``can_*``, asked of the request's user."""
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not rule(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


def can_use_queue_dashboard(user) -> bool:
    """The RQ dashboard shows job arguments and errors and can delete, requeue and stop
    jobs: operators (and superusers) only."""
    return is_portal_user(user) and user.has_perm(QUEUE_DASHBOARD_PERMISSION)


class StaffOnlyMiddleware:
    """Sign out, on their next request, a user who is no longer active staff, whatever page
    they ask for and however fresh their session: the request goes on anonymous, so pages
    send it to the login and the login refuses it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            if not is_portal_user(request.user):
                logout(request)
        elif SESSION_KEY in request.session:
            # A deactivated user reads as anonymous but keeps the session: end it too, so
            # that reactivating them does not sign them back in.
            request.session.flush()
        return self.get_response(request)


def queue_dashboard_view(view: Callable) -> Callable:
    """``view`` (one of django-rq's) for operators only, GET and POST alike. A queue, job or
    scheduler that does not exist (or a failed job that is not) is a 404, never a 500:
    django-rq raises IndexError, AssertionError, ValueError or InvalidJobOperation for
    those, ImproperlyConfigured without rq-scheduler."""

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not can_use_queue_dashboard(request.user):
            raise PermissionDenied("The queue dashboard is for operators.")
        try:
            return view(request, *args, **kwargs)
        except (IndexError, NoSuchJobError, InvalidJobOperation, ImproperlyConfigured,
                AssertionError, ValueError) as exc:
            raise Http404("No such queue, job or scheduler.") from exc

    return guarded


def guarded_patterns(patterns: list[URLPattern]) -> list[URLPattern]:
    """The same URL patterns, each view behind queue_dashboard_view."""
    return [URLPattern(p.pattern, queue_dashboard_view(p.callback), p.default_args, p.name)
            for p in patterns]
