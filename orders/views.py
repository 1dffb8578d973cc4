"""Staff pages. Reads go through orders.selectors, writes through orders.services; every
action is a plain form POST followed by a redirect, htmx only refreshes fragments."""

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from orders import alerts, confirmations, exports, pricing, selectors, services
from orders.errors import OrderError
from orders.forms import (
    AlertPreferenceForm,
    CatalogFilterForm,
    OrderFilterForm,
    OrderForm,
    OrderSearchForm,
    RejectForm,
    ResolveForm,
)
from orders.models import Order, VendorOrder, Voucher
from portal.access import allowed_by
from portal.idle import not_user_activity
from portal.twofactor import fresh_authentication_required
from vendors.models import CatalogItem, Product

# Every door that places orders: the new-order form's neighbours, the basket, bulk files.
ordering = allowed_by(services.can_order, "You may not place orders.")

PAGE_SIZE = 50
# The window of an offer's recent record (orders, failures, time to codes) on an item page.
OFFER_RECORD_DAYS = 30
MAX_PAGE = 10_000


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
    """The ``page`` asked for, or the first page with a message when it is not a number
    from 1 to MAX_PAGE (a huge one would overflow the database's OFFSET)."""
    raw = request.GET.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PAGE:
        messages.error(request, f"Pages go from 1 to {MAX_PAGE}: showing the first page.")
        return 1
    return number


def _visible_order(request: HttpRequest, pk: int) -> Order:
    try:
        order = selectors.order_detail(request.user, pk)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    if not services.can_view_order(request.user, order):
        raise Http404("No such order.")
    return order


# Dashboard and catalog


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Every staff user's home; each part only for who may see it."""
    user = request.user
    show_balances = user.has_perm("vendors.view_balance")
    show_orders = user.has_perm("orders.view_order")
    balances = alerts.balance_states(selectors.balances()) if show_balances else []
    return _render(request, "orders/dashboard.html", {
        "show_balances": show_balances, "show_orders": show_orders,
        "balances": balances, "low_balances": [b for b in balances if b.low],
        "spend_window": settings.ALERT_SPEND_WINDOW_DAYS,
        "in_flight": selectors.orders_in_flight(user) if show_orders else [],
        "attention": selectors.orders_needing_attention(user) if show_orders else [],
        "events": selectors.recent_events(user) if show_orders else [],
    }, title="Dashboard")


@login_required
def alert_settings(request: HttpRequest) -> HttpResponse:
    """The user's own choice of alert emails."""
    user = request.user
    current = alerts.preferences(user)
    choices = {"low_balance": current.low_balance, "needs_attention": current.needs_attention,
               "completed": current.completed}
    form = AlertPreferenceForm(request.POST if request.method == "POST" else None,
                               initial=choices, operator=alerts.is_operator(user))
    if request.method == "POST" and form.is_valid():
        alerts.save_preferences(user=user, **{**choices, **form.cleaned_data})
        messages.success(request, "Your alert emails are saved.")
        return redirect("orders:alert_settings")
    return _render(request, "orders/alert_settings.html", {
        "form": form, "email": user.email,
    }, title="Alert emails", status=400 if form.errors else 200)


@login_required
@permission_required("vendors.view_product", raise_exception=True)
def catalog(request: HttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    items = selectors.catalog(form.filters())
    page = selectors.page_of(items, _page_number(request), PAGE_SIZE)
    pricing.price_items_now(page.rows)
    return _render(request, "orders/catalog.html", {
        "form": form, "page": page, "brands": selectors.brands(),
    }, title="Catalog")


@login_required
@permission_required("vendors.view_product", raise_exception=True)
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One catalog item's offers side by side: cost, discount, delivery, recent record."""
    try:
        item = selectors.catalog_item(pk)
    except CatalogItem.DoesNotExist:
        raise Http404("No such item.") from None
    offers = selectors.item_offers(item, days=OFFER_RECORD_DAYS)
    pricing.price_items_now([item])
    for offer, _record in offers:
        offer.why_not = getattr(item, "why_not", {}).get(offer.pk, "")
    return _render(request, "orders/item_detail.html", {
        "item": item, "offers": offers, "days": OFFER_RECORD_DAYS,
    }, title=item.name)


@login_required
@permission_required("vendors.view_product", raise_exception=True)
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
            "product": request.GET.get("product"), "quantity": 1, "allow_other_suppliers": True,
        }))
    form = OrderForm(request.POST, user=request.user)
    step = request.POST.get("step", "confirm")
    if not form.is_valid():
        return _order_form_page(request, form, status=400)
    if step == "edit":
        return _order_form_page(request, form)
    if step == "place" and request.POST.get("confirmation"):
        return _place(request, form, request.POST["confirmation"])
    return _confirm_page(request, form)


