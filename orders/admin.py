from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.template.response import TemplateResponse

from common.money import MoneyError, currency_code
from orders import jobs, selectors, services, spend
from orders.errors import OrderError
from orders.models import LedgerEntry, Order, OrderLine, SpendLimit, VendorOrder, Voucher
from portal import twofactor
from vendors import admin as vendor_admin
from vendors.models import Vendor


class ScopedAdmin(admin.ModelAdmin):
    """Lists, pages and actions hold only the rows the user may see, by the same selectors
    as the portal's pages; the page of any other row is a 404, as a missing one is."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # orders and their parts are records of money spent: never deleted

    def response_action(self, request, queryset):
        """Refuse an action outright when a selected row is not the user's to see (the
        admin would otherwise drop it silently and act on the rest)."""
        try:
            selected = {queryset.model._meta.pk.to_python(value)
                        for value in request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)}
        except ValidationError:
            messages.error(request, "A selected row does not exist: nothing was done.")
            return None
        if selected and not request.POST.get("select_across") and (
            queryset.filter(pk__in=selected).count() < len(selected)
        ):
            messages.error(request, "A selected row is not yours to act on: nothing was done.")
            return None
        return super().response_action(request, queryset)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("product", "vendor", "quantity", "face_value", "unit_cost", "currency",
              "delivered_quantity", "routing_note")


class VendorOrderInline(ReadOnlyInline):
    model = VendorOrder
    fields = ("client_reference", "vendor", "supplier_order_id", "status", "quantity",
              "delivered_quantity", "estimated_ready_at", "next_poll_at", "last_error")


@admin.register(Order)
class OrderAdmin(ScopedAdmin):
    list_display = ("reference", "status", "placed_by", "quantity", "delivered_quantity",
                    "total_cost", "currency", "reviewed", "created_at")
    list_filter = ("status", "currency", "reviewed", "lines__vendor")
    # Codes are never typed into a GET search (it would land in URLs and logs): the portal's
    # order search takes them by POST and hands over their blind index, which matches here.
    search_fields = ("reference", "vendor_orders__supplier_order_id", "purchase_order", "note",
                     "=vouchers__code_index")
    search_help_text = ("Reference, supplier order id, purchase order or note. Never type a code "
                        "here (it would land in the address and the logs): the portal's order "
                        "search finds an order by its code.")
    list_select_related = ("placed_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in Order._meta.fields if f.name not in ("note", "reviewed")]
    inlines = (OrderLineInline, VendorOrderInline)
    actions = ("mark_reviewed", "export_codes", "repoll_now")

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        return selectors.visible_orders(request.user, super().get_queryset(request))

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) and (
            obj is None or services.can_view_order(request.user, obj)
        )

    def has_mark_reviewed_permission(self, request) -> bool:
        return request.user.has_perm("orders.approve_order")

    def has_export_permission(self, request) -> bool:
        return services.can_export(request.user)

    @admin.action(description="Mark reviewed", permissions=["mark_reviewed"])
    def mark_reviewed(self, request, queryset) -> None:
        count = 0
        for order in queryset:
            try:
                services.mark_reviewed(order=order, user=request.user)
                count += 1
            except PermissionDenied as exc:
                messages.error(request, str(exc))
        messages.success(request, f"{count} orders marked reviewed.")

    @admin.action(description="Export selected orders' codes", permissions=["export"])
    def export_codes(self, request, queryset):
        from orders.views import csv_response

        if twofactor.needs_reauthentication(request):
            return twofactor.reauthentication_redirect(request, request.get_full_path())
        try:
            return csv_response(queryset, request.user, "orders-codes.csv")
        except PermissionDenied as exc:
            messages.error(request, str(exc) or "You may not export these codes.")
            return None

    @admin.action(description="Re-poll now")
    def repoll_now(self, request, queryset) -> None:
        asked = 0
        orders = queryset.prefetch_related(
            Prefetch("vendor_orders", queryset=VendorOrder.objects.select_related("vendor"))
        )
        for order in orders:
            if not services.can_repoll(request.user, order):
                messages.error(request, f"{order.reference}: nothing you may re-poll (only "
                               "its placer or an operator, and only what was sent).")
                continue
            count, refused = services.repoll_order(order=order, user=request.user)
            asked += count
            for message in refused:
                messages.error(request, message)
        messages.success(request, f"Asked the suppliers again about {asked} supplier orders.")


@admin.register(VendorOrder)
class VendorOrderAdmin(ScopedAdmin):
    list_display = ("client_reference", "order", "vendor", "supplier_order_id", "status",
                    "quantity", "delivered_quantity", "next_poll_at", "attempts", "created_at")
    list_filter = ("status", "vendor")
    search_fields = ("client_reference", "supplier_order_id", "order__reference")
    list_select_related = ("order", "vendor")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in VendorOrder._meta.fields]
    actions = ("repoll_now", "resend_confirmed_absent", "attach_supplier_order")

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        return selectors.visible_vendor_orders(request.user, super().get_queryset(request))

    @admin.action(description="Re-poll now")
    def repoll_now(self, request, queryset) -> None:
        for vendor_order in queryset:
            try:
                services.repoll_now(vendor_order=vendor_order, user=request.user)
                messages.success(request, f"{vendor_order.client_reference}: asked again.")
            except OrderError as exc:
                messages.error(request, f"{vendor_order.client_reference}: {exc.message}")
            except PermissionDenied as exc:
                messages.error(request, f"{vendor_order.client_reference}: {exc}")

    def has_resolve_permission(self, request) -> bool:
        """Offer the resolve actions to operators; each supplier order is then checked by
        services.can_resolve."""
        return request.user.has_perm("orders.change_vendororder")

    def _resolvable(self, request, queryset) -> list[VendorOrder]:
        chosen = []
        for vendor_order in queryset.select_related("vendor", "line__product"):
            if services.can_resolve(request.user, vendor_order):
                chosen.append(vendor_order)
            else:
                messages.error(request, f"{vendor_order.client_reference}: only a supplier "
                               "order whose outcome is unknown and that waits for a person can "
                               "be resolved.")
        return chosen

    @admin.action(description="Send again: the supplier confirms it has no such order "
                  "(buys twice if it does have it)", permissions=["resolve"])
    def resend_confirmed_absent(self, request, queryset) -> None:
        for vendor_order in self._resolvable(request, queryset):
            try:
                services.resolve_unknown(vendor_order=vendor_order, user=request.user,
                                         absent=True)
                messages.success(request, f"{vendor_order.client_reference}: sent again.")
            except OrderError as exc:
                messages.error(request, f"{vendor_order.client_reference}: {exc.message}")
            except PermissionDenied as exc:
                messages.error(request, f"{vendor_order.client_reference}: {exc}")

    @admin.action(description="Attach the supplier's order: fetch it by its id, check it is "
                  "ours, store its codes (nothing bought again)", permissions=["resolve"])
    def attach_supplier_order(self, request, queryset):
        chosen = self._resolvable(request, queryset)
        if len(chosen) != 1:
            if chosen or not queryset.exists():
                messages.error(request, "Choose one supplier order to attach.")
            return None
        vendor_order = chosen[0]
        form = AttachForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                services.attach_supplier_order(
                    vendor_order=vendor_order, user=request.user,
                    supplier_order_id=form.cleaned_data["supplier_order_id"],
                )
            except OrderError as exc:
                form.add_error("supplier_order_id", exc.message)
            else:
                messages.success(request, f"{vendor_order.client_reference}: attached to "
                                 f"{vendor_order.vendor} order "
                                 f"{form.cleaned_data['supplier_order_id']}.")
                return None
        return TemplateResponse(request, "admin/orders/vendororder/attach.html", {
            **self.admin_site.each_context(request), "title": "Attach the supplier's order",
            "vendor_order": vendor_order, "form": form, "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }, status=400 if form.is_bound else 200)


class AttachForm(forms.Form):
    supplier_order_id = forms.CharField(
        max_length=100, label="Supplier's order id",
        help_text="The portal fetches this order from the supplier, checks our reference, the "
                  "product and the quantity, then stores its codes and settles the ledger. A "
                  "mismatch is refused and changes nothing.",
    )


@admin.register(Voucher)
class VoucherAdmin(ScopedAdmin):
    """Codes appear masked only; revealing one is a service call with its own audit row."""

    list_display = ("masked", "order", "vendor_order", "serial", "expires_at", "duplicate",
                    "key_version", "created_at")
    list_filter = ("duplicate", "key_version", "vendor_order__vendor")
    search_fields = ("order__reference", "serial", "=code_index")
    search_help_text = ("Order reference or serial. Never type a code here (it would land in the "
                        "address and the logs): the portal's order search finds it.")
    list_select_related = ("order", "vendor_order")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ("masked", "order", "vendor_order", "serial", "expires_at", "duplicate",
              "key_version", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            order__in=selectors.visible_orders(request.user).values("pk")
        )

class SpendLimitForm(forms.ModelForm):
    class Meta:
        model = SpendLimit
        fields = ("user", "currency", "per_order", "daily_cap")

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor

    def clean_currency(self) -> str:
        try:
            return currency_code(self.cleaned_data["currency"])
        except MoneyError:
            raise forms.ValidationError("Not an ISO 4217 currency code.") from None

    def clean_per_order(self):
        return self._not_negative("per_order")

    def clean_daily_cap(self):
        return self._not_negative("daily_cap")

    def _not_negative(self, name: str):
        value = self.cleaned_data[name]
        if value is not None and value < 0:
            raise forms.ValidationError("A limit cannot be negative.")
        return value

    def clean_user(self):
        user = self.cleaned_data["user"]
        if self.actor is not None and not spend.can_set_spend_limit(self.actor, user):
            raise forms.ValidationError("You may not set your own spend limits.")
        return user


@admin.register(SpendLimit)
class SpendLimitAdmin(admin.ModelAdmin):
    """A user's limits per currency, set by operators (never their own); empty fields keep
    the portal defaults. Saving and deleting go through orders.spend, with audit rows."""

    form = SpendLimitForm
    list_display = ("user", "currency", "per_order", "daily_cap", "updated_at")
    list_filter = ("currency",)
    search_fields = ("user__username",)
    list_select_related = ("user",)
    actions = None  # deleting goes through delete_model, one limit at a time

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class WithActor(form):
            def __init__(self, *args, **kw) -> None:
                super().__init__(*args, actor=request.user, **kw)

        return WithActor

    def _may_edit(self, request, obj=None) -> bool:
        return spend.can_set_spend_limit(request.user, obj.user if obj else None)

    def has_add_permission(self, request) -> bool:
        return self._may_edit(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        spend.set_spend_limit(actor=request.user, limit=obj)

    def delete_model(self, request, obj) -> None:
        spend.delete_spend_limit(actor=request.user, limit=obj)


admin.site.unregister(Vendor)


@admin.register(Vendor)
class VendorAdmin(vendor_admin.VendorAdmin):
    """The vendor admin with the balance sync, which writes the ledger (so it lives here, as
    Django's docs extend the user admin from another app)."""

    actions = (*vendor_admin.VendorAdmin.actions, "sync_balances")

    @admin.action(description="Sync balances now", permissions=["change"])
    def sync_balances(self, request, queryset) -> None:
        self.enqueue(request, queryset, jobs.sync_balances, "Balance")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Every movement of every balance, read-only: the ledger is written by the engine only."""

    list_display = ("created_at", "balance", "kind", "amount", "order", "vendor_order", "note")
    list_filter = ("kind", "balance__vendor", "balance__currency")
    search_fields = ("order__reference", "vendor_order__client_reference", "note")
    list_select_related = ("balance__vendor", "order", "vendor_order")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = list_display
    readonly_fields = list_display

    def has_module_permission(self, request) -> bool:
        return services.can_see_ledger(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return services.can_see_ledger(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
