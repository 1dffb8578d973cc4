"""The interface every supplier adapter implements, and the plain results it returns.

Adapters turn a supplier's HTTP into these dataclasses, in the portal's own terms: ``Decimal``
amounts with ISO-4217 currencies, portal statuses. They know nothing of orders or models.

``HttpAdapter`` owns the call: the auth hook, one resend after a 401, the shared request
budget, JSON decoding, the adapter's ``raise_for_response`` hook, and the rule that only an
order submission can leave an outcome unknown. ``settle_status`` is the one place where a
supplier's raw status and the codes it sent become the portal's status.
"""

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Protocol, TypeVar

import requests
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
)

from common.http import Budget, Kind, SupplierError, read_json, request
from common.money import Money, MoneyError, currency_code, exponent, from_minor, to_decimal

__all__ = [
    "Adapter", "Amount", "Answer", "BalanceInfo", "Capabilities", "CodeInfo", "Currency",
    "HttpAdapter", "Ident", "Kind", "NonBlank", "OpenAnswer", "OrderRequest", "OrderResult",
    "ProductInfo", "Quote", "SupplierError", "SupplierStatus", "Text", "TokenCache",
    "minor_to_major", "only", "or_default", "settle_status",
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


class Answer(BaseModel):
    """A supplier answer's declared shape: strict types (no bool for a number, no number for
    a string), unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


def _amount(value: Any) -> Decimal:
    try:
        return to_decimal(value)  # a JSON float is read from its repr, never computed with
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a currency code is a string")
    try:
        return currency_code(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("a blank string")
    return value


def _ident(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValueError("an identifier is a non-empty string or a whole number")
    return str(value)


# Field types for answers: an exact Decimal from a JSON number or decimal string (no bool);
# an ISO-4217 code in upper case; an id sent as a string or a number, kept as a string; a
# string that is not blank; text that may be missing or null ("").
Amount = Annotated[Decimal, PlainValidator(_amount)]
Currency = Annotated[str, PlainValidator(_currency)]
Ident = Annotated[str, PlainValidator(_ident)]
NonBlank = Annotated[str, AfterValidator(_nonblank)]
Text = Annotated[str, BeforeValidator(lambda value: str(value) if value else "")]


def or_default(default: Any) -> BeforeValidator:
    """A field validator reading a missing, null or empty value (0, "", [], {}) as
    ``default``."""
    return BeforeValidator(lambda value: value or default)


def only(kind: type | tuple[type, ...], default: Any = None) -> BeforeValidator:
    """A field validator reading a value of another type than ``kind`` as ``default``: for
    optional fields the portal only records, where an odd value is no reason to refuse."""
    return BeforeValidator(lambda value: value if isinstance(value, kind) else default)


def minor_to_major(value: object, currency: str) -> Decimal:
    """Minor units (1099) in major units (10.99); a buying price may carry fractions of a
    minor unit (1044.5 -> 10.445). Raises MoneyError for no number or an unknown currency."""
    amount = to_decimal(value)
    if amount == amount.to_integral_value():
        return from_minor(amount, currency)
    return amount.scaleb(-exponent(currency))


class OpenAnswer(Answer):
    """An answer that keeps its undeclared fields, to be recorded as they came (``pick``)."""

    model_config = ConfigDict(extra="allow")

    def pick(self, *names: str) -> dict[str, Any]:
        """The fields among ``names`` that the answer sent and did not leave null."""
        values = {name: getattr(self, name) for name in names if name in self.model_fields_set}
        return {name: value for name, value in values.items() if value is not None}


M = TypeVar("M", bound=BaseModel)
UNION_TAGS = frozenset({"int", "float", "str", "bool", "list", "dict", "none"})


def settle_status(mapped: SupplierStatus, *, delivered: int, ordered: int | None,
                  pending: int = 0) -> tuple[SupplierStatus, str]:
    """The portal's status of a supplier order from the supplier's own (mapped by its table)
    and the codes it sent: one rule for every supplier. Returns (status, why, or "").

    - completed with codes still pending: processing (they arrive progressively);
    - completed with fewer codes than ordered, or none: unknown, a person looks (never a
      success, never a partial the supplier did not state);
    - failed or cancelled after some codes were delivered: partially completed (the delivered
      codes are ours and paid for); cancelled with every code delivered: unknown.
    """
    if mapped is SupplierStatus.COMPLETED:
        if pending:
            return SupplierStatus.PROCESSING, "codes still arriving"
        if not delivered or (ordered is not None and delivered < ordered):
            return SupplierStatus.UNKNOWN, f"completed with {delivered} of {ordered} codes"
    elif mapped in (SupplierStatus.FAILED, SupplierStatus.CANCELLED) and delivered:
        if ordered is not None and delivered >= ordered:
            return SupplierStatus.UNKNOWN, f"{mapped} yet every code delivered"
        return (SupplierStatus.PARTIALLY_COMPLETED,
                f"{mapped} after part of the codes were delivered; the rest refunded")
    return mapped, ""


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


@dataclass(frozen=True)
class Capabilities:
    """What a supplier's API offers beyond the operations every adapter has."""

    lookup_by_reference: bool = True  # finds an order by our client reference
    balances: bool = True  # reports wallet balances
    pay_with_currency: bool = False  # settles an order from a balance in another currency
    webhooks: bool = False  # tells us of order changes
    order_listing: bool = False  # lists our orders
    one_code_per_request: bool = False  # instant-only: one request per code


class Adapter:
    """One supplier API. Subclasses declare ``kind``, ``label``, ``capabilities`` and
    ``credential_fields`` and implement the operations below.

    Side effects: only ``submit_order`` may move money. Every other operation is a read and
    must be idempotent (safe to repeat, safe to run from a page or a sync). Every operation
    raises only ``SupplierError`` (a ``Kind``); ``submit_order`` alone may raise
    ``OUTCOME_UNKNOWN``, after which the engine looks the order up by reference before it
    sends anything again.
    """

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    # the keys of a usable credentials object; alternatives (either generation) as a tuple each
    credential_fields: ClassVar[tuple[str, ...]] = ()
    credential_sets: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def __init__(self, *, base_url: str, credentials: dict[str, str], cache: TokenCache,
                 account: str = "", budget: Budget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.cache = cache
        self.account = account  # a stable name for cache keys, e.g. the vendor's id
        self.budget = budget  # the supplier's request limit, shared by every worker

    # read from ``capabilities`` (class attributes: the engine asks the class)
    has_lookup: ClassVar[bool] = True
    has_balances: ClassVar[bool] = True
    one_code_per_request: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.has_lookup = cls.capabilities.lookup_by_reference
        cls.has_balances = cls.capabilities.balances
        cls.one_code_per_request = cls.capabilities.one_code_per_request

    @classmethod
    def missing_credentials(cls, credentials: dict[str, str]) -> list[str]:
        """The credential fields this supplier needs and ``credentials`` lacks ([] if none)."""
        sets = cls.credential_sets or (cls.credential_fields,)
        gaps = [[f for f in fields if not str(credentials.get(f) or "").strip()]
                for fields in sets]
        return min(gaps, key=len)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def fetch_catalog(self) -> Iterator[ProductInfo]:
        """Every product the account may order. Idempotent read; raises SupplierError."""
        raise NotImplementedError

    def fetch_balances(self) -> list[BalanceInfo]:
        """The account's balances ([] where the supplier has none). Idempotent read."""
        raise NotImplementedError

    def submit_order(self, order: OrderRequest) -> OrderResult:
        """Place ``order``: the one operation that moves money. Sends our client reference as
        the supplier's idempotency key where it has one, so a resend after an unknown outcome
        cannot buy twice. Raises SupplierError: REFUSED (nothing bought), THROTTLED,
        UNAVAILABLE or MALFORMED before the order went out (safe to resend), OUTCOME_UNKNOWN
        after it went out (look it up first)."""
        raise NotImplementedError

    def fetch_order(self, supplier_order_id: str, *,
                    order: OrderRequest | None = None) -> OrderResult:
        """The supplier's order. ``order`` is what we asked for: where the answer leaves out
        something the charge needs (its currency), the adapter takes it from there.
        Idempotent read; raises SupplierError."""
        raise NotImplementedError

    def lookup_order(self, client_reference: str, *,
                     order: OrderRequest | None = None) -> OrderResult | None:
        """The order we sent with this reference, or None when the supplier confirms none.
        Idempotent read; raises SupplierError when it cannot say (never None on doubt)."""
        raise NotImplementedError

    def quote(self, order: OrderRequest) -> Quote | None:
        """The supplier's price for this order, or None where it offers no quote.
        Idempotent read (even where the supplier wants a POST); raises SupplierError."""
        return None


class HttpAdapter(Adapter):
    """An adapter over JSON HTTP. Subclasses give ``auth_headers`` and ``raise_for_response``,
    and, for session tokens, ``login``/``refresh`` (see ``access_token``)."""

    name: ClassVar[str] = ""  # the supplier's name in messages
    refresh_after_401: ClassVar[bool] = True  # else a 401 always means a new login

    # ------------------------------------------------------------------ hooks

    def auth_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """Headers that authenticate one request (may log in: see ``access_token``)."""
        return {}

    def raise_for_response(self, response: requests.Response) -> None:
        """Raise the SupplierError a non-2xx answer means (``error`` builds one)."""
        if response.status_code >= 400:
            raise self.error(response, "")

    def login(self) -> str:
        """A fresh session: store it with ``store_tokens`` and return the access token."""
        raise NotImplementedError

    def refresh(self, tokens: dict) -> str | None:
        """Renew ``tokens`` without a login, or None when they cannot be refreshed."""
        return None

    def fresh_access(self, tokens: dict) -> str | None:
        """The cached access token while it is still good to use, else None."""
        return None

    def uses_session(self) -> bool:
        """Whether requests carry a session token (``login``) rather than a static key."""
        return type(self).login is not HttpAdapter.login

    def sent_token(self, tokens: dict) -> str | None:
        """The access token ``tokens`` holds (to tell whether another worker renewed)."""
        return None

    # ------------------------------------------------------------------ the call

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json_body: Any = None, data: bytes | None = None,
             headers: dict[str, str] | None = None, order_write: bool = False,
             authenticate: bool = True) -> requests.Response:
        """One authorised request within the supplier's budget; after a 401 the session is
        renewed and the request sent once more (a 401 means it was refused, so resending even
        an order is safe). Only an ``order_write`` can leave an outcome unknown: a timeout on
        a login or a quote POST is plain unavailability. ``authenticate=False``: the login
        itself (no auth hook, no resend)."""
        body = data if data is not None else b""
        for attempt in (1, 2):
            try:
                all_headers = {"Accept": "application/json", **(headers or {})}
                if authenticate:
                    all_headers.update(self.auth_headers(method, path, body))
                response = request(method, self.base_url + path, headers=all_headers,
                                   params=params, json_body=json_body, data=data,
                                   budget=self.budget)
            except SupplierError as exc:
                if exc.kind is Kind.OUTCOME_UNKNOWN and not order_write:
                    raise SupplierError(exc.message, kind=exc.cause or Kind.UNAVAILABLE,
                                        retry_after=exc.retry_after,
                                        status_code=exc.status_code, code=exc.code) from exc
                raise
            if response.status_code != 401 or attempt == 2 or not authenticate \
                    or not self._reauthenticate():
                return response
        raise AssertionError("unreachable")

    def call_json(self, method: str, path: str, *, accept: tuple[int, ...] = (),
                  order_write: bool = False, **kwargs: Any) -> Any:
        """``call``, then ``raise_for_response`` for a status >= 400 not in ``accept``, then
        the decoded body (MALFORMED, or OUTCOME_UNKNOWN for an order write, when not JSON)."""
        response = self.call(method, path, order_write=order_write, **kwargs)
        if response.status_code >= 400 and response.status_code not in accept:
            self.raise_for_response(response)
        return read_json(response, outcome_unknown=order_write)

    def error(self, response: requests.Response, code: str, message: str = "",
              kind: Kind | None = None) -> SupplierError:
        """A SupplierError for a 4xx answer: REFUSED, but UNAVAILABLE for a 408."""
        status = response.status_code
        if kind is None:
            kind = Kind.UNAVAILABLE if status == 408 else Kind.REFUSED
        text = f"{self.name or self.kind} answered HTTP {status}"
        if message:
            text += f": {message[:300]}"
        return SupplierError(text, kind=kind, status_code=status, code=code or str(status))

    def parse(self, model: type[M], data: Any, *, what: str, order_write: bool = False) -> M:
        """``data`` read into its declared ``model``, or MALFORMED (OUTCOME_UNKNOWN for an
        order write's answer) naming the first path that does not fit."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            path = ".".join(str(p) for p in first["loc"] if str(p) not in UNION_TAGS
                            and "[" not in str(p))
            raise self.malformed(f"{what}: {path or 'the answer'}: {first['msg']}",
                                 order_write=order_write) from exc

    def malformed(self, message: str, *, order_write: bool = False) -> SupplierError:
        error = SupplierError(f"{self.name or self.kind} sent a malformed answer: {message}",
                              kind=Kind.MALFORMED, code="malformed")
        return error.after_write() if order_write else error

    # ------------------------------------------------------------------ session tokens

    @property
    def token_key(self) -> str:
        return f"{self.kind}:{self.account}:tokens"

    def cached_tokens(self) -> dict | None:
        tokens = self.cache.get(self.token_key)
        return tokens if isinstance(tokens, dict) else None

    def store_tokens(self, tokens: dict, *, expires_at: float) -> None:
        """Keep a session for every worker until its last token expires."""
        self.cache.set(self.token_key, tokens, timeout=max(1.0, expires_at - time.time()))

    def access_token(self) -> str:
        """A usable access token: cached, refreshed, or from a new login. A refresh that
        fails for a transient reason is raised (a login would fare no better now)."""
        tokens = self.cached_tokens()
        if tokens:
            token = self.fresh_access(tokens)
            if token:
                return token
            try:
                token = self.refresh(tokens)
            except SupplierError as exc:
                if exc.retryable:
                    raise
                token = None  # refused (rotated by another worker, revoked): log in again
            if token:
                return token
        return self.login()

    def _reauthenticate(self) -> bool:
        """After a 401: renew the session (refresh, else log in) unless another worker already
        did. False when the adapter has no session (a static key: resending would not help)."""
        if not self.uses_session():
            return False
        tokens = self.cached_tokens()
        if tokens is not None and self.sent_token(tokens) != self._last_sent:
            return True  # renewed meanwhile: resend with the new token
        self.cache.delete(self.token_key)
        try:
            renewed = self.refresh(tokens) if tokens and self.refresh_after_401 else None
        except SupplierError as exc:
            if exc.retryable:
                raise
            renewed = None
        if not renewed:
            self.login()
        return True

    _last_sent: str | None = None

    def bearer(self) -> dict[str, str]:
        """An ``Authorization: Bearer`` header with the session's access token."""
        self._last_sent = self.access_token()
        return {"Authorization": f"Bearer {self._last_sent}"}

    # ------------------------------------------------------------------ paging

    @staticmethod
    def paged(fetch: Callable[[int], tuple[list, bool]], *, first: int = 1,
              max_pages: int = 1000, what: str = "pages") -> Iterator[list]:
        """Each page's items from ``fetch(n)`` -> (items, more?), n counting from ``first``,
        until a page says no more or is empty; MALFORMED when the paging never ends."""
        for number in range(first, first + max_pages):
            items, more = fetch(number)
            yield items
            if not items or not more:
                return
        raise SupplierError(f"{what}: more than {max_pages} pages", kind=Kind.MALFORMED,
                            code="malformed")
