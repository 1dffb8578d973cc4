"""Refuse a request body larger than ``REQUEST_MAX_BYTES`` before anything reads it.

Django parses a multipart body, spooling its files to disk, the first time anything reads the
form, and the CSRF check does so before any view could look at the file's size. First in the
middleware, this answers 413 from the ``Content-Length`` alone; a body without one is not read
by Django at all.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class RequestSizeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse("The request's length is not a number.", status=400,
                                content_type="text/plain; charset=utf-8")
        if length > settings.REQUEST_MAX_BYTES:
            return HttpResponse(
                f"The request is larger than {settings.REQUEST_MAX_BYTES // 1024} KB: files for "
                f"bulk orders may have up to {settings.BULK_MAX_BYTES // 1024} KB.",
                status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