def _confirm_page(request: HttpRequest, form: OrderForm, *,
                  repeated: list[Order] | None = None, status: int = 200) -> HttpResponse:
    """The confirmation step, with a new token: the one order it may place."""
    return _render(request, "orders/order_confirm.html", {
        "form": form, "quote": form.quote, "confirmation": confirmations.issue(request.user),
        "confirmed_total": pricing.confirmed_total(form.quote.line), "repeated": repeated,
    }, title="Confirm the order", status=status)


def _place(request: HttpRequest, form: OrderForm, token: str) -> HttpResponse:
    # One order per confirmation page, even when "Place order" is pressed twice: the
    # database keeps the token under a unique constraint (services.place_order).
    try:
        confirmation = confirmations.open_token(request.user, token)
    except confirmations.InvalidConfirmation:
        messages.error(request, "This confirmation is not valid any more: check the order "
                                "and place it again.")
        return _confirm_page(request, form, status=400)
    placed = Order.objects.filter(confirmation_token=confirmation.nonce,
                                  placed_by=request.user).first()
    if placed is not None:
        return _already_placed(request, placed)
    # Another tab placed the same order after this page was shown: ask again, warned.
    line = form.quote.line
    repeated = selectors.repeated_orders(
        user=request.user, product=line.product, quantity=line.quantity,
        face_value=line.face_value,
        since=max(confirmation.issued_at, selectors.repeat_window_start()),
    )
    if repeated:
        return _confirm_page(request, form, repeated=repeated, status=409)
    data = form.cleaned_data
    # The page posts the total it showed: the order is placed at that total or not at all.
    confirmed_total = request.POST.get("confirmed_total", "")
    try:
        order = services.place_order(
            user=request.user, lines=[form.line_request(confirmed_total=confirmed_total)],
            note=data["note"], purchase_order=data["purchase_order"],
            confirmation_token=confirmation.nonce,
            allow_other_suppliers=data["allow_other_suppliers"],
        )
    except services.AlreadyPlaced as exc:
        return _already_placed(request, exc.order)
    except pricing.PriceChanged as exc:
        # Shown again at the price placing found: the cache now holds that quote.
        messages.warning(request, exc.message)
        form = OrderForm(request.POST, user=request.user)
        if not form.is_valid():
            return _order_form_page(request, form, status=400)
        return _confirm_page(request, form, status=409)
    except OrderError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _order_form_page(request, form, status=400)
    messages.success(request, f"Order {order.reference} placed."
                     + (" It waits for approval." if order.approval_reason else ""))
    return redirect("orders:order_detail", pk=order.pk)


def _already_placed(request: HttpRequest, order: Order) -> HttpResponse:
    messages.warning(request, f"This order was already placed as {order.reference}.")
    return redirect("orders:order_detail", pk=order.pk)


@login_required
@permission_required("orders.add_order", raise_exception=True)
def order_quote(request: HttpRequest) -> HttpResponse:
    """The live quote of the new-order form (an htmx fragment)."""
    form = OrderForm(request.GET, user=request.user)
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
@permission_required("orders.view_order", raise_exception=True)
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
        "can_export": services.can_export(request.user),
    }, title="Orders")


