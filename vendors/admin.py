import json

import django_rq
from django import forms
from django.contrib import admin, messages
from django.db.models import Count

from common.addresses import url_problem
from vendors import jobs, matching
from vendors.models import Balance, CatalogItem, Product, Vendor
from vendors.services import (
    can_match_offers,
    missing_credentials,
    offers_match,
    offers_rematch,
    offers_split,
    vendor_delete,
    vendor_save,
    vendor_set_credentials,
)


class VendorForm(forms.ModelForm):
    base_url = forms.URLField(max_length=300, assume_scheme="https")
    new_credentials = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='JSON object, e.g. {"api_key": "..."}. Stored encrypted and never shown '
        "again; leave empty to keep the current credentials.",
    )

    class Meta:
        model = Vendor
        fields = [
            "name", "kind", "base_url", "enabled", "first_poll_delay", "max_poll_interval",
            "poll_deadline", "rate_limit_per_minute", "low_balance_threshold",
        ]

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"]
        if problem := url_problem(url):
            raise forms.ValidationError(problem)
        return url

    def clean_new_credentials(self) -> dict[str, str] | None:
        text = self.cleaned_data["new_credentials"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError("Enter a JSON object.") from exc
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise forms.ValidationError("Enter a JSON object of strings.")
        kind = self.data.get("kind") or getattr(self.instance, "kind", "")
        if missing := missing_credentials(kind=kind, credentials=value):
            raise forms.ValidationError(f"These credentials lack {', '.join(missing)}.")
        return value


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    form = VendorForm
    list_display = (
        "name", "kind", "enabled", "base_url", "has_credentials", "catalog_synced_at",
        "balances_synced_at", "sync_problem",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = (
        "catalog_synced_at", "catalog_sync_error", "balances_synced_at", "balance_sync_error",
        "created_at", "updated_at",
    )
    # orders.admin adds "Sync balances now": a balance sync writes the ledger, which is orders'.
    actions = ("sync_catalog",)

    @admin.display(boolean=True)
    def has_credentials(self, vendor: Vendor) -> bool:
        return vendor.has_credentials

    @admin.display(description="Last sync error")
    def sync_problem(self, vendor: Vendor) -> str:
        return vendor.catalog_sync_error or vendor.balance_sync_error

    def save_model(self, request, obj, form, change) -> None:
        stored = {field.name for field in Vendor._meta.concrete_fields}  # not new_credentials
        before = {name: form.initial.get(name) for name in form.changed_data
                  if name in stored} if change else None
        had_credentials = change and Vendor.objects.filter(pk=obj.pk).exclude(
            credentials_encrypted="").exists()
        vendor_save(vendor=obj, before=before, actor=request.user)
        credentials = form.cleaned_data.get("new_credentials")
        if credentials is not None:
            vendor_set_credentials(vendor=obj, credentials=credentials, actor=request.user)
        elif had_credentials and not obj.has_credentials:
            messages.warning(request, f"{obj}'s credentials were dropped with its old URL: "
                                      "enter them again for the new one.")

    def delete_model(self, request, obj) -> None:
        vendor_delete(vendor=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for vendor in queryset:
            vendor_delete(vendor=vendor, actor=request.user)

    def enqueue(self, request, queryset, job, what: str) -> None:
        queue = django_rq.get_queue("sync")
        for vendor in queryset:
            queue.enqueue(job, vendor.pk)
        messages.success(request, f"{what} sync queued for {queryset.count()} vendors.")

    @admin.action(description="Sync catalog now", permissions=["change"])
    def sync_catalog(self, request, queryset) -> None:
        self.enqueue(request, queryset, jobs.sync_catalog, "Catalog")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    """Supplier products as synced; operators match them to catalog items by hand where the
    rules (vendors.matching) cannot."""

    list_display = (
        "name", "brand", "vendor", "country", "face_value", "face_currency", "cost",
        "cost_currency", "denomination_type", "available", "item", "matched_by_hand",
        "last_seen_at",
    )
    list_filter = ("vendor", "available", "denomination_type", "face_currency", "country",
                   "matched_by_hand")
    search_fields = ("name", "brand", "sku", "supplier_product_id", "item__name")
    list_select_related = ("vendor", "item")
    readonly_fields = ("created_at", "updated_at", "last_seen_at", "item", "matched_by_hand")
    date_hierarchy = "last_seen_at"
    actions = ("match_as_one_item", "split_into_own_items", "return_to_matching_rules")

    def save_model(self, request, obj, form, change) -> None:
        """A product added or changed here is matched to its item as a synced one is."""
        super().save_model(request, obj, form, change)
        matching.match_offers([obj])

    def has_match_permission(self, request) -> bool:
        return can_match_offers(request.user)

    @admin.action(description="Match selected offers as one catalog item", permissions=["match"])
    def match_as_one_item(self, request, queryset) -> None:
        try:
            item = offers_match(products=list(queryset.order_by("pk")), actor=request.user)
        except ValueError as exc:
            messages.error(request, f"{exc} Nothing was changed.")
            return
        messages.success(request, f"{queryset.count()} offers are now {item}.")

    @admin.action(description="Split selected offers into items of their own",
                  permissions=["match"])
    def split_into_own_items(self, request, queryset) -> None:
        offers_split(products=list(queryset), actor=request.user)
        messages.success(request, f"{queryset.count()} offers are items of their own.")

    @admin.action(description="Return selected offers to the matching rules",
                  permissions=["match"])
    def return_to_matching_rules(self, request, queryset) -> None:
        offers_rematch(products=list(queryset), actor=request.user)
        messages.success(request, f"{queryset.count()} offers follow the rules again.")


class OfferInline(admin.TabularInline):
    model = Product
    fields = ("name", "vendor", "cost", "cost_currency", "available", "matched_by_hand")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CatalogItem)
class CatalogItemAdmin(admin.ModelAdmin):
    """What buyers order, with its offers; matched on sync, changed from the product list."""

    list_display = ("name", "brand", "country", "currency", "face_value", "offer_count")
    list_filter = ("currency", "country")
    search_fields = ("name", "brand", "key")
    readonly_fields = ("key", "name", "brand", "country", "currency", "face_value",
                       "created_at")
    inlines = (OfferInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(offer_total=Count("offers"))

    @admin.display(description="offers", ordering="offer_total")
    def offer_count(self, obj) -> int:
        return obj.offer_total

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.has_perm("vendors.view_product")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    list_display = ("vendor", "currency", "reported", "reserved", "available", "reported_at")
    list_filter = ("vendor", "currency")
    search_fields = ("vendor__name", "currency")
    list_select_related = ("vendor",)
    readonly_fields = ("reported", "reported_at", "reserved", "updated_at")
    date_hierarchy = "reported_at"
