"""The interface every supplier adapter implements, and the plain results it returns.

Adapters turn a supplier's HTTP into these dataclasses, in the portal's own terms: ``Decimal``
amounts with ISO-4217 currencies, portal statuses. They know nothing of orders or models.
"""

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from portal.http import SupplierError
from portal.money import Money

__all__ = [
    "Adapter", "BalanceInfo", "CodeInfo", "OrderRequest", "OrderResult", "ProductInfo",
    "Quote", "SupplierError", "SupplierStatus", "TokenCache",
]


class SupplierStatus(enum.StrEnum):
    """What a supplier says of an order, in the portal's words (VendorOrder statuses)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # a value we do not recognise: a person looks, never a success

    @property
    def is_final(self) -> bool:
        return self in (self.COMPLETED, self.PARTIALLY_COMPLETED, self.FAILED, self.CANCELLED)


def status_key(value: object) -> str:
    """A supplier status as the tables spell it: lower case, words joined by underscores."""
    return str(value or "").strip().lower().replace("-", "_").replace(" ", "_")


def map_status(table: dict[str, SupplierStatus], value: object) -> SupplierStatus:
    """Look a supplier status up in an adapter's table, ignoring case and separators."""
    return table.get(status_key(value), SupplierStatus.UNKNOWN)


@dataclass(frozen=True)
class ProductInfo:
    supplier_product_id: str
    sku: str
    name: str
    brand: str = ""
    country: str = ""
    face_value: Decimal | None = None  # None for open denominations
    face_currency: str = ""
    cost: Decimal | None = None  # what one unit costs us, in cost_currency
    cost_currency: str = ""
    denomination_type: str = "fixed"  # fixed | open
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    step: Decimal | None = None
    available: bool = True
    delivery: str = ""  # instant | delayed | "" when the supplier does not say
    terms: str = ""
    price_tiers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BalanceInfo:
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class OrderRequest:
    client_reference: str  # also the supplier's idempotency key
    product_id: str  # the supplier's product id
    sku: str
    quantity: int
    currency: str
    unit_price: Decimal | None = None  # our expected unit cost, where the supplier checks it
    denomination: Decimal | None = None  # the chosen amount of an open-denomination product
    face_value: Decimal | None = None  # the catalog's face (sell) price of one unit
    pay_with_currency: str = ""


@dataclass(frozen=True)
class CodeInfo:
    """One delivered code. Its secret fields never appear in a repr, log or traceback."""

    code: str = field(repr=False)
    pin: str = field(default="", repr=False)
    claim_url: str = field(default="", repr=False)
    serial: str = ""
    expires_at: datetime | None = None
    sku: str = ""


@dataclass(frozen=True)
class OrderResult:
    supplier_order_id: str
    status: SupplierStatus
    raw_status: str = ""
    client_reference: str = ""
    estimated_ready_at: datetime | None = None
    codes: list[CodeInfo] = field(default_factory=list)
    delivered: int | None = None
    total: int | None = None
    cost: Money | None = None  # what the supplier charged, where its answer states it
    cost_estimated: bool = False  # ``cost`` derived by us (e.g. a refund's share), not stated
    message: str = ""  # the supplier's reason or message, for people
    details: dict[str, Any] = field(default_factory=dict)  # fx, unit prices: recorded as is


@dataclass(frozen=True)
class Quote:
    unit_cost: Money
    total_cost: Money
    details: dict[str, Any] = field(default_factory=dict)


class TokenCache(Protocol):
    """Where adapters keep access tokens shared by every worker (Django's cache fits)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: float | None = None) -> None: ...

    def delete(self, key: str) -> Any: ...


class Adapter:
    """One supplier API. Subclasses set the class attributes and implement the operations."""

    kind: str = ""
    one_code_per_request: bool = False  # instant-only suppliers: one request per code
    has_lookup: bool = True  # can find an order by our client reference
    has_balances: bool = True
    credential_fields: tuple[str, ...] = ()

    def __init__(self, *, base_url: str, credentials: dict[str, str], cache: TokenCache,
                 account: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.cache = cache
        self.account = account  # a stable name for cache keys, e.g. the vendor's id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        raise NotImplementedError

    def fetch_balances(self) -> list[BalanceInfo]:
        raise NotImplementedError

    def submit_order(self, order: OrderRequest) -> OrderResult:
        raise NotImplementedError

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        """The supplier's order. ``order`` is what we asked for: where the answer leaves out
        something the charge needs (its currency), the adapter takes it from there."""
        raise NotImplementedError

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        """The order we sent with this reference, or None when the supplier confirms none."""
        raise NotImplementedError

    def quote(self, order: OrderRequest) -> Quote | None:
        """The supplier's price for this order, or None where it offers no quote."""
        return None
