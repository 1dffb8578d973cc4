from django.contrib import admin, messages

from orders.models import Order, OrderLine, VendorOrder, Voucher
from portal.crypto import default_keyring


def search_by_code(queryset, search_term: str, code_lookup: str):
    """Add exact code matches (by blind index, never by decrypting) to a search."""
    term = search_term.strip()
    if len(term) < 6:
        return queryset.none()
    return queryset.filter(**{code_lookup: default_keyring().blind_index(term)})


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
    search_fields = ("reference", "vendor_orders__supplier_order_id", "purchase_order", "note")
    list_select_related = ("placed_by",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in Order._meta.fields if f.name not in ("note", "reviewed")]
    inlines = (OrderLineInline, VendorOrderInline)
    actions = ("mark_reviewed",)

    def has_add_permission(self, request) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            results |= search_by_code(queryset, search_term, "vouchers__code_index")
            duplicates = True
        return results, duplicates

    @admin.action(description="Mark reviewed")
    def mark_reviewed(self, request, queryset) -> None:
        count = queryset.update(reviewed=True)
        messages.success(request, f"{count} orders marked reviewed.")


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

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Voucher)
class VoucherAdmin(admin.ModelAdmin):
    """Codes appear masked only; revealing one is a service call with its own audit row."""

    list_display = ("masked", "order", "vendor_order", "serial", "expires_at", "duplicate",
                    "key_version", "created_at")
    list_filter = ("duplicate", "key_version", "vendor_order__vendor")
    search_fields = ("order__reference", "serial")
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

    def get_search_results(self, request, queryset, search_term):
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            results |= search_by_code(queryset, search_term, "code_index")
        return results, duplicates
