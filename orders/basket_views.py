"""The basket's pages: the basket with its routes and one confirmation, adding from the
catalog or the type-ahead picker, changing and removing lines, and "Order again". Each
checks ``services.can_order``; the basket itself (orders.basket) checks it again."""


from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from orders import basket, confirmations, pricing, selectors, services
from orders.errors import OrderError
from orders.forms import BasketAddForm, BasketQuantityForm, PlaceLinesForm
from orders.models import BasketLine
from orders.views import _render, _visible_order, ordering

PICKER_LIMIT = 10




def _basket_page(request: HttpRequest, *, form: PlaceLinesForm | None = None,
                 status: int = 200) -> HttpResponse:
    """The basket as placing would route it, with a new confirmation: the one placing it
    may do."""
    shown = basket.view(request.user)
    form = form or PlaceLinesForm(initial={"allow_other_suppliers": True})
    return _render(request, "orders/basket.html", {
        "basket": shown, "form": form, "confirmation": confirmations.issue(request.user),
        "add_form": BasketAddForm(),
    }, title="Basket", status=status)


@login_required
@ordering
@require_safe
def basket_page(request: HttpRequest) -> HttpResponse:
    return _basket_page(request)


@login_required
@ordering
@require_safe
def basket_picker(request: HttpRequest) -> HttpResponse:
    """Type-ahead over catalog items (an htmx fragment): the first few available items whose
    name, brand or offers match."""
    term = request.GET.get("q", "").strip()[:100]
    items = []
    if len(term) >= 2:
        items = list(selectors.catalog(selectors.CatalogFilters(
            q=term, availability="available"))[:PICKER_LIMIT])
        pricing.price_items_now(items)
    return render(request, "orders/_basket_picker.html", {"items": items, "term": term})


def _back(request: HttpRequest):
    """Where the adding page asked to go back to (only this site), or the basket."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)  # a path, never a view's name
    return redirect("orders:basket")


@login_required
@ordering
@require_POST
def basket_add(request: HttpRequest) -> HttpResponse:
    form = BasketAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            line = basket.add(user=request.user, item=data["item"], quantity=data["quantity"],
                              product=data["product"], face_value=data["face_value"])
        except OrderError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{line.item} added to the basket "
                                      f"({line.quantity} in it).")
    else:
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
    return _back(request)


@login_required
@ordering
@require_POST
def basket_line(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a line's quantity, or remove it (``remove`` posted)."""
    if not BasketLine.objects.filter(pk=pk, user=request.user).exists():
        raise Http404("No such basket line.")
    if "remove" in request.POST:
        basket.remove(user=request.user, line_id=pk)
        messages.success(request, "Line removed from the basket.")
        return redirect("orders:basket")
    form = BasketQuantityForm(request.POST)
    if not form.is_valid():
        for error in form.errors["quantity"]:
            messages.error(request, error)
        return redirect("orders:basket")
    try:
        basket.set_quantity(user=request.user, line_id=pk,
                            quantity=form.cleaned_data["quantity"])
    except OrderError as exc:
        messages.error(request, exc.message)
    return redirect("orders:basket")


@login_required
@ordering
@require_POST
def basket_place(request: HttpRequest) -> HttpResponse:
    form = PlaceLinesForm(request.POST)
    if not form.is_valid():
        return _basket_page(request, form=form, status=400)
    data = form.cleaned_data
    try:
        confirmation = confirmations.open_token(request.user, data["confirmation"])
    except confirmations.InvalidConfirmation:
        messages.error(request, "This confirmation is not valid any more: check the basket "
                                "and place it again.")
        return _basket_page(request, form=form, status=400)
    try:
        orders = basket.place(
            user=request.user, confirmation_token=confirmation.nonce,
            fingerprint=data["fingerprint"], note=data["note"],
            purchase_order=data["purchase_order"],
            allow_other_suppliers=data["allow_other_suppliers"],
        )
    except services.AlreadyPlaced as exc:
        messages.warning(request, f"This basket was already placed as {exc.order.reference}.")
        return redirect("orders:order_detail", pk=exc.order.pk)
    except basket.BasketChanged as exc:
        messages.warning(request, exc.message)
        return _basket_page(request, form=form, status=409)
    except OrderError as exc:
        messages.error(request, exc.message)
        return _basket_page(request, form=form, status=400)
    waiting = [o.reference for o in orders if o.approval_reason]
    messages.success(request, "Placed " + ", ".join(o.reference for o in orders) + "."
                     + (f" Waiting for approval: {', '.join(waiting)}." if waiting else ""))
    if len(orders) == 1:
        return redirect("orders:order_detail", pk=orders[0].pk)
    return redirect("orders:order_list")


@login_required
@ordering
@require_POST
def order_reorder(request: HttpRequest, pk: int) -> HttpResponse:
    """"Order again": the order's lines go into the basket, to be checked and placed."""
    order = _visible_order(request, pk)
    try:
        added = basket.fill_from_order(user=request.user, order=order)
    except OrderError as exc:
        messages.error(request, exc.message)
        return redirect("orders:order_detail", pk=order.pk)
    messages.success(request, f"{added} line{'s' if added != 1 else ''} of {order.reference} "
                              "added to the basket.")
    return redirect("orders:basket")
