"""The audit trail page and its CSV export, for auditors (audit.view_auditevent)."""


from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from orders.exports import csv_stream
from orders.views import _render
from portal import audit_export, selectors
from portal.access import allowed_by
from portal.forms import AuditFilterForm

PAGE_SIZE = 100


_auditors_only = allowed_by(audit_export.can_view_audit, "The audit trail is for auditors.")


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, dict]:
    form = AuditFilterForm(request.GET)
    data = form.valid_data()
    return form, data


def _filters(data: dict) -> selectors.AuditFilters:
    return selectors.AuditFilters(**{k: v for k, v in data.items() if k != "before"})


@never_cache
@login_required
@_auditors_only
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    form, data = _filtered(request)
    events = selectors.audit_events(_filters(data))
    page = selectors.audit_page(events, size=PAGE_SIZE, before=data.get("before"))
    return _render(request, "portal/audit_list.html", {"form": form, "page": page},
                   title="Audit trail", status=200 if form.is_valid() else 400)


@never_cache
@login_required
@_auditors_only
@require_POST
def audit_csv(request: HttpRequest) -> HttpResponse:
    """Every event matching the page's filters (from the query), streamed."""
    form, data = _filtered(request)
    if not form.is_valid():
        return _render(request, "portal/audit_list.html", {
            "form": form, "page": selectors.AuditPage(rows=[], has_next=False,
                                                      next_before=None),
        }, title="Audit trail", status=400)
    data.pop("before", None)
    rows = audit_export.export_rows(events=selectors.audit_events(_filters(data)),
                                    user=request.user, filters=data)
    response = StreamingHttpResponse(csv_stream(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    return response
