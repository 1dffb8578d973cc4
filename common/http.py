"""The one HTTP seam between the portal and its suppliers.

Every supplier call goes through ``request``: one shared session, explicit connect and read
timeouts, errors mapped to ``SupplierError`` (which says whether retrying can help, how long to
wait, and whether a write's outcome is unknown), and a log line that carries no credential,
header or body.
"""

import enum
import json
import logging
import re
import threading
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from common import ratelimit
from common.addresses import url_problem

logger = logging.getLogger("common.http")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = re.compile(
    r"code|pin|password|secret|token|key|card_number|claim_url|authorization|signature",
    re.IGNORECASE,
)

_local = threading.local()


class Kind(enum.StrEnum):
    """What went wrong with a supplier call: the one thing the engine acts on."""

    REFUSED = "refused"  # declined for good (a 4xx, or the adapter before sending)
    MALFORMED = "malformed"  # an answer without the documented shape
    THROTTLED = "throttled"  # a rate limit: the supplier's 429 or our own budget
    UNAVAILABLE = "unavailable"  # network trouble, a timeout before sending, a 5xx on a read
    OUTCOME_UNKNOWN = "outcome_unknown"  # a write may or may not have taken effect


TRANSIENT = frozenset({Kind.THROTTLED, Kind.UNAVAILABLE})


class SupplierError(Exception):
    """A supplier call that did not give a usable answer.

    ``kind`` is one of ``Kind``; with ``OUTCOME_UNKNOWN``, ``cause`` says what hid the outcome
    (``UNAVAILABLE``: a timeout or 5xx after sending; ``MALFORMED``: an unreadable answer).
    ``retryable``: the same call may succeed later (after ``retry_after`` seconds if known).
    ``code`` is the supplier's own error label, for people; the engine never reads it.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: Kind,
        cause: Kind | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = Kind(kind)
        self.cause = cause
        self.retry_after = retry_after
        self.status_code = status_code
        self.code = code

    @property
    def retryable(self) -> bool:
        return (self.cause or self.kind) in TRANSIENT

    @property
    def outcome_unknown(self) -> bool:
        return self.kind is Kind.OUTCOME_UNKNOWN

    def after_write(self) -> "SupplierError":
        """This error as the answer to a write that was sent: unless the supplier refused it
        or throttled it (nothing done), its outcome is unknown."""
        if self.kind in (Kind.REFUSED, Kind.THROTTLED, Kind.OUTCOME_UNKNOWN):
            return self
        error = SupplierError(self.message, kind=Kind.OUTCOME_UNKNOWN, cause=self.kind,
                              retry_after=self.retry_after, status_code=self.status_code,
                              code=self.code)
        error.__cause__ = self
        return error


@dataclass(frozen=True)
class Budget:
    """A supplier's request budget shared by every worker (common.ratelimit)."""

    key: str
    per_minute: int


def session() -> requests.Session:
    """One session per thread, so connections to a supplier are reused."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.headers["User-Agent"] = "voucher-portal/1"
    return s


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    data: bytes | None = None,
    timeout: tuple[float, float] | None = None,
    budget: Budget | None = None,
) -> requests.Response:
    """Send one request. Returns any response below 500 except 429, which the caller reads.

    With a ``budget``, the request first takes a token from the supplier's shared limit (a
    ``THROTTLED`` error with ``retry_after`` and no status code when there is none left, and
    nothing is sent), and a 429's ``Retry-After`` pauses every caller of that supplier.
    Raises ``SupplierError`` for network failures, timeouts, 429 and 5xx, and (``REFUSED``,
    nothing sent) for a URL ``common.addresses`` forbids.
    """
    method = method.upper()
    is_write = method in WRITE_METHODS
    timeout = timeout or (settings.SUPPLIER_CONNECT_TIMEOUT, settings.SUPPLIER_READ_TIMEOUT)
    where = f" on {method} {url_path(url)}"
    if problem := url_problem(url):
        raise SupplierError(f"{problem} Nothing was sent{where}.", kind=Kind.REFUSED)
    if budget is not None:
        wait = ratelimit.acquire(budget.key, budget.per_minute)
        if wait is not None:
            raise SupplierError(f"request budget spent for {wait:.1f}s{where}",
                                kind=Kind.THROTTLED, retry_after=wait)
    unknown = Kind.OUTCOME_UNKNOWN if is_write else Kind.UNAVAILABLE
    try:
        response = session().request(
            method, url, headers=headers, params=params, json=json_body, data=data,
            timeout=timeout,
        )
    except requests.ConnectTimeout as exc:
        logger.warning("%s %s: connect timeout", method, redact_url(url))
        raise SupplierError(f"supplier did not accept the connection{where}",
                            kind=Kind.UNAVAILABLE) from exc
    except requests.Timeout as exc:
        logger.warning("%s %s: read timeout", method, redact_url(url))
        raise SupplierError(f"supplier did not answer in time{where}", kind=unknown,
                            cause=Kind.UNAVAILABLE if is_write else None) from exc
    except requests.RequestException as exc:
        logger.warning("%s %s: %s", method, redact_url(url), type(exc).__name__)
        raise SupplierError(
            f"connection to supplier failed ({type(exc).__name__}){where}", kind=unknown,
            cause=Kind.UNAVAILABLE if is_write else None,
        ) from exc

    logger.info(
        "%s %s -> %s in %.0f ms", method, redact_url(url), response.status_code,
        response.elapsed.total_seconds() * 1000,
    )
    if response.status_code == 429:
        retry_after = retry_after_seconds(response)
        if budget is not None and retry_after:
            ratelimit.pause(budget.key, retry_after)
        raise SupplierError(
            f"supplier rate limit reached{where}", kind=Kind.THROTTLED, status_code=429,
            retry_after=retry_after,
        )
    if response.status_code >= 500:
        raise SupplierError(
            f"supplier error {response.status_code}{where}", kind=unknown,
            cause=Kind.UNAVAILABLE if is_write else None,
            status_code=response.status_code, retry_after=retry_after_seconds(response),
        )
    return response


def read_json(response: requests.Response, *, outcome_unknown: bool = False) -> Any:
    """The response body as JSON, or a ``SupplierError`` that says the body was malformed."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        error = SupplierError(
            f"supplier sent a malformed answer (HTTP {response.status_code}, not JSON)",
            kind=Kind.MALFORMED, status_code=response.status_code,
        )
        raise (error.after_write() if outcome_unknown else error) from exc


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def url_path(url: str) -> str:
    """The URL's path alone: no host, no query string (which may carry references or keys)."""
    return urlsplit(url).path or "/"


def redact_url(url: str) -> str:
    """The URL without its query string, which may carry references or keys."""
    return url.split("?", 1)[0]


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every secret-looking field masked."""
    if isinstance(value, dict):
        return {
            k: "***" if SECRET_KEYS.search(str(k)) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
