"""Staff pages. Reads go through orders.selectors, writes through orders.services; every
action is a plain form POST followed by a redirect, htmx only refreshes fragments."""

import uuid
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from orders import exports, selectors, services
from orders.forms import (
    CatalogFilterForm,
    OrderFilterForm,
    OrderForm,
    OrderSearchForm,
    RejectForm,
)
from orders.models import Order, Voucher
from vendors.models import Product

PAGE_SIZE = 50
CONFIRMATION_TTL = 24 * 3600


def _render(request: HttpRequest, template: str, context: dict, *, title: str = "",
            status: int = 200) -> HttpResponse:
    """Render a page in the admin's frame (admin/base_site.html expects these names)."""
    frame = {
        "site_header": admin.site.site_header, "site_title": admin.site.site_title,
        "has_permission": request.user.is_authenticated, "is_nav_sidebar_enabled": False,
        "is_popup": False, "title": title,
    }
    return render(request, template, {**frame, **context}, status=status)


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


def _visible_order(request: HttpRequest, pk: int) -> Order:
    try:
        return selectors.order_detail(request.user, pk)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None


# Dashboard and catalog


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    return _render(request, "orders/dashboard.html", {
        "balances": selectors.balances(),
        "in_flight": selectors.orders_in_flight(user),
        "attention": selectors.orders_needing_attention(user),
        "events": selectors.recent_events(user),
    }, title="Dashboard")


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    products = selectors.catalog(form.filters())
    return _render(request, "orders/catalog.html", {
        "form": form, "page": selectors.page_of(products, _page_number(request), PAGE_SIZE),
        "brands": selectors.brands(),
    }, title="Catalog")


@login_required
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        product = selectors.product_detail(pk)
    except Product.DoesNotExist:
        raise Http404("No such product.") from None
    return _render(request, "orders/product_detail.html", {
        "product": product, "offers": selectors.other_offers(product),
    }, title=product.name)


# Placing an order: form -> confirmation -> place


def _order_form_page(request: HttpRequest, form: OrderForm, status: int = 200) -> HttpResponse:
    return _render(request, "orders/order_form.html", {
        "form": form, "brands": selectors.brands(),
    }, title="New order", status=status)


