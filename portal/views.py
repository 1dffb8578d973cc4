from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.health import failing_checks


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    failing = failing_checks()
    if failing:
        return JsonResponse({"status": "fail", "failing": failing}, status=503)
    return JsonResponse({"status": "ok"})


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page, the admin's included: send them to the
    static icon."""
    return redirect(static("portal/favicon.svg"), permanent=True)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("orders:dashboard")
