from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch

from orders import services
from orders.models import Order, OrderLine, VendorOrder, Voucher


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
class OrderAdmin(admin.ModelAdmin):
    list_display = ("reference", "status", "placed_by", "quantity", "delivered_quantity",
                    "total_cost", "currency", "reviewed", "created_at")
    list_filter = ("status", "currency", "reviewed", "lines__vendor")
    # Codes are never typed into a GET search (it would land in URLs and logs): the portal's
    # order search takes them by POST and hands over their blind index, which matches here.
    search_fields = ("reference", "vendor_orders__supplier_order_id", "purchase_order", "note",
                     "=vouchers__code_index")
    list_select_related = ("placed_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in Order._meta.fields if f.name not in ("note", "reviewed")]
    inlines = (OrderLineInline, VendorOrderInline)
    actions = ("mark_reviewed", "export_codes", "repoll_now")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Mark reviewed")
    def mark_reviewed(self, request, queryset) -> None:
        count = queryset.update(reviewed=True)
        messages.success(request, f"{count} orders marked reviewed.")

    @admin.action(description="Export selected orders' codes")
    def export_codes(self, request, queryset):
        from orders.views import csv_response

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
            count, refused = services.repoll_order(order=order, user=request.user)
            asked += count
            for message in refused:
                messages.error(request, message)
        messages.success(request, f"Asked the suppliers again about {asked} supplier orders.")


@admin.register(VendorOrder)
class VendorOrderAdmin(admin.ModelAdmin):
    list_display = ("client_reference", "order", "vendor", "supplier_order_id", "status",
                    "quantity", "delivered_quantity", "next_poll_at", "attempts", "created_at")
    list_filter = ("status", "vendor")
    search_fields = ("client_reference", "supplier_order_id", "order__reference")
    list_select_related = ("order", "vendor")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in VendorOrder._meta.fields]
    actions = ("resend_confirmed_absent",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Send again: the supplier confirms it has no such order")
    def resend_confirmed_absent(self, request, queryset) -> None:
        for vendor_order in queryset:
            try:
                services.resolve_unknown(vendor_order=vendor_order, user=request.user,
                                         absent=True)
                messages.success(request, f"{vendor_order.client_reference}: sent again.")
            except services.OrderError as exc:
                messages.error(request, f"{vendor_order.client_reference}: {exc.message}")


@admin.register(Voucher)
class VoucherAdmin(admin.ModelAdmin):
    """Codes appear masked only; revealing one is a service call with its own audit row."""

    list_display = ("masked", "order", "vendor_order", "serial", "expires_at", "duplicate",
                    "key_version", "created_at")
    list_filter = ("duplicate", "key_version", "vendor_order__vendor")
    search_fields = ("order__reference", "serial", "=code_index")
    list_select_related = ("order", "vendor_order")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ("masked", "order", "vendor_order", "serial", "expires_at", "duplicate",
              "key_version", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
