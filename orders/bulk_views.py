"""Bulk orders from a file: upload -> preview (every row checked and routed) -> place.

The pages of orders.bulk, for who may order (``services.can_order``). An upload is its
uploader's alone: anyone else is told there is no such upload. Nothing is placed until the
preview is confirmed with its one-time token and the fingerprint of the routes it showed.
"""


from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from orders import bulk, confirmations, services
from orders.errors import OrderError
from orders.forms import PlaceLinesForm
from orders.models import BulkUpload, Order
from orders.views import _render, ordering


class UploadForm(forms.Form):
    file = forms.FileField(label="CSV or Excel file",
                           help_text="Columns: item or sku, face_value, quantity, and "
                                     "optionally note and reference.")


class PlaceForm(PlaceLinesForm):
    """The preview's confirmation, and the second one a file placed before needs."""

    place_again = forms.BooleanField(required=False, label="Place it again")


def _own_upload(request: HttpRequest, pk: int) -> BulkUpload:
    upload = BulkUpload.objects.filter(pk=pk, user=request.user).first()
    if upload is None:
        raise Http404("No such upload.")
    return upload


@login_required
@ordering
def bulk_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > settings.BULK_MAX_BYTES:
            form.add_error("file", f"The file is larger than {settings.BULK_MAX_BYTES // 1024} "
                                   "KB: split it into smaller files.")
        else:
            try:
                made = bulk.create_upload(user=request.user, name=upload.name,
                                          data=upload.read())
            except bulk.BadFile as exc:
                form.add_error("file", str(exc))
            else:
                return redirect("orders:bulk_preview", pk=made.pk)
    return _render(request, "orders/bulk_upload.html", {
        "form": form, "max_rows": settings.BULK_MAX_ROWS, "columns": bulk.COLUMNS,
    }, title="Bulk order from a file", status=400 if form.errors else 200)


@login_required
@ordering
@require_GET
def bulk_template_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(bulk.template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="bulk-order-template.csv"'
    return response


@login_required
@ordering
@require_GET
def bulk_template_xlsx(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(
        bulk.template_xlsx(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = 'attachment; filename="bulk-order-template.xlsx"'
    return response


def _preview_page(request: HttpRequest, upload: BulkUpload, form: PlaceForm | None = None, *,
                  preview: bulk.Preview | None = None, status: int = 200) -> HttpResponse:
    """The preview with a new confirmation token and the fingerprint of what it shows."""
    preview = preview or bulk.preview(upload=upload, user=request.user)
    fresh = {"confirmation": confirmations.issue(request.user),
             "fingerprint": preview.fingerprint}
    if form is None:
        form = PlaceForm(initial={"allow_other_suppliers": True, **fresh})
    else:
        data = form.data.copy()
        for name, value in fresh.items():
            data[name] = value
        form = PlaceForm(data)
        form.is_valid()
    return _render(request, "orders/bulk_preview.html", {
        "upload": upload, "preview": preview, "form": form,
        "duplicate_days": settings.BULK_DUPLICATE_DAYS,
    }, title=f"Bulk order: {upload.filename}", status=status)


@login_required
@ordering
@require_GET
def bulk_preview(request: HttpRequest, pk: int) -> HttpResponse:
    return _preview_page(request, _own_upload(request, pk))


@login_required
@ordering
@require_POST
def bulk_place(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _own_upload(request, pk)
    form = PlaceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the order details below and place the file again.")
        return _preview_page(request, upload, form, status=400)
    data = form.cleaned_data
    try:
        confirmation = confirmations.open_token(request.user, data["confirmation"])
    except confirmations.InvalidConfirmation:
        messages.error(request, "This confirmation is not valid any more: check the preview "
                                "and place the file again.")
        return _preview_page(request, upload, form, status=400)
    try:
        orders = bulk.place(
            upload=upload, user=request.user, fingerprint=data["fingerprint"],
            confirmation_token=confirmation.nonce, note=data["note"],
            purchase_order=data["purchase_order"],
            allow_other_suppliers=data["allow_other_suppliers"],
            place_again=data["place_again"],
        )
    except services.AlreadyPlaced as exc:
        return _already_placed(request, exc.order)
    except (bulk.RoutesChanged, bulk.PlacedBefore) as exc:
        messages.error(request, exc.message)
        return _preview_page(request, upload, form, status=409)
    except OrderError as exc:
        messages.error(request, exc.message)
        return _preview_page(request, upload, form, status=400)
    waiting = [o.reference for o in orders if o.status == Order.Status.PENDING_APPROVAL]
    messages.success(request, f"Placed {len(orders)} order{'s' if len(orders) > 1 else ''} "
                     f"from {upload.filename}: {', '.join(o.reference for o in orders)}."
                     + (f" Waiting for approval: {', '.join(waiting)}." if waiting else ""))
    return redirect("orders:order_detail", pk=orders[0].pk)


def _already_placed(request: HttpRequest, order: Order) -> HttpResponse:
    messages.warning(request, f"This file was already placed with this confirmation as "
                              f"{order.reference}.")
    return redirect("orders:order_detail", pk=order.pk)