@login_required
@permission_required("orders.view_order", raise_exception=True)
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
    return {
        "order": order,
        "live": order.status in Order.Status.OPEN,
        "can_reveal": services.can_reveal(user, order),
        "can_export": services.can_export(user, order),
        "can_cancel": services.can_cancel(user, order),
        "can_top_up": services.can_top_up(user, order),
        "can_reorder": services.can_order(user),
        "can_approve": services.can_approve(user, order),
        "can_repoll": services.can_repoll(user, order),
        "resolvable": [vo for vo in order.vendor_orders.all() if services.can_resolve(user, vo)],
        "ledger": selectors.ledger_entries(order) if services.can_see_ledger(user) else None,
        "money": selectors.order_money(order),
        "resolve_form": ResolveForm(),
    }


@login_required
@permission_required("orders.view_order", raise_exception=True)
@never_cache
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = _visible_order(request, pk)
    return _render(request, "orders/order_detail.html", _detail_context(request, order),
                   title=f"Order {order.reference}")


@not_user_activity
@login_required
@permission_required("orders.view_order", raise_exception=True)
@never_cache
def order_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The changing part of the order page, polled by htmx while the order is open."""
    order = _visible_order(request, pk)
    return render(request, "orders/_order_live.html", _detail_context(request, order))


@login_required
@permission_required("orders.view_order", raise_exception=True)
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
    except OrderError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.reference} {done}.")
    return redirect("orders:order_detail", pk=order.pk)


@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_POST
def order_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda o: services.cancel_order(order=o, user=request.user),
                "cancelled")


@login_required
@permission_required("orders.view_order", raise_exception=True)
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
    if not form.is_valid():
        order = _visible_order(request, pk)
        return _render(request, "orders/order_detail.html",
                       {**_detail_context(request, order), "reject_form": form},
                       title=f"Order {order.reference}", status=400)
    return _act(
        request, pk,
        lambda o: services.reject_order(order=o, user=request.user,
                                        reason=form.cleaned_data["reason"]), "rejected",
    )


@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_POST
def vendor_order_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    """Settle a supplier order whose outcome is unknown: attach the supplier's order, or send
    again. Bad input comes back on the order page as a field error."""
    try:
        vendor_order = selectors.visible_vendor_order(request.user, pk)
    except VendorOrder.DoesNotExist:
        raise Http404("No such supplier order.") from None
    if not services.can_resolve(request.user, vendor_order):
        raise PermissionDenied("You may not resolve this supplier order.")
    order = _visible_order(request, vendor_order.order_id)
    form = ResolveForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.resolve_unknown(
                vendor_order=vendor_order, user=request.user,
                absent=data["choice"] == ResolveForm.RESEND,
                supplier_order_id=data["supplier_order_id"]
                if data["choice"] == ResolveForm.ATTACH else "",
            )
        except OrderError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            done = ("sent again" if data["choice"] == ResolveForm.RESEND
                    else "attached to the supplier's order")
            messages.success(request, f"{vendor_order.client_reference} {done}.")
            return redirect("orders:order_detail", pk=order.pk)
    context = _detail_context(request, order)
    context.update(resolve_form=form, resolve_target=vendor_order.pk)
    return _render(request, "orders/order_detail.html", context,
                   title=f"Order {order.reference}", status=400)


# Codes: reveal and export


@never_cache
@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_POST
@fresh_authentication_required
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
    response = StreamingHttpResponse(exports.export_csv(orders_queryset=orders, user=user),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@never_cache
@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_POST
@fresh_authentication_required
def export_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = _visible_order(request, pk)
    return csv_response(Order.objects.filter(pk=order.pk), request.user,
                        f"{order.reference}-codes.csv")


@never_cache
@login_required
@permission_required("orders.view_order", raise_exception=True)
@require_POST
@fresh_authentication_required
def export_list(request: HttpRequest) -> HttpResponse:
    """The codes of every order the list shows with the same filters (from the query).
    Refused when a filter is invalid: leaving it out would export more than was asked for."""
    form, orders = _filtered_orders(request)
    if not form.is_valid():
        messages.error(request, "Nothing was exported: correct the filters first.")
        url = reverse("orders:order_list")
        return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)
    return csv_response(orders, request.user, "orders-codes.csv")

