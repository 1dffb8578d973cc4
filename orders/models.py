import enum
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from vendors.models import MONEY, Balance, CatalogItem, Product, Vendor


class Order(models.Model):
    """What a staff member asked for. Its reference is ours and is shown to suppliers."""

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval"
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        PARTIALLY_COMPLETED = "partially_completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        NEEDS_ATTENTION = "needs_attention"
        REJECTED = "rejected"

        # Sets of statuses (nonmember: in an enum's body every other name becomes a member).
        # Open: still moving without a person; the order page refreshes itself.
        OPEN = enum.nonmember(frozenset({PENDING_APPROVAL, QUEUED, IN_PROGRESS}))
        # Not released to its suppliers: nothing of it may be sent.
        UNRELEASED = enum.nonmember(frozenset({PENDING_APPROVAL, REJECTED, CANCELLED}))
        # Nothing sent yet, and it may still be: it can be cancelled.
        UNSENT = enum.nonmember(frozenset({PENDING_APPROVAL, QUEUED}))

    reference = models.CharField(max_length=32, unique=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING_APPROVAL
    )
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders_placed"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="orders_approved",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="orders_rejected",
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=300, blank=True)
    approval_reason = models.CharField(
        max_length=500, blank=True, help_text="Why the order waits for approval."
    )
    confirmation_token = models.CharField(
        max_length=32, unique=True, null=True, blank=True, editable=False,
        help_text="The confirmation page it was placed from: one order per confirmation.",
    )
    currency = models.CharField(max_length=3)
    total_cost = models.DecimalField(**MONEY, default=0)
    quantity = models.PositiveIntegerField(default=0)
    delivered_quantity = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=500, blank=True)
    purchase_order = models.CharField(max_length=64, blank=True)
    allow_other_suppliers = models.BooleanField(
        default=True, help_text="When a supplier refuses a line or runs out, offer what is "
        "missing to the next offer of the same item (orders.fulfilment).",
    )
    source_upload = models.ForeignKey(
        "BulkUpload", null=True, blank=True, on_delete=models.SET_NULL, related_name="orders",
        help_text="The file it was placed from.",
    )
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_order", "Can approve or reject orders"),
            ("reveal_codes", "Can reveal voucher codes"),
            ("export_codes", "Can export voucher codes"),
            ("view_reports", "Can see spend and supplier reports"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["placed_by", "created_at"]),
            models.Index(fields=["currency", "created_at"]),
            # Keyset pagination of the order list by each sortable column, then id.
            models.Index(fields=["created_at", "id"], name="order_created_seek"),
            models.Index(fields=["status", "id"], name="order_status_seek"),
            models.Index(fields=["total_cost", "id"], name="order_total_seek"),
            models.Index(fields=["quantity", "id"], name="order_quantity_seek"),
            models.Index(fields=["placed_by", "id"], name="order_placed_by_seek"),
        ]

    def __str__(self) -> str:
        return self.reference


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    face_value = models.DecimalField(**MONEY, null=True, blank=True)
    unit_cost = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    pay_with_currency = models.CharField(max_length=3, blank=True)
    delivered_quantity = models.PositiveIntegerField(default=0)
    routing_note = models.CharField(max_length=300, blank=True)
    item = models.ForeignKey(
        CatalogItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="What the buyer asked for; a fallback picks another offer of it.",
    )
    replaces = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="fallbacks",
        help_text="The line whose supplier refused or ran out: this one orders what it "
        "missed from the next offer.",
    )
    note = models.CharField(max_length=300, blank=True)
    reference = models.CharField(max_length=64, blank=True,
                                 help_text="The buyer's own reference for the line.")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["vendor", "order"]),
            models.Index(fields=["product", "order"]),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product.name}"

    @property
    def cost_difference(self) -> Decimal | None:
        """What a fallback line costs more (or less) than its missed codes would have at the
        refused offer; None for a line that replaces none (``replaces`` should be loaded)."""
        if self.replaces is None:
            return None
        return (self.unit_cost - self.replaces.unit_cost) * self.quantity


class VendorOrder(models.Model):
    """One request to one supplier on behalf of an order.

    The row and its client reference are committed before the supplier is called; the
    reference is the supplier's idempotency key.
    """

    class Status(models.TextChoices):
        CREATED = "created"
        SENDING = "sending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        PARTIALLY_COMPLETED = "partially_completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        UNKNOWN = "unknown"  # outcome not learned: reconcile, never resend blindly

        # Sets of statuses (nonmember: in an enum's body every other name becomes a member).
        OPEN = enum.nonmember(frozenset({CREATED, SENDING, PROCESSING, UNKNOWN}))
        FINAL = enum.nonmember(frozenset({COMPLETED, PARTIALLY_COMPLETED, FAILED, CANCELLED}))
        # Sent, outcome not learned: a person may settle it (orders.services.resolve_unknown).
        UNRESOLVED = enum.nonmember(frozenset({UNKNOWN, SENDING}))
        # The supplier may have charged it and the ledger not debited it yet.
        UNSETTLED = enum.nonmember(frozenset({SENDING, PROCESSING, UNKNOWN}))

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="vendor_orders")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="vendor_orders")
    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="vendor_orders")
    client_reference = models.CharField(max_length=64, unique=True)
    supplier_order_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    supplier_status = models.CharField(max_length=64, blank=True)
    quantity = models.PositiveIntegerField()
    delivered_quantity = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3)
    details = models.JSONField(default=dict, blank=True)
    estimated_ready_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker should next act on it; empty while a "
        "job holds it or when nothing is left to do.",
    )
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its current job was queued."
    )
    claim_token = models.CharField(
        max_length=32, blank=True, help_text="The current job's claim: a job whose token no "
        "longer matches was given back by the sweep and must not act.",
    )
    attempts = models.PositiveIntegerField(default=0)
    polls = models.PositiveIntegerField(default=0)
    faults = models.PositiveIntegerField(
        default=0, help_text="Transient supplier faults in a row on its reads (429, 5xx, "
        "timeouts); retried soon, apart from the poll schedule; reset by an answer.",
    )
    last_error = models.TextField(blank=True)
    attention = models.CharField(
        max_length=300, blank=True,
        help_text="Why a person must look at it; polling stops until someone acts.",
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["next_poll_at"]),
            models.Index(fields=["status", "claimed_at"]),
            models.Index(fields=["status", "submitted_at"]),
            models.Index(fields=["supplier_order_id"]),
            models.Index(fields=["vendor", "order"]),
        ]

    def __str__(self) -> str:
        return self.client_reference