@login_required
@permission_required("orders.add_order", raise_exception=True)
def order_new(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _order_form_page(request, OrderForm(initial={
            "product": request.GET.get("product"), "quantity": 1,
        }))
    form = OrderForm(request.POST)
    step = request.POST.get("step", "confirm")
    if not form.is_valid():
        return _order_form_page(request, form, status=400)
    if step == "edit":
        return _order_form_page(request, form)
    if step == "place" and request.POST.get("confirmation"):
        return _place(request, form, request.POST["confirmation"])
    return _render(request, "orders/order_confirm.html", {
        "form": form, "quote": form.quote, "confirmation": uuid.uuid4().hex,
    }, title="Confirm the order")


def _place(request: HttpRequest, form: OrderForm, confirmation: str) -> HttpResponse:
    # One order per confirmation page, even when "Place order" is pressed twice.
    key = f"orders:confirmation:{request.user.pk}:{confirmation}"
    if not cache.add(key, "placing", CONFIRMATION_TTL):
        placed = cache.get(key)
        if placed and placed != "placing":
            messages.warning(request, "This order was already placed.")
            return redirect("orders:order_detail", pk=placed)
        messages.warning(request, "This order is being placed already.")
        return redirect("orders:order_list")
    data = form.cleaned_data
    try:
        order = services.place_order(
            user=request.user, lines=[form.line_request()], note=data["note"],
            purchase_order=data["purchase_order"],
        )
    except services.OrderError as exc:
        cache.delete(key)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _order_form_page(request, form, status=400)
    cache.set(key, order.pk, CONFIRMATION_TTL)
    messages.success(request, f"Order {order.reference} placed.")
    return redirect("orders:order_detail", pk=order.pk)


@login_required
@permission_required("orders.add_order", raise_exception=True)
def order_quote(request: HttpRequest) -> HttpResponse:
    """The live quote of the new-order form (an htmx fragment)."""
    form = OrderForm(request.GET)
    form.is_valid()
    return render(request, "orders/_quote.html", {"form": form, "quote": form.quote})


# Order list and detail


def _filtered_orders(request: HttpRequest) -> tuple[OrderFilterForm, QuerySet[Order]]:
    show_all = selectors.can_see_all_orders(request.user)
    form = OrderFilterForm(request.GET, show_placed_by=show_all)
    orders = selectors.filter_orders(selectors.visible_orders(request.user), form.filters())
    return form, orders


SORTABLE_COLUMNS = [("reference", "Reference"), ("placed", "Placed"), ("status", "Status"),
                    ("quantity", "Quantity"), ("total", "Total"), ("placed_by", "Placed by")]


def _sort_headers(current: str) -> list[dict]:
    headers = []
    for name, label in SORTABLE_COLUMNS:
        ascending = current == name
        headers.append({
            "label": label, "sort": f"-{name}" if ascending else name,
            "active": current.removeprefix("-") == name,
            "descending": current == f"-{name}",
        })
    return headers


def _carried_filters(data) -> list[tuple[str, str]]:
    """The list's filters other than the search, from a query or a posted search form."""
    return [(name, value) for name in OrderSearchForm.CARRIED
            for value in data.getlist(name) if value]


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    """Paged by cursor (``after`` or ``before``, see selectors.order_page), never by number:
    a page deep in a million orders costs what the first one does."""
    form, orders = _filtered_orders(request)
    sort = selectors.normal_sort(form.cleaned_data.get("sort") or "")
    page = selectors.order_page(
        selectors.with_list_details(orders), sort, size=PAGE_SIZE,
        after=request.GET.get("after", ""), before=request.GET.get("before", ""),
    )
    return _render(request, "orders/order_list.html", {
        "form": form, "page": page, "headers": _sort_headers(sort),
        "search_form": OrderSearchForm(initial={"term": form.cleaned_data.get("q", "")}),
        "search_carry": _carried_filters(request.GET),
        "searching_code": bool(form.cleaned_data.get("code")),
        "can_export": request.user.has_perm("orders.export_codes"),
    }, title="Orders")


@login_required
@require_POST
def order_search(request: HttpRequest) -> HttpResponse:
    """The search box, posted so that a code never lands in a URL: back to the list with
    ``q`` (a reference or supplier order id the user may see) or ``code`` (a blind index)."""
    form = OrderSearchForm(request.POST)
    params = _carried_filters(request.POST)
    if form.is_valid():
        params += selectors.search_parameters(request.user, form.cleaned_data["term"]).items()
    else:
        messages.error(request, "The search term is too long: search by our reference, the "
                                "supplier's order id or one full code.")
    url = reverse("orders:order_list")
    return redirect(f"{url}?{urlencode(params)}" if params else url)


def _detail_context(request: HttpRequest, order: Order) -> dict:
    user = request.user
    unsent = order.status in (Order.Status.PENDING_APPROVAL, Order.Status.QUEUED)
    return {
        "order": order,
        "live": order.status in selectors.OPEN_ORDER_STATUSES,
        "can_reveal": services.can_reveal(user, order),
        "can_export": user.has_perm("orders.export_codes") and services.can_reveal(user, order),
        "can_cancel": unsent,
        "can_top_up": order.status == Order.Status.PARTIALLY_COMPLETED
        and user.has_perm("orders.add_order"),
        "can_approve": order.status == Order.Status.PENDING_APPROVAL
        and user.has_perm("orders.approve_order") and order.placed_by_id != user.pk,
        "can_repoll": bool(selectors.vendor_orders_to_repoll(order)),
    }


@login_required
@never_cache
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = _visible_order(request, pk)
    return _render(request, "orders/order_detail.html", _detail_context(request, order),
                   title=f"Order {order.reference}")


@login_required
@never_cache
def order_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The changing part of the order page, polled by htmx while the order is open."""
    order = _visible_order(request, pk)
    return render(request, "orders/_order_live.html", _detail_context(request, order))


@login_required
@require_POST
def order_repoll(request: HttpRequest, pk: int) -> HttpResponse:
    order = _visible_order(request, pk)
    asked, refused = services.repoll_order(order=order, user=request.user)
    for message in refused:
        messages.error(request, message)
    if asked:
        messages.success(request, f"Asked the supplier again about {asked} supplier orders.")
    elif not refused:
        messages.info(request, "Nothing is left to ask the supplier about.")
    return redirect("orders:order_detail", pk=order.pk)


def _act(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    order = _visible_order(request, pk)
    try:
        action(order)
    except services.OrderError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.reference} {done}.")
    return redirect("orders:order_detail", pk=order.pk)


@login_required
@require_POST
def order_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda o: services.cancel_order(order=o, user=request.user),
                "cancelled")


@login_required
@permission_required("orders.add_order", raise_exception=True)
@require_POST
def order_top_up(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda o: services.top_up_order(order=o, user=request.user),
                "topped up from another supplier")


@login_required
@permission_required("orders.approve_order", raise_exception=True)
@require_POST
def order_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda o: services.approve_order(order=o, user=request.user),
                "approved")


@login_required
@permission_required("orders.approve_order", raise_exception=True)
@require_POST
def order_reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = RejectForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _act(
        request, pk,
        lambda o: services.reject_order(order=o, user=request.user, reason=reason), "rejected",
    )


# Codes: reveal and export


@never_cache
@login_required
@require_POST
def voucher_reveal(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    try:
        voucher = selectors.visible_voucher(request.user, pk)
    except Voucher.DoesNotExist:
        raise Http404("No such code.") from None
    secrets = services.reveal_voucher(voucher=voucher, user=request.user)
    return _render(request, "orders/voucher_reveal.html", {
        "voucher": voucher, "order": voucher.order, "secrets": secrets,
    }, title=f"Code {voucher.masked}")


def csv_response(orders: QuerySet[Order], user, filename: str) -> StreamingHttpResponse:
    """Stream the codes of ``orders``; PermissionDenied before anything is sent."""
    rows = exports.export_rows(orders_queryset=orders, user=user)
    response = StreamingHttpResponse(exports.csv_stream(rows),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@never_cache
@login_required
@require_POST
def export_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = _visible_order(request, pk)
    return csv_response(Order.objects.filter(pk=order.pk), request.user,
                        f"{order.reference}-codes.csv")


@never_cache
@login_required
@require_POST
def export_list(request: HttpRequest) -> HttpResponse:
    """The codes of every order the list shows with the same filters (from the query)."""
    _form, orders = _filtered_orders(request)
    return csv_response(orders, request.user, "orders-codes.csv")

