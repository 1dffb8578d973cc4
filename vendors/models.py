from decimal import Decimal

from django.db import models

from common.money import money_bound
from vendors.adapters import KIND_CHOICES

MONEY = {"max_digits": 18, "decimal_places": 4, "validators": [money_bound]}


class Vendor(models.Model):
    """A supplier account: which API it speaks, where, and how hard we may call it."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    base_url = models.URLField(max_length=300)
    # JSON of the credentials, encrypted with common.crypto; write-only in the admin.
    credentials_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)

    first_poll_delay = models.PositiveIntegerField(
        default=2, help_text="Seconds before the first poll when the supplier gives no "
        "estimate; later polls back off (about 2, 5, 10, 20 s ...) up to the longest wait.",
    )
    max_poll_interval = models.PositiveIntegerField(
        default=300, help_text="Longest wait, in seconds, between two polls of an open order."
    )
    poll_deadline = models.PositiveIntegerField(
        default=24 * 3600,
        help_text="Seconds after submission before an open order needs a person's attention.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=60, help_text="Requests per minute this account may send, shared by all workers."
    )
    low_balance_threshold = models.DecimalField(**MONEY, default=Decimal("100"))

    catalog_synced_at = models.DateTimeField(null=True, blank=True)
    catalog_sync_error = models.TextField(blank=True)
    balances_synced_at = models.DateTimeField(null=True, blank=True)
    balance_sync_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class CatalogItem(models.Model):
    """What a buyer means: one brand's card for a country and currency, at a face value or in
    a range ("Amazon US 10 USD"). Each supplier product that sells it is an offer of it
    (``Product.item``): vendors.matching assigns offers on every catalog sync by ``key``, and
    an operator may match, split or return offers to the rules in the admin. A product the
    rules cannot place (no brand or currency) is an item of its own."""

    key = models.CharField(max_length=300, unique=True, help_text="What the matching rules "
                           "compare: brand, country, currency and face value, normalised.")
    name = models.CharField(max_length=300)
    brand = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    face_value = models.DecimalField(**MONEY, null=True, blank=True,
                                     help_text="Empty for a range of values.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["brand", "country", "currency", "face_value", "name"]
        indexes = [models.Index(fields=["brand", "currency", "face_value"])]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A supplier's catalog item as last synced, an offer of one ``CatalogItem``. Never
    deleted: unavailable when withdrawn."""

    class DenominationType(models.TextChoices):
        FIXED = "fixed"
        OPEN = "open"

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="products")
    supplier_product_id = models.CharField(max_length=100)
    sku = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300)
    brand = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    face_value = models.DecimalField(**MONEY, null=True, blank=True)
    face_currency = models.CharField(max_length=3, blank=True)
    cost = models.DecimalField(**MONEY, null=True, blank=True)
    cost_currency = models.CharField(max_length=3, blank=True)
    denomination_type = models.CharField(
        max_length=5, choices=DenominationType.choices, default=DenominationType.FIXED
    )
    min_value = models.DecimalField(**MONEY, null=True, blank=True)
    max_value = models.DecimalField(**MONEY, null=True, blank=True)
    step = models.DecimalField(**MONEY, null=True, blank=True)
    delivery = models.CharField(max_length=10, blank=True)
    available = models.BooleanField(default=True)
    terms = models.TextField(blank=True)
    price_tiers = models.JSONField(default=list, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    item = models.ForeignKey(CatalogItem, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="offers")
    matched_by_hand = models.BooleanField(
        default=False, help_text="Matched or split by an operator: syncs leave its item alone."
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["brand", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["vendor", "supplier_product_id"], name="product_unique_per_vendor"
            )
        ]
        indexes = [
            models.Index(fields=["brand", "face_value"]),
            models.Index(fields=["sku"]),
            models.Index(fields=["available", "vendor"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.vendor})"

    @property
    def discount(self) -> Decimal | None:
        """What it costs below its face value, as a fraction; None across currencies."""
        if not self.face_value or self.cost is None or self.cost_currency != self.face_currency:
            return None
        return ((self.face_value - self.cost) / self.face_value).quantize(Decimal("0.0001"))


class Balance(models.Model):
    """A vendor's money in one currency: what the supplier reported and what we have reserved."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="balances")
    currency = models.CharField(max_length=3)
    reported = models.DecimalField(**MONEY, null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    reserved = models.DecimalField(**MONEY, default=Decimal("0"))
    spent_since_report = models.DecimalField(
        **MONEY, default=Decimal("0"),
        help_text="Debits recorded after the supplier's last report.",
    )
    low_alerted_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When operators were told this balance ran low; cleared once it recovers.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor__name", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "currency"], name="balance_unique_currency")
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.currency}"

    @property
    def available(self) -> Decimal | None:
        if self.reported is None:
            return None
        return self.reported - self.reserved - self.spent_since_report
