"""Who is acting, for changes made by code that does not know it (Django's auth app, the
admin): the request's user, set by ``ActorMiddleware`` for the length of the request."""

from contextlib import contextmanager
from contextvars import ContextVar

_actor: ContextVar = ContextVar("audit_actor", default=None)


@contextmanager
def acting(user):
    token = _actor.set(user)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    return _actor.get()


class ActorMiddleware:
    """Makes the request's user the actor of the access events its changes write."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        with acting(getattr(request, "user", None)):
            return self.get_response(request)