class Voucher(models.Model):
    """One delivered code, encrypted. Decrypted only by the reveal and export services."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="vouchers")
    vendor_order = models.ForeignKey(
        VendorOrder, on_delete=models.PROTECT, related_name="vouchers"
    )
    code_encrypted = models.TextField()
    pin_encrypted = models.TextField(blank=True)
    claim_url_encrypted = models.TextField(blank=True)
    code_index = models.CharField(max_length=64, db_index=True)
    last4 = models.CharField(max_length=4)
    serial = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    key_version = models.PositiveIntegerField(db_index=True)
    duplicate = models.BooleanField(
        default=False, help_text="The same code was already in the portal: a fraud signal."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"…{self.last4}"

    @property
    def masked(self) -> str:
        return f"••••{self.last4}"


class SpendLimit(models.Model):
    """One user's limits in one currency, instead of the portal-wide defaults
    (``ORDER_LIMIT_PER_ORDER``, ``ORDER_DAILY_CAP_PER_USER``). See orders.spend."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spend_limits"
    )
    currency = models.CharField(max_length=3)
    per_order = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Largest order total without approval. Empty: the portal default.",
    )
    daily_cap = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Largest total of a day's orders without approval. Empty: the portal default.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["user", "currency"], name="spend_limit_per_currency"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.currency}"


class AlertPreference(models.Model):
    """Which alert emails one user wants (orders.alerts). A user without a row gets them all."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference"
    )
    low_balance = models.BooleanField(
        default=True, help_text="A vendor's balance runs low (for who sees balances)."
    )
    needs_attention = models.BooleanField(
        default=True, help_text="An order of mine, or any order for operators, needs a person."
    )
    completed = models.BooleanField(
        default=True, help_text="An order of mine is completed or partially completed."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"alerts of {self.user}"


class SupplierEvent(models.Model):
    """A supplier's webhook event already received, so a repeated delivery (the supplier
    retries until it hears 2xx, and may send twice anyway) is recognised and ignored.
    Holds no part of the event's body. See orders.webhooks."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=128)
    name = models.CharField(max_length=64, blank=True)
    supplier_order_id = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "event_id"],
                                    name="supplier_event_once_per_vendor"),
        ]
        indexes = [models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.vendor_id}:{self.event_id}"


class LedgerEntry(models.Model):
    """One movement of a vendor balance, written with the change that caused it (orders.ledger)."""

    class Kind(models.TextChoices):
        RESERVE = "reserve"  # an order placed: money set aside
        RELEASE = "release"  # set-aside money no longer needed (failed, undelivered)
        DEBIT = "debit"  # codes delivered: money spent
        REPORT = "report"  # the supplier's own figure, from a balance sync
        DIFFERENCE = "difference"  # the supplier's figure differs from what we expected
        # the supplier's figure settles estimated debits: what it charged minus the estimates
        ADJUSTMENT = "adjustment"

    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**MONEY)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    vendor_order = models.ForeignKey(
        VendorOrder, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    estimated = models.BooleanField(
        default=False, help_text="A debit the supplier did not state: the portal's estimate, "
        "corrected by the next balance sync.",
    )
    reconciled_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reconciles",
        help_text="For an estimated debit: the balance sync difference that settled it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table keeps the name it had when the ledger lived in vendors (migration 0008).
        db_table = "vendors_ledgerentry"
        ordering = ["created_at", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["balance", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.balance.currency}"


class BasketLine(models.Model):
    """One line of a user's basket: a catalog item (routed when placed) or one of its offers
    pinned, and how many. orders.basket places the basket as one order per currency."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="basket_lines"
    )
    item = models.ForeignKey(CatalogItem, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="The offer chosen by hand; empty: the cheapest available when placed.",
    )
    face_value = models.DecimalField(**MONEY, null=True, blank=True,
                                     help_text="For an item sold in a range of values.")
    quantity = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.item}"


class BulkUpload(models.Model):
    """A file of order lines, validated and shown before anything is placed (orders.bulk).
    Its digest tells a file placed before."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulk_uploads"
    )
    filename = models.CharField(max_length=255)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes.")
    rows = models.JSONField(default=list, help_text="The file's rows as read.")
    placed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "digest"])]

    def __str__(self) -> str:
        return self.filename
