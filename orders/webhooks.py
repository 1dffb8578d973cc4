"""Supplier webhooks: Starship's order events, received at ``/webhooks/starship/<vendor id>/``.

Public (no session, no CSRF token): a delivery proves itself by its signature, which
orders.supplier_events checks before it acts. No endpoint for a vendor without a webhook
secret (404); a bad signature is a 401; a stale timestamp or an unreadable body, a 400.
"""

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orders import supplier_events


@csrf_exempt
@require_POST
def starship(request: HttpRequest, vendor_id: int) -> JsonResponse:
    try:
        outcome = supplier_events.receive_starship_delivery(
            vendor_id=vendor_id, body=request.body, headers=request.headers)
    except supplier_events.NoEndpoint:
        raise Http404("No webhook here.") from None
    except supplier_events.Refused as exc:
        return JsonResponse({"error": exc.reason}, status=exc.status)
    return JsonResponse({"status": outcome})
