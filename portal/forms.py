"""Form fields shared by the portal's pages, and the audit page's filters."""

from datetime import date

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator

from audit.models import AuditEvent

# Dates the pages accept: wide enough for any real order, narrow enough that adding a day or
# making a datetime of one never overflows.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2099, 12, 31)
DATE_RANGE_MESSAGE = f"Enter a date between {EARLIEST_DATE} and {LATEST_DATE}."
# The largest id a cursor or an object reference may carry (a signed 64-bit integer).
MAX_ID = 2**63 - 1

currency_code = RegexValidator(r"^[A-Za-z]{3}$", "Enter a three-letter ISO 4217 currency code.")


def bounded_date_field(**kwargs) -> forms.DateField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("widget", forms.DateInput(attrs={"type": "date"}))
    return forms.DateField(validators=[
        MinValueValidator(EARLIEST_DATE, DATE_RANGE_MESSAGE),
        MaxValueValidator(LATEST_DATE, DATE_RANGE_MESSAGE),
    ], **kwargs)


class AuditFilterForm(forms.Form):
    """The audit page's GET filters. Invalid values are reported and left out."""

    actor = forms.CharField(max_length=150, required=False, label="Who",
                            help_text="A username, exactly.",
                            widget=forms.TextInput(attrs={"size": 14}))
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditEvent.Action.choices],
                               required=False, label="What")
    date_from = bounded_date_field(label="From")
    date_to = bounded_date_field(label="To")
    order = forms.CharField(max_length=32, required=False, label="Order reference",
                            widget=forms.TextInput(attrs={"size": 18}))
    before = forms.IntegerField(min_value=1, max_value=MAX_ID, required=False,
                                widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date comes before the start date.")
        return data

    def valid_data(self) -> dict:
        """The filters that validated, empty ones left out."""
        self.is_valid()
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
