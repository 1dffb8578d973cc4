from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from common.money import MONEY_MAX
from orders import pricing, reports, selectors, services
from orders.errors import OrderError
from orders.models import Order
from portal.forms import bounded_date_field, currency_code
from vendors.models import CatalogItem, Product, Vendor


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Product) -> str:
        price = f"{obj.cost} {obj.cost_currency}" if obj.cost is not None else "no price"
        return f"{obj.brand or '—'} · {obj.name} · {obj.vendor.name} · {price}"


class OrderForm(forms.Form):
    """A one-line order. Validating it prices it exactly as place_order will (``self.quote``),
    so bad input is refused with the engine's own message on the field it concerns."""

    product = ProductChoiceField(
        queryset=selectors.orderable_products(), required=False,
        empty_label="— or route by brand and face value below —",
        error_messages={"invalid_choice": "Unknown or unavailable product: choose one from "
                                          "the list or the catalog."},
    )
    brand = forms.CharField(max_length=100, required=False,
                            widget=forms.TextInput(attrs={"list": "brand-options"}))
    face_value = forms.DecimalField(max_digits=18, decimal_places=4, required=False,
                                    max_value=MONEY_MAX,
                                    min_value=Decimal("0.0001"),
                                    help_text="For routing, or for an open-value product.")
    currency = forms.CharField(max_length=3, required=False, label="Face currency",
                               validators=[currency_code],
                               help_text="For routing: only offers in this currency.")
    quantity = forms.IntegerField(
        initial=1,
        widget=forms.NumberInput(attrs={"min": 1, "max": settings.ORDER_MAX_QUANTITY}),
    )
    pay_with_currency = forms.CharField(
        max_length=3, required=False, validators=[currency_code],
        help_text="EZ Cards only: the balance currency that pays for the order.",
    )
    note = forms.CharField(max_length=500, required=False,
                           widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    purchase_order = forms.CharField(max_length=64, required=False,
                                     label="Purchase-order number")
    allow_other_suppliers = forms.BooleanField(
        required=False, initial=True, label="Allow other suppliers",
        help_text="When the supplier refuses or runs out, order what is missing from the "
                  "item's next offer, at its price.",
    )

    quote: pricing.Quote | None = None

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user  # quotes for a user add their repeats and spend limits

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].strip().upper()

    def clean_pay_with_currency(self) -> str:
        return self.cleaned_data["pay_with_currency"].strip().upper()

    def line_request(self, *, confirmed_total: str = "") -> pricing.LineRequest:
        """The line as asked for, priced by the user's recent quote where there is one; with
        the ``confirmed_total`` of a confirmation page, pricing refuses any other total."""
        data = self.cleaned_data
        return pricing.LineRequest(
            quantity=data["quantity"], product=data.get("product"),
            brand=data.get("brand", "").strip(), face_value=data.get("face_value"),
            currency=data.get("currency", ""), pay_with_currency=data.get("pay_with_currency", ""),
            quoted_for=self.user.pk if self.user is not None else None,
            confirmed_total=confirmed_total,
        )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if not data.get("product") and not (data.get("brand") and data.get("face_value")):
            self.add_error("product", "Choose a product, or a brand and a face value.")
            return data
        try:
            self.quote = pricing.quote(self.line_request(), user=self.user)
        except OrderError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=services.REJECTION_REASON_MAX,
        error_messages={"required": "Give the reason for the rejection."},
    )


class ResolveForm(forms.Form):
    """An operator's way out of a supplier order whose outcome is unknown."""

    ATTACH, RESEND = "attach", "resend"
    choice = forms.ChoiceField(choices=[(ATTACH, "Attach the supplier's order"),
                                        (RESEND, "Send again")])
    supplier_order_id = forms.CharField(
        max_length=100, required=False, label="Supplier's order id",
        help_text="From the supplier's portal or support: the portal fetches that order, "
                  "checks it is ours (reference, product, quantity), stores its codes and "
                  "settles the ledger. Nothing is bought again.",
    )

    def clean(self):
        data = super().clean()
        if data.get("choice") == self.ATTACH and not data.get("supplier_order_id", "").strip():
            self.add_error("supplier_order_id", "Enter the supplier's order id.")
        return data


def _user_choices():
    return get_user_model().objects.order_by("username")


class OrderFilterForm(forms.Form):
    """The order list's GET filters. Invalid values are reported and left out; the valid
    ones still apply."""

    # The search (OrderSearchForm, by POST) puts one of these two in the URL; the filter form
    # carries them along as hidden fields.
    q = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)
    code = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput,
                            error_messages={"invalid": "This code search is not valid: search "
                                                       "again."})
    status = forms.ChoiceField(choices=[("", "Any status"), *Order.Status.choices],
                               required=False)
    vendor = forms.ModelChoiceField(queryset=Vendor.objects.order_by("name"), required=False,
                                    empty_label="Any vendor")
    product = ProductChoiceField(queryset=Product.objects.select_related("vendor"),
                                 required=False, empty_label="Any product")
    placed_by = forms.ModelChoiceField(queryset=_user_choices(), required=False,
                                       empty_label="Anyone")
    currency = forms.CharField(max_length=3, required=False, validators=[currency_code],
                               widget=forms.TextInput(attrs={"size": 4}))
    placed_from = bounded_date_field()
    placed_to = bounded_date_field()
    sort = forms.CharField(max_length=20, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, show_placed_by: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not show_placed_by:
            del self.fields["placed_by"]

    def filters(self) -> selectors.OrderFilters:
        self.is_valid()
        data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
        return selectors.OrderFilters(**data)


class OrderSearchForm(forms.Form):
    """The order list's search box. It is posted, never sent in a URL: the term may be a
    code, which must not reach an address bar, an access log or a browser's history."""

    term = forms.CharField(
        max_length=200, required=False, label="Search",
        help_text="Our reference, the supplier's order id, or a full code.",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off",
                                      "spellcheck": "false", "size": 30}),
    )
    # The list's other filters, kept across the search (OrderFilterForm validates them).
    CARRIED = ("status", "vendor", "product", "placed_by", "currency", "placed_from",
               "placed_to", "sort")


class CatalogFilterForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, label="Search",
                        help_text="Name, brand or SKU.")
    brand = forms.CharField(max_length=100, required=False,
                            widget=forms.TextInput(attrs={"list": "brand-options"}))
    country = forms.CharField(max_length=2, required=False,
                              widget=forms.TextInput(attrs={"size": 3}))
    currency = forms.CharField(max_length=3, required=False, validators=[currency_code],
                               widget=forms.TextInput(attrs={"size": 4}))
    face_value = forms.DecimalField(max_digits=18, decimal_places=4, required=False,
                                    max_value=MONEY_MAX,
                                    widget=forms.NumberInput(attrs={"step": "any"}))
    vendor = forms.ModelChoiceField(queryset=Vendor.objects.filter(enabled=True),
                                    required=False, empty_label="Any vendor")
    availability = forms.ChoiceField(
        choices=[("", "Any"), ("available", "Available"), ("unavailable", "Unavailable")],
        required=False,
    )

    def filters(self) -> selectors.CatalogFilters:
        self.is_valid()
        data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
        return selectors.CatalogFilters(**data)


class ReportPeriodForm(forms.Form):
    """The reports' period (GET): a date left out is that of the last twelve months; at most
    MAX_MONTHS long."""

    MAX_MONTHS = 60

    date_from = bounded_date_field(label="From")
    date_to = bounded_date_field(label="To")

    def __init__(self, data, **kwargs) -> None:
        default = reports.Period.default()
        super().__init__({"date_from": default.start.isoformat(),
                          "date_to": default.end.isoformat(),
                          **{name: value for name, value in data.items() if value}}, **kwargs)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            period = reports.Period(start, end)
            if start > end:
                self.add_error("date_to", "The end date comes before the start date.")
            elif len(period.months()) > self.MAX_MONTHS:
                self.add_error("date_to", f"Choose a period of at most {self.MAX_MONTHS} "
                                          "months.")
            else:
                data["period"] = period
        return data

    def period(self) -> reports.Period | None:
        """The chosen period, or None when the form is not valid."""
        return self.cleaned_data["period"] if self.is_valid() else None


class AlertPreferenceForm(forms.Form):
    """Which alert emails the user wants; low balances only for who sees balances."""

    low_balance = forms.BooleanField(
        required=False, label="Low balances",
        help_text="A vendor's balance runs low: below its threshold or few days left.",
    )
    needs_attention = forms.BooleanField(
        required=False, label="Orders needing attention",
        help_text="Your orders, and every order if you see balances.",
    )
    completed = forms.BooleanField(
        required=False, label="Orders completed",
        help_text="Your orders, completed or partially completed.",
    )

    def __init__(self, *args, operator: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not operator:
            del self.fields["low_balance"]


class BasketAddForm(forms.Form):
    """Add a catalog item, or one of its offers, to the basket."""

    item = forms.ModelChoiceField(
        queryset=CatalogItem.objects.all(), widget=forms.HiddenInput,
        error_messages={"invalid_choice": "Unknown item: choose one from the catalog."},
    )
    product = forms.ModelChoiceField(
        queryset=Product.objects.select_related("vendor"), required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "Unknown offer: choose one from the item's page."},
    )
    face_value = forms.DecimalField(max_digits=18, decimal_places=4, required=False,
                                    max_value=MONEY_MAX,
                                    min_value=Decimal("0.0001"))
    quantity = forms.IntegerField(
        initial=1, min_value=1, max_value=settings.ORDER_MAX_QUANTITY,
        widget=forms.NumberInput(attrs={"size": 4}),
    )


class BasketQuantityForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=settings.ORDER_MAX_QUANTITY)


class PlaceLinesForm(forms.Form):
    """The one confirmation of many routed lines (a basket, a bulk file): what the page
    showed, and the orders' own fields."""

    confirmation = forms.CharField(widget=forms.HiddenInput)
    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)
    allow_other_suppliers = forms.BooleanField(
        required=False, initial=True, label="Allow other suppliers",
        help_text="When a supplier refuses a line or runs out, order what is missing from the "
                  "item's next offer, at its price.",
    )
    note = forms.CharField(max_length=500, required=False,
                           widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    purchase_order = forms.CharField(max_length=64, required=False,
                                     label="Purchase-order number")
